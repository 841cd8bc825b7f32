"""The Job template `bench --node` runs, kept in a ConfigMap of manifests/11-immichcheck.yaml."""

from __future__ import annotations

import os
import re
import string
from collections.abc import Sequence
from typing import Any

import yaml

from immichcheck.common import yaml_text
from immichcheck.deploy.expected_state import load_expected_state
from immichcheck.deploy.manifest_files import ManifestsError, yaml_error_text
from immichcheck.deploy.pod_specs import pod_spec

BENCH_JOB_TEMPLATE_CONFIGMAP = "immichcheck-bench-job-template"
BENCH_JOB_TEMPLATE_KEY = "job.yaml"


def bench_job_template(directory: str | os.PathLike[str] | None = None) -> str:
    """The text of the Job template `bench --node` uses (placeholders ${NODE}, ${JOB_NAME})."""
    state = load_expected_state(directory)
    data = state.configmaps.get(BENCH_JOB_TEMPLATE_CONFIGMAP) or {}
    text = data.get(BENCH_JOB_TEMPLATE_KEY)
    if text is None:
        raise ManifestsError(
            f"ConfigMap {BENCH_JOB_TEMPLATE_CONFIGMAP} with key {BENCH_JOB_TEMPLATE_KEY} "
            f"is missing from {state.directory}"
        )
    return text


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def render_bench_job(
    node: str,
    job_name: str,
    args: Sequence[str] | None = None,
    directory: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """The Job object for a benchmark on `node`; `args` replaces the bench container's args."""
    return render_job_template(bench_job_template(directory), node, job_name, args)


def render_job_template(
    text: str, node: str, job_name: str, args: Sequence[str] | None = None
) -> dict[str, Any]:
    """Fill a Job template's ${NODE} and ${JOB_NAME}; `args` replaces the first container's."""
    if not _DNS_LABEL.match(job_name):
        raise ManifestsError(f"not a valid Job name (lower-case DNS label): {job_name!r}")
    if not node or any(char.isspace() or char in "\"'{}[]:#,&*!|>%@`" for char in node):
        raise ManifestsError(f"not a valid node name: {node!r}")
    try:
        rendered = string.Template(text).substitute(NODE=node, JOB_NAME=job_name)
    except (KeyError, ValueError) as exc:
        raise ManifestsError(f"bench Job template: bad placeholder: {exc}") from None
    try:
        job = yaml_text.load(rendered)
    except yaml.YAMLError as exc:
        raise ManifestsError(f"bench Job template: bad YAML: {yaml_error_text(exc)}") from None
    if not isinstance(job, dict) or job.get("kind") != "Job":
        raise ManifestsError("bench Job template does not hold a Job")
    if args is not None:
        containers = pod_spec(job).get("containers") or []
        if not containers:
            raise ManifestsError("bench Job template has no container")
        job["spec"]["template"]["spec"]["containers"][0]["args"] = [str(arg) for arg in args]
    return job

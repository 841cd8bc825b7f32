"""The node-pinned Job: its name, its arguments, the manifest rendered from the template in
manifests/11-immichcheck.yaml, and the run-record line its log ends with."""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Sequence
from typing import Any

from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.records import RunRecord

RECORD_PREFIX = "IMMICHCHECK-RUN-RECORD "
JOB_NAME_PREFIX = "immichcheck-bench-"
HOSTNAME_LABEL = "kubernetes.io/hostname"
NODE_NAME_ENV = "IMMICHCHECK_JOB_NODE"  # set from the Downward API (spec.nodeName)
DEFAULT_TIMEOUT = 3600.0  # seconds; the template's activeDeadlineSeconds
DEADLINE_MARGIN = 60  # the Job's own deadline trails ours, so ours fires first


def job_name_for(node: str, token: str | None = None) -> str:
    """`immichcheck-bench-node05-x7k2p`: a DNS label, unique per run."""
    suffix = token or secrets.token_hex(3)
    slug = re.sub(r"[^a-z0-9-]+", "-", node.lower()).strip("-") or "node"
    room = 63 - len(JOB_NAME_PREFIX) - len(suffix) - 1
    return f"{JOB_NAME_PREFIX}{slug[:room].rstrip('-')}-{suffix}"


def job_arguments(template_args: Sequence[str], bench_args: Sequence[str]) -> list[str]:
    """The container's args: `bench --in-job`, the template's --path mounts, our options.

    The template's `--path LABEL=DIR` entries name the folders the Job mounts, so they are
    kept; its profile and output options give way to the user's.
    """
    paths: list[str] = []
    args = list(template_args)
    for index, arg in enumerate(args):
        if arg == "--path" and index + 1 < len(args):
            paths += ["--path", args[index + 1]]
        elif arg.startswith("--path="):
            paths += ["--path", arg.split("=", 1)[1]]
    return ["bench", "--in-job", *paths, *bench_args]


def render_node_job(
    node: str,
    job_name: str,
    bench_args: Sequence[str],
    *,
    timeout: float,
    manifests_dir: str | None = None,
) -> dict[str, Any]:
    """The Job for one node from the manifests' template, with our args and deadline."""
    from immichcheck.deploy.bench_job import render_bench_job

    job = render_bench_job(node, job_name, directory=manifests_dir)
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    container["args"] = job_arguments(container.get("args") or [], bench_args)
    env = [e for e in container.get("env") or [] if e.get("name") != NODE_NAME_ENV]
    env.append({"name": NODE_NAME_ENV, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    container["env"] = env
    # The cluster ends the Job a little after we would have given up, should we be gone.
    job["spec"]["activeDeadlineSeconds"] = max(
        int(job["spec"].get("activeDeadlineSeconds") or 0), math.ceil(timeout) + DEADLINE_MARGIN
    )
    job["spec"].setdefault("ttlSecondsAfterFinished", 3600)
    job["spec"]["backoffLimit"] = 0  # a failed benchmark is reported, not retried
    pod["restartPolicy"] = "Never"
    return job


def split_log(text: str) -> tuple[list[str], RunRecord | None]:
    """A Job's log as progress lines plus the run record from its last record line."""
    from immichcheck.history.store import RunFileError, parse_run_file

    lines: list[str] = []
    record_text: str | None = None
    for line in text.splitlines():
        if line.startswith(RECORD_PREFIX):
            record_text = line[len(RECORD_PREFIX) :]
        else:
            lines.append(line)
    if record_text is None:
        return lines, None
    try:
        return lines, parse_run_file(record_text)
    except RunFileError as exc:
        raise ImmichcheckError(f"the Job printed an unreadable run record: {exc}") from exc


def record_line(record: RunRecord) -> str:
    """The run record as the Job's last log line."""
    return RECORD_PREFIX + record.to_json(indent=None)

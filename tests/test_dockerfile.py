"""The container image's Dockerfile, linted: it cannot be built here (no Docker engine).

The instructions are parsed with dockerfile-parse (ARG substitution, continuations) and
checked against what the manifests expect of the image: the tag, the user, a read-only root
filesystem, the entrypoint the Job template relies on, and the files it copies.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from immichcheck import __version__
from immichcheck.common.project_files import _IMAGE_HOME
from immichcheck.deploy.bench_job import render_bench_job
from immichcheck.deploy.expected_state import load_expected_state

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_REPOSITORY = "ghcr.io/immichcheck/immichcheck"


@pytest.fixture(scope="module")
def parser() -> DockerfileParser:
    """The parsed Dockerfile."""
    return DockerfileParser(path=str(DOCKERFILE))


def instructions(parser: DockerfileParser, kind: str, *, final_stage: bool = False) -> list[str]:
    """Values of every instruction of a kind (only the last stage's with final_stage)."""
    structure = parser.structure
    if final_stage:
        last_from = max(i for i, s in enumerate(structure) if s["instruction"] == "FROM")
        structure = structure[last_from:]
    return [s["value"] for s in structure if s["instruction"] == kind]


def immichcheck_pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every pod that runs the image: the CronJob and the bench Job."""
    state = load_expected_state()
    specs = []
    for obj in state.objects:
        if obj.get("kind") == "CronJob" and obj["metadata"]["name"].startswith("immichcheck"):
            specs.append(("CronJob", obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    job = render_bench_job("node05", "immichcheck-bench-node05-abc123")
    specs.append(("bench Job template", job["spec"]["template"]["spec"]))
    assert len(specs) == 2
    return specs


def test_base_images_are_a_pinned_slim_python_311(parser: DockerfileParser) -> None:
    parents = parser.parent_images
    assert parser.is_multistage and len(parents) == 2
    for image in parents:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", image), image
    assert "latest" not in DOCKERFILE.read_text()


def test_runs_as_the_non_root_user_the_manifests_expect(parser: DockerfileParser) -> None:
    [user] = instructions(parser, "USER", final_stage=True)
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0  # numeric, so runAsNonRoot can verify it
    for where, spec in immichcheck_pod_specs():
        context = spec["securityContext"]
        assert (context["runAsUser"], context["runAsGroup"]) == (int(uid), int(gid)), where
        assert context["runAsNonRoot"] is True, where


def test_works_with_a_read_only_root_filesystem(parser: DockerfileParser) -> None:
    env = parser.envs  # the final stage's environment
    assert env["HOME"] == "/tmp"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert instructions(parser, "WORKDIR", final_stage=True) == ["/tmp"]
    assert "compileall" in " ".join(instructions(parser, "RUN"))  # no .pyc written at run time
    for where, spec in immichcheck_pod_specs():
        [container] = spec["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], where


def test_project_folders_are_where_the_package_looks_for_them(parser: DockerfileParser) -> None:
    assert parser.envs["IMMICHCHECK_HOME"] == str(_IMAGE_HOME)
    copies = instructions(parser, "COPY", final_stage=True)
    for folder in ("manifests", "benchmarks"):
        assert f"{folder} {_IMAGE_HOME}/{folder}" in copies


def _ignored(path: str, patterns: list[str]) -> bool:
    return any(
        fnmatch.fnmatch(path, pattern.removeprefix("**/"))
        or fnmatch.fnmatch(Path(path).name, pattern.removeprefix("**/"))
        for pattern in patterns
    )


def test_every_copied_path_exists_and_is_not_ignored(parser: DockerfileParser) -> None:
    ignore = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for must_stay_out in (".git", ".venv", "tests", "reports"):
        assert must_stay_out in ignore
    sources = []
    for value in instructions(parser, "COPY"):
        parts = value.split()
        if any(part.startswith("--from=") for part in parts):
            continue
        sources += [part for part in parts[:-1] if not part.startswith("--")]
    assert {"pyproject.toml", "README.md", "immichcheck", "manifests", "benchmarks"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _ignored(source, ignore), source


def test_image_tag_is_the_package_version_everywhere(parser: DockerfileParser) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == __version__
    assert parser.labels["org.opencontainers.image.version"] == __version__
    assert f"{IMAGE_REPOSITORY}:{__version__}" in DOCKERFILE.read_text()  # the build example
    for where, spec in immichcheck_pod_specs():
        [container] = spec["containers"]
        assert container["image"] == f"{IMAGE_REPOSITORY}:{__version__}", where


def test_native_engines_are_installed_from_debian(parser: DockerfileParser) -> None:
    runs = " ".join(instructions(parser, "RUN", final_stage=True))
    install = re.search(r"apt-get install ([^&]+)", runs)
    assert install is not None
    packages = install.group(1).split()
    assert "--no-install-recommends" in packages
    # pgbench ships in Debian's server package; redis-benchmark in redis-tools.
    assert {"postgresql-15", "redis-tools", "fio"} <= set(packages)
    assert "create_main_cluster = false" in runs  # the server package must not make a cluster
    assert "rm -rf /var/lib/apt/lists/*" in runs
    assert "/usr/lib/postgresql/15/bin" in parser.envs["PATH"]


def test_nothing_is_downloaded_per_architecture(parser: DockerfileParser) -> None:
    text = " ".join(instructions(parser, "RUN") + instructions(parser, "ADD"))
    assert not re.search(r"\b(curl|wget)\b|https?://", text)
    assert not re.search(r"amd64|x86_64|arm64|aarch64|armhf", text)


def test_entrypoint_runs_immichcheck_so_job_args_are_subcommands(parser: DockerfileParser) -> None:
    [entrypoint] = instructions(parser, "ENTRYPOINT", final_stage=True)
    assert json.loads(entrypoint) == ["immichcheck"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["immichcheck"] == "immichcheck.cli.main:main"
    specs = dict(immichcheck_pod_specs())
    [bench_container] = specs["bench Job template"]["containers"]
    assert "command" not in bench_container  # the entrypoint runs, args are `bench ...`
    assert bench_container["args"][0] == "bench"
    [cron_container] = specs["CronJob"]["containers"]
    assert cron_container["command"] == ["/bin/sh", "-c"]
    assert "immichcheck verify" in cron_container["args"][0]

"""`immichcheck manifests validate`: Kubernetes schemas plus cross-references between objects.

Every problem is one `Problem(file, object, reason)`, rendered `file: Kind/name: reason`. The
schema pass uses kubernetes-validate (the published OpenAPI schemas, strict: unknown fields are
errors); the cross-reference pass checks what a schema cannot: that referenced ConfigMaps,
Secrets, claims, Services and ports exist and agree, and that images are pinned.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from immichcheck.common import yaml_text
from immichcheck.common.errors import ExitCode, ImmichcheckError
from immichcheck.deploy.bench_job import BENCH_JOB_TEMPLATE_CONFIGMAP, BENCH_JOB_TEMPLATE_KEY
from immichcheck.deploy.cross_references import CLUSTER_SCOPED_KINDS, object_namespace
from immichcheck.deploy.expected_state import build_expected_state
from immichcheck.deploy.manifest_files import (
    ManifestDocument,
    ManifestsError,
    manifest_files,
    parse_manifest_file,
    resolve_directory,
)
from immichcheck.deploy.manifest_references import (
    MANUAL_SECRET_KEYS,
    NODEPORT_RANGE,
    POD_KINDS,
    CrossReferences,
    image_problem,
    render_template,
)

# A current Kubernetes release whose schemas kubernetes-validate ships (1.34: August 2025).
DEFAULT_KUBERNETES_VERSION = "1.34"
# Kinds validated without kubernetes-validate (--no-schema): the built-in kinds one expects in
# an application's manifests. With schemas, whatever has a schema is known.
BUILTIN_KINDS = frozenset(
    (
        *POD_KINDS,
        *CLUSTER_SCOPED_KINDS,
        "ConfigMap",
        "Secret",
        "Service",
        "ServiceAccount",
        "PersistentVolumeClaim",
        "Ingress",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "LimitRange",
        "ResourceQuota",
        "Endpoints",
        "EndpointSlice",
    )
)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the manifests: where it is and why it is wrong."""

    file: str
    obj: str  # "Kind/name", or "-" when the problem is not about one object
    reason: str

    def line(self) -> str:
        """The one-line form `file: Kind/name: reason`."""
        return f"{self.file}: {self.obj}: {self.reason}"


@dataclass(frozen=True)
class ValidationReport:
    """What `validate_manifests` checked and found."""

    directory: Path
    files: int
    objects: int
    kubernetes_version: str | None  # None when the schema pass was skipped
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """No problems at all."""
        return not self.problems


def _schema_validator(kubernetes_version: str) -> Any:
    """kubernetes_validate, imported on use: it is a dev extra, and loading it costs 150 ms."""
    try:
        import kubernetes_validate
    except ImportError:
        raise ImmichcheckError(
            "kubernetes-validate is not installed: pip install kubernetes-validate "
            "(or immichcheck[dev]), or run with --no-schema for the cross-reference checks only",
            ExitCode.UNKNOWN,
        ) from None
    try:
        supported = kubernetes_validate.utils.all_versions()
    except Exception as exc:  # a broken install must still end in one line
        raise ImmichcheckError(
            f"kubernetes-validate is unusable: {exc}", ExitCode.UNKNOWN
        ) from None
    wanted = kubernetes_version.removeprefix("v")
    if not any(version.startswith(wanted + ".") or version == wanted for version in supported):
        raise ImmichcheckError(
            f"kubernetes-validate {kubernetes_validate.__version__} has no schemas for "
            f"Kubernetes {kubernetes_version} (it has {supported[0]} to {supported[-1]})",
            ExitCode.UNKNOWN,
        )
    return kubernetes_validate


def validate_manifests(
    directory: str | os.PathLike[str] | None = None,
    *,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    schema: bool = True,
) -> ValidationReport:
    """Check every manifest file: YAML, schemas (unless schema=False) and cross-references.

    Raises ImmichcheckError (exit 3) only when the check cannot run at all: the folder is
    missing or empty, or kubernetes-validate is missing or lacks the version's schemas.
    """
    folder = resolve_directory(directory)
    files = manifest_files(folder)
    if not files:
        raise ManifestsError(f"no manifest files (*.yaml) in {folder}")
    validator = _schema_validator(kubernetes_version) if schema else None

    problems: list[Problem] = []
    documents: list[ManifestDocument] = []
    for path in files:
        try:
            documents.extend(parse_manifest_file(path))
        except ManifestsError as exc:
            reason = exc.message.removeprefix(f"{path.name}: ")
            problems.append(Problem(path.name, "-", reason))

    problems.extend(_check_kustomization(folder, files))
    problems.extend(_check_structure(documents, validator is not None))
    if validator is not None:
        problems.extend(_check_schemas(documents, validator, kubernetes_version))
    problems.extend(
        Problem(doc.file.name, doc.label, reason)
        for doc, reason in CrossReferences(documents).problems()
    )
    if not problems:
        # The loader must be able to derive the expected state verify compares against.
        try:
            build_expected_state(folder, documents)
        except ManifestsError as exc:
            problems.append(Problem("-", "-", f"expected state: {exc.message}"))

    return ValidationReport(
        directory=folder,
        files=len(files),
        objects=len(documents),
        kubernetes_version=kubernetes_version if validator is not None else None,
        problems=tuple(_unique(problems)),
    )


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    seen: set[Problem] = set()
    result = []
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            result.append(problem)
    return result


# --- structure and schemas -------------------------------------------------------------------


def _check_kustomization(folder: Path, files: list[Path]) -> Iterator[Problem]:
    """kustomization.yaml, when present, lists exactly the manifest files that exist."""
    path = folder / "kustomization.yaml"
    if not path.is_file():
        return
    try:
        body = yaml_text.load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        yield Problem(path.name, "-", f"bad YAML: {' '.join(str(exc).split())}")
        return
    if not isinstance(body, dict):
        yield Problem(path.name, "-", "not a Kustomization object")
        return
    listed = [str(item) for item in body.get("resources") or []]
    names = {file.name for file in files}
    for resource in listed:
        if resource not in names and not (folder / resource).exists():
            yield Problem(path.name, "-", f"resource {resource} does not exist")
    for name in sorted(names - set(listed)):
        yield Problem(
            path.name, "-", f"{name} is not listed in resources (kubectl apply -k would skip it)"
        )


def _check_structure(documents: list[ManifestDocument], with_schema: bool) -> Iterator[Problem]:
    """apiVersion/kind/name present, known kinds, no duplicates, no Secret objects."""
    seen: dict[tuple[str, str, str], str] = {}
    for doc in documents:
        where = doc.file.name
        if not doc.body.get("apiVersion") or not doc.kind:
            yield Problem(where, doc.label, "missing apiVersion or kind")
            continue
        if not doc.name:
            yield Problem(where, doc.label, "missing metadata.name")
            continue
        if not with_schema and doc.kind not in BUILTIN_KINDS:
            yield Problem(where, doc.label, f"unknown kind {doc.kind} ({doc.body['apiVersion']})")
        if doc.kind == "Secret":
            yield Problem(
                where,
                doc.label,
                "secrets must not be in the manifests: create them with kubectl create secret "
                "(manifests/README.md)",
            )
        key = (doc.kind, object_namespace(doc.body), doc.name)
        if key in seen:
            yield Problem(where, doc.label, f"defined twice (also in {seen[key]})")
        else:
            seen[key] = where


def _check_schemas(
    documents: list[ManifestDocument], validator: Any, kubernetes_version: str
) -> Iterator[Problem]:
    """Each object against the strict Kubernetes schema of its kind and apiVersion."""
    for doc in documents:
        if not doc.body.get("apiVersion") or not doc.kind:
            continue
        reason = _schema_problem(doc.body, validator, kubernetes_version)
        if reason:
            yield Problem(doc.file.name, doc.label, reason)
        if doc.kind == "ConfigMap" and doc.name == BENCH_JOB_TEMPLATE_CONFIGMAP:
            job = render_template(doc)
            if isinstance(job, dict):
                reason = _schema_problem(job, validator, kubernetes_version)
                if reason:
                    yield Problem(doc.file.name, doc.label, f"{BENCH_JOB_TEMPLATE_KEY}: {reason}")


def _schema_problem(body: dict[str, Any], validator: Any, kubernetes_version: str) -> str | None:
    try:
        validator.validate(body, kubernetes_version, strict=True)
    except validator.SchemaNotFoundError:
        return f"unknown kind {body.get('kind')} ({body.get('apiVersion')})"
    except validator.ValidationError as exc:
        path = ".".join(str(part) for part in exc.path) or "(top level)"
        message = " ".join(str(exc.message).split())
        return f"schema (Kubernetes {kubernetes_version}): {path}: {message}"
    except Exception as exc:  # kubernetes-validate raises others for malformed input
        return f"schema (Kubernetes {kubernetes_version}): {type(exc).__name__}: {exc}"
    return None


# Names other modules and tests import from here.
__all__ = [
    "DEFAULT_KUBERNETES_VERSION",
    "MANUAL_SECRET_KEYS",
    "NODEPORT_RANGE",
    "Problem",
    "ValidationReport",
    "image_problem",
    "validate_manifests",
]

"""`immichcheck manifests validate`: Kubernetes schemas plus cross-references between objects.

Every problem is one `Problem(file, object, reason)`, rendered `file: Kind/name: reason`. The
schema pass uses kubernetes-validate (the published OpenAPI schemas, strict: unknown fields are
errors); the cross-reference pass checks what a schema cannot: that referenced ConfigMaps,
Secrets, claims, Services and ports exist and agree, and that images are pinned.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from immichcheck import __version__
from immichcheck.common import yaml_text
from immichcheck.common.errors import ExitCode, ImmichcheckError
from immichcheck.deploy.expected_state import (
    BENCH_JOB_TEMPLATE_CONFIGMAP,
    BENCH_JOB_TEMPLATE_KEY,
    ManifestDocument,
    ManifestsError,
    build_expected_state,
    hostname_choices,
    iter_containers,
    iter_probes,
    manifest_files,
    parse_manifest_file,
    parse_quantity,
    pinned_node,
    pod_spec,
    render_job_template,
    resolve_directory,
)

# A current Kubernetes release whose schemas kubernetes-validate ships (1.34: August 2025).
DEFAULT_KUBERNETES_VERSION = "1.34"
NODEPORT_RANGE = range(30000, 32768)  # the API server's default --service-node-port-range
# The secrets users create by hand (manifests/README.md), with the keys they must hold.
MANUAL_SECRET_KEYS: Mapping[str, tuple[str, ...]] = {
    "immich-postgres-secret": ("username", "password"),
    "immich-server-secret": ("jwt-secret",),
}
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
CLUSTER_SCOPED_KINDS = (
    "Namespace",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
)
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
# Sample values that fill the bench Job template's placeholders for validation.
_SAMPLE_NODE = "node05"
_SAMPLE_JOB_NAME = "immichcheck-bench-node05"


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
    problems.extend(CrossReferences(documents).problems())
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
        key = (doc.kind, _namespace(doc.body), doc.name)
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
            job = _render_template(doc)
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


def _render_template(doc: ManifestDocument) -> dict[str, Any] | str:
    """The bench Job template filled with sample values, or why it cannot be."""
    text = (doc.body.get("data") or {}).get(BENCH_JOB_TEMPLATE_KEY)
    if not isinstance(text, str):
        return f"no {BENCH_JOB_TEMPLATE_KEY} key"
    try:
        return render_job_template(text, _SAMPLE_NODE, _SAMPLE_JOB_NAME)
    except ManifestsError as exc:
        return exc.message


# --- cross-references ------------------------------------------------------------------------


def _namespace(body: Mapping[str, Any]) -> str:
    if body.get("kind") in CLUSTER_SCOPED_KINDS:
        return ""
    return str((body.get("metadata") or {}).get("namespace") or "")


def image_problem(image: str | None) -> str | None:
    """Why an image reference is not pinned to a version, or None when it is."""
    if not image:
        return "no image"
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image} has no tag (pin a version)"
    tag = last.rsplit(":", 1)[1]
    if tag == "latest":
        return f"image {image} uses the latest tag (pin a version)"
    if tag in ("release", "main", "master", "stable", "edge", "nightly"):
        return f"image {image} uses the moving tag {tag} (pin a version)"
    return None


class CrossReferences:
    """The checks that need several objects at once."""

    def __init__(self, documents: list[ManifestDocument]) -> None:
        self.documents = [doc for doc in documents if doc.kind and doc.name]
        self.by_kind: dict[str, dict[tuple[str, str], ManifestDocument]] = {}
        for doc in self.documents:
            self.by_kind.setdefault(doc.kind, {})[(_namespace(doc.body), doc.name)] = doc
        namespaces = [doc.name for doc in self.documents if doc.kind == "Namespace"]
        self.namespace = namespaces[0] if len(namespaces) == 1 else None

    def find(self, kind: str, namespace: str, name: Any) -> ManifestDocument | None:
        """The object of that kind and name in a namespace ('' for cluster-scoped)."""
        objects = self.by_kind.get(kind, {})
        return objects.get((namespace, str(name))) or objects.get(("", str(name)))

    def problems(self) -> Iterator[Problem]:
        """Every cross-reference problem, object by object."""
        node_ports: dict[int, str] = {}
        for doc in self.documents:
            where, label = doc.file.name, doc.label
            for reason in self._object_problems(doc):
                yield Problem(where, label, reason)
            if doc.kind == "Service":
                for port in (doc.body.get("spec") or {}).get("ports") or []:
                    node_port = port.get("nodePort")
                    if isinstance(node_port, int) and node_port in node_ports:
                        yield Problem(
                            where,
                            label,
                            f"nodePort {node_port} is also used by {node_ports[node_port]}",
                        )
                    elif isinstance(node_port, int):
                        node_ports[node_port] = label

    def _object_problems(self, doc: ManifestDocument) -> Iterator[str]:
        body = doc.body
        namespace = _namespace(body)
        if (
            self.namespace
            and doc.kind not in CLUSTER_SCOPED_KINDS
            and namespace
            and namespace != self.namespace
        ):
            yield f"namespace {namespace} is not the manifests' namespace {self.namespace}"
        if doc.kind in POD_KINDS:
            yield from self._pod_problems(pod_spec(body), namespace)
        if doc.kind == "Service":
            yield from self._service_problems(body, namespace)
        if doc.kind == "Ingress":
            yield from self._ingress_problems(body, namespace)
        if doc.kind in ("RoleBinding", "ClusterRoleBinding"):
            yield from self._binding_problems(body, namespace)
        if doc.kind == "PersistentVolumeClaim":
            yield from self._claim_problems(body)
        if doc.kind == "ConfigMap":
            yield from self._configmap_problems(doc, namespace)
        if doc.kind in ("Deployment", "StatefulSet"):
            yield from self._immich_env_problems(body, namespace)

    # pods ---------------------------------------------------------------------------------

    def _pod_problems(self, pod: dict[str, Any], namespace: str) -> Iterator[str]:
        volumes = {str(v.get("name")): v for v in pod.get("volumes") or [] if isinstance(v, dict)}
        for volume_name, volume in volumes.items():
            if "configMap" in volume:
                ref = volume["configMap"]
                if not ref.get("optional") and not self.find(
                    "ConfigMap", namespace, ref.get("name")
                ):
                    yield f"volume {volume_name}: ConfigMap {ref.get('name')} does not exist"
                else:
                    yield from self._configmap_items(volume_name, ref, namespace)
            if "secret" in volume:
                ref = volume["secret"]
                yield from self._secret_reference(
                    f"volume {volume_name}", ref.get("secretName"), None, ref.get("optional")
                )
            if "persistentVolumeClaim" in volume:
                claim = volume["persistentVolumeClaim"].get("claimName")
                if not self.find("PersistentVolumeClaim", namespace, claim):
                    yield f"volume {volume_name}: PersistentVolumeClaim {claim} does not exist"
                else:
                    yield from self._local_volume_node(volume_name, claim, namespace, pod)
        account = pod.get("serviceAccountName")
        if account and account != "default" and not self.find("ServiceAccount", namespace, account):
            yield f"ServiceAccount {account} does not exist"
        for container in iter_containers(pod):
            yield from self._container_problems(container, volumes, namespace)

    def _local_volume_node(
        self, volume_name: str, claim: Any, namespace: str, pod: Mapping[str, Any]
    ) -> Iterator[str]:
        """A pod pinned to one node must not need a volume that lives on another."""
        node = pinned_node(pod)
        claim_doc = self.find("PersistentVolumeClaim", namespace, claim)
        volume_name_of_claim = ((claim_doc.body if claim_doc else {}).get("spec") or {}).get(
            "volumeName"
        )
        volume = self.find("PersistentVolume", "", volume_name_of_claim)
        if node is None or volume is None:
            return
        required = ((volume.body.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}
        for values in hostname_choices(required):
            if node not in values:
                yield (
                    f"volume {volume_name}: claim {claim} is bound to PersistentVolume "
                    f"{volume_name_of_claim} on {', '.join(values)}, but the pod is pinned to "
                    f"{node}"
                )

    def _configmap_items(
        self, volume_name: str, ref: Mapping[str, Any], namespace: str
    ) -> Iterator[str]:
        configmap = self.find("ConfigMap", namespace, ref.get("name"))
        if configmap is None:
            return
        data = configmap.body.get("data") or {}
        for item in ref.get("items") or []:
            if item.get("key") not in data:
                yield (
                    f"volume {volume_name}: ConfigMap {ref.get('name')} "
                    f"has no key {item.get('key')}"
                )

    def _secret_reference(
        self, where: str, name: str | None, key: str | None, optional: bool | None
    ) -> Iterator[str]:
        if optional:
            return
        if name is not None and name in MANUAL_SECRET_KEYS:
            if key is not None and key not in MANUAL_SECRET_KEYS[name]:
                documented = ", ".join(MANUAL_SECRET_KEYS[name])
                yield f"{where}: secret {name} has no key {key} (documented keys: {documented})"
            return
        yield (
            f"{where}: secret {name} is not one of the documented manual secrets "
            f"({', '.join(MANUAL_SECRET_KEYS)})"
        )

    def _container_problems(
        self, container: dict[str, Any], volumes: Mapping[str, Any], namespace: str
    ) -> Iterator[str]:
        name = container.get("name")
        prefix = f"container {name}"
        reason = image_problem(container.get("image"))
        if reason:
            yield f"{prefix}: {reason}"
        elif _is_immichcheck_image(container.get("image")):
            tag = str(container.get("image")).rsplit(":", 1)[1]
            if tag.removeprefix("v") != __version__:
                yield (
                    f"{prefix}: image {container.get('image')}: the tag must be immichcheck's "
                    f"version {__version__}"
                )
        ports = [p for p in container.get("ports") or [] if isinstance(p, dict)]
        numbers = {p.get("containerPort") for p in ports}
        names = {p.get("name") for p in ports if p.get("name")}
        for probe_kind, probe in iter_probes(container):
            for handler in ("httpGet", "tcpSocket", "grpc"):
                if handler not in probe:
                    continue
                port = probe[handler].get("port")
                if isinstance(port, int) and port not in numbers:
                    yield (
                        f"{prefix}: {probe_kind} {handler} port {port} is not a container port "
                        f"({_ports_text(ports)})"
                    )
                elif isinstance(port, str) and port not in names:
                    yield (
                        f"{prefix}: {probe_kind} {handler} port {port!r} "
                        "is not a named container port"
                    )
        for env in container.get("env") or []:
            source = env.get("valueFrom") or {}
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                configmap = self.find("ConfigMap", namespace, ref.get("name"))
                if ref.get("optional"):
                    continue
                if configmap is None:
                    yield (
                        f"{prefix}: env {env.get('name')}: "
                        f"ConfigMap {ref.get('name')} does not exist"
                    )
                elif ref.get("key") not in (configmap.body.get("data") or {}):
                    yield (
                        f"{prefix}: env {env.get('name')}: ConfigMap {ref.get('name')} "
                        f"has no key {ref.get('key')}"
                    )
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                yield from self._secret_reference(
                    f"{prefix}: env {env.get('name')}",
                    ref.get("name"),
                    ref.get("key"),
                    ref.get("optional"),
                )
        for source in container.get("envFrom") or []:
            if "configMapRef" in source:
                ref = source["configMapRef"]
                if not ref.get("optional") and not self.find(
                    "ConfigMap", namespace, ref.get("name")
                ):
                    yield f"{prefix}: envFrom: ConfigMap {ref.get('name')} does not exist"
            if "secretRef" in source:
                ref = source["secretRef"]
                yield from self._secret_reference(
                    f"{prefix}: envFrom", ref.get("name"), None, ref.get("optional")
                )
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(str(mount.get("name")))
            if volume is None:
                yield (
                    f"{prefix}: volumeMount {mount.get('mountPath')}: "
                    f"no volume named {mount.get('name')}"
                )
                continue
            sub_path = mount.get("subPath")
            if sub_path and "configMap" in volume and not volume["configMap"].get("items"):
                configmap = self.find("ConfigMap", namespace, volume["configMap"].get("name"))
                if configmap is not None and sub_path not in (configmap.body.get("data") or {}):
                    yield (
                        f"{prefix}: volumeMount {mount.get('mountPath')}: ConfigMap "
                        f"{volume['configMap'].get('name')} has no key {sub_path}"
                    )

    # services and routing -------------------------------------------------------------------

    def _pods_selected(
        self, selector: Mapping[str, str], namespace: str
    ) -> list[tuple[ManifestDocument, dict[str, Any]]]:
        """(workload, pod spec) of every workload whose pod labels match a selector."""
        selected = []
        for doc in self.documents:
            if doc.kind not in POD_KINDS or doc.kind in ("Job", "CronJob"):
                continue
            if _namespace(doc.body) != namespace:
                continue
            template = (doc.body.get("spec") or {}).get("template") or {}
            labels = (template.get("metadata") or {}).get("labels") or {}
            if doc.kind == "Pod":
                labels = (doc.body.get("metadata") or {}).get("labels") or {}
            if selector and all(labels.get(k) == v for k, v in selector.items()):
                selected.append((doc, pod_spec(doc.body)))
        return selected

    def _service_problems(self, body: dict[str, Any], namespace: str) -> Iterator[str]:
        spec = body.get("spec") or {}
        service_type = spec.get("type") or "ClusterIP"
        selector = spec.get("selector") or {}
        if service_type == "ExternalName" or not selector:
            return
        pods = self._pods_selected(selector, namespace)
        if not pods:
            wanted = ",".join(f"{k}={v}" for k, v in selector.items())
            yield f"selector {wanted} matches no workload's pod labels"
        container_ports = [
            port
            for _doc, pod in pods
            for container in pod.get("containers") or []
            for port in container.get("ports") or []
        ]
        for port in spec.get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            label = f"port {port.get('name') or port.get('port')}"
            if pods:
                if isinstance(target, int) and not any(
                    p.get("containerPort") == target for p in container_ports
                ):
                    yield (
                        f"{label}: targetPort {target} is not a container port of the selected "
                        f"pods ({_ports_text(container_ports)})"
                    )
                elif isinstance(target, str) and not any(
                    p.get("name") == target for p in container_ports
                ):
                    yield (
                        f"{label}: targetPort {target!r} is not a named container port "
                        "of the selected pods"
                    )
            node_port = port.get("nodePort")
            if node_port is not None:
                if service_type not in ("NodePort", "LoadBalancer"):
                    yield f"{label}: nodePort {node_port} on a {service_type} Service"
                elif node_port not in NODEPORT_RANGE:
                    yield (
                        f"{label}: nodePort {node_port} is outside "
                        f"{NODEPORT_RANGE.start}-{NODEPORT_RANGE.stop - 1}"
                    )

    def _service_port_problem(self, namespace: str, name: str, port: Any) -> str | None:
        service = self.find("Service", namespace, name)
        if service is None:
            return f"Service {name} does not exist"
        ports = (service.body.get("spec") or {}).get("ports") or []
        if port is not None and not any(port in (p.get("port"), p.get("name")) for p in ports):
            offered = ", ".join(str(p.get("port")) for p in ports)
            return f"Service {name} has no port {port} (it has {offered})"
        return None

    def _ingress_problems(self, body: dict[str, Any], namespace: str) -> Iterator[str]:
        spec = body.get("spec") or {}
        backends = [spec.get("defaultBackend")] if spec.get("defaultBackend") else []
        for rule in spec.get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                backends.append(path.get("backend") or {})
        for backend in backends:
            service = (backend or {}).get("service")
            if not service:
                continue
            port = service.get("port") or {}
            reason = self._service_port_problem(
                namespace, service.get("name"), port.get("number", port.get("name"))
            )
            if reason:
                yield f"backend: {reason}"

    def _binding_problems(self, body: dict[str, Any], namespace: str) -> Iterator[str]:
        role = body.get("roleRef") or {}
        kind = role.get("kind")
        if kind in ("Role", "ClusterRole"):
            role_namespace = namespace if kind == "Role" else ""
            # ClusterRoles such as `view` come with the cluster; only a Role must be here.
            if kind == "Role" and not self.find(kind, role_namespace, role.get("name")):
                yield f"roleRef: Role {role.get('name')} does not exist"
        for subject in body.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                subject_namespace = subject.get("namespace") or namespace
                if not self.find("ServiceAccount", subject_namespace, subject.get("name")):
                    yield f"subject: ServiceAccount {subject.get('name')} does not exist"

    def _claim_problems(self, body: dict[str, Any]) -> Iterator[str]:
        spec = body.get("spec") or {}
        volume_name = spec.get("volumeName")
        if not volume_name:
            return
        volume = self.find("PersistentVolume", "", volume_name)
        if volume is None:
            yield f"volumeName: PersistentVolume {volume_name} does not exist"
            return
        volume_spec = volume.body.get("spec") or {}
        claim_class = spec.get("storageClassName")
        volume_class = volume_spec.get("storageClassName") or ""
        if claim_class is not None and claim_class != volume_class:
            yield (
                f"storageClassName {claim_class!r} differs from PersistentVolume {volume_name}'s "
                f"{volume_class!r}: the claim would never bind"
            )
        try:
            request = parse_quantity(
                str(((spec.get("resources") or {}).get("requests") or {}).get("storage", "0"))
            )
            capacity = parse_quantity(str((volume_spec.get("capacity") or {}).get("storage", "0")))
        except ManifestsError as exc:
            yield exc.message
            return
        if request > capacity:
            yield f"requests more storage than PersistentVolume {volume_name} offers"
        missing_modes = set(spec.get("accessModes") or ()) - set(
            volume_spec.get("accessModes") or ()
        )
        if missing_modes:
            yield f"access modes {', '.join(sorted(missing_modes))} not offered by {volume_name}"

    def _configmap_problems(self, doc: ManifestDocument, namespace: str) -> Iterator[str]:
        data = doc.body.get("data") or {}
        for key, value in data.items():
            if str(key).endswith(".json"):
                try:
                    parsed = json.loads(value)
                except (TypeError, ValueError) as exc:
                    yield f"{key}: not valid JSON: {exc}"
                    continue
                if not isinstance(parsed, dict):
                    yield f"{key}: not a JSON object"
                    continue
                yield from self._immich_config_problems(key, parsed, namespace)
        if doc.name == BENCH_JOB_TEMPLATE_CONFIGMAP:
            job = _render_template(doc)
            if isinstance(job, str):
                yield f"{BENCH_JOB_TEMPLATE_KEY}: {job}"
            else:
                for reason in self._pod_problems(pod_spec(job), namespace):
                    yield f"{BENCH_JOB_TEMPLATE_KEY}: {reason}"

    def _immich_config_problems(
        self, key: str, config: dict[str, Any], namespace: str
    ) -> Iterator[str]:
        urls = (config.get("machineLearning") or {}).get("urls") or []
        for url in urls if isinstance(urls, list) else [urls]:
            reason = self._url_problem(str(url), namespace)
            if reason:
                yield f"{key}: machineLearning.urls {url}: {reason}"

    def _url_problem(self, url: str, namespace: str) -> str | None:
        """Whether an in-cluster URL names a Service and port of these manifests."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if "." in host and not host.endswith(".svc.cluster.local") and ".svc" not in host:
            return None  # an address outside the cluster: not ours to check
        service_name = host.split(".", 1)[0]
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return "bad port"
        return self._service_port_problem(namespace, service_name, port)

    def _immich_env_problems(self, body: dict[str, Any], namespace: str) -> Iterator[str]:
        """Immich's own env settings must point at Services and ports that exist."""
        pod = pod_spec(body)
        for container in pod.get("containers") or []:
            env = {
                str(item.get("name")): str(item["value"])
                for item in container.get("env") or []
                if "value" in item
            }
            prefix = f"container {container.get('name')}: env"
            for host_var, port_var, default in (
                ("DB_HOSTNAME", "DB_PORT", 5432),
                ("REDIS_HOSTNAME", "REDIS_PORT", 6379),
            ):
                if host_var in env:
                    port = int(env[port_var]) if env.get(port_var, "").isdigit() else default
                    reason = self._service_port_problem(namespace, env[host_var], port)
                    if reason:
                        yield f"{prefix} {host_var}/{port_var}: {reason}"
            if "IMMICH_MACHINE_LEARNING_URL" in env:
                reason = self._url_problem(env["IMMICH_MACHINE_LEARNING_URL"], namespace)
                if reason:
                    yield f"{prefix} IMMICH_MACHINE_LEARNING_URL: {reason}"
            if "IMMICH_PORT" in env:
                numbers = {p.get("containerPort") for p in container.get("ports") or []}
                if not env["IMMICH_PORT"].isdigit() or int(env["IMMICH_PORT"]) not in numbers:
                    yield f"{prefix} IMMICH_PORT {env['IMMICH_PORT']} is not a container port"


def _is_immichcheck_image(image: Any) -> bool:
    """An image of immichcheck itself (any registry), pinned by tag rather than digest."""
    text = str(image or "")
    return "@" not in text and text.rsplit("/", 1)[-1].split(":", 1)[0] == "immichcheck"


def _ports_text(ports: Iterable[Mapping[str, Any]]) -> str:
    numbers = sorted(
        {int(p["containerPort"]) for p in ports if isinstance(p.get("containerPort"), int)}
    )
    return "has " + ", ".join(str(n) for n in numbers) if numbers else "declares none"

"""The expected state of the deployment, read from the shipped manifests/ (never re-typed).

`load_expected_state()` parses every YAML document in manifests/*.yaml once (cached per
folder and file timestamps) and derives what the rest of immichcheck compares a live cluster
against: workload names, pod labels, images, ports, node placement, Services, the manual
secrets and their keys, ConfigMaps, claims, Ingress hosts, and the Redis and PostgreSQL
settings parsed from their ConfigMaps.

Workloads are tied to a component key ("postgres", "redis", "ml", "server") by the annotation
`immichcheck/component` on the Deployment or StatefulSet.
"""

from __future__ import annotations

import copy
import os
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from immichcheck.common import yaml_text
from immichcheck.common.errors import ExitCode, ImmichcheckError
from immichcheck.common.project_files import project_folder

COMPONENT_ANNOTATION = "immichcheck/component"
COMPONENT_KEYS = ("postgres", "redis", "ml", "server")
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
HOSTNAME_LABEL = "kubernetes.io/hostname"
BENCH_JOB_TEMPLATE_CONFIGMAP = "immichcheck-bench-job-template"
BENCH_JOB_TEMPLATE_KEY = "job.yaml"
# The two secrets the README has users create by hand; they are never in the manifests.
_SKIPPED_FILES = {"kustomization.yaml", "kustomization.yml"}


class ManifestsError(ImmichcheckError):
    """The manifests folder is missing or holds something that cannot be read."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.UNKNOWN)


@dataclass(frozen=True)
class ManifestDocument:
    """One YAML document of one manifest file."""

    file: Path
    index: int  # position of the document in its file, from 0
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        """The object's kind, '' when absent."""
        return str(self.body.get("kind") or "")

    @property
    def name(self) -> str:
        """metadata.name, '' when absent."""
        metadata = self.body.get("metadata") or {}
        return str(metadata.get("name") or "") if isinstance(metadata, dict) else ""

    @property
    def label(self) -> str:
        """`Kind/name`, how problems and listings name an object."""
        return f"{self.kind or '?'}/{self.name or '?'}"


@dataclass(frozen=True)
class ServicePort:
    """One port of a Service; target_port is an int or a container port name, as written."""

    name: str | None
    port: int
    target_port: int | str
    node_port: int | None
    protocol: str = "TCP"


@dataclass(frozen=True)
class ServiceSpec:
    """A Service as the manifests declare it."""

    name: str
    type: str
    selector: Mapping[str, str]
    ports: tuple[ServicePort, ...]
    session_affinity: str | None
    session_affinity_timeout: int | None


@dataclass(frozen=True)
class PvcSpec:
    """A PersistentVolumeClaim; request_bytes is the storage request in bytes."""

    name: str
    storage_class: str | None
    access_modes: tuple[str, ...]
    request_bytes: int
    volume_name: str | None


@dataclass(frozen=True)
class ComponentSpec:
    """One Immich workload: postgres, redis, ml or server."""

    key: str
    kind: str
    name: str
    labels: Mapping[str, str]
    container: str
    image: str
    port: int
    node: str | None
    service: str
    env: Mapping[str, str]
    secret_refs: tuple[tuple[str, str, str], ...]
    configmaps: tuple[str, ...]
    pvcs: tuple[str, ...]
    host_paths: tuple[str, ...]
    probe_paths: tuple[str, ...]


@dataclass(frozen=True)
class ExpectedState:
    """Everything immichcheck expects of the deployment, derived from manifests/."""

    directory: Path
    namespace: str
    node: str
    components: Mapping[str, ComponentSpec]
    services: Mapping[str, ServiceSpec]
    nodeport_service: str
    nodeport: int
    server_port: int
    secrets: Mapping[str, tuple[str, ...]]
    configmaps: Mapping[str, Mapping[str, str]]
    pvcs: Mapping[str, PvcSpec]
    ingress_hosts: tuple[str, ...]
    ingress_annotations: Mapping[str, str]
    redis_settings: Mapping[str, str]
    postgres_settings: Mapping[str, str]
    postgres_database: str
    # Raw objects, shared by every caller of the cache: deep-copy before changing one.
    objects: tuple[dict[str, Any], ...] = field(repr=False)

    def component(self, key: str) -> ComponentSpec:
        """The workload for a component key; a clear error for an unknown key."""
        try:
            return self.components[key]
        except KeyError:
            known = ", ".join(sorted(self.components))
            raise ManifestsError(
                f"no component {key!r} in the manifests (known: {known})"
            ) from None

    def service_host(self, key: str) -> str:
        """In-cluster DNS name of a component's Service: immich-redis.immich.svc.cluster.local."""
        return f"{self.component(key).service}.{self.namespace}.svc.cluster.local"

    def service_port(self, key: str) -> int:
        """The Service port that forwards to the component's main container port."""
        spec = self.component(key)
        service = self.services[spec.service]
        for port in service.ports:
            if port.target_port in (spec.port, _container_port_name(self, spec)):
                return port.port
        return spec.port

    def service_url(self, key: str) -> str:
        """In-cluster URL of a component, scheme by component, without credentials.

        server/ml: http://immich-ml.immich.svc.cluster.local:3003;
        postgres: postgresql://immich-postgres.immich.svc.cluster.local:5432/immich;
        redis: redis://immich-redis.immich.svc.cluster.local:6379/0.
        """
        host, port = self.service_host(key), self.service_port(key)
        if key == "postgres":
            return f"postgresql://{host}:{port}/{self.postgres_database}"
        if key == "redis":
            return f"redis://{host}:{port}/0"
        return f"http://{host}:{port}"


def _container_port_name(state: ExpectedState, spec: ComponentSpec) -> str | None:
    for obj in state.objects:
        if obj.get("kind") == spec.kind and _name(obj) == spec.name:
            for container in pod_spec(obj).get("containers") or []:
                if container.get("name") == spec.container:
                    for port in container.get("ports") or []:
                        if port.get("containerPort") == spec.port:
                            return port.get("name")
    return None


# --- reading files -------------------------------------------------------------------------


def manifest_files(directory: Path) -> list[Path]:
    """The manifest files of a folder in apply order (file name order), without kustomization."""
    files = [
        path
        for path in directory.iterdir()
        if path.suffix in (".yaml", ".yml") and path.name not in _SKIPPED_FILES and path.is_file()
    ]
    return sorted(files, key=lambda path: path.name)


def parse_manifest_file(path: Path) -> list[ManifestDocument]:
    """Every non-empty YAML document of one file; ManifestsError names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestsError(f"{path.name}: cannot read: {exc}") from None
    documents: list[ManifestDocument] = []
    try:
        for index, body in enumerate(yaml_text.load_all(text)):
            if body is None:
                continue
            if not isinstance(body, dict):
                raise ManifestsError(
                    f"{path.name}: document {index + 1} is a {type(body).__name__}, "
                    "not a Kubernetes object"
                )
            documents.append(ManifestDocument(file=path, index=index, body=body))
    except yaml.YAMLError as exc:
        raise ManifestsError(f"{path.name}: bad YAML: {_yaml_error_text(exc)}") from None
    return documents


def _yaml_error_text(exc: yaml.YAMLError) -> str:
    """One line from a PyYAML error: the problem and where it is."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def resolve_directory(directory: str | os.PathLike[str] | None = None) -> Path:
    """The manifests folder: an explicit one, or the shipped manifests/."""
    try:
        return project_folder("manifests", directory).resolve()
    except ImmichcheckError as exc:
        raise ManifestsError(exc.message) from None


def load_manifest_documents(
    directory: str | os.PathLike[str] | None = None,
) -> list[ManifestDocument]:
    """Every YAML document in manifests/*.yaml (kustomization.yaml excluded), in apply order."""
    folder = resolve_directory(directory)
    files = manifest_files(folder)
    if not files:
        raise ManifestsError(f"no manifest files (*.yaml) in {folder}")
    documents: list[ManifestDocument] = []
    for path in files:
        documents.extend(parse_manifest_file(path))
    return documents


# --- the expected state --------------------------------------------------------------------

_STATE_CACHE: dict[tuple[Path, tuple[tuple[str, int, int], ...]], ExpectedState] = {}


def load_expected_state(directory: str | os.PathLike[str] | None = None) -> ExpectedState:
    """The expected state of the folder, cached until one of its files changes."""
    folder = resolve_directory(directory)
    fingerprint = tuple(
        (path.name, stat.st_mtime_ns, stat.st_size)
        for path in manifest_files(folder)
        for stat in (path.stat(),)
    )
    key = (folder, fingerprint)
    cached = _STATE_CACHE.get(key)
    if cached is None:
        cached = build_expected_state(folder, load_manifest_documents(folder))
        _STATE_CACHE.clear()  # one folder at a time is the normal case; keep memory bounded
        _STATE_CACHE[key] = cached
    return cached


def build_expected_state(folder: Path, documents: Sequence[ManifestDocument]) -> ExpectedState:
    """Derive the expected state from parsed documents (ManifestsError when incomplete)."""
    objects = tuple(copy.deepcopy(doc.body) for doc in documents)
    configmaps = {
        _name(obj): {str(k): str(v) for k, v in (obj.get("data") or {}).items()}
        for obj in objects
        if obj.get("kind") == "ConfigMap"
    }
    pvcs = {
        _name(obj): _pvc_spec(obj) for obj in objects if obj.get("kind") == "PersistentVolumeClaim"
    }
    local_paths = {
        _name(obj): _pv_local_path(obj) for obj in objects if obj.get("kind") == "PersistentVolume"
    }
    services = {_name(obj): _service_spec(obj) for obj in objects if obj.get("kind") == "Service"}

    workloads = [obj for obj in objects if obj.get("kind") in WORKLOAD_KINDS]
    components: dict[str, ComponentSpec] = {}
    for obj in workloads:
        key = ((obj.get("metadata") or {}).get("annotations") or {}).get(COMPONENT_ANNOTATION)
        if key is None:
            continue
        if key not in COMPONENT_KEYS:
            raise ManifestsError(
                f"{obj.get('kind')}/{_name(obj)}: unknown {COMPONENT_ANNOTATION} {key!r} "
                f"(expected one of {', '.join(COMPONENT_KEYS)})"
            )
        if key in components:
            raise ManifestsError(f"two workloads are annotated {COMPONENT_ANNOTATION}: {key}")
        components[key] = _component_spec(key, obj, services, configmaps, pvcs, local_paths)
    missing = [key for key in COMPONENT_KEYS if key not in components]
    if missing:
        raise ManifestsError(
            f"no workload annotated {COMPONENT_ANNOTATION} for: {', '.join(missing)} (in {folder})"
        )

    namespaces = [_name(obj) for obj in objects if obj.get("kind") == "Namespace"]
    namespace = namespaces[0] if namespaces else _namespace(workloads[0]) or "default"

    postgres = components["postgres"]
    if postgres.node is None:
        raise ManifestsError(
            f"the database workload {postgres.name} is not pinned to a node "
            f"(nodeSelector or required nodeAffinity on {HOSTNAME_LABEL})"
        )

    nodeport_services = [spec for spec in services.values() if spec.type == "NodePort"]
    if not nodeport_services:
        raise ManifestsError("no NodePort Service in the manifests")
    nodeport_service = next(
        (
            spec
            for spec in nodeport_services
            if _selects(spec.selector, components["server"].labels)
        ),
        nodeport_services[0],
    )
    nodeport = next((p.node_port for p in nodeport_service.ports if p.node_port), None)
    if nodeport is None:
        raise ManifestsError(f"Service/{nodeport_service.name} sets no nodePort")

    secrets: dict[str, list[str]] = {}
    for obj in objects:
        for _env_name, secret, secret_key in _secret_refs(obj):
            keys = secrets.setdefault(secret, [])
            if secret_key not in keys:
                keys.append(secret_key)

    ingress_hosts: list[str] = []
    ingress_annotations: dict[str, str] = {}
    for obj in objects:
        if obj.get("kind") != "Ingress":
            continue
        for rule in (obj.get("spec") or {}).get("rules") or []:
            host = rule.get("host")
            if host and host not in ingress_hosts:
                ingress_hosts.append(str(host))
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        ingress_annotations.update({str(k): str(v) for k, v in annotations.items()})

    redis_settings = _settings_from(components["redis"], configmaps, "redis.conf", parse_redis_conf)
    postgres_settings = _settings_from(
        components["postgres"], configmaps, "postgresql.conf", parse_postgresql_conf
    )
    database = postgres.env.get("POSTGRES_DB") or components["server"].env.get("DB_DATABASE_NAME")

    return ExpectedState(
        directory=folder,
        namespace=namespace,
        node=postgres.node,
        components=components,
        services=services,
        nodeport_service=nodeport_service.name,
        nodeport=nodeport,
        server_port=components["server"].port,
        secrets={name: tuple(keys) for name, keys in secrets.items()},
        configmaps=configmaps,
        pvcs=pvcs,
        ingress_hosts=tuple(ingress_hosts),
        ingress_annotations=ingress_annotations,
        redis_settings=redis_settings,
        postgres_settings=postgres_settings,
        postgres_database=database or "immich",
        objects=objects,
    )


def _settings_from(
    spec: ComponentSpec,
    configmaps: Mapping[str, Mapping[str, str]],
    data_key: str,
    parser: Any,
) -> dict[str, str]:
    """Parse the config file `data_key` from the first ConfigMap of a component that has it."""
    for name in spec.configmaps:
        text = (configmaps.get(name) or {}).get(data_key)
        if text is not None:
            result: dict[str, str] = parser(text)
            return result
    raise ManifestsError(
        f"{spec.kind}/{spec.name} mounts no ConfigMap with a {data_key!r} key "
        f"(mounted: {', '.join(spec.configmaps) or 'none'})"
    )


# --- object helpers ------------------------------------------------------------------------


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _namespace(obj: Mapping[str, Any]) -> str | None:
    value = (obj.get("metadata") or {}).get("namespace")
    return str(value) if value else None


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, StatefulSet, DaemonSet, Job, CronJob or Pod ({} if none)."""
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind == "Pod":
        return dict(spec)
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") or {}
    return dict(template.get("spec") or {})


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def hostname_choices(node_selector: Mapping[str, Any]) -> Iterator[list[Any]]:
    """The node names of each `kubernetes.io/hostname In [...]` term of a NodeSelector."""
    for term in node_selector.get("nodeSelectorTerms") or []:
        for expression in term.get("matchExpressions") or []:
            if expression.get("key") == HOSTNAME_LABEL and expression.get("operator") == "In":
                yield expression.get("values") or []


def pinned_node(pod: Mapping[str, Any]) -> str | None:
    """The node a pod spec is pinned to by nodeSelector or required nodeAffinity, if exactly one."""
    selected = (pod.get("nodeSelector") or {}).get(HOSTNAME_LABEL)
    if selected:
        return str(selected)
    required = ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for values in hostname_choices(required):
        if len(values) == 1:
            return str(values[0])
    return None


def iter_containers(pod: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Init containers, then containers, of a pod spec."""
    for group in ("initContainers", "containers"):
        for container in pod.get(group) or []:
            if isinstance(container, dict):
                yield container


def iter_probes(container: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(probe kind, probe) for the startup, readiness and liveness probes a container has."""
    for probe_kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(probe_kind)
        if isinstance(probe, dict):
            yield probe_kind, probe


def _secret_refs(obj: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    refs: list[tuple[str, str, str]] = []
    for container in iter_containers(pod_spec(obj)):
        for env in container.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                refs.append((str(env.get("name")), str(ref.get("name")), str(ref.get("key"))))
    return refs


def _component_spec(
    key: str,
    obj: dict[str, Any],
    services: Mapping[str, ServiceSpec],
    configmaps: Mapping[str, Mapping[str, str]],
    pvcs: Mapping[str, PvcSpec],
    local_paths: Mapping[str, str | None],
) -> ComponentSpec:
    kind, name = str(obj.get("kind")), _name(obj)
    label = f"{kind}/{name}"
    spec = obj.get("spec") or {}
    labels = dict((spec.get("selector") or {}).get("matchLabels") or {})
    if not labels:
        raise ManifestsError(f"{label}: no spec.selector.matchLabels")
    pod = pod_spec(obj)
    containers = [c for c in pod.get("containers") or [] if isinstance(c, dict)]
    if not containers:
        raise ManifestsError(f"{label}: no containers")
    main = containers[0]
    ports = [p for p in main.get("ports") or [] if isinstance(p, dict) and "containerPort" in p]
    if not ports:
        raise ManifestsError(f"{label}: container {main.get('name')} declares no port")
    port = int(ports[0]["containerPort"])

    env: dict[str, str] = {}
    configmap_names: list[str] = []

    def note_configmap(configmap: str) -> None:
        if configmap not in configmap_names:
            configmap_names.append(configmap)

    # envFrom first: explicit env entries override it, as in Kubernetes.
    for source in main.get("envFrom") or []:
        ref = source.get("configMapRef")
        if ref:
            note_configmap(str(ref.get("name")))
            prefix = str(source.get("prefix") or "")
            env.update(
                {prefix + k: v for k, v in (configmaps.get(str(ref.get("name"))) or {}).items()}
            )
    for item in main.get("env") or []:
        if "value" in item:
            env[str(item["name"])] = str(item["value"])
        ref = (item.get("valueFrom") or {}).get("configMapKeyRef")
        if ref:
            note_configmap(str(ref.get("name")))
            value = (configmaps.get(str(ref.get("name"))) or {}).get(str(ref.get("key")))
            if value is not None:
                env[str(item["name"])] = value

    claims: list[str] = []
    host_paths: list[str] = []
    for volume in pod.get("volumes") or []:
        if "configMap" in volume:
            note_configmap(str(volume["configMap"].get("name")))
        for projected in (volume.get("projected") or {}).get("sources") or []:
            if "configMap" in projected:
                note_configmap(str(projected["configMap"].get("name")))
        if "persistentVolumeClaim" in volume:
            claim = str(volume["persistentVolumeClaim"].get("claimName"))
            claims.append(claim)
            # A claim bound to a local volume is node storage too: report its path.
            volume_name = pvcs[claim].volume_name if claim in pvcs else None
            local = local_paths.get(volume_name) if volume_name else None
            if local and local not in host_paths:
                host_paths.append(local)
        if "hostPath" in volume:
            path = str(volume["hostPath"].get("path"))
            if path not in host_paths:
                host_paths.append(path)

    probe_paths: list[str] = []
    for _probe_kind, probe in iter_probes(main):
        probe_path = (probe.get("httpGet") or {}).get("path")
        if probe_path and probe_path not in probe_paths:
            probe_paths.append(str(probe_path))

    pod_labels = dict(((spec.get("template") or {}).get("metadata") or {}).get("labels") or {})
    port_name = ports[0].get("name")
    matching = [
        service
        for service in services.values()
        if _selects(service.selector, pod_labels)
        and any(p.target_port in (port, port_name) for p in service.ports)
    ]
    if not matching:
        raise ManifestsError(f"{label}: no Service selects its pods on port {port}")
    # Prefer the ClusterIP Service: it is the in-cluster name clients use.
    matching.sort(key=lambda service: service.type != "ClusterIP")

    return ComponentSpec(
        key=key,
        kind=kind,
        name=name,
        labels=labels,
        container=str(main.get("name")),
        image=str(main.get("image")),
        port=port,
        node=pinned_node(pod),
        service=matching[0].name,
        env=env,
        secret_refs=tuple(_secret_refs(obj)),
        configmaps=tuple(configmap_names),
        pvcs=tuple(claims),
        host_paths=tuple(host_paths),
        probe_paths=tuple(probe_paths),
    )


def _service_spec(obj: Mapping[str, Any]) -> ServiceSpec:
    spec = obj.get("spec") or {}
    ports = tuple(
        ServicePort(
            name=port.get("name"),
            port=int(port.get("port")),
            target_port=port.get("targetPort", port.get("port")),
            node_port=int(port["nodePort"]) if port.get("nodePort") is not None else None,
            protocol=str(port.get("protocol") or "TCP"),
        )
        for port in spec.get("ports") or []
    )
    timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get(
        "timeoutSeconds"
    )
    return ServiceSpec(
        name=_name(obj),
        type=str(spec.get("type") or "ClusterIP"),
        selector={str(k): str(v) for k, v in (spec.get("selector") or {}).items()},
        ports=ports,
        session_affinity=spec.get("sessionAffinity"),
        session_affinity_timeout=int(timeout) if timeout is not None else None,
    )


def _pvc_spec(obj: Mapping[str, Any]) -> PvcSpec:
    spec = obj.get("spec") or {}
    request = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "0")
    return PvcSpec(
        name=_name(obj),
        storage_class=spec.get("storageClassName"),
        access_modes=tuple(spec.get("accessModes") or ()),
        request_bytes=parse_quantity(str(request)),
        volume_name=spec.get("volumeName"),
    )


def _pv_local_path(obj: Mapping[str, Any]) -> str | None:
    spec = obj.get("spec") or {}
    for source in ("local", "hostPath"):
        path = (spec.get(source) or {}).get("path")
        if path:
            return str(path)
    return None


# --- values --------------------------------------------------------------------------------

_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTPE]i?|[kmu]|)\s*$")
_QUANTITY_FACTORS = {
    "": 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def parse_quantity(text: str) -> int:
    """A Kubernetes storage quantity ('20Gi', '500M', '1024') in bytes."""
    match = _QUANTITY.match(text)
    if not match or match.group(2) not in _QUANTITY_FACTORS:
        raise ManifestsError(f"not a storage quantity: {text!r}")
    return int(float(match.group(1)) * _QUANTITY_FACTORS[match.group(2)])


def parse_redis_conf(text: str) -> dict[str, str]:
    """`directive value...` lines of a redis.conf; keys lower-cased, quotes removed.

    A directive given several times (`save`) keeps all values joined by spaces, the form
    `CONFIG GET` returns.
    """
    settings: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        directive, _, rest = line.partition(" ")
        values = [_unquote(part) for part in _split_redis_args(rest.strip())]
        key = directive.lower()
        value = " ".join(values)
        settings[key] = f"{settings[key]} {value}" if key in settings and value else value
    return settings


def _split_redis_args(text: str) -> list[str]:
    parts: list[str] = []
    current = ""
    quote: str | None = None
    for char in text:
        if quote:
            current += char
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
            current += char
        elif char.isspace():
            if current:
                parts.append(current)
                current = ""
        else:
            current += char
    if current:
        parts.append(current)
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_postgresql_conf(text: str) -> dict[str, str]:
    """`name = value` lines of a postgresql.conf; quotes and trailing comments removed.

    `include*` directives are skipped (they name other files, not settings).
    """
    settings: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = _strip_pg_comment(raw_line).strip()
        if not line:
            continue
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_.]*)\s*(?:=\s*|\s+)(.*)$", line)
        if not match:
            raise ManifestsError(f"postgresql.conf: cannot parse line: {raw_line.strip()!r}")
        name, value = match.group(1).lower(), match.group(2).strip()
        if name in ("include", "include_if_exists", "include_dir"):
            continue
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1].replace("''", "'").replace("\\'", "'")
        settings[name] = value
    return settings


def _strip_pg_comment(line: str) -> str:
    in_quote = False
    for position, char in enumerate(line):
        if char == "'":
            in_quote = not in_quote
        elif char == "#" and not in_quote:
            return line[:position]
    return line


# --- the node benchmark Job ------------------------------------------------------------------


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
        raise ManifestsError(f"bench Job template: bad YAML: {_yaml_error_text(exc)}") from None
    if not isinstance(job, dict) or job.get("kind") != "Job":
        raise ManifestsError("bench Job template does not hold a Job")
    if args is not None:
        containers = pod_spec(job).get("containers") or []
        if not containers:
            raise ManifestsError("bench Job template has no container")
        job["spec"]["template"]["spec"]["containers"][0]["args"] = [str(arg) for arg in args]
    return job

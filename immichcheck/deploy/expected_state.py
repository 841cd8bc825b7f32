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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from immichcheck.deploy.config_values import (
    parse_postgresql_conf,
    parse_quantity,
    parse_redis_conf,
)
from immichcheck.deploy.manifest_files import (
    ManifestDocument,
    ManifestsError,
    load_manifest_documents,
    manifest_files,
    parse_manifest_file,
    resolve_directory,
)
from immichcheck.deploy.pod_specs import (
    HOSTNAME_LABEL,
    hostname_choices,
    iter_containers,
    iter_probes,
    pinned_node,
    pod_spec,
)

# Names that lived here before the module was split; callers may keep importing them here.
__all__ = [
    "COMPONENT_ANNOTATION",
    "COMPONENT_KEYS",
    "HOSTNAME_LABEL",
    "WORKLOAD_KINDS",
    "ComponentSpec",
    "ExpectedState",
    "ManifestDocument",
    "ManifestsError",
    "PvcSpec",
    "ServicePort",
    "ServiceSpec",
    "build_expected_state",
    "hostname_choices",
    "iter_containers",
    "iter_probes",
    "load_expected_state",
    "load_manifest_documents",
    "manifest_files",
    "parse_manifest_file",
    "parse_postgresql_conf",
    "parse_quantity",
    "parse_redis_conf",
    "pinned_node",
    "pod_spec",
    "resolve_directory",
]

COMPONENT_ANNOTATION = "immichcheck/component"
COMPONENT_KEYS = ("postgres", "redis", "ml", "server")
WORKLOAD_KINDS = ("Deployment", "StatefulSet")


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


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


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

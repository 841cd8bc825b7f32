"""The rules for references between objects: one rule set for the manifests and the live cluster.

`manifests validate` runs these rules on the shipped documents and `verify` on the objects it
read from the cluster, so a reference that the files get right and the cluster gets wrong (or
the other way round) is judged by the same code. Every rule yields `BrokenReference`s: the
object that holds the reference, a reason that names the other end, and the fix.

The rules: a Service's selector matches a workload's pod labels; each Service targetPort is a
container port of those pods; each Ingress backend names an existing Service and port; Immich's
env (DB_*, REDIS_*, IMMICH_MACHINE_LEARNING_URL) names Services and ports that exist; volumes
and key references name existing claims, ConfigMaps, Secrets and keys.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from immichcheck.deploy.pod_specs import iter_containers, pod_spec

# Kinds whose pod template a Service can select (Jobs are not long-running backends).
SERVING_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod")
CLUSTER_SCOPED_KINDS = (
    "Namespace",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
    "Node",
)
# Immich's env settings that name a Service: (host variable, port variable, Immich's default).
IMMICH_SERVICE_ENV = (("DB_HOSTNAME", "DB_PORT", 5432), ("REDIS_HOSTNAME", "REDIS_PORT", 6379))
ML_URL_ENV = "IMMICH_MACHINE_LEARNING_URL"


@dataclass(frozen=True)
class BrokenReference:
    """A reference from one object to another that does not resolve."""

    rule: str  # "selector", "target-port", "ingress-backend", "immich-env", "volume"
    kind: str
    name: str
    reason: str  # names the other end, e.g. "targetPort 3004 is not a container port ..."
    fix: str

    @property
    def label(self) -> str:
        """`Kind/name` of the object that holds the reference."""
        return f"{self.kind}/{self.name}"

    def sentence(self) -> str:
        """The one-line form verify prints: both ends and the fix."""
        return f"{self.label}: {self.reason}: {self.fix}"


def object_name(obj: Mapping[str, Any]) -> str:
    """metadata.name ('' when absent)."""
    return str((obj.get("metadata") or {}).get("name") or "")


def object_namespace(obj: Mapping[str, Any]) -> str:
    """metadata.namespace; '' for cluster-scoped kinds and objects that name none."""
    if obj.get("kind") in CLUSTER_SCOPED_KINDS:
        return ""
    return str((obj.get("metadata") or {}).get("namespace") or "")


class ObjectSet:
    """Objects by kind and name: the manifests' documents or a snapshot of the namespace.

    Secrets are special on both sides: the manifests hold none (users create two by hand, with
    documented keys) and verify reads only those two by name. `secrets` maps the secret names
    the set can judge to their keys; a reference to any other name is judged only when
    `judge_all_secrets` (the manifests: it must then be a documented one).
    """

    def __init__(
        self,
        objects: Iterable[Mapping[str, Any]],
        *,
        secrets: Mapping[str, Collection[str]],
        judge_all_secrets: bool,
        secrets_documented: bool,
    ) -> None:
        self.by_kind: dict[str, dict[tuple[str, str], Mapping[str, Any]]] = {}
        for obj in objects:
            kind, name = str(obj.get("kind") or ""), object_name(obj)
            if kind and name:
                self.by_kind.setdefault(kind, {})[(object_namespace(obj), name)] = obj
        self.secrets = secrets
        self.judge_all_secrets = judge_all_secrets
        self.secrets_documented = secrets_documented

    def find(self, kind: str, namespace: str, name: Any) -> Mapping[str, Any] | None:
        """The object of that kind and name in a namespace (or cluster-scoped)."""
        objects = self.by_kind.get(kind, {})
        return objects.get((namespace, str(name))) or objects.get(("", str(name)))

    def items(self, kind: str) -> list[Mapping[str, Any]]:
        """Every object of one kind."""
        return list(self.by_kind.get(kind, {}).values())

    def serving_pods(
        self, selector: Mapping[str, Any], namespace: str
    ) -> list[tuple[Mapping[str, Any], dict[str, Any]]]:
        """(workload, pod spec) of every workload whose pod labels a selector matches.

        A Pod a controller owns stands for its workload, which is already in the set.
        """
        selected = []
        for kind in SERVING_KINDS:
            for obj in self.items(kind):
                if object_namespace(obj) != namespace:
                    continue
                metadata = obj.get("metadata") or {}
                if kind == "Pod":
                    if metadata.get("ownerReferences"):
                        continue
                    labels = metadata.get("labels") or {}
                else:
                    template = (obj.get("spec") or {}).get("template") or {}
                    labels = (template.get("metadata") or {}).get("labels") or {}
                if selector and all(labels.get(k) == v for k, v in selector.items()):
                    selected.append((obj, pod_spec(obj)))
        return selected


def ports_text(ports: Iterable[Mapping[str, Any]]) -> str:
    """'has 2283, 8081' or 'declares none' for a list of container ports."""
    numbers = sorted(
        {int(p["containerPort"]) for p in ports if isinstance(p.get("containerPort"), int)}
    )
    return "has " + ", ".join(str(n) for n in numbers) if numbers else "declares none"


def _label(obj: Mapping[str, Any]) -> str:
    return f"{obj.get('kind')}/{object_name(obj)}"


# Services -----------------------------------------------------------------------------------


def service_references(objects: ObjectSet) -> Iterator[BrokenReference]:
    """Each Service selects some workload's pods, and its targetPorts are their container ports."""
    for service in objects.items("Service"):
        spec = service.get("spec") or {}
        selector = spec.get("selector") or {}
        if spec.get("type") == "ExternalName" or not selector:
            continue
        namespace, name = object_namespace(service), object_name(service)
        pods = objects.serving_pods(selector, namespace)
        if not pods:
            wanted = ",".join(f"{k}={v}" for k, v in selector.items())
            yield BrokenReference(
                "selector",
                "Service",
                name,
                f"selector {wanted} matches no workload's pod labels",
                _selector_fix(objects, namespace, name),
            )
            continue
        container_ports = [
            port
            for _workload, pod in pods
            for container in pod.get("containers") or []
            for port in container.get("ports") or []
            if isinstance(port, dict)
        ]
        workloads = ", ".join(sorted({_label(workload) for workload, _pod in pods}))
        for port in spec.get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            where = f"port {port.get('name') or port.get('port')}"
            if isinstance(target, int) and not any(
                p.get("containerPort") == target for p in container_ports
            ):
                yield BrokenReference(
                    "target-port",
                    "Service",
                    name,
                    f"{where}: targetPort {target} is not a container port of the selected "
                    f"pods ({ports_text(container_ports)})",
                    f"set targetPort to the port {workloads} listens on, or declare "
                    f"containerPort {target} there",
                )
            elif isinstance(target, str) and not any(
                p.get("name") == target for p in container_ports
            ):
                named = sorted(str(p["name"]) for p in container_ports if p.get("name"))
                yield BrokenReference(
                    "target-port",
                    "Service",
                    name,
                    f"{where}: targetPort {target!r} is not a named container port "
                    "of the selected pods",
                    f"use one of the port names of {workloads} ({', '.join(named) or 'none'}) "
                    "or a port number",
                )


def _selector_fix(objects: ObjectSet, namespace: str, service: str) -> str:
    """Name the workload the Service most likely serves (the same name), with its labels."""
    for kind in SERVING_KINDS[:-1]:
        workload = objects.find(kind, namespace, service)
        if workload is not None:
            template = (workload.get("spec") or {}).get("template") or {}
            labels = (template.get("metadata") or {}).get("labels") or {}
            text = ",".join(f"{k}={v}" for k, v in labels.items())
            return f"{kind}/{service}'s pods are labelled {text}: use those labels as the selector"
    return "set the selector to the labels of the pods it serves (kubectl get pods --show-labels)"


def service_port_problem(objects: ObjectSet, namespace: str, name: Any, port: Any) -> str | None:
    """Why `name:port` does not name a Service port (None when it does); port may be a name."""
    service = objects.find("Service", namespace, name)
    if service is None:
        return f"Service {name} does not exist"
    ports = (service.get("spec") or {}).get("ports") or []
    if port is not None and not any(port in (p.get("port"), p.get("name")) for p in ports):
        offered = ", ".join(str(p.get("port")) for p in ports)
        return f"Service {name} has no port {port} (it has {offered})"
    return None


# Ingress ------------------------------------------------------------------------------------


def ingress_references(objects: ObjectSet) -> Iterator[BrokenReference]:
    """Each Ingress backend names a Service that exists, on a port that Service has."""
    for ingress in objects.items("Ingress"):
        spec = ingress.get("spec") or {}
        backends: list[tuple[str, Any]] = []
        if spec.get("defaultBackend"):
            backends.append(("default backend", spec["defaultBackend"]))
        for rule in spec.get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                route = f"{rule.get('host') or '*'}{path.get('path') or '/'}"
                backends.append((route, path.get("backend") or {}))
        for route, backend in backends:
            service = (backend or {}).get("service")
            if not service:
                continue
            port = service.get("port") or {}
            reason = service_port_problem(
                objects,
                object_namespace(ingress),
                service.get("name"),
                port.get("number", port.get("name")),
            )
            if reason:
                yield BrokenReference(
                    "ingress-backend",
                    "Ingress",
                    object_name(ingress),
                    f"backend: {reason}",
                    f"requests for {route} find no backend (nginx answers 503): point it at an "
                    "existing Service and one of its ports",
                )


# Immich's env -------------------------------------------------------------------------------


def url_problem(objects: ObjectSet, namespace: str, url: str) -> str | None:
    """Whether an in-cluster URL names a Service and port of the set (None: fine or external)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if "." in host and ".svc" not in host:
        return None  # an address outside the cluster: not ours to check
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "bad port"
    return service_port_problem(objects, namespace, host.split(".", 1)[0], port)


def immich_env_references(objects: ObjectSet) -> Iterator[BrokenReference]:
    """Immich's env settings (literal values) name Services and ports that exist."""
    for kind in ("Deployment", "StatefulSet"):
        for workload in objects.items(kind):
            namespace = object_namespace(workload)
            for container in pod_spec(workload).get("containers") or []:
                for reason in _env_problems(objects, namespace, container):
                    yield BrokenReference(
                        "immich-env",
                        kind,
                        object_name(workload),
                        reason,
                        "Immich cannot reach that service: set the variable to the Service's "
                        "name and one of its ports",
                    )


def container_env(
    objects: ObjectSet, namespace: str, container: Mapping[str, Any]
) -> dict[str, str]:
    """The env a container sees: envFrom ConfigMaps, then env values and ConfigMap keys.

    Secret values are left out: they never name a Service, and verify must not hold them.
    """
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        configmap = objects.find("ConfigMap", namespace, ref.get("name")) if ref else None
        if configmap is not None:
            prefix = str(source.get("prefix") or "")
            env.update({prefix + str(k): str(v) for k, v in (configmap.get("data") or {}).items()})
    for item in container.get("env") or []:
        name = str(item.get("name"))
        if "value" in item:
            env[name] = str(item["value"])
        ref = (item.get("valueFrom") or {}).get("configMapKeyRef")
        configmap = objects.find("ConfigMap", namespace, ref.get("name")) if ref else None
        if ref and configmap is not None and ref.get("key") in (configmap.get("data") or {}):
            env[name] = str(configmap["data"][ref.get("key")])
    return env


def _env_problems(
    objects: ObjectSet, namespace: str, container: Mapping[str, Any]
) -> Iterator[str]:
    env = container_env(objects, namespace, container)
    prefix = f"container {container.get('name')}: env"
    for host_var, port_var, default in IMMICH_SERVICE_ENV:
        if host_var in env:
            port = int(env[port_var]) if env.get(port_var, "").isdigit() else default
            host = env[host_var].split(".", 1)[0] if ".svc" in env[host_var] else env[host_var]
            if "." in host:
                continue  # an address outside the cluster
            reason = service_port_problem(objects, namespace, host, port)
            if reason:
                yield f"{prefix} {host_var}/{port_var}: {reason}"
    if ML_URL_ENV in env:
        reason = url_problem(objects, namespace, env[ML_URL_ENV])
        if reason:
            yield f"{prefix} {ML_URL_ENV}: {reason}"


# Volumes and keys ---------------------------------------------------------------------------


def volume_references(objects: ObjectSet) -> Iterator[BrokenReference]:
    """Every workload's volumes and key references name claims, ConfigMaps, Secrets that exist."""
    for kind in ("Deployment", "StatefulSet", "DaemonSet"):
        for workload in objects.items(kind):
            for reason in pod_reference_problems(
                objects, pod_spec(workload), object_namespace(workload)
            ):
                yield BrokenReference(
                    "volume",
                    kind,
                    object_name(workload),
                    reason,
                    "the pod cannot start (ContainerCreating or CreateContainerConfigError): "
                    "create the object or key, or correct the name",
                )


def pod_reference_problems(
    objects: ObjectSet, pod: Mapping[str, Any], namespace: str
) -> Iterator[str]:
    """The reasons one pod spec's volumes, env key references and mounts do not resolve."""
    volumes = {str(v.get("name")): v for v in pod.get("volumes") or [] if isinstance(v, dict)}
    for volume_name, volume in volumes.items():
        if "configMap" in volume:
            ref = volume["configMap"]
            configmap = objects.find("ConfigMap", namespace, ref.get("name"))
            if configmap is None:
                if not ref.get("optional"):
                    yield f"volume {volume_name}: ConfigMap {ref.get('name')} does not exist"
            else:
                data = configmap.get("data") or {}
                for item in ref.get("items") or []:
                    if item.get("key") not in data:
                        yield (
                            f"volume {volume_name}: ConfigMap {ref.get('name')} "
                            f"has no key {item.get('key')}"
                        )
        if "secret" in volume:
            ref = volume["secret"]
            yield from secret_reference(
                objects, f"volume {volume_name}", ref.get("secretName"), None, ref.get("optional")
            )
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"].get("claimName")
            if not objects.find("PersistentVolumeClaim", namespace, claim):
                yield f"volume {volume_name}: PersistentVolumeClaim {claim} does not exist"
    for container in iter_containers(dict(pod)):
        yield from _container_references(objects, container, volumes, namespace)


def _container_references(
    objects: ObjectSet,
    container: Mapping[str, Any],
    volumes: Mapping[str, Any],
    namespace: str,
) -> Iterator[str]:
    prefix = f"container {container.get('name')}"
    for env in container.get("env") or []:
        source = env.get("valueFrom") or {}
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            configmap = objects.find("ConfigMap", namespace, ref.get("name"))
            if ref.get("optional"):
                continue
            if configmap is None:
                yield (
                    f"{prefix}: env {env.get('name')}: ConfigMap {ref.get('name')} does not exist"
                )
            elif ref.get("key") not in (configmap.get("data") or {}):
                yield (
                    f"{prefix}: env {env.get('name')}: ConfigMap {ref.get('name')} "
                    f"has no key {ref.get('key')}"
                )
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            yield from secret_reference(
                objects,
                f"{prefix}: env {env.get('name')}",
                ref.get("name"),
                ref.get("key"),
                ref.get("optional"),
            )
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            ref = source["configMapRef"]
            if not ref.get("optional") and not objects.find(
                "ConfigMap", namespace, ref.get("name")
            ):
                yield f"{prefix}: envFrom: ConfigMap {ref.get('name')} does not exist"
        if "secretRef" in source:
            ref = source["secretRef"]
            yield from secret_reference(
                objects, f"{prefix}: envFrom", ref.get("name"), None, ref.get("optional")
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
            configmap = objects.find("ConfigMap", namespace, volume["configMap"].get("name"))
            if configmap is not None and sub_path not in (configmap.get("data") or {}):
                yield (
                    f"{prefix}: volumeMount {mount.get('mountPath')}: ConfigMap "
                    f"{volume['configMap'].get('name')} has no key {sub_path}"
                )


def secret_reference(
    objects: ObjectSet, where: str, name: Any, key: str | None, optional: bool | None
) -> Iterator[str]:
    """Why a reference to a Secret (and key) does not resolve, as far as the set can tell."""
    if optional:
        return
    keys = objects.secrets.get(str(name)) if name is not None else None
    if keys is None:
        if not objects.judge_all_secrets:
            return  # a secret verify does not read: nothing to judge
        if objects.secrets_documented:
            yield (
                f"{where}: secret {name} is not one of the documented manual secrets "
                f"({', '.join(objects.secrets)})"
            )
        else:
            yield f"{where}: secret {name} does not exist"
        return
    if key is not None and key not in keys:
        listed = ", ".join(keys)
        if objects.secrets_documented:
            yield f"{where}: secret {name} has no key {key} (documented keys: {listed})"
        else:
            yield f"{where}: secret {name} has no key {key} (it has {listed or 'none'})"


def broken_references(objects: ObjectSet) -> list[BrokenReference]:
    """Every broken reference the rules find (services, ingress, Immich's env, volumes)."""
    return [
        *service_references(objects),
        *ingress_references(objects),
        *immich_env_references(objects),
        *volume_references(objects),
    ]

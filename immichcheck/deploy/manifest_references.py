"""Cross-references within manifests/: the shared rules plus the ones only files need.

The rules a live cluster is judged by too (Service selectors and targetPorts, Ingress
backends, Immich's env, volumes and keys) come from `cross_references`; this module adds
what only the files can get wrong: namespaces, nodePorts, role bindings, claims against
their PersistentVolumes, JSON ConfigMaps, the bench Job template, pinned images and probes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from immichcheck import __version__
from immichcheck.deploy.bench_job import (
    BENCH_JOB_TEMPLATE_CONFIGMAP,
    BENCH_JOB_TEMPLATE_KEY,
    render_job_template,
)
from immichcheck.deploy.config_values import parse_quantity
from immichcheck.deploy.cross_references import (
    CLUSTER_SCOPED_KINDS,
    BrokenReference,
    ObjectSet,
    immich_env_references,
    ingress_references,
    object_namespace,
    pod_reference_problems,
    ports_text,
    service_references,
    url_problem,
)
from immichcheck.deploy.manifest_files import ManifestDocument, ManifestsError
from immichcheck.deploy.pod_specs import (
    hostname_choices,
    iter_containers,
    iter_probes,
    pinned_node,
    pod_spec,
)

NODEPORT_RANGE = range(30000, 32768)  # the API server's default --service-node-port-range
# The secrets users create by hand (manifests/README.md), with the keys they must hold.
MANUAL_SECRET_KEYS: Mapping[str, tuple[str, ...]] = {
    "immich-postgres-secret": ("username", "password"),
    "immich-server-secret": ("jwt-secret",),
}
POD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "Pod")
# Sample values that fill the bench Job template's placeholders for validation.
_SAMPLE_NODE = "node05"
_SAMPLE_JOB_NAME = "immichcheck-bench-node05"


def render_template(doc: ManifestDocument) -> dict[str, Any] | str:
    """The bench Job template filled with sample values, or why it cannot be."""
    text = (doc.body.get("data") or {}).get(BENCH_JOB_TEMPLATE_KEY)
    if not isinstance(text, str):
        return f"no {BENCH_JOB_TEMPLATE_KEY} key"
    try:
        return render_job_template(text, _SAMPLE_NODE, _SAMPLE_JOB_NAME)
    except ManifestsError as exc:
        return exc.message


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
        self.objects = ObjectSet(
            (doc.body for doc in self.documents),
            secrets=MANUAL_SECRET_KEYS,
            judge_all_secrets=True,
            secrets_documented=True,
        )
        namespaces = [doc.name for doc in self.documents if doc.kind == "Namespace"]
        self.namespace = namespaces[0] if len(namespaces) == 1 else None
        # The shared rules, by the object that holds the reference.
        self.shared: dict[tuple[str, str], list[BrokenReference]] = {}
        for rule in (service_references, ingress_references, immich_env_references):
            for broken in rule(self.objects):
                self.shared.setdefault((broken.kind, broken.name), []).append(broken)

    def find(self, kind: str, namespace: str, name: Any) -> Mapping[str, Any] | None:
        """The object of that kind and name in a namespace ('' for cluster-scoped)."""
        return self.objects.find(kind, namespace, name)

    def problems(self) -> Iterator[tuple[ManifestDocument, str]]:
        """Every cross-reference problem as (document, reason), object by object."""
        node_ports: dict[int, str] = {}
        for doc in self.documents:
            for reason in self._object_problems(doc):
                yield doc, reason
            if doc.kind == "Service":
                for port in (doc.body.get("spec") or {}).get("ports") or []:
                    node_port = port.get("nodePort")
                    if isinstance(node_port, int) and node_port in node_ports:
                        yield doc, f"nodePort {node_port} is also used by {node_ports[node_port]}"
                    elif isinstance(node_port, int):
                        node_ports[node_port] = doc.label

    def _object_problems(self, doc: ManifestDocument) -> Iterator[str]:
        body = doc.body
        namespace = object_namespace(body)
        if (
            self.namespace
            and doc.kind not in CLUSTER_SCOPED_KINDS
            and namespace
            and namespace != self.namespace
        ):
            yield f"namespace {namespace} is not the manifests' namespace {self.namespace}"
        if doc.kind in POD_KINDS:
            yield from self._pod_problems(pod_spec(body), namespace)
        for broken in self.shared.get((doc.kind, doc.name), []):
            yield broken.reason
        if doc.kind == "Service":
            yield from self._node_port_problems(body)
        if doc.kind in ("RoleBinding", "ClusterRoleBinding"):
            yield from self._binding_problems(body, namespace)
        if doc.kind == "PersistentVolumeClaim":
            yield from self._claim_problems(body)
        if doc.kind == "ConfigMap":
            yield from self._configmap_problems(doc, namespace)
        if doc.kind in ("Deployment", "StatefulSet"):
            yield from self._immich_port_problems(body)

    def _pod_problems(self, pod: dict[str, Any], namespace: str) -> Iterator[str]:
        yield from pod_reference_problems(self.objects, pod, namespace)
        for volume in pod.get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and self.find("PersistentVolumeClaim", namespace, claim):
                yield from self._local_volume_node(str(volume.get("name")), claim, namespace, pod)
        account = pod.get("serviceAccountName")
        if account and account != "default" and not self.find("ServiceAccount", namespace, account):
            yield f"ServiceAccount {account} does not exist"
        for container in iter_containers(pod):
            yield from self._container_problems(container)

    def _local_volume_node(
        self, volume_name: str, claim: Any, namespace: str, pod: Mapping[str, Any]
    ) -> Iterator[str]:
        """A pod pinned to one node must not need a volume that lives on another."""
        node = pinned_node(pod)
        claim_doc = self.find("PersistentVolumeClaim", namespace, claim)
        volume_name_of_claim = ((claim_doc or {}).get("spec") or {}).get("volumeName")
        volume = self.find("PersistentVolume", "", volume_name_of_claim)
        if node is None or volume is None:
            return
        required = ((volume.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {}
        for values in hostname_choices(required):
            if node not in values:
                yield (
                    f"volume {volume_name}: claim {claim} is bound to PersistentVolume "
                    f"{volume_name_of_claim} on {', '.join(values)}, but the pod is pinned to "
                    f"{node}"
                )

    def _container_problems(self, container: dict[str, Any]) -> Iterator[str]:
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
                        f"({ports_text(ports)})"
                    )
                elif isinstance(port, str) and port not in names:
                    yield (
                        f"{prefix}: {probe_kind} {handler} port {port!r} "
                        "is not a named container port"
                    )

    def _node_port_problems(self, body: dict[str, Any]) -> Iterator[str]:
        spec = body.get("spec") or {}
        service_type = spec.get("type") or "ClusterIP"
        for port in spec.get("ports") or []:
            node_port = port.get("nodePort")
            if node_port is None:
                continue
            label = f"port {port.get('name') or port.get('port')}"
            if service_type not in ("NodePort", "LoadBalancer"):
                yield f"{label}: nodePort {node_port} on a {service_type} Service"
            elif node_port not in NODEPORT_RANGE:
                yield (
                    f"{label}: nodePort {node_port} is outside "
                    f"{NODEPORT_RANGE.start}-{NODEPORT_RANGE.stop - 1}"
                )

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
        volume_spec = volume.get("spec") or {}
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
            job = render_template(doc)
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
            reason = url_problem(self.objects, namespace, str(url))
            if reason:
                yield f"{key}: machineLearning.urls {url}: {reason}"

    def _immich_port_problems(self, body: dict[str, Any]) -> Iterator[str]:
        """IMMICH_PORT must be a port the server container declares."""
        for container in pod_spec(body).get("containers") or []:
            env = {
                str(item.get("name")): str(item["value"])
                for item in container.get("env") or []
                if "value" in item
            }
            if "IMMICH_PORT" in env:
                numbers = {p.get("containerPort") for p in container.get("ports") or []}
                if not env["IMMICH_PORT"].isdigit() or int(env["IMMICH_PORT"]) not in numbers:
                    yield (
                        f"container {container.get('name')}: env IMMICH_PORT "
                        f"{env['IMMICH_PORT']} is not a container port"
                    )


def _is_immichcheck_image(image: Any) -> bool:
    """An image of immichcheck itself (any registry), pinned by tag rather than digest."""
    text = str(image or "")
    return "@" not in text and text.rsplit("/", 1)[-1].split(":", 1)[0] == "immichcheck"

"""Builds the fake cluster's objects from manifests/ plus the status a healthy cluster reports.

Everything is derived from the manifest objects (ExpectedState.objects): workloads become
ReplicaSets and Running, Ready pods on the node their nodeSelector/affinity names; claims
are Bound; Services get cluster IPs and Endpoints/EndpointSlices for their ready pods.
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from immichcheck.deploy.expected_state import ExpectedState, pinned_node, pod_spec
from tests.fakes.kube_store import ResourceStore, timestamp
from tests.fakes.tls import loopback_certificate

# Node addresses as the deployment README lists them (node01..node05).
NODE_ADDRESSES = {
    "node01": "192.168.88.167",
    "node02": "192.168.88.164",
    "node03": "192.168.88.163",
    "node04": "192.168.88.162",
    "node05": "192.168.88.126",
}
KUBELET_VERSION = "v1.32.4+k3s1"
# Kubernetes' "safe" alphabet for generated name suffixes (no vowels, no look-alikes).
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Pods of the healthy cluster started this long before the fake was built.
POD_AGE = timedelta(days=3, hours=4)
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def safe_suffix(seed: str, length: int) -> str:
    """A deterministic Kubernetes-style random suffix (pod-template-hash, pod names)."""
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(_SAFE_ALPHABET[byte % len(_SAFE_ALPHABET)] for byte in digest[:length])


def image_id(image: str) -> str:
    """A plausible resolved image reference: repo@sha256:<digest>."""
    repository = image.rsplit(":", 1)[0] if ":" in image.rsplit("/", 1)[-1] else image
    return f"{repository}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def container_id(pod_name: str, container: str, restarts: int) -> str:
    """A containerd container ID, new for every restart."""
    return (
        "containerd://" + hashlib.sha256(f"{pod_name}/{container}/{restarts}".encode()).hexdigest()
    )


@dataclass
class PodLog:
    """Log lines of one container: the current instance and the previous (crashed) one."""

    current: list[tuple[datetime, str]] = field(default_factory=list)
    previous: list[tuple[datetime, str]] = field(default_factory=list)


def node_names(state: ExpectedState) -> list[str]:
    """node01..node05 plus any node the manifests pin something to."""
    names = [f"node{index:02d}" for index in range(1, 6)]
    for obj in state.objects:
        pinned = pinned_node(pod_spec(obj)) if obj.get("kind") in WORKLOAD_KINDS else None
        for candidate in (pinned, state.node):
            if candidate and candidate not in names:
                names.append(candidate)
    return names


def node_address(name: str, index: int) -> str:
    """The node's InternalIP."""
    return NODE_ADDRESSES.get(name, f"192.168.88.{200 + index}")


def build_node(
    name: str, index: int, extra_labels: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """A Ready, schedulable arm64 k3s node."""
    performance = name == "node05"
    labels = {
        "beta.kubernetes.io/arch": "arm64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "arm64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "k3s",
        **extra_labels,
    }
    if index == 0:
        labels["node-role.kubernetes.io/control-plane"] = "true"
        labels["node-role.kubernetes.io/master"] = "true"
    memory_kib = (8 if performance else 4) * 1024 * 1024 - 200 * 1024
    heartbeat = timestamp(now - timedelta(seconds=20))
    since = timestamp(now - timedelta(days=12))

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": heartbeat,
            "lastTransitionTime": since,
        }

    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {"k3s.io/internal-ip": node_address(name, index)},
        },
        "spec": {"podCIDR": f"10.42.{index}.0/24", "podCIDRs": [f"10.42.{index}.0/24"]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": node_address(name, index)},
                {"type": "Hostname", "address": name},
            ],
            "capacity": {
                "cpu": "4",
                "memory": f"{memory_kib + 200 * 1024}Ki",
                "pods": "110",
                "ephemeral-storage": "245617512Ki" if performance else "61202244Ki",
            },
            "allocatable": {
                "cpu": "4",
                "memory": f"{memory_kib}Ki",
                "pods": "110",
                "ephemeral-storage": "238941094046" if performance else "59538265631",
            },
            "conditions": [
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                ),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "arm64",
                "bootID": safe_suffix(name + "boot", 16),
                "containerRuntimeVersion": "containerd://1.7.23-k3s2",
                "kernelVersion": "6.6.51+rpt-rpi-2712" if performance else "6.6.51+rpt-rpi-v8",
                "kubeProxyVersion": KUBELET_VERSION,
                "kubeletVersion": KUBELET_VERSION,
                "machineID": hashlib.md5(name.encode()).hexdigest(),
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "systemUUID": hashlib.md5((name + "uuid").encode()).hexdigest(),
            },
        },
    }


def node_selector_labels(spec: Mapping[str, Any]) -> dict[str, str]:
    """Labels a node needs to satisfy a pod spec's nodeSelector and required affinity (In)."""
    labels = {str(k): str(v) for k, v in (spec.get("nodeSelector") or {}).items()}
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in (required.get("nodeSelectorTerms") or [])[:1]:
        for expression in term.get("matchExpressions") or []:
            if expression.get("operator") == "In" and expression.get("values"):
                labels[str(expression["key"])] = str(expression["values"][0])
    return labels


def running_container_status(
    container: Mapping[str, Any], pod_name: str, started: datetime, *, restarts: int = 0
) -> dict[str, Any]:
    """containerStatuses[] entry of a running, ready container."""
    image = str(container.get("image", ""))
    return {
        "name": container["name"],
        "image": image,
        "imageID": image_id(image),
        "containerID": container_id(pod_name, container["name"], restarts),
        "ready": True,
        "started": True,
        "restartCount": restarts,
        "state": {"running": {"startedAt": timestamp(started)}},
        "lastState": {},
    }


def pod_conditions(
    ready: bool, started: datetime, *, scheduled: bool = True
) -> list[dict[str, Any]]:
    """The five standard pod conditions."""
    stamp = timestamp(started)

    def condition(kind: str, status: bool, reason: str | None = None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": kind,
            "status": "True" if status else "False",
            "lastProbeTime": None,
            "lastTransitionTime": stamp,
        }
        if reason and not status:
            entry["reason"] = reason
        return entry

    return [
        condition("PodReadyToStartContainers", scheduled),
        condition("Initialized", scheduled),
        condition("Ready", ready, "ContainersNotReady"),
        condition("ContainersReady", ready, "ContainersNotReady"),
        condition("PodScheduled", scheduled, "Unschedulable"),
    ]


def initial_logs(
    component: str | None, image: str, started: datetime
) -> list[tuple[datetime, str]]:
    """Plausible start-up lines for each Immich component (what `kubectl logs` would show)."""
    version = image.rsplit(":", 1)[-1] if ":" in image else "latest"
    t = started

    def at(seconds: float) -> datetime:
        return t + timedelta(seconds=seconds)

    if component == "postgres":
        lines = [
            "PostgreSQL Database directory appears to contain a database; Skipping initialization",
            "LOG:  starting PostgreSQL 15.13 (Debian 15.13-1.pgdg120+1) on aarch64-unknown-linux",
            'LOG:  listening on IPv4 address "0.0.0.0", port 5432',
            'LOG:  listening on Unix socket "/var/run/postgresql/.s.PGSQL.5432"',
            "LOG:  database system was shut down at 2026-11-25 07:58:11 UTC",
            "LOG:  database system is ready to accept connections",
            "LOG:  checkpoint starting: time",
            "LOG:  checkpoint complete: wrote 412 buffers (2.5%); write=41.2 s, sync=0.004 s",
        ]
    elif component == "redis":
        lines = [
            "1:C oO0OoO0OoO0Oo Valkey is starting oO0OoO0OoO0Oo",
            "1:C Configuration loaded",
            "1:M Server initialized",
            "1:M Reading RDB base file on AOF loading...",
            "1:M DB loaded from append only file: 0.004 seconds",
            "1:M Ready to accept connections tcp",
        ]
    elif component == "ml":
        lines = [
            "[INFO] Starting gunicorn 23.0.0",
            "[INFO] Listening at: http://[::]:3003 (9)",
            "[INFO] Using worker: immich_ml.config.CustomUvicornWorker",
            "[INFO] Booting worker with pid: 10",
            "[INFO] Started server process [10]",
            "[INFO] Waiting for application startup.",
            "[INFO] Created in-memory cache with unloading after 600s of inactivity.",
            "[INFO] Initialized request thread pool with 2 threads.",
            "[INFO] Application startup complete.",
        ]
    elif component == "server":
        lines = [
            "Initializing Immich " + version,
            "Detected CPU Cores: 4",
            "[Nest] 7  - LOG [Microservices:EventRepository] Initialized websocket server",
            "[Nest] 7  - LOG [Microservices:DatabaseService] Running migrations",
            "[Nest] 17  - LOG [Api:EventRepository] Initialized websocket server",
            f"[Nest] 17  - LOG [Api:Bootstrap] Immich Server is listening on http://[::1]:2283 "
            f"[{version}] [production]",
        ]
    else:
        lines = ["started"]
    return [(at(index * 0.7), line) for index, line in enumerate(lines)]


@dataclass
class BuiltCluster:
    """What the builder made besides the stored objects: logs and pod->component mapping."""

    logs: dict[tuple[str, str, str], PodLog] = field(default_factory=dict)  # (ns, pod, container)
    pod_components: dict[tuple[str, str], str] = field(default_factory=dict)
    node_ips: dict[str, str] = field(default_factory=dict)


class ClusterBuilder:
    """Fills a ResourceStore with the manifest objects and a healthy cluster's status."""

    def __init__(
        self,
        state: ExpectedState,
        store: ResourceStore,
        secrets: Mapping[str, Mapping[str, str]],
        now: datetime | None = None,
    ) -> None:
        self.state = state
        self.store = store
        self.secrets = secrets
        self.now = now or datetime.now(UTC)
        self.built = BuiltCluster()
        self._pod_ip_counter: dict[str, int] = {}
        self._service_ip_counter = 10

    def build(self) -> BuiltCluster:
        """Create every object; returns logs and the pod-to-component map."""
        self._nodes()
        self._namespaces()
        for raw in self.state.objects:
            obj = copy.deepcopy(raw)
            kind = obj.get("kind")
            if kind in WORKLOAD_KINDS:
                self._workload(obj)
            elif kind == "Service":
                self._service(obj)
            elif kind == "PersistentVolumeClaim":
                self._claim(obj)
            elif kind == "Ingress":
                self._ingress(obj)
            elif kind == "CronJob":
                obj["status"] = {}
                self.store.put(obj, created=self.now - POD_AGE)
            else:
                self.store.put(obj, created=self.now - POD_AGE)
        self._persistent_volumes()
        self._secrets()
        return self.built

    # Cluster scaffolding ------------------------------------------------------------------

    def _nodes(self) -> None:
        extra: dict[str, dict[str, str]] = {}
        for obj in self.state.objects:
            if obj.get("kind") in WORKLOAD_KINDS:
                spec = pod_spec(obj)
                node = pinned_node(spec)
                if node:
                    extra.setdefault(node, {}).update(node_selector_labels(spec))
        for index, name in enumerate(node_names(self.state)):
            node_object = build_node(name, index, extra.get(name, {}), self.now)
            self.store.put(node_object, created=self.now - timedelta(days=120))
            self.built.node_ips[name] = node_address(name, index)

    def _namespaces(self) -> None:
        names = ["default", "kube-system", self.state.namespace]
        for name in names:
            existing = next(
                (
                    o
                    for o in self.state.objects
                    if o.get("kind") == "Namespace" and o["metadata"]["name"] == name
                ),
                None,
            )
            obj: dict[str, Any] = (
                copy.deepcopy(existing)
                if existing
                else {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": name},
                }
            )
            obj.setdefault("metadata", {}).setdefault("labels", {})[
                "kubernetes.io/metadata.name"
            ] = name
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
            self.store.put(obj, created=self.now - timedelta(days=90))
            for account in ("default",):
                self.store.put(
                    {
                        "apiVersion": "v1",
                        "kind": "ServiceAccount",
                        "metadata": {"name": account, "namespace": name},
                    },
                    created=self.now - timedelta(days=90),
                )
            self.store.put(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "kube-root-ca.crt", "namespace": name},
                    "data": {"ca.crt": loopback_certificate().ca_pem.decode()},
                },
                created=self.now - timedelta(days=90),
            )

    def default_node(self) -> str:
        """Where unpinned pods run: the first worker node that is not the performance node."""
        names = node_names(self.state)
        return next((n for n in names[1:] if n != self.state.node), names[0])

    def next_pod_ip(self, node: str) -> str:
        """A pod IP from the node's pod CIDR."""
        index = node_names(self.state).index(node) if node in node_names(self.state) else 9
        self._pod_ip_counter[node] = self._pod_ip_counter.get(node, 10) + 1
        return f"10.42.{index}.{self._pod_ip_counter[node]}"

    # Workloads ----------------------------------------------------------------------------

    def _component_key(self, obj: Mapping[str, Any]) -> str | None:
        for key, spec in self.state.components.items():
            if spec.kind == obj.get("kind") and spec.name == obj["metadata"]["name"]:
                return key
        return None

    def _workload(self, obj: dict[str, Any]) -> None:
        created = self.now - POD_AGE
        metadata = obj["metadata"]
        namespace = metadata.get("namespace", self.state.namespace)
        metadata["namespace"] = namespace
        metadata["generation"] = 1
        self.store.put(obj, created=created)
        replicas = int((obj.get("spec") or {}).get("replicas", 1))
        template = (obj.get("spec") or {}).get("template") or {}
        template_hash = safe_suffix(repr(template), 10)
        owner = obj
        pod_names: list[str] = []
        if obj["kind"] == "Deployment":
            owner = self._replica_set(obj, template, template_hash, replicas, created)
            pod_names = [
                f"{owner['metadata']['name']}-{safe_suffix(owner['metadata']['name'] + str(i), 5)}"
                for i in range(replicas)
            ]
            extra_labels = {"pod-template-hash": template_hash}
        elif obj["kind"] == "StatefulSet":
            pod_names = [f"{metadata['name']}-{i}" for i in range(replicas)]
            extra_labels = {"controller-revision-hash": f"{metadata['name']}-{template_hash}"}
            self._statefulset_claims(obj, replicas, created)
        else:
            pod_names = [f"{metadata['name']}-{safe_suffix(metadata['name'], 5)}"]
            extra_labels = {}
        key = self._component_key(obj)
        for pod_name in pod_names:
            labels = {**(template.get("metadata") or {}).get("labels", {}), **extra_labels}
            if obj["kind"] == "StatefulSet":
                labels["statefulset.kubernetes.io/pod-name"] = pod_name
            self._pod(pod_name, namespace, labels, template, owner, key, created)

    def _replica_set(
        self,
        deployment: dict[str, Any],
        template: Mapping[str, Any],
        template_hash: str,
        replicas: int,
        created: datetime,
    ) -> dict[str, Any]:
        name = f"{deployment['metadata']['name']}-{template_hash}"
        namespace = deployment["metadata"]["namespace"]
        selector = copy.deepcopy((deployment.get("spec") or {}).get("selector") or {})
        selector.setdefault("matchLabels", {})["pod-template-hash"] = template_hash
        rs_template = copy.deepcopy(dict(template))
        rs_template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = (
            template_hash
        )
        replica_set = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(rs_template["metadata"]["labels"]),
                "annotations": {
                    "deployment.kubernetes.io/desired-replicas": str(replicas),
                    "deployment.kubernetes.io/max-replicas": str(replicas + 1),
                    "deployment.kubernetes.io/revision": "1",
                },
                "generation": 1,
                "ownerReferences": [_owner_reference(deployment)],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": rs_template},
            "status": {},
        }
        return self.store.put(replica_set, created=created)

    def _statefulset_claims(
        self, statefulset: dict[str, Any], replicas: int, created: datetime
    ) -> None:
        for template in (statefulset.get("spec") or {}).get("volumeClaimTemplates") or []:
            for index in range(replicas):
                claim = copy.deepcopy(template)
                claim["apiVersion"] = "v1"
                claim["kind"] = "PersistentVolumeClaim"
                claim_name = (
                    f"{template['metadata']['name']}-{statefulset['metadata']['name']}-{index}"
                )
                claim["metadata"] = {
                    "name": claim_name,
                    "namespace": statefulset["metadata"]["namespace"],
                    "labels": dict(
                        (statefulset["spec"].get("selector") or {}).get("matchLabels") or {}
                    ),
                }
                self._claim(claim)

    def _pod(
        self,
        name: str,
        namespace: str,
        labels: Mapping[str, str],
        template: Mapping[str, Any],
        owner: dict[str, Any],
        component: str | None,
        created: datetime,
    ) -> None:
        spec = copy.deepcopy(dict(template.get("spec") or {}))
        node = pinned_node(spec) or self.default_node()
        spec["nodeName"] = node
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("serviceAccountName", spec.get("serviceAccount", "default"))
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault(
            "tolerations",
            [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        )
        started = created + timedelta(seconds=8)
        containers = spec.get("containers") or []
        init_containers = spec.get("initContainers") or []
        pod_ip = self.next_pod_ip(node)
        status: dict[str, Any] = {
            "phase": "Running",
            "conditions": pod_conditions(True, started),
            "hostIP": self.built.node_ips.get(node, ""),
            "hostIPs": [{"ip": self.built.node_ips.get(node, "")}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": timestamp(created),
            "qosClass": _qos_class(containers),
            "containerStatuses": [running_container_status(c, name, started) for c in containers],
        }
        if init_containers:
            status["initContainerStatuses"] = [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": image_id(str(c.get("image", ""))),
                    "containerID": container_id(name, c["name"], 0),
                    "ready": True,
                    "started": False,
                    "restartCount": 0,
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": timestamp(created + timedelta(seconds=2)),
                            "finishedAt": timestamp(created + timedelta(seconds=5)),
                            "containerID": container_id(name, c["name"], 0),
                        }
                    },
                    "lastState": {},
                }
                for c in init_containers
            ]
        pod: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(labels),
                "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                "ownerReferences": [_owner_reference(owner)],
            },
            "spec": spec,
            "status": status,
        }
        if owner["kind"] == "ReplicaSet":
            pod["metadata"]["generateName"] = owner["metadata"]["name"] + "-"
        stored = self.store.put(pod, created=created)
        if component:
            self.built.pod_components[(namespace, name)] = component
        for container in containers:
            self.built.logs[(namespace, name, container["name"])] = PodLog(
                current=initial_logs(component, str(container.get("image", "")), started)
            )
        self._pod_events(stored, node, containers, created)

    def _pod_events(
        self, pod: dict[str, Any], node: str, containers: list[dict[str, Any]], created: datetime
    ) -> None:
        name = pod["metadata"]["name"]
        add_event(
            self.store,
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {pod['metadata']['namespace']}/{name} to {node}",
            created,
            component="default-scheduler",
        )
        for container in containers:
            path = f"spec.containers{{{container['name']}}}"
            image = container.get("image", "")
            lifecycle = (
                ("Pulled", f'Container image "{image}" already present on machine', 3),
                ("Created", f"Created container: {container['name']}", 4),
                ("Started", f"Started container {container['name']}", 5),
            )
            for reason, message, seconds in lifecycle:
                add_event(
                    self.store,
                    pod,
                    "Normal",
                    reason,
                    message,
                    created + timedelta(seconds=seconds),
                    node=node,
                    field_path=path,
                )

    # Services, storage, ingress -------------------------------------------------------------

    def _service(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        if spec.get("clusterIP") != "None":
            self._service_ip_counter += 1
            spec["clusterIP"] = (
                f"10.43.{self._service_ip_counter // 250}.{self._service_ip_counter % 250}"
            )
        spec["clusterIPs"] = [spec["clusterIP"]]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
            for index, port in enumerate(spec.get("ports") or []):
                port.setdefault("nodePort", 30000 + (self._service_ip_counter * 7 + index) % 2767)
        obj["status"] = {"loadBalancer": {}}
        obj["metadata"].setdefault("namespace", self.state.namespace)
        self.store.put(obj, created=self.now - POD_AGE)

    def _claim(self, obj: dict[str, Any]) -> None:
        spec = obj.setdefault("spec", {})
        metadata = obj["metadata"]
        metadata.setdefault("namespace", self.state.namespace)
        request = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        if not spec.get("volumeName"):
            spec["volumeName"] = "pvc-" + str(
                _stable_uuid(metadata["namespace"] + "/" + metadata["name"])
            )
        spec.setdefault("volumeMode", "Filesystem")
        metadata.setdefault("annotations", {}).update(
            {
                "pv.kubernetes.io/bind-completed": "yes",
                "pv.kubernetes.io/bound-by-controller": "yes",
            }
        )
        metadata.setdefault("finalizers", ["kubernetes.io/pvc-protection"])
        obj["status"] = {
            "phase": "Bound",
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "capacity": {"storage": request},
        }
        self.store.put(obj, created=self.now - POD_AGE)

    def _persistent_volumes(self) -> None:
        """Bind manifest PVs to their claims; provision a PV for claims that name none."""
        volumes = {pv["metadata"]["name"]: pv for pv in self.store.of_kind("PersistentVolume")}
        for claim in list(self.store.of_kind("PersistentVolumeClaim")):
            spec = claim["spec"]
            volume = volumes.get(spec["volumeName"])
            if volume is None:
                volume = {
                    "apiVersion": "v1",
                    "kind": "PersistentVolume",
                    "metadata": {
                        "name": spec["volumeName"],
                        "annotations": {"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"},
                    },
                    "spec": {
                        "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
                        "capacity": dict(claim["status"]["capacity"]),
                        "persistentVolumeReclaimPolicy": "Delete",
                        "storageClassName": spec.get("storageClassName") or "local-path",
                        "volumeMode": "Filesystem",
                        "hostPath": {"path": f"/var/lib/rancher/k3s/storage/{spec['volumeName']}"},
                    },
                }
                volumes[spec["volumeName"]] = volume
            volume["spec"]["claimRef"] = {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "name": claim["metadata"]["name"],
                "namespace": claim["metadata"]["namespace"],
                "uid": claim["metadata"]["uid"],
            }
            volume["status"] = {"phase": "Bound"}
        for volume in volumes.values():
            volume.setdefault("status", {"phase": "Available"})
            volume.setdefault("spec", {}).setdefault("persistentVolumeReclaimPolicy", "Retain")
            self.store.put(volume, created=self.now - POD_AGE)

    def _ingress(self, obj: dict[str, Any]) -> None:
        obj["metadata"].setdefault("namespace", self.state.namespace)
        obj["status"] = {
            "loadBalancer": {"ingress": [{"ip": ip} for ip in self.built.node_ips.values()]}
        }
        self.store.put(obj, created=self.now - POD_AGE)

    def _secrets(self) -> None:
        for name, data in self.secrets.items():
            self.store.put(
                make_secret(name, self.state.namespace, data), created=self.now - POD_AGE
            )


def make_secret(name: str, namespace: str, data: Mapping[str, str]) -> dict[str, Any]:
    """An Opaque Secret with base64-encoded values, as `kubectl create secret generic` makes."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def add_event(
    store: ResourceStore,
    involved: Mapping[str, Any],
    event_type: str,
    reason: str,
    message: str,
    when: datetime,
    *,
    node: str | None = None,
    field_path: str | None = None,
    component: str = "kubelet",
    count: int = 1,
) -> dict[str, Any]:
    """Store a core/v1 Event about an object."""
    metadata = involved["metadata"]
    involved_object: dict[str, Any] = {
        "kind": involved["kind"],
        "namespace": metadata.get("namespace", "default"),
        "name": metadata["name"],
        "uid": metadata.get("uid", ""),
        "apiVersion": involved.get("apiVersion", "v1"),
        "resourceVersion": metadata.get("resourceVersion", ""),
    }
    if field_path:
        involved_object["fieldPath"] = field_path
    name = (
        f"{metadata['name']}.{hashlib.sha256(f'{reason}{message}{when}'.encode()).hexdigest()[:16]}"
    )
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": metadata.get("namespace", "default")},
        "involvedObject": involved_object,
        "reason": reason,
        "message": message,
        "source": {"component": component, **({"host": node} if node else {})},
        "firstTimestamp": timestamp(when - timedelta(minutes=5 * (count - 1))),
        "lastTimestamp": timestamp(when),
        "count": count,
        "type": event_type,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": node or "",
    }
    return store.put(event, created=when)


def _owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _qos_class(containers: list[dict[str, Any]]) -> str:
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(k)
        and (r.get("requests") or r.get("limits") or {}).get(k) == (r.get("limits") or {}).get(k)
        for r in resources
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _stable_uuid(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"


def selector_of(service: Mapping[str, Any]) -> dict[str, str]:
    """A Service's pod selector (empty when it has none)."""
    return dict((service.get("spec") or {}).get("selector") or {})

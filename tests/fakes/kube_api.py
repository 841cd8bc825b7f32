"""A fake Kubernetes API server over real HTTP, built from manifests/ plus realistic status.

It speaks enough of the real API for kubectl and kr8s to work unchanged: discovery
(/version, /api, /apis, APIResourceLists), list/get with label and field selectors and
`limit`/`continue`, server-side Table printing, Status objects for errors, bearer-token
authentication, optional RBAC (the shipped Role/ClusterRole of a service account, or
explicit denials), pod logs, and create/replace/merge-patch/delete with owner-reference
garbage collection. Fault-injection methods break it the way real clusters break.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import copy
import json
import re
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import yaml

from immichcheck.deploy.expected_state import ExpectedState, load_expected_state
from tests.fakes.http_base import (
    OPCODE_BINARY,
    FakeHTTPServer,
    Request,
    Response,
    WebSocket,
    WebSocketClosed,
)
from tests.fakes.kube_exec import EXEC_PROTOCOLS, ExecHandler, serve_exec
from tests.fakes.kube_objects import (
    KUBELET_VERSION,
    BuiltCluster,
    ClusterBuilder,
    PodLog,
    add_event,
    container_id,
    image_id,
    make_secret,
    pod_conditions,
    safe_suffix,
    selector_of,
)
from tests.fakes.kube_selectors import (
    SelectorError,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from tests.fakes.kube_store import (
    RESOURCE_TYPES,
    ResourceStore,
    ResourceType,
    find_type,
    group_versions,
    timestamp,
    type_for_object,
)
from tests.fakes.kube_tables import to_table
from tests.fakes.tls import loopback_certificate

DEFAULT_DB_USERNAME = "immich"
# Raw channel protocols (channel byte + data); kr8s offers none, which means the same.
PORT_FORWARD_PROTOCOLS = ("v4.channel.k8s.io", "channel.k8s.io")
Controller = Callable[["FakeKubeCluster", dict[str, Any]], None]


def default_secret_data(state: ExpectedState) -> dict[str, dict[str, str]]:
    """Strong random values for every key of every manual secret (username: immich)."""
    data: dict[str, dict[str, str]] = {}
    for name, keys in state.secrets.items():
        data[name] = {
            key: DEFAULT_DB_USERNAME if key == "username" else secrets.token_urlsafe(32)
            for key in keys
        }
    return data


def status_body(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A metav1.Status failure object."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = dict(details)
    return body


def status_response(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> Response:
    """A Status failure as an HTTP response."""
    return Response.json(code, status_body(code, reason, message, details))


class FakeKubeCluster(FakeHTTPServer):
    """The fake API server plus its cluster state and fault-injection methods."""

    server_name = "kube-apiserver-fake"
    # Controllers every fresh cluster runs (group, plural) -> callback; extended by subclasses.
    default_controllers: Mapping[tuple[str, str], Controller] = {}

    def __init__(self, manifests_dir: str | Path | None = None) -> None:
        super().__init__()
        self.expected: ExpectedState = load_expected_state(manifests_dir)
        self.token = secrets.token_urlsafe(24)
        self.user = "immichcheck-test-admin"
        self.state = ResourceStore()
        self.built = BuiltCluster()
        self.secret_data: dict[str, dict[str, str]] = {}
        self.rbac_service_account: str | None = None
        self.denials: builtins.list[tuple[str, str, str | None, str | None]] = []
        self.endpoint_overrides: dict[str, builtins.list[str]] = {}
        self.port_routes: dict[tuple[str, int], tuple[str, int]] = {}
        self.exec_handlers: dict[str, ExecHandler] = {}
        self.controllers: dict[tuple[str, str], Controller] = {}
        self.requests: builtins.list[dict[str, Any]] = []
        self.kubeconfig_path: Path | None = None
        self._https_port = 0
        self._request_context = threading.local()
        self.reset()

    # Life cycle and state -------------------------------------------------------------------

    def start(self) -> Self:
        """Serve plain HTTP (`.url`) and HTTPS (`.https_url`, used by the kubeconfig)."""
        super().start()
        self._https_port = self.serve_tls(loopback_certificate().server_context())
        return self

    @property
    def https_url(self) -> str:
        """The TLS endpoint: kubectl sends a bearer token only over TLS."""
        return f"https://127.0.0.1:{self._https_port}"

    def reset(self, secret_data: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """Rebuild the healthy cluster from the manifests (new random secrets unless given)."""
        with self.lock:
            self.reset_knobs()
            self.state = ResourceStore()
            self.secret_data = (
                {name: dict(values) for name, values in secret_data.items()}
                if secret_data is not None
                else default_secret_data(self.expected)
            )
            self.built = ClusterBuilder(self.expected, self.state, self.secret_data).build()
            self.rbac_service_account = None
            self.denials = []
            self.endpoint_overrides = {}
            self.port_routes = {}
            self.exec_handlers = {}
            self.controllers = dict(self.default_controllers)
            self.requests = []
            self.refresh()

    def write_kubeconfig(self, path: str | Path, *, token: str | None = None) -> Path:
        """Write a kubeconfig (bearer-token user, namespace = the manifests' namespace)."""
        target = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fake",
                    "cluster": {
                        "server": self.https_url,
                        "certificate-authority-data": base64.b64encode(
                            loopback_certificate().ca_pem
                        ).decode(),
                    },
                }
            ],
            "users": [{"name": "fake-user", "user": {"token": token or self.token}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {
                        "cluster": "fake",
                        "user": "fake-user",
                        "namespace": self.expected.namespace,
                    },
                }
            ],
            "current-context": "fake",
            "preferences": {},
        }
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        target.chmod(0o600)
        if token is None:
            self.kubeconfig_path = target
        return target

    def service_account_env(self, folder: str | Path) -> dict[str, str]:
        """Write a pod's service-account folder for this cluster (token, CA, namespace) and
        return the environment a pod sees: the in-cluster variables and immichcheck's
        override of where the folder is mounted."""
        account = Path(folder)
        account.mkdir(parents=True, exist_ok=True)
        (account / "token").write_text(self.token)
        (account / "ca.crt").write_bytes(loopback_certificate().ca_pem)
        (account / "namespace").write_text(self.expected.namespace)
        return {
            "IMMICHCHECK_SERVICE_ACCOUNT_DIR": str(account),
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": self.https_url.rsplit(":", 1)[1],
        }

    def register_controller(self, group: str, plural: str, controller: Controller) -> None:
        """Call `controller(cluster, obj)` after each create of that resource (e.g. a Job)."""
        self.controllers[(group, plural)] = controller

    # Lookups used by tests and faults ---------------------------------------------------------

    def resource(self, plural: str, group: str | None = None) -> ResourceType:
        """The catalogue entry for a plural name."""
        for resource in RESOURCE_TYPES:
            if resource.plural == plural and (group is None or resource.group == group):
                return resource
        raise KeyError(plural)

    def get(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """A stored object (namespace defaults to the manifests' namespace); KeyError if absent."""
        resource = self.resource(plural)
        obj = self.state.get(resource, namespace or self.expected.namespace, name)
        if obj is None:
            raise KeyError(f"{plural}/{name}")
        return obj

    def list(self, plural: str, namespace: str | None = None) -> builtins.list[dict[str, Any]]:
        """Stored objects of a plural (all namespaces when namespace is None)."""
        return self.state.items(self.resource(plural), namespace)

    def pods_of(self, component: str) -> builtins.list[dict[str, Any]]:
        """The pods of a component key ('postgres', 'redis', 'ml', 'server')."""
        spec = self.expected.component(component)
        requirements = parse_label_selector(",".join(f"{k}={v}" for k, v in spec.labels.items()))
        return [
            pod
            for pod in self.list("pods", self.expected.namespace)
            if labels_match(requirements, pod)
        ]

    def workload_of(self, component: str) -> dict[str, Any]:
        """The Deployment or StatefulSet of a component key."""
        spec = self.expected.component(component)
        return self.get("deployments" if spec.kind == "Deployment" else "statefulsets", spec.name)

    def secret_values(self, name: str) -> dict[str, str]:
        """Decoded data of a stored secret."""
        secret = self.get("secrets", name)
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}

    # Faults ---------------------------------------------------------------------------------

    def _container(self, pod: dict[str, Any], component: str) -> dict[str, Any]:
        name = self.expected.component(component).container
        for status in pod["status"]["containerStatuses"]:
            if status["name"] == name:
                return dict(status)
        raise KeyError(name)

    def _set_container(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        pod["status"]["containerStatuses"] = [
            status if c["name"] == status["name"] else c for c in pod["status"]["containerStatuses"]
        ]

    def _update_pod_readiness(self, pod: dict[str, Any]) -> None:
        statuses = pod["status"]["containerStatuses"]
        ready = all(c.get("ready") for c in statuses)
        started = datetime.now(UTC)
        conditions = pod_conditions(ready, started)
        previous = {c["type"]: c for c in pod["status"].get("conditions") or []}
        for condition in conditions:
            old = previous.get(condition["type"])
            if old is not None and old["status"] == condition["status"]:
                condition["lastTransitionTime"] = old["lastTransitionTime"]
        pod["status"]["conditions"] = conditions

    def crashloop(self, component: str, *, restarts: int = 7, exit_code: int = 1) -> None:
        """Main container in CrashLoopBackOff: not ready, restarted, last state terminated."""
        with self.lock:
            now = datetime.now(UTC)
            for pod in self.pods_of(component):
                status = self._container(pod, component)
                name = status["name"]
                status.update(
                    ready=False,
                    started=False,
                    restartCount=restarts,
                    containerID=container_id(pod["metadata"]["name"], name, restarts),
                    state={
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off 5m0s restarting failed container={name} "
                            f"pod={pod['metadata']['name']}_{pod['metadata']['namespace']}"
                            f"({pod['metadata']['uid']})",
                        }
                    },
                    lastState={
                        "terminated": {
                            "exitCode": exit_code,
                            "reason": "Error",
                            "startedAt": timestamp(now - timedelta(seconds=40)),
                            "finishedAt": timestamp(now - timedelta(seconds=38)),
                            "containerID": container_id(
                                pod["metadata"]["name"], name, restarts - 1
                            ),
                        }
                    },
                )
                self._set_container(pod, status)
                self._update_pod_readiness(pod)
                log = self.built.logs.setdefault(
                    (pod["metadata"]["namespace"], pod["metadata"]["name"], name), PodLog()
                )
                log.previous = [
                    *log.current,
                    (
                        now - timedelta(seconds=39),
                        f"Error: {component} exited with code {exit_code}",
                    ),
                ]
                log.current = []
                add_event(
                    self.state,
                    pod,
                    "Warning",
                    "BackOff",
                    f"Back-off restarting failed container {name} in pod "
                    f"{pod['metadata']['name']}_{pod['metadata']['namespace']}({pod['metadata']['uid']})",
                    now,
                    node=pod["spec"].get("nodeName"),
                    count=restarts,
                    field_path=f"spec.containers{{{name}}}",
                )
                self.state.put(pod)
            self.refresh()

    def image_pull_error(self, component: str, *, reason: str = "ImagePullBackOff") -> None:
        """Pods Pending with the main container waiting on ErrImagePull/ImagePullBackOff."""
        if reason not in ("ImagePullBackOff", "ErrImagePull"):
            raise ValueError("reason must be ImagePullBackOff or ErrImagePull")
        with self.lock:
            now = datetime.now(UTC)
            for pod in self.pods_of(component):
                status = self._container(pod, component)
                image = status["image"]
                message = (
                    f'Back-off pulling image "{image}"'
                    if reason == "ImagePullBackOff"
                    else f'failed to pull and unpack image "{image}": not found'
                )
                status.update(
                    ready=False,
                    started=False,
                    restartCount=0,
                    imageID="",
                    state={"waiting": {"reason": reason, "message": message}},
                    lastState={},
                )
                status.pop("containerID", None)
                self._set_container(pod, status)
                pod["status"]["phase"] = "Pending"
                self._update_pod_readiness(pod)
                node = pod["spec"].get("nodeName")
                path = f"spec.containers{{{status['name']}}}"
                add_event(
                    self.state,
                    pod,
                    "Warning",
                    "Failed",
                    f'Failed to pull image "{image}": {message}',
                    now,
                    node=node,
                    field_path=path,
                )
                add_event(
                    self.state,
                    pod,
                    "Warning",
                    "Failed",
                    "Error: ErrImagePull",
                    now,
                    node=node,
                    field_path=path,
                )
                add_event(
                    self.state,
                    pod,
                    "Normal",
                    "BackOff",
                    f'Back-off pulling image "{image}"',
                    now,
                    node=node,
                    field_path=path,
                    count=4,
                )
                self.state.put(pod)
            self.refresh()

    def not_ready(self, component: str, *, probe_message: str | None = None) -> None:
        """Running but failing its readiness probe."""
        with self.lock:
            now = datetime.now(UTC)
            spec = self.expected.component(component)
            probe_path = spec.probe_paths[0] if spec.probe_paths else None
            message = probe_message or (
                f"Readiness probe failed: HTTP probe failed with statuscode: 503 ({probe_path})"
                if probe_path
                else "Readiness probe failed: dial tcp: connect: connection refused "
                f"(port {spec.port})"
            )
            for pod in self.pods_of(component):
                status = self._container(pod, component)
                status["ready"] = False
                self._set_container(pod, status)
                self._update_pod_readiness(pod)
                add_event(
                    self.state,
                    pod,
                    "Warning",
                    "Unhealthy",
                    message,
                    now,
                    node=pod["spec"].get("nodeName"),
                    count=12,
                    field_path=f"spec.containers{{{status['name']}}}",
                )
                self.state.put(pod)
            self.refresh()

    def place_on_node(self, component: str, node: str) -> None:
        """Run the component's pods on another node (as if the pin had been lost)."""
        with self.lock:
            if node not in self.built.node_ips:
                raise KeyError(f"no node {node!r}; nodes: {sorted(self.built.node_ips)}")
            now = datetime.now(UTC)
            for pod in self.pods_of(component):
                pod["spec"]["nodeName"] = node
                pod["status"]["hostIP"] = self.built.node_ips[node]
                pod["status"]["hostIPs"] = [{"ip": self.built.node_ips[node]}]
                add_event(
                    self.state,
                    pod,
                    "Normal",
                    "Scheduled",
                    f"Successfully assigned {pod['metadata']['namespace']}/"
                    f"{pod['metadata']['name']} to {node}",
                    now,
                    component="default-scheduler",
                )
                self.state.put(pod)
            self.refresh()

    def pvc_pending(self, name: str) -> None:
        """Claim Pending (no volume); pods that mount it stay Pending and unscheduled."""
        with self.lock:
            claim = self.get("persistentvolumeclaims", name)
            volume_name = claim["spec"].pop("volumeName", None)
            claim["status"] = {"phase": "Pending"}
            annotations = claim["metadata"].get("annotations") or {}
            annotations.pop("pv.kubernetes.io/bind-completed", None)
            annotations.pop("pv.kubernetes.io/bound-by-controller", None)
            now = datetime.now(UTC)
            storage_class = claim["spec"].get("storageClassName")
            message = (
                f'storageclass.storage.k8s.io "{storage_class}" not found'
                if storage_class
                else "no persistent volumes available for this claim and no storage class is set"
            )
            add_event(
                self.state,
                claim,
                "Warning",
                "ProvisioningFailed" if storage_class else "FailedBinding",
                message,
                now,
                component="persistentvolume-controller",
                count=9,
            )
            self.state.put(claim)
            if volume_name:
                volume = self.state.get(self.resource("persistentvolumes"), None, volume_name)
                if volume is not None:
                    volume["spec"].pop("claimRef", None)
                    volume["status"] = {"phase": "Available"}
                    self.state.put(volume)
            for pod in self.list("pods", claim["metadata"]["namespace"]):
                claims = [
                    (v.get("persistentVolumeClaim") or {}).get("claimName")
                    for v in pod["spec"].get("volumes") or []
                ]
                if name not in claims:
                    continue
                pod["spec"].pop("nodeName", None)
                for key in ("podIP", "podIPs", "hostIP", "hostIPs", "startTime"):
                    pod["status"].pop(key, None)
                pod["status"]["phase"] = "Pending"
                pod["status"]["conditions"] = [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/5 nodes are available: pod has unbound immediate "
                        "PersistentVolumeClaims. preemption: 0/5 nodes are available: "
                        "5 Preemption is not helpful for scheduling.",
                        "lastProbeTime": None,
                        "lastTransitionTime": timestamp(now),
                    }
                ]
                pod["status"].pop("containerStatuses", None)
                pod["status"]["containerStatuses"] = []
                add_event(
                    self.state,
                    pod,
                    "Warning",
                    "FailedScheduling",
                    pod["status"]["conditions"][0]["message"],
                    now,
                    component="default-scheduler",
                )
                self.state.put(pod)
            self.refresh()

    def delete_secret(self, name: str) -> None:
        """Remove a secret (the manual secrets are easy to forget)."""
        with self.lock:
            self.state.delete(self.resource("secrets"), self.expected.namespace, name)
            self.secret_data.pop(name, None)

    def drop_secret_key(self, name: str, key: str) -> None:
        """Remove one key from a secret."""
        with self.lock:
            secret = self.get("secrets", name)
            (secret.get("data") or {}).pop(key, None)
            self.secret_data.get(name, {}).pop(key, None)
            self.state.put(secret)

    def set_secret(self, name: str, data: Mapping[str, str]) -> None:
        """Create or replace a secret with these plain-text values (encoded like the API does)."""
        with self.lock:
            self.secret_data[name] = dict(data)
            self.state.put(make_secret(name, self.expected.namespace, data))

    def set_service_endpoints(self, service: str, addresses: builtins.list[str] | None) -> None:
        """Pin a Service's endpoint addresses (None: derive from pods again)."""
        with self.lock:
            if addresses is None:
                self.endpoint_overrides.pop(service, None)
            else:
                self.endpoint_overrides[service] = list(addresses)
            self.refresh()

    def remove_endpoints(self, service: str) -> None:
        """A Service with no endpoints (selector matches nothing ready)."""
        self.set_service_endpoints(service, [])

    def set_image(self, component: str, image: str) -> None:
        """Drift: the workload and its pods run another image than the manifests pin."""
        with self.lock:
            workload = self.workload_of(component)
            container_name = self.expected.component(component).container
            for container in workload["spec"]["template"]["spec"]["containers"]:
                if container["name"] == container_name:
                    container["image"] = image
            workload["metadata"]["generation"] = int(workload["metadata"].get("generation", 1)) + 1
            self.state.put(workload)
            for pod in self.pods_of(component):
                for container in pod["spec"]["containers"]:
                    if container["name"] == container_name:
                        container["image"] = image
                for status in pod["status"]["containerStatuses"]:
                    if status["name"] == container_name:
                        status["image"] = image
                        status["imageID"] = image_id(image)
                self.state.put(pod)
            self.refresh()

    def set_configmap_data(self, name: str, data: Mapping[str, str]) -> None:
        """Drift: replace keys of a ConfigMap (others are kept)."""
        with self.lock:
            configmap = self.get("configmaps", name)
            configmap.setdefault("data", {}).update(data)
            self.state.put(configmap)

    def set_redis_config(self, **settings: str) -> None:
        """Drift in redis.conf, e.g. set_redis_config(maxmemory_policy="allkeys-lru")."""
        self._set_conf_settings("redis", settings, separator=" ")

    def set_postgres_config(self, **settings: str) -> None:
        """Drift in postgresql.conf: set_postgres_config(random_page_cost="4")."""
        self._set_conf_settings("postgres", settings, separator=" = ")

    def _set_conf_settings(
        self, component: str, settings: Mapping[str, str], separator: str
    ) -> None:
        spec = self.expected.component(component)
        suffix = ".conf"
        for configmap_name in spec.configmaps:
            configmap = self.get("configmaps", configmap_name)
            for key, text in (configmap.get("data") or {}).items():
                if not key.endswith(suffix):
                    continue
                lines = text.splitlines()
                for raw_name, value in settings.items():
                    name = raw_name.replace("_", "-") if component == "redis" else raw_name
                    pattern = re.compile(rf"^\s*#?\s*{re.escape(name)}(\s|=)")
                    replacement = f"{name}{separator}{value}"
                    for index, line in enumerate(lines):
                        if pattern.match(line) and not line.lstrip().startswith("#"):
                            lines[index] = replacement
                            break
                    else:
                        lines.append(replacement)
                configmap["data"][key] = "\n".join(lines) + "\n"
                self.state.put(configmap)
                return
        raise KeyError(f"no *.conf key in the ConfigMaps of {component}")

    def enforce_rbac(self, service_account: str | None = "immichcheck") -> None:
        """Authorize requests with the Roles/ClusterRoles bound to this service account."""
        self.rbac_service_account = service_account

    def forbid(
        self, verb: str, resource: str, *, namespace: str | None = None, name: str | None = None
    ) -> None:
        """Answer 403 Forbidden for a verb on a resource (`pods`, `pods/log`, `secrets`...)."""
        self.denials.append((verb, resource, namespace, name))

    # Derived objects ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Recompute Endpoints, EndpointSlices and workload status from the pods."""
        with self.lock:
            for service in self.list("services"):
                self._endpoints_for(service)
            for kind, plural in (("Deployment", "deployments"), ("StatefulSet", "statefulsets")):
                for workload in self.list(plural):
                    self._workload_status(kind, workload)

    def _put_if_changed(self, obj: dict[str, Any]) -> None:
        resource = type_for_object(obj)
        existing = self.state.get(
            resource, obj["metadata"].get("namespace"), obj["metadata"]["name"]
        )
        if existing is not None:
            comparable = copy.deepcopy(obj)
            comparable["metadata"] = {**existing["metadata"], **comparable["metadata"]}
            comparable["metadata"]["resourceVersion"] = existing["metadata"]["resourceVersion"]
            if comparable == existing:
                return
            obj["metadata"] = comparable["metadata"]
        self.state.put(obj)

    @staticmethod
    def _pod_ready(pod: Mapping[str, Any]) -> bool:
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (pod.get("status") or {}).get("conditions") or []
        )

    def _endpoints_for(self, service: dict[str, Any]) -> None:
        selector = selector_of(service)
        if not selector:
            return
        namespace = service["metadata"]["namespace"]
        name = service["metadata"]["name"]
        requirements = parse_label_selector(",".join(f"{k}={v}" for k, v in selector.items()))
        pods = [
            pod
            for pod in self.list("pods", namespace)
            if labels_match(requirements, pod) and (pod.get("status") or {}).get("podIP")
        ]
        ports = []
        for port in service["spec"].get("ports") or []:
            target = port.get("targetPort", port["port"])
            if isinstance(target, str) and pods:
                for container in pods[0]["spec"].get("containers") or []:
                    for container_port in container.get("ports") or []:
                        if container_port.get("name") == target:
                            target = container_port["containerPort"]
            entry = {"port": target, "protocol": port.get("protocol", "TCP")}
            if port.get("name"):
                entry["name"] = port["name"]
            ports.append(entry)

        def address(pod: Mapping[str, Any]) -> dict[str, Any]:
            return {
                "ip": pod["status"]["podIP"],
                "nodeName": pod["spec"].get("nodeName"),
                "targetRef": {
                    "kind": "Pod",
                    "namespace": namespace,
                    "name": pod["metadata"]["name"],
                    "uid": pod["metadata"]["uid"],
                },
            }

        override = self.endpoint_overrides.get(name)
        if override is not None:
            ready = [{"ip": ip} for ip in override]
            not_ready: builtins.list[dict[str, Any]] = []
        else:
            ready = [address(p) for p in pods if self._pod_ready(p)]
            not_ready = [address(p) for p in pods if not self._pod_ready(p)]
        subset: dict[str, Any] = {"ports": ports}
        if ready:
            subset["addresses"] = ready
        if not_ready:
            subset["notReadyAddresses"] = not_ready
        existing = self.state.get(self.resource("endpoints"), namespace, name)
        endpoints = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": dict(service["metadata"].get("labels") or {}),
                "creationTimestamp": service["metadata"]["creationTimestamp"],
                **({"uid": existing["metadata"]["uid"]} if existing else {}),
            },
            "subsets": [subset] if ready or not_ready else [],
        }
        self._put_if_changed(endpoints)
        slice_name = f"{name}-{safe_suffix(name, 5)}"
        existing_slice = self.state.get(self.resource("endpointslices"), namespace, slice_name)
        slice_endpoints = []
        for entry, is_ready in [(a, True) for a in ready] + [(a, False) for a in not_ready]:
            item: dict[str, Any] = {
                "addresses": [entry["ip"]],
                "conditions": {"ready": is_ready, "serving": is_ready, "terminating": False},
            }
            if entry.get("nodeName"):
                item["nodeName"] = entry["nodeName"]
            if entry.get("targetRef"):
                item["targetRef"] = entry["targetRef"]
            slice_endpoints.append(item)
        endpoint_slice = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": slice_name,
                "namespace": namespace,
                "generateName": f"{name}-",
                "labels": {
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
                "creationTimestamp": service["metadata"]["creationTimestamp"],
                **({"uid": existing_slice["metadata"]["uid"]} if existing_slice else {}),
            },
            "addressType": "IPv4",
            "endpoints": slice_endpoints,
            "ports": ports,
        }
        self._put_if_changed(endpoint_slice)

    def _workload_status(self, kind: str, workload: dict[str, Any]) -> None:
        namespace = workload["metadata"]["namespace"]
        labels = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        requirements = parse_label_selector(",".join(f"{k}={v}" for k, v in labels.items()))
        pods = [p for p in self.list("pods", namespace) if labels_match(requirements, p)]
        desired = int((workload.get("spec") or {}).get("replicas", 1))
        ready = sum(1 for p in pods if self._pod_ready(p))
        stamp = workload["metadata"]["creationTimestamp"]
        status: dict[str, Any] = {
            "observedGeneration": workload["metadata"].get("generation", 1),
            "replicas": len(pods),
            "updatedReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        if kind == "Deployment":
            if ready < desired:
                status["unavailableReplicas"] = desired - ready
            available = ready >= desired
            status["conditions"] = [
                {
                    "type": "Available",
                    "status": "True" if available else "False",
                    "reason": "MinimumReplicasAvailable"
                    if available
                    else "MinimumReplicasUnavailable",
                    "message": "Deployment has minimum availability."
                    if available
                    else "Deployment does not have minimum availability.",
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": stamp,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{workload["metadata"]["name"]}" has '
                    "successfully progressed.",
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": stamp,
                },
            ]
            for replica_set in self.list("replicasets", namespace):
                owners = replica_set["metadata"].get("ownerReferences") or []
                if any(o.get("uid") == workload["metadata"]["uid"] for o in owners):
                    rs = copy.deepcopy(replica_set)
                    rs["status"] = {
                        "replicas": len(pods),
                        "fullyLabeledReplicas": len(pods),
                        "readyReplicas": ready,
                        "availableReplicas": ready,
                        "observedGeneration": 1,
                    }
                    self._put_if_changed(rs)
        else:
            workload_name = workload["metadata"]["name"]
            revision = f"{workload_name}-{safe_suffix(workload_name, 10)}"
            status.update(
                currentReplicas=len(pods),
                currentRevision=revision,
                updateRevision=revision,
                collisionCount=0,
            )
        updated = copy.deepcopy(workload)
        updated["status"] = status
        self._put_if_changed(updated)

    # HTTP -----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Authenticate, route and log one request."""
        impersonate = request.headers.get("impersonate-user")
        if impersonate:
            # `kubectl --as=system:serviceaccount:<ns>:<name>`: the admin token may
            # impersonate; RBAC is then evaluated for that account.
            prefix, _, rest = impersonate.partition("system:serviceaccount:")
            namespace, _, account = rest.partition(":")
            home = namespace == self.expected.namespace and not prefix
            self._request_context.user = impersonate
            self._request_context.account = account if home else impersonate
        try:
            response = self._route(request)
        finally:
            self._request_context.user = None
            self._request_context.account = None
        with self.lock:
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "query": {k: v[0] for k, v in request.query.items()},
                    "status": response.status,
                }
            )
        return response

    def _route(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return Response.text(200, "ok")
        authorization = request.headers.get("authorization", "")
        if authorization:
            if authorization != f"Bearer {self.token}":
                request.drain()
                return status_response(401, "Unauthorized", "Unauthorized")
        elif path != "/version":
            request.drain()
            return status_response(
                403,
                "Forbidden",
                f'forbidden: User "system:anonymous" cannot get path "{path}"',
            )
        if path == "/version":
            return Response.json(200, self._version())
        if path == "/api":
            return Response.json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                    ],
                },
            )
        if path == "/apis":
            return Response.json(200, self._group_list())
        if path.startswith(("/openapi", "/swagger")):
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        segments = [s for s in path.split("/") if s]
        if segments[0] == "api" and len(segments) >= 2:
            group, version, rest = "", segments[1], segments[2:]
        elif segments[0] == "apis" and len(segments) >= 2:
            if len(segments) == 2:
                return self._group(segments[1])
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        if (group, version) not in group_versions():
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        if not rest:
            return Response.json(200, self._resource_list(group, version))
        return self._resource_request(request, group, version, rest)

    def _version(self) -> dict[str, str]:
        return {
            "major": "1",
            "minor": "32",
            "gitVersion": KUBELET_VERSION,
            "gitCommit": "23e4a6b1f4ab77d7ab2d5e3f4b7c4f1de2d07a3c",
            "gitTreeState": "clean",
            "buildDate": "2025-04-23T20:48:33Z",
            "goVersion": "go1.23.6",
            "compiler": "gc",
            "platform": "linux/arm64",
        }

    def _group_entry(self, group: str) -> dict[str, Any]:
        versions = [v for g, v in group_versions() if g == group]
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def _group_list(self) -> dict[str, Any]:
        groups: builtins.list[dict[str, Any]] = []
        for group, _ in group_versions():
            if group and group not in [g["name"] for g in groups]:
                groups.append(self._group_entry(group))
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _group(self, group: str) -> Response:
        if group not in {g for g, _ in group_versions()}:
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        return Response.json(
            200, {"kind": "APIGroup", "apiVersion": "v1", **self._group_entry(group)}
        )

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources: builtins.list[dict[str, Any]] = []
        for resource in RESOURCE_TYPES:
            if (resource.group, resource.version) == (group, version):
                resources.extend(resource.discovery())
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    # Resource requests --------------------------------------------------------------------

    def _resource_request(
        self, request: Request, group: str, version: str, rest: builtins.list[str]
    ) -> Response:
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        resource = find_type(group, version, rest[0])
        if resource is None or (namespace is not None and not resource.namespaced):
            request.drain()
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        name = rest[1] if len(rest) >= 2 else None
        subresource = rest[2] if len(rest) >= 3 else None
        if len(rest) > 3 or (subresource and subresource not in resource.subresources):
            request.drain()
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        verb = self._verb(request, name)
        authorized_name = name
        if verb in ("list", "watch"):
            # RBAC authorizes a list narrowed by `metadata.name=<x>` against resourceNames.
            authorized_name = _exact_name(request.query_value("fieldSelector"))
        denied = self._authorize(verb, resource, subresource, namespace, authorized_name)
        if denied is None and subresource in ("portforward", "exec") and verb == "get":
            # Kubernetes >= 1.31 (AuthorizePodWebsocketUpgradeCreatePermission, on by
            # default) also requires `create` for a WebSocket upgrade of these subresources.
            denied = self._authorize("create", resource, subresource, namespace, name)
        if denied is not None:
            request.drain()
            return denied
        if subresource == "portforward":
            return self._port_forward(request, namespace or "", name or "")
        if subresource == "exec":
            return self._exec(request, namespace or "", name or "")
        with self.lock:
            if subresource == "log":
                return self._pod_log(request, resource, namespace, name or "")
            if request.method == "GET" and name is None:
                return self._list(request, resource, namespace)
            if request.method == "GET":
                return self._get(resource, namespace, name or "")
            if request.method == "POST" and name is None:
                return self._create(request, resource, namespace)
            if request.method == "DELETE" and name is not None:
                return self._delete(request, resource, namespace, name)
            if request.method == "PATCH" and name is not None:
                return self._patch(request, resource, namespace, name)
            if request.method == "PUT" and name is not None:
                return self._replace(request, resource, namespace, name)
        request.drain()
        return status_response(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    @staticmethod
    def _verb(request: Request, name: str | None) -> str:
        if request.method == "GET":
            if request.query_value("watch") in ("true", "1"):
                return "watch"
            return "get" if name else "list"
        return {
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(request.method, request.method.lower())

    def _account(self) -> str | None:
        """The service account RBAC is evaluated for: impersonated, enforced, or none."""
        impersonated: str | None = getattr(self._request_context, "account", None)
        return impersonated if impersonated is not None else self.rbac_service_account

    def subject(self) -> str:
        """The user name requests are made as."""
        impersonated: str | None = getattr(self._request_context, "user", None)
        if impersonated:
            return impersonated
        if self.rbac_service_account:
            return f"system:serviceaccount:{self.expected.namespace}:{self.rbac_service_account}"
        return self.user

    def allowed(
        self,
        verb: str,
        resource: ResourceType,
        subresource: str | None,
        namespace: str | None,
        name: str | None,
    ) -> bool:
        """Whether the current subject may do this (explicit denials, then RBAC if enforced)."""
        full = f"{resource.plural}/{subresource}" if subresource else resource.plural
        for d_verb, d_resource, d_namespace, d_name in self.denials:
            if (
                d_verb in (verb, "*")
                and d_resource in (full, "*")
                and d_namespace in (None, namespace)
                and d_name in (None, name)
            ):
                return False
        if resource.plural == "selfsubjectaccessreviews":
            return True
        if self._account() is None:
            return True
        return self._rbac_allows(verb, resource.group, full, namespace, name)

    def _rbac_allows(
        self, verb: str, group: str, resource: str, namespace: str | None, name: str | None
    ) -> bool:
        account = self._account()
        home = self.expected.namespace

        def binds(binding: Mapping[str, Any]) -> bool:
            return any(
                s.get("kind") == "ServiceAccount"
                and s.get("name") == account
                and s.get("namespace", binding["metadata"].get("namespace")) == home
                for s in binding.get("subjects") or []
            )

        rules: builtins.list[Mapping[str, Any]] = []
        for binding in self.list("clusterrolebindings"):
            if binds(binding):
                role = self.state.find("ClusterRole", None, binding["roleRef"]["name"])
                rules.extend((role or {}).get("rules") or [])
        if namespace is not None:
            for binding in self.list("rolebindings", namespace):
                if binds(binding):
                    ref = binding["roleRef"]
                    role = (
                        self.state.find("ClusterRole", None, ref["name"])
                        if ref.get("kind") == "ClusterRole"
                        else self.state.get(self.resource("roles"), namespace, ref["name"])
                    )
                    rules.extend((role or {}).get("rules") or [])
        for rule in rules:
            if (
                (group in (rule.get("apiGroups") or []) or "*" in (rule.get("apiGroups") or []))
                and (
                    resource in (rule.get("resources") or [])
                    or "*" in (rule.get("resources") or [])
                )
                and (verb in (rule.get("verbs") or []) or "*" in (rule.get("verbs") or []))
                and (
                    not rule.get("resourceNames")
                    or (name is not None and name in rule["resourceNames"])
                )
            ):
                return True
        return False

    def _authorize(
        self,
        verb: str,
        resource: ResourceType,
        subresource: str | None,
        namespace: str | None,
        name: str | None,
    ) -> Response | None:
        if self.allowed(verb, resource, subresource, namespace, name):
            return None
        full = f"{resource.plural}/{subresource}" if subresource else resource.plural
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        what = f'{resource.qualified} "{name}"' if name else resource.qualified
        message = (
            f'{what} is forbidden: User "{self.subject()}" cannot {verb} resource "{full}" '
            f'in API group "{resource.group}" {scope}'
        )
        details: dict[str, Any] = {"kind": resource.plural}
        if name:
            details["name"] = name
        if resource.group:
            details["group"] = resource.group
        return status_response(403, "Forbidden", message, details)

    def _not_found(self, resource: ResourceType, name: str) -> Response:
        details: dict[str, Any] = {"name": name, "kind": resource.plural}
        if resource.group:
            details["group"] = resource.group
        return status_response(404, "NotFound", f'{resource.qualified} "{name}" not found', details)

    def _with_kind(self, resource: ResourceType, obj: Mapping[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(dict(obj))
        body["apiVersion"] = resource.group_version
        body["kind"] = resource.kind
        return body

    def _list(self, request: Request, resource: ResourceType, namespace: str | None) -> Response:
        try:
            labels = parse_label_selector(request.query_value("labelSelector"))
            fields = parse_field_selector(request.query_value("fieldSelector"), resource.plural)
        except SelectorError as exc:
            return status_response(400, "BadRequest", str(exc))
        items = [
            obj
            for obj in self.state.items(resource, namespace)
            if labels_match(labels, obj) and fields_match(fields, obj)
        ]
        offset = 0
        token = request.query_value("continue")
        if token:
            try:
                offset = int(base64.b64decode(token).decode())
            except ValueError:
                return status_response(400, "BadRequest", "continue key is not valid")
        limit_text = request.query_value("limit")
        limit = (
            int(limit_text) if limit_text and limit_text.isdigit() and int(limit_text) > 0 else None
        )
        page = items[offset : offset + limit] if limit else items[offset:]
        next_token = None
        if limit and offset + limit < len(items):
            next_token = base64.b64encode(str(offset + limit).encode()).decode()
        resource_version = str(self.state.resource_version)
        if "as=Table" in request.headers.get("accept", ""):
            table = to_table(
                resource,
                copy.deepcopy(page),
                include_object=request.query_value("includeObject", "Metadata") or "Metadata",
                resource_version=resource_version,
                continue_token=next_token,
            )
            return Response.json(200, table, {"Content-Type": "application/json"})
        metadata: dict[str, Any] = {"resourceVersion": resource_version}
        if next_token:
            metadata["continue"] = next_token
            metadata["remainingItemCount"] = len(items) - offset - len(page)
        body: dict[str, Any] = {
            "kind": resource.list_kind,
            "apiVersion": resource.group_version,
            "metadata": metadata,
            "items": [copy.deepcopy(obj) for obj in page],
        }
        for item in body["items"]:
            # The API server omits kind/apiVersion on list items; clients fill them in.
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return Response.json(200, body)

    def _get(self, resource: ResourceType, namespace: str | None, name: str) -> Response:
        obj = self.state.get(resource, namespace, name)
        if obj is None:
            return self._not_found(resource, name)
        return Response.json(200, self._with_kind(resource, obj))

    def _body(self, request: Request) -> dict[str, Any] | Response:
        content_type = request.headers.get("content-type", "")
        if "protobuf" in content_type and request.path.endswith("/selfsubjectaccessreviews"):
            # `kubectl auth can-i` posts its review as protobuf.
            try:
                return decode_access_review(request.body())
            except (ValueError, IndexError) as exc:
                return status_response(400, "BadRequest", f"cannot decode protobuf: {exc}")
        if "protobuf" in content_type or "cbor" in content_type:
            request.drain()
            return status_response(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json, application/yaml",
            )
        try:
            raw = request.body()
            body = yaml.safe_load(raw) if "yaml" in content_type else json.loads(raw)
        except (ValueError, yaml.YAMLError) as exc:
            return status_response(
                400, "BadRequest", f"the body of the request could not be decoded: {exc}"
            )
        if not isinstance(body, dict):
            return status_response(400, "BadRequest", "the body of the request must be an object")
        return body

    def _create(self, request: Request, resource: ResourceType, namespace: str | None) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        if resource.plural == "selfsubjectaccessreviews":
            return self._access_review(body)
        metadata = body.setdefault("metadata", {})
        body_namespace = metadata.get("namespace")
        if resource.namespaced:
            if body_namespace and namespace and body_namespace != namespace:
                return status_response(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request",
                )
            metadata["namespace"] = namespace
        if not metadata.get("name"):
            if not metadata.get("generateName"):
                return status_response(
                    422,
                    "Invalid",
                    f'{resource.kind} "" is invalid: metadata.name: Required value: '
                    "name or generateName is required",
                )
            metadata["name"] = metadata["generateName"] + safe_suffix(secrets.token_hex(8), 5)
        if body.get("kind") not in (None, resource.kind):
            return status_response(
                400, "BadRequest", f"the kind {body.get('kind')} does not match {resource.kind}"
            )
        body["kind"] = resource.kind
        body["apiVersion"] = resource.group_version
        if self.state.get(resource, namespace, metadata["name"]) is not None:
            return status_response(
                409,
                "AlreadyExists",
                f'{resource.qualified} "{metadata["name"]}" already exists',
                {
                    "name": metadata["name"],
                    "kind": resource.plural,
                    **({"group": resource.group} if resource.group else {}),
                },
            )
        for key in ("uid", "resourceVersion", "creationTimestamp"):
            metadata.pop(key, None)
        metadata["generation"] = 1
        stored = self.state.put(body)
        controller = self.controllers.get((resource.group, resource.plural))
        if controller is not None:
            controller(self, stored)
        self.refresh()
        return Response.json(201, self._with_kind(resource, stored))

    def _access_review(self, body: dict[str, Any]) -> Response:
        attributes = (body.get("spec") or {}).get("resourceAttributes") or {}
        group = attributes.get("group", "")
        plural = attributes.get("resource", "")
        target = next((r for r in RESOURCE_TYPES if r.group == group and r.plural == plural), None)
        allowed = target is not None and self.allowed(
            attributes.get("verb", "get"),
            target,
            attributes.get("subresource") or None,
            attributes.get("namespace") or None,
            attributes.get("name") or None,
        )
        body["status"] = {"allowed": allowed}
        if allowed and self._account():
            body["status"]["reason"] = "RBAC: allowed by RoleBinding"
        body.setdefault("metadata", {}).setdefault("creationTimestamp", None)
        body["apiVersion"] = "authorization.k8s.io/v1"
        body["kind"] = "SelfSubjectAccessReview"
        return Response.json(201, body)

    def _dependents(self, uid: str) -> builtins.list[dict[str, Any]]:
        with self.state.lock:
            return [
                obj
                for obj in list(self.state.objects.values())
                if any(o.get("uid") == uid for o in obj["metadata"].get("ownerReferences") or [])
            ]

    def _delete(
        self, request: Request, resource: ResourceType, namespace: str | None, name: str
    ) -> Response:
        options: dict[str, Any] = {}
        if request.content_length:
            parsed = self._body(request)
            if isinstance(parsed, Response):
                return parsed
            options = parsed
        obj = self.state.get(resource, namespace, name)
        if obj is None:
            return self._not_found(resource, name)
        # Jobs (and other batch/v1 objects) orphan their pods unless told otherwise: a
        # real API server quirk that leaves benchmark pods behind after a plain DELETE.
        default_policy = "Orphan" if resource.group == "batch" else "Background"
        policy = (
            request.query_value("propagationPolicy")
            or options.get("propagationPolicy")
            or default_policy
        )
        if policy not in ("Orphan", "Background", "Foreground"):
            return status_response(
                400, "BadRequest", f"propagationPolicy {policy} is not supported"
            )
        self.state.delete(resource, namespace, name)
        pending = [obj]
        while pending:
            current = pending.pop()
            for dependent in self._dependents(current["metadata"]["uid"]):
                if policy == "Orphan":
                    dependent["metadata"]["ownerReferences"] = [
                        o
                        for o in dependent["metadata"]["ownerReferences"]
                        if o.get("uid") != current["metadata"]["uid"]
                    ]
                    self.state.put(dependent)
                else:
                    self.state.delete(
                        type_for_object(dependent),
                        dependent["metadata"].get("namespace"),
                        dependent["metadata"]["name"],
                    )
                    pending.append(dependent)
        self.refresh()
        deleted = self._with_kind(resource, obj)
        deleted["metadata"]["deletionTimestamp"] = timestamp(datetime.now(UTC))
        return Response.json(200, deleted)

    def _patch(
        self, request: Request, resource: ResourceType, namespace: str | None, name: str
    ) -> Response:
        obj = self.state.get(resource, namespace, name)
        if obj is None:
            request.drain()
            return self._not_found(resource, name)
        content_type = request.headers.get("content-type", "")
        if "json-patch+json" in content_type:
            try:
                operations = json.loads(request.body())
                patched = apply_json_patch(copy.deepcopy(obj), operations)
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                return status_response(422, "Invalid", f"the patch could not be applied: {exc}")
        else:
            patch = self._body(request)
            if isinstance(patch, Response):
                return patch
            patched = merge_patch(copy.deepcopy(obj), patch)
        patched["metadata"]["name"] = name
        if resource.namespaced:
            patched["metadata"]["namespace"] = namespace
        if patched.get("spec") != obj.get("spec"):
            patched["metadata"]["generation"] = int(obj["metadata"].get("generation", 1)) + 1
        stored = self.state.put(patched)
        self.refresh()
        return Response.json(200, self._with_kind(resource, stored))

    def _replace(
        self, request: Request, resource: ResourceType, namespace: str | None, name: str
    ) -> Response:
        body = self._body(request)
        if isinstance(body, Response):
            return body
        obj = self.state.get(resource, namespace, name)
        if obj is None:
            return self._not_found(resource, name)
        given = (body.get("metadata") or {}).get("resourceVersion")
        if given and given != obj["metadata"]["resourceVersion"]:
            return status_response(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has '
                "been modified; please apply your changes to the latest version and try again",
            )
        body["metadata"]["name"] = name
        if resource.namespaced:
            body["metadata"]["namespace"] = namespace
        body["metadata"].pop("resourceVersion", None)
        body["kind"] = resource.kind
        body["apiVersion"] = resource.group_version
        stored = self.state.put(body)
        self.refresh()
        return Response.json(200, self._with_kind(resource, stored))

    # Port-forward -------------------------------------------------------------------------

    def route_port(self, component: str, remote_port: int, address: tuple[str, int]) -> None:
        """Port-forwards to the component's pods on `remote_port` reach this local address.

        This is how tests put a real local PostgreSQL or Redis, or the fake Immich server,
        behind the cluster's pods: kr8s port-forward then reaches it through the API server.
        """
        with self.lock:
            self.port_routes[(component, remote_port)] = address

    def _port_forward(self, request: Request, namespace: str, name: str) -> Response:
        request.drain()
        if request.method != "GET" or request.headers.get("upgrade", "").lower() != "websocket":
            # kubectl's SPDY fallback (POST + Upgrade: SPDY/3.1) is not implemented here.
            return status_response(400, "BadRequest", "Upgrade request required")
        with self.lock:
            pod = self.state.get(self.resource("pods"), namespace, name)
            if pod is None:
                return self._not_found(self.resource("pods"), name)
            ports = request.query.get("ports") or []
            if not ports or not all(p.isdigit() for p in ports):
                return status_response(400, "BadRequest", "at least one port must be specified")
            port = int(ports[0])
            if pod["status"].get("phase") != "Running":
                return status_response(
                    400, "BadRequest",
                    f"unable to upgrade connection: pod {name} is not running",
                )  # fmt: skip
            component = self.built.pod_components.get((namespace, name))
            target = self.port_routes.get((component or "", port))
        uid = pod["metadata"]["uid"]

        def session(websocket: WebSocket) -> None:
            header = port.to_bytes(2, "little")
            websocket.send(OPCODE_BINARY, b"\x00" + header)
            websocket.send(OPCODE_BINARY, b"\x01" + header)
            failure = (
                f"error forwarding port {port} to pod {name}, uid {uid}: failed to connect "
                f"to localhost:{port} inside namespace {namespace}: connection refused"
            )
            if target is None:
                websocket.send(OPCODE_BINARY, b"\x01" + failure.encode())
                websocket.close()
                return
            try:
                upstream = socket.create_connection(target, timeout=5)
            except OSError:
                websocket.send(OPCODE_BINARY, b"\x01" + failure.encode())
                websocket.close()
                return
            upstream.settimeout(None)

            def upstream_to_client() -> None:
                try:
                    while data := upstream.recv(65536):
                        websocket.send(OPCODE_BINARY, b"\x00" + data)
                except (OSError, WebSocketClosed):
                    pass
                websocket.close()

            pump = threading.Thread(target=upstream_to_client, daemon=True)
            pump.start()
            try:
                while True:
                    _, payload = websocket.receive()
                    if payload[:1] == b"\x00" and len(payload) > 1:
                        upstream.sendall(payload[1:])
            except (OSError, WebSocketClosed):
                pass
            finally:
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_RDWR)
                upstream.close()
                pump.join(timeout=5)

        return self.websocket_response(request, session, protocols=PORT_FORWARD_PROTOCOLS)

    # Exec ------------------------------------------------------------------------------------

    def set_exec_handler(self, component: str, handler: ExecHandler) -> None:
        """`kubectl exec` into the component's pods runs `handler(argv)` (see kube_exec)."""
        with self.lock:
            self.exec_handlers[component] = handler

    def _exec(self, request: Request, namespace: str, name: str) -> Response:
        request.drain()
        argv = request.query.get("command") or []
        if not argv:
            return status_response(400, "BadRequest", "you must specify at least 1 command")
        if request.query_value("stdin") in ("true", "1"):
            # The handlers take argv only; a command reading stdin cannot be served.
            return status_response(400, "BadRequest", "stdin is not supported by the fake")
        with self.lock:
            pod = self.state.get(self.resource("pods"), namespace, name)
            if pod is None:
                return self._not_found(self.resource("pods"), name)
            containers = [c["name"] for c in pod["spec"].get("containers") or []]
            container = request.query_value("container") or (
                containers[0] if len(containers) == 1 else None
            )
            if container is None:
                return status_response(
                    400, "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(containers)}]",
                )  # fmt: skip
            if container not in containers:
                return status_response(
                    400, "BadRequest", f"container {container} is not valid for pod {name}"
                )
            running = any(
                c["name"] == container and "running" in (c.get("state") or {})
                for c in pod["status"].get("containerStatuses") or []
            )
            if pod["status"].get("phase") != "Running" or not running:
                return status_response(
                    400, "BadRequest",
                    f"unable to upgrade connection: container not found (\"{container}\")",
                )  # fmt: skip
            component = self.built.pod_components.get((namespace, name))
            handler = self.exec_handlers.get(component or "")
        # Checked after the pod: kubectl falls back to SPDY when the WebSocket upgrade is
        # refused, and shows the answer to that second request.
        if request.method != "GET" or request.headers.get("upgrade", "").lower() != "websocket":
            # kubectl's SPDY fallback (POST + Upgrade: SPDY/3.1) is not implemented here.
            return status_response(400, "BadRequest", "Upgrade request required")
        offered = request.headers.get("sec-websocket-protocol", "")
        if not any(p.strip() in EXEC_PROTOCOLS for p in offered.split(",")):
            return status_response(
                400, "BadRequest", f"no supported stream protocol in {offered!r}"
            )
        stdout = request.query_value("stdout") in ("true", "1")
        stderr = request.query_value("stderr") in ("true", "1")

        def session(websocket: WebSocket) -> None:
            serve_exec(websocket, handler, argv, stdout=stdout, stderr=stderr)

        return self.websocket_response(request, session, protocols=EXEC_PROTOCOLS)

    # Pod logs -------------------------------------------------------------------------------

    def append_log(self, component: str, line: str) -> None:
        """Add a line to the current log of the component's main container."""
        with self.lock:
            container = self.expected.component(component).container
            for pod in self.pods_of(component):
                key = (pod["metadata"]["namespace"], pod["metadata"]["name"], container)
                self.built.logs.setdefault(key, PodLog()).current.append((datetime.now(UTC), line))

    def _pod_log(
        self, request: Request, resource: ResourceType, namespace: str | None, name: str
    ) -> Response:
        pod = self.state.get(resource, namespace, name)
        if pod is None:
            return self._not_found(resource, name)
        containers = [c["name"] for c in pod["spec"].get("containers") or []]
        container = request.query_value("container")
        if container is None:
            if len(containers) != 1:
                return status_response(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(containers)}]",
                )
            container = containers[0]
        if container not in containers:
            return status_response(
                400, "BadRequest", f"container {container} is not valid for pod {name}"
            )
        status = next(
            (c for c in pod["status"].get("containerStatuses") or [] if c["name"] == container),
            None,
        )
        waiting = ((status or {}).get("state") or {}).get("waiting") or {}
        previous = request.query_value("previous") in ("true", "1")
        if status is None or (
            not previous
            and waiting.get("reason") in ("ImagePullBackOff", "ErrImagePull", "ContainerCreating")
        ):
            reason = waiting.get("reason", "ContainerCreating")
            detail = (
                "trying and failing to pull image"
                if "Image" in reason or "Pull" in reason
                else reason
            )
            return status_response(
                400,
                "BadRequest",
                f'container "{container}" in pod "{name}" is waiting to start: {detail}',
            )
        log = self.built.logs.get((namespace or "", name, container), PodLog())
        if previous:
            if not (status.get("lastState") or {}).get("terminated"):
                return status_response(
                    400,
                    "BadRequest",
                    f'previous terminated container "{container}" in pod "{name}" not found',
                )
            lines = list(log.previous)
        else:
            lines = list(log.current)
        since = request.query_value("sinceSeconds")
        if since and since.isdigit():
            cutoff = datetime.now(UTC) - timedelta(seconds=int(since))
            lines = [entry for entry in lines if entry[0] >= cutoff]
        tail = request.query_value("tailLines")
        if tail and tail.isdigit():
            lines = lines[-int(tail) :] if int(tail) else []
        with_timestamps = request.query_value("timestamps") in ("true", "1")
        text = "".join(
            (when.strftime("%Y-%m-%dT%H:%M:%S.%f000Z") + " " if with_timestamps else "")
            + line
            + "\n"
            for when, line in lines
        )
        limit = request.query_value("limitBytes")
        if limit and limit.isdigit():
            text = text.encode()[: int(limit)].decode("utf-8", "ignore")
        return Response.text(200, text)


def _protobuf_fields(data: bytes) -> dict[int, bytes | int]:
    """Top-level fields of a protobuf message (length-delimited as bytes, varints as int)."""
    fields: dict[int, bytes | int] = {}
    position = 0

    def varint() -> int:
        nonlocal position
        value = shift = 0
        while True:
            byte = data[position]
            position += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while position < len(data):
        key = varint()
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields[number] = varint()
        elif wire_type == 2:
            length = varint()
            fields[number] = data[position : position + length]
            position += length
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
    return fields


ACCESS_REVIEW_ATTRIBUTES = (
    "namespace",
    "verb",
    "group",
    "version",
    "resource",
    "subresource",
    "name",
)


def decode_access_review(raw: bytes) -> dict[str, Any]:
    """A SelfSubjectAccessReview from Kubernetes' protobuf envelope ("k8s\\0" + Unknown)."""
    if not raw.startswith(b"k8s\x00"):
        raise ValueError("missing k8s protobuf envelope")
    unknown = _protobuf_fields(raw[4:])
    review = _protobuf_fields(bytes(unknown.get(2, b"")))  # Unknown.raw
    spec = _protobuf_fields(bytes(review.get(2, b"")))  # SelfSubjectAccessReview.spec
    resource = _protobuf_fields(bytes(spec.get(1, b"")))  # spec.resourceAttributes
    attributes = {
        name: bytes(resource[index + 1]).decode()
        for index, name in enumerate(ACCESS_REVIEW_ATTRIBUTES)
        if isinstance(resource.get(index + 1), bytes)
    }
    return {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "metadata": {},
        "spec": {"resourceAttributes": attributes},
    }


def _exact_name(field_selector: str | None) -> str | None:
    """The name a field selector pins with metadata.name=<x>, if it does."""
    try:
        requirements = parse_field_selector(field_selector, "")
    except SelectorError:
        return None
    for requirement in requirements:
        if requirement.field == "metadata.name" and not requirement.negate:
            return requirement.value
    return None


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic merge patches of maps)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_json_patch(document: Any, operations: list[dict[str, Any]]) -> Any:
    """RFC 6902 JSON patch: add, replace, remove, test (the operations clients send)."""
    for operation in operations:
        path = [p.replace("~1", "/").replace("~0", "~") for p in operation["path"].split("/")[1:]]
        parent = document
        for part in path[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = path[-1] if path else ""
        op = operation["op"]
        if op == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent[last]
            if current != operation["value"]:
                raise ValueError(f"test failed at {operation['path']}")
        elif op in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(operation["value"])
                elif op == "add":
                    parent.insert(int(last), operation["value"])
                else:
                    parent[int(last)] = operation["value"]
            else:
                if op == "replace" and last not in parent:
                    raise KeyError(last)
                parent[last] = operation["value"]
        elif op == "remove":
            if isinstance(parent, list):
                parent.pop(int(last))
            else:
                del parent[last]
        else:
            raise ValueError(f"unsupported op {op}")
    return document

"""Fault injection for the fake Kubernetes API: break the cluster the way real ones break.

CrashLoopBackOff, image pull errors, failing readiness probes, pods on the wrong node,
Pending claims, missing secrets or keys, Services without endpoints, image and config
drift. Each fault edits the stored objects and adds the events the kubelet, scheduler or
volume controller would record.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.kube_derived import DerivedObjects
from tests.fakes.kube_objects import (
    PodLog,
    add_event,
    container_id,
    image_id,
    make_secret,
    pod_conditions,
)
from tests.fakes.kube_store import timestamp


class ClusterFaults(DerivedObjects):
    """Fault-injection methods (each edits pods/claims/secrets, then refreshes)."""

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

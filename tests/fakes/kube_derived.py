"""Objects the fake API derives from the pods, as Kubernetes' controllers do.

Endpoints and EndpointSlices follow the pods a Service selects (ready or not, or the
addresses a test pinned); Deployments, their ReplicaSets and StatefulSets report replicas
and conditions from their pods. `refresh()` recomputes them after every change.
"""

from __future__ import annotations

import builtins
import copy
from collections.abc import Mapping
from typing import Any

from tests.fakes.kube_cluster_state import KubeClusterState
from tests.fakes.kube_objects import safe_suffix, selector_of
from tests.fakes.kube_selectors import labels_match, parse_label_selector
from tests.fakes.kube_store import type_for_object


class DerivedObjects(KubeClusterState):
    """Endpoints, EndpointSlices and workload status computed from the pods."""

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

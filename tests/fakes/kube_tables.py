"""Server-side printing: the meta.k8s.io/v1 Table that `kubectl get` asks for.

The columns follow the API server's own printers for the kinds immichcheck's users list
(pods, services, claims, volumes, secrets, config maps, nodes, workloads, events); other
kinds get the server's default Name / Created At table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from tests.fakes.kube_store import ResourceType

Column = tuple[str, str, int]  # name, type, priority (1 = only with -o wide)

ACCESS_MODE_SHORT = {
    "ReadWriteOnce": "RWO",
    "ReadOnlyMany": "ROX",
    "ReadWriteMany": "RWX",
    "ReadWriteOncePod": "RWOP",
}


def age(created: str | None, now: datetime | None = None) -> str:
    """kubectl's short age: 45s, 12m, 5h, 3d4h, 120d."""
    if not created:
        return "<unknown>"
    moment = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 120:
        return f"{max(seconds, 0)}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h" if hours < 8 or minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def _pod_row(pod: Mapping[str, Any]) -> list[Any]:
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    ready = sum(1 for c in containers if c.get("ready"))
    total = len((pod.get("spec") or {}).get("containers") or []) or len(containers)
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in containers:
        state = container.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            reason = state["terminated"].get("reason") or "Terminated"
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    restarts = sum(int(c.get("restartCount") or 0) for c in containers)
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        reason,
        str(restarts),
        age(pod["metadata"].get("creationTimestamp")),
        status.get("podIP") or "<none>",
        (pod.get("spec") or {}).get("nodeName") or "<none>",
        "<none>",
        "<none>",
    ]


def _service_row(service: Mapping[str, Any]) -> list[Any]:
    spec = service.get("spec") or {}
    ports = ",".join(
        (f"{p['port']}:{p['nodePort']}" if p.get("nodePort") else str(p["port"]))
        + f"/{p.get('protocol', 'TCP')}"
        for p in spec.get("ports") or []
    )
    selector = ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items())
    return [
        service["metadata"]["name"],
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        ",".join(spec.get("externalIPs") or []) or "<none>",
        ports or "<none>",
        age(service["metadata"].get("creationTimestamp")),
        selector or "<none>",
    ]


def _claim_row(claim: Mapping[str, Any]) -> list[Any]:
    spec = claim.get("spec") or {}
    status = claim.get("status") or {}
    bound = status.get("phase") == "Bound"
    modes = ",".join(ACCESS_MODE_SHORT.get(m, m) for m in status.get("accessModes") or [])
    return [
        claim["metadata"]["name"],
        status.get("phase", "Pending"),
        spec.get("volumeName", "") if bound else "",
        (status.get("capacity") or {}).get("storage", "") if bound else "",
        modes if bound else "",
        spec.get("storageClassName") or "<unset>",
        "<unset>",
        age(claim["metadata"].get("creationTimestamp")),
        spec.get("volumeMode", "Filesystem"),
    ]


def _volume_row(volume: Mapping[str, Any]) -> list[Any]:
    spec = volume.get("spec") or {}
    claim = spec.get("claimRef") or {}
    return [
        volume["metadata"]["name"],
        (spec.get("capacity") or {}).get("storage", ""),
        ",".join(ACCESS_MODE_SHORT.get(m, m) for m in spec.get("accessModes") or []),
        spec.get("persistentVolumeReclaimPolicy", "Retain"),
        (volume.get("status") or {}).get("phase", "Available"),
        f"{claim['namespace']}/{claim['name']}" if claim else "",
        spec.get("storageClassName") or "<unset>",
        "<unset>",
        "",
        age(volume["metadata"].get("creationTimestamp")),
    ]


def _node_row(node: Mapping[str, Any]) -> list[Any]:
    status = node.get("status") or {}
    ready: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {}
    )
    state = "Ready" if ready.get("status") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        state += ",SchedulingDisabled"
    roles = sorted(
        key.split("/", 1)[1]
        for key in (node["metadata"].get("labels") or {})
        if key.startswith("node-role.kubernetes.io/")
    )
    addresses = {a["type"]: a["address"] for a in status.get("addresses") or []}
    info = status.get("nodeInfo") or {}
    return [
        node["metadata"]["name"],
        state,
        ",".join(roles) or "<none>",
        age(node["metadata"].get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP", "<none>"),
        addresses.get("ExternalIP", "<none>"),
        info.get("osImage", ""),
        info.get("kernelVersion", ""),
        info.get("containerRuntimeVersion", ""),
    ]


def _workload_row(workload: Mapping[str, Any]) -> list[Any]:
    spec = workload.get("spec") or {}
    status = workload.get("status") or {}
    desired = int(spec.get("replicas", 1))
    return [
        workload["metadata"]["name"],
        f"{int(status.get('readyReplicas') or 0)}/{desired}",
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
        age(workload["metadata"].get("creationTimestamp")),
    ]


def _event_row(event: Mapping[str, Any]) -> list[Any]:
    involved = event.get("involvedObject") or {}
    return [
        age(event.get("lastTimestamp")),
        event.get("type", ""),
        event.get("reason", ""),
        f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}",
        event.get("message", ""),
    ]


PRINTERS: Mapping[str, tuple[tuple[Column, ...], Callable[[Mapping[str, Any]], list[Any]]]] = {
    "pods": (
        (("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0),
         ("Restarts", "string", 0), ("Age", "string", 0), ("IP", "string", 1),
         ("Node", "string", 1), ("Nominated Node", "string", 1), ("Readiness Gates", "string", 1)),
        _pod_row,
    ),
    "services": (
        (("Name", "string", 0), ("Type", "string", 0), ("Cluster-IP", "string", 0),
         ("External-IP", "string", 0), ("Port(s)", "string", 0), ("Age", "string", 0),
         ("Selector", "string", 1)),
        _service_row,
    ),
    "persistentvolumeclaims": (
        (("Name", "string", 0), ("Status", "string", 0), ("Volume", "string", 0),
         ("Capacity", "string", 0), ("Access Modes", "string", 0), ("StorageClass", "string", 0),
         ("VolumeAttributesClass", "string", 0), ("Age", "string", 0),
         ("VolumeMode", "string", 1)),
        _claim_row,
    ),
    "persistentvolumes": (
        (("Name", "string", 0), ("Capacity", "string", 0), ("Access Modes", "string", 0),
         ("Reclaim Policy", "string", 0), ("Status", "string", 0), ("Claim", "string", 0),
         ("StorageClass", "string", 0), ("VolumeAttributesClass", "string", 0),
         ("Reason", "string", 0), ("Age", "string", 0)),
        _volume_row,
    ),
    "secrets": (
        (("Name", "string", 0), ("Type", "string", 0), ("Data", "string", 0),
         ("Age", "string", 0)),
        lambda s: [s["metadata"]["name"], s.get("type", "Opaque"), str(len(s.get("data") or {})),
                   age(s["metadata"].get("creationTimestamp"))],
    ),
    "configmaps": (
        (("Name", "string", 0), ("Data", "string", 0), ("Age", "string", 0)),
        lambda c: [c["metadata"]["name"], str(len(c.get("data") or {})),
                   age(c["metadata"].get("creationTimestamp"))],
    ),
    "nodes": (
        (("Name", "string", 0), ("Status", "string", 0), ("Roles", "string", 0),
         ("Age", "string", 0), ("Version", "string", 0), ("Internal-IP", "string", 1),
         ("External-IP", "string", 1), ("OS-Image", "string", 1), ("Kernel-Version", "string", 1),
         ("Container-Runtime", "string", 1)),
        _node_row,
    ),
    "deployments": (
        (("Name", "string", 0), ("Ready", "string", 0), ("Up-to-date", "integer", 0),
         ("Available", "integer", 0), ("Age", "string", 0)),
        _workload_row,
    ),
    "events": (
        (("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0),
         ("Object", "string", 0), ("Message", "string", 0)),
        _event_row,
    ),
}  # fmt: skip

DEFAULT_PRINTER: tuple[tuple[Column, ...], Callable[[Mapping[str, Any]], list[Any]]] = (
    (("Name", "string", 0), ("Created At", "date", 0)),
    lambda o: [o["metadata"]["name"], o["metadata"].get("creationTimestamp")],
)


def partial_metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    """PartialObjectMetadata for a row's `object` when includeObject=Metadata (the default)."""
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": dict(obj.get("metadata") or {}),
    }


def to_table(
    resource: ResourceType,
    objects: list[dict[str, Any]],
    *,
    include_object: str,
    resource_version: str,
    continue_token: str | None = None,
) -> dict[str, Any]:
    """A meta.k8s.io/v1 Table of the objects (one row each)."""
    columns, row = PRINTERS.get(resource.plural, DEFAULT_PRINTER)
    rows = []
    for obj in objects:
        entry: dict[str, Any] = {"cells": row(obj)}
        if include_object == "Object":
            entry["object"] = {
                "kind": resource.kind,
                "apiVersion": resource.group_version,
                **obj,
            }
        elif include_object != "None":
            entry["object"] = partial_metadata(obj)
        rows.append(entry)
    metadata: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        metadata["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": [
            {
                "name": name,
                "type": kind,
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": priority,
            }
            for name, kind, priority in columns
        ],
        "rows": rows,
    }

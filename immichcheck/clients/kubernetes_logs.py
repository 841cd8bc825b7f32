"""What the support bundle reads from the Kubernetes API beyond verify's snapshot.

Container logs (`pods/log`, the current and the previous instance of a restarted container)
and the nodes. Same credentials and client as the snapshot (`kube.connect` and its read-only
httpx client), so nothing here is a second Kubernetes client. Every read is allowed to fail on
its own (a container still pulling its image has no log, a namespaced Role cannot list nodes):
the reason is kept and the bundle says what it could not collect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from immichcheck.clients import kubernetes as kube


@dataclass(frozen=True)
class LogRequest:
    """One container log to read."""

    pod: str
    container: str
    previous: bool = False


@dataclass
class ClusterExtras:
    """Logs and nodes; `errors` maps what could not be read to why."""

    logs: dict[LogRequest, str] = field(default_factory=dict)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def log_requests(pods: Sequence[Mapping[str, Any]]) -> list[LogRequest]:
    """Every container of the pods, plus the previous instance of those that restarted."""
    requests: list[LogRequest] = []
    for pod in pods:
        name = str((pod.get("metadata") or {}).get("name", ""))
        spec = pod.get("spec") or {}
        statuses = {
            s.get("name"): s
            for s in (pod.get("status") or {}).get("containerStatuses") or []
            if isinstance(s, Mapping)
        }
        for container in spec.get("containers") or []:
            container_name = str(container.get("name", ""))
            requests.append(LogRequest(name, container_name))
            status = statuses.get(container_name) or {}
            if int(status.get("restartCount") or 0) > 0:
                requests.append(LogRequest(name, container_name, previous=True))
    return requests


async def read_extras(
    connection: Any,
    namespace: str,
    requests: Sequence[LogRequest],
    *,
    tail: int | None,
    since_seconds: int | None,
    timeout: float,
) -> ClusterExtras:
    """Read the container logs (last `tail` lines, newer than `since_seconds`) and the nodes.

    `connection` is a fresh `kube.open_connection(...)`; its client is closed here.
    """
    extras = ClusterExtras()
    sni = connection.sni
    extensions = {"sni_hostname": sni} if sni else None

    async def read_log(client: Any, request: LogRequest) -> None:
        params: dict[str, str] = {"container": request.container, "timestamps": "true"}
        if tail is not None:
            params["tailLines"] = str(tail)
        if since_seconds is not None:
            params["sinceSeconds"] = str(max(1, since_seconds))
        if request.previous:
            params["previous"] = "true"
        path = kube._path("v1", namespace, f"pods/{request.pod}/log")
        what = f"log of {request.pod}/{request.container}" + (
            " (previous)" if request.previous else ""
        )
        try:
            response = await client.get(path, params=params, extensions=extensions)
        except Exception as exc:  # one unreadable log must not cost the others
            extras.errors[what] = kube.describe_kube_exception(exc)
            return
        if response.status_code >= 400:
            extras.errors[what] = _status_message(response)
            return
        extras.logs[request] = response.text

    async def read_nodes(client: Any) -> None:
        try:
            body = await kube._get_json(client, kube._path("v1", None, "nodes"), sni)
        except kube.ApiStatusError as exc:
            extras.errors["nodes"] = kube._describe_status(exc)
            return
        except Exception as exc:
            extras.errors["nodes"] = kube.describe_kube_exception(exc)
            return
        extras.nodes = list(body.get("items") or [])

    try:
        async with asyncio.timeout(timeout), connection.client as client:
            await asyncio.gather(
                read_nodes(client), *(read_log(client, request) for request in requests)
            )
    except TimeoutError:
        extras.errors["cluster"] = f"logs and nodes not read within {timeout:g} s"
    return extras


def _status_message(response: Any) -> str:
    try:
        message = str(response.json().get("message", ""))
    except ValueError:
        message = response.text[:200]
    return f"HTTP {response.status_code}: {message or response.reason_phrase}"


def node_facts(node: Mapping[str, Any]) -> dict[str, Any]:
    """What about a node helps a support question: role, addresses, versions, size, health."""
    metadata = node.get("metadata") or {}
    status = node.get("status") or {}
    labels = metadata.get("labels") or {}
    return {
        "name": metadata.get("name", ""),
        "labels": {
            k: v
            for k, v in labels.items()
            if k.startswith(("kubernetes.io/", "node-role.kubernetes.io/", "topology."))
            or k in ("node.kubernetes.io/instance-type",)
        },
        "addresses": status.get("addresses") or [],
        "node_info": status.get("nodeInfo") or {},
        "capacity": status.get("capacity") or {},
        "allocatable": status.get("allocatable") or {},
        "conditions": [
            {k: c.get(k) for k in ("type", "status", "reason", "message")}
            for c in status.get("conditions") or []
        ],
        "taints": (node.get("spec") or {}).get("taints") or [],
    }

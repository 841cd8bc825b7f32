"""Node faults for the fake cluster: NotReady, pressure, cordoned, allocatable, kubelet version.

Each function changes a Node of a `FakeKubeCluster` the way the real control plane does, so
the fields verify reads are the ones a real cluster shows:

- a kubelet that stops posting: the node lifecycle controller sets Ready and the pressure
  conditions to Unknown, reason NodeStatusUnknown, message "Kubelet stopped posting node
  status.", keeps the last lastHeartbeatTime and taints the node unreachable;
- a kubelet that reports itself unhealthy: Ready False, reason KubeletNotReady, a fresh
  heartbeat, taint not-ready;
- pressure: the kubelet's own reasons and messages (KubeletHasDiskPressure, "kubelet has disk
  pressure") and the matching NoSchedule taint;
- `kubectl cordon`: spec.unschedulable true and the unschedulable taint.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.kube_store import timestamp

STOPPED_POSTING = "Kubelet stopped posting node status."
# condition -> (reason, message, taint) as the kubelet writes them under pressure
PRESSURE = {
    "MemoryPressure": (
        "KubeletHasInsufficientMemory",
        "kubelet has insufficient memory available",
        "node.kubernetes.io/memory-pressure",
    ),
    "DiskPressure": (
        "KubeletHasDiskPressure",
        "kubelet has disk pressure",
        "node.kubernetes.io/disk-pressure",
    ),
    "PIDPressure": (
        "KubeletHasInsufficientPID",
        "kubelet has insufficient PID available",
        "node.kubernetes.io/pid-pressure",
    ),
}


def _change(cluster: Any, name: str, edit: Any) -> dict[str, Any]:
    """Apply `edit(node)` to a stored Node and store it again (resourceVersion bumps)."""
    with cluster.lock:
        node = cluster.get("nodes", name)
        edit(node)
        cluster.state.put(node)
        cluster.refresh()
        return node


def _add_taint(node: dict[str, Any], key: str, effect: str, now: datetime) -> None:
    taints = node["spec"].setdefault("taints", [])
    if not any(t["key"] == key and t["effect"] == effect for t in taints):
        taint = {"key": key, "effect": effect}
        if effect == "NoExecute":
            taint["timeAdded"] = timestamp(now)
        taints.append(taint)


def _condition(node: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in node["status"]["conditions"] if c["type"] == kind)


def stop_kubelet(cluster: Any, name: str, *, silent_for: timedelta = timedelta(minutes=7)) -> None:
    """The kubelet stopped posting `silent_for` ago: every condition Unknown, node unreachable."""
    now = datetime.now(UTC)
    last_seen = now - silent_for
    marked = last_seen + timedelta(seconds=40)  # node-monitor-grace-period

    def edit(node: dict[str, Any]) -> None:
        for condition in node["status"]["conditions"]:
            condition.update(
                status="Unknown",
                reason="NodeStatusUnknown",
                message=STOPPED_POSTING,
                lastHeartbeatTime=timestamp(last_seen),
                lastTransitionTime=timestamp(marked),
            )
        _add_taint(node, "node.kubernetes.io/unreachable", "NoSchedule", marked)
        _add_taint(node, "node.kubernetes.io/unreachable", "NoExecute", marked)

    _change(cluster, name, edit)


def kubelet_not_ready(
    cluster: Any,
    name: str,
    *,
    message: str = (
        "container runtime network not ready: NetworkReady=false "
        "reason:NetworkPluginNotReady message:Network plugin returns error: "
        "cni plugin not initialized"
    ),
) -> None:
    """The kubelet reports the node not ready (Ready False, KubeletNotReady, fresh heartbeat)."""
    now = datetime.now(UTC)

    def edit(node: dict[str, Any]) -> None:
        ready = _condition(node, "Ready")
        ready.update(
            status="False",
            reason="KubeletNotReady",
            message=message,
            lastHeartbeatTime=timestamp(now - timedelta(seconds=5)),
            lastTransitionTime=timestamp(now - timedelta(minutes=2)),
        )
        _add_taint(node, "node.kubernetes.io/not-ready", "NoSchedule", now)

    _change(cluster, name, edit)


def pressure(cluster: Any, name: str, kind: str, *, message: str | None = None) -> None:
    """The kubelet reports MemoryPressure, DiskPressure or PIDPressure (its own reason/message)."""
    reason, default_message, taint = PRESSURE[kind]
    now = datetime.now(UTC)

    def edit(node: dict[str, Any]) -> None:
        _condition(node, kind).update(
            status="True",
            reason=reason,
            message=message or default_message,
            lastHeartbeatTime=timestamp(now - timedelta(seconds=5)),
            lastTransitionTime=timestamp(now - timedelta(minutes=1)),
        )
        _add_taint(node, taint, "NoSchedule", now)

    _change(cluster, name, edit)


def cordon(cluster: Any, name: str) -> None:
    """`kubectl cordon`: spec.unschedulable and the unschedulable taint."""
    now = datetime.now(UTC)

    def edit(node: dict[str, Any]) -> None:
        node["spec"]["unschedulable"] = True
        _add_taint(node, "node.kubernetes.io/unschedulable", "NoSchedule", now)

    _change(cluster, name, edit)


def set_allocatable(
    cluster: Any, name: str, *, cpu: str | None = None, memory: str | None = None
) -> None:
    """Change what the node offers the scheduler (status.allocatable cpu/memory)."""

    def edit(node: dict[str, Any]) -> None:
        if cpu is not None:
            node["status"]["allocatable"]["cpu"] = cpu
        if memory is not None:
            node["status"]["allocatable"]["memory"] = memory

    _change(cluster, name, edit)


def set_kubelet_version(cluster: Any, name: str, version: str) -> None:
    """The node's kubelet (and kube-proxy) version, as after a partial upgrade."""

    def edit(node: dict[str, Any]) -> None:
        node["status"]["nodeInfo"]["kubeletVersion"] = version
        node["status"]["nodeInfo"]["kubeProxyVersion"] = version

    _change(cluster, name, edit)

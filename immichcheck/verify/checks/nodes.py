"""Node checks: the nodes that run, or are pinned to run, Immich's workloads (one snapshot).

Only those nodes matter: a NotReady node elsewhere in the cluster does not touch Immich, while
the node that holds PostgreSQL's local volume going NotReady takes Immich down even though its
pods still show Running until the kubelet's 5-minute eviction timeout.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from immichcheck.deploy.config_values import parse_quantity
from immichcheck.deploy.manifest_files import ManifestsError
from immichcheck.verify.checks import (
    Facts,
    Verdict,
    check,
    errored,
    failed,
    passed,
    skipped,
    warned,
)

_PROBES = ("kube",)
# One clear ERROR when the cluster cannot be read (IC-CL-001), not one per node check.
_NEEDS_NAMESPACE = ("IC-CL-001",)
PRESSURE_CONDITIONS = ("MemoryPressure", "DiskPressure", "PIDPressure")
REQUESTS_WARN_SHARE = 0.9  # above this share of allocatable, system pods have no room left
# Kubernetes version skew policy: a kubelet may be up to three minor versions older than the
# API server (two before 1.28) and never newer.
MAX_KUBELET_MINORS_BEHIND = 3
_VERSION = re.compile(r"^v?(\d+)\.(\d+)")


@dataclass
class NodeRole:
    """Why a node matters to Immich: what is pinned to it and what runs there."""

    name: str
    pinned: list[str] = field(default_factory=list)  # component keys pinned to this node
    running: list[str] = field(default_factory=list)  # component keys with a pod here

    def workloads(self) -> list[str]:
        """The component keys tied to this node, pinned first."""
        return self.pinned + [key for key in self.running if key not in self.pinned]

    def describe(self) -> str:
        """'runs postgres, redis; pinned: ml' for messages."""
        waiting = [key for key in self.pinned if key not in self.running]
        parts = [f"runs {', '.join(self.running)}"] if self.running else []
        if waiting:
            parts.append(f"pinned: {', '.join(waiting)}")
        return "; ".join(parts)


def immich_nodes(facts: Facts) -> dict[str, NodeRole]:
    """The nodes that run or are pinned to run an Immich workload, by name, in a stable order."""
    roles: dict[str, NodeRole] = {}
    for key, component in facts.expected.components.items():
        if component.node:
            roles.setdefault(component.node, NodeRole(component.node)).pinned.append(key)
        for pod in facts["kube"].pods_matching(component.labels):
            node = str((pod.get("spec") or {}).get("nodeName") or "")
            if node:
                role = roles.setdefault(node, NodeRole(node))
                if key not in role.running:
                    role.running.append(key)
    return dict(sorted(roles.items()))


def _nodes_or_verdict(facts: Facts) -> dict[str, Any] | Verdict:
    """The Node objects by name, or the ERROR/SKIP that says why they are not known."""
    snapshot = facts["kube"]
    reason = snapshot.errors.get("Node")
    if reason:
        return errored(
            f"cannot read Node objects: {reason} (the ClusterRole in "
            "manifests/11-immichcheck.yaml grants get/list on nodes)"
        )
    if "Node" not in snapshot.objects:
        return skipped(
            f"no Node objects in {snapshot.source}: add `nodes` to the kubectl get command"
        )
    return {str((n.get("metadata") or {}).get("name")): n for n in snapshot.items("Node")}


def _per_node(facts: Facts, judge: Any) -> list[Verdict]:
    """Run `judge(node object, role, facts)` on every node that matters; missing nodes FAIL."""
    nodes = _nodes_or_verdict(facts)
    if isinstance(nodes, Verdict):
        return [nodes]
    verdicts = []
    for name, role in immich_nodes(facts).items():
        node = nodes.get(name)
        if node is None:
            verdicts.append(
                failed(
                    f"node {name} does not exist ({role.describe()}): pods pinned to it "
                    "stay Pending; check `kubectl get nodes` and the manifests' nodeSelector",
                    f"node/{name}",
                )
            )
            continue
        verdicts.append(judge(node, role, facts))
    return verdicts


def _conditions(node: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {str(c.get("type")): c for c in (node.get("status") or {}).get("conditions") or []}


def _parse_time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


def age_text(seconds: float) -> str:
    """'45 s', '7 min', '3 h', '2 days': how long ago, rounded down to a readable unit."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 2 * 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} days"


def _judge_ready(node: Mapping[str, Any], role: NodeRole, facts: Facts) -> Verdict:
    name, target = role.name, f"node/{role.name}"
    ready = _conditions(node).get("Ready")
    if ready is None:
        return failed(f"node {name} reports no Ready condition ({role.describe()})", target)
    if ready.get("status") == "True":
        return passed(f"node {name} is Ready ({role.describe()})", target)
    heartbeat = _parse_time(ready.get("lastHeartbeatTime"))
    when = (
        f"last reported {age_text((datetime.now(UTC) - heartbeat).total_seconds())} ago"
        if heartbeat
        else "never reported"
    )
    detail = " ".join(str(ready.get(k) or "") for k in ("reason", "message")).strip()
    state = "NotReady" if ready.get("status") == "False" else "not reporting"
    return failed(
        f"node {name} is {state} (Ready={ready.get('status')}: {detail}); the kubelet {when}; "
        f"{role.describe()}: Immich's pods there are down or about to be evicted",
        target,
        ready=ready.get("status"),
    )


@check("IC-ND-701", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def nodes_ready(facts: Facts) -> list[Verdict]:
    """Each node that runs or is pinned to run an Immich workload is Ready."""
    return _per_node(facts, _judge_ready)


def _judge_pressure(node: Mapping[str, Any], role: NodeRole, facts: Facts) -> Verdict:
    name, target = role.name, f"node/{role.name}"
    conditions = _conditions(node)
    pressing = [
        f"{kind} ({conditions[kind].get('message') or conditions[kind].get('reason')})"
        for kind in PRESSURE_CONDITIONS
        if (conditions.get(kind) or {}).get("status") == "True"
    ]
    if pressing:
        return failed(
            f"node {name} is under {', '.join(pressing)}; the kubelet evicts pods to recover "
            f"and {role.describe()}",
            target,
        )
    unknown = [k for k in PRESSURE_CONDITIONS if (conditions.get(k) or {}).get("status") != "False"]
    if unknown:
        return skipped(
            f"node {name}: {', '.join(unknown)} unknown (the kubelet is not reporting; "
            "see IC-ND-701)",
            target,
        )
    return passed(f"node {name}: no memory, disk or PID pressure", target)


@check("IC-ND-702", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def nodes_without_pressure(facts: Facts) -> list[Verdict]:
    """No node that matters reports MemoryPressure, DiskPressure or PIDPressure."""
    return _per_node(facts, _judge_pressure)


def _judge_schedulable(node: Mapping[str, Any], role: NodeRole, facts: Facts) -> Verdict:
    name, target = role.name, f"node/{role.name}"
    if not (node.get("spec") or {}).get("unschedulable"):
        return passed(f"node {name} is schedulable", target)
    if role.pinned:
        return failed(
            f"node {name} is cordoned (spec.unschedulable): {', '.join(role.pinned)} are "
            f"pinned to it and stay Pending after their next restart or rollout; "
            f"kubectl uncordon {name}",
            target,
        )
    return warned(
        f"node {name} is cordoned (spec.unschedulable): the pods of {', '.join(role.running)} "
        f"can move to another node when they restart; kubectl uncordon {name}",
        target,
    )


@check("IC-ND-703", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def nodes_schedulable(facts: Facts) -> list[Verdict]:
    """No node that runs or is pinned to run an Immich workload is cordoned."""
    return _per_node(facts, _judge_schedulable)


def cpu_millicores(text: Any) -> int | None:
    """A CPU quantity ('4', '250m', '0.5') in millicores; None when it is not one."""
    value = str(text).strip()
    try:
        if value.endswith("m"):
            return int(float(value[:-1]))
        return int(float(value) * 1000)
    except ValueError:
        return None


def memory_bytes(text: Any) -> int | None:
    """A memory quantity ('512Mi', '7949488Ki') in bytes; None when it is not one."""
    try:
        return parse_quantity(str(text))
    except ManifestsError:
        return None


def _workload_requests(facts: Facts, key: str) -> tuple[int, int, int]:
    """(millicores, bytes, replicas) one pod of a component requests: the live workload's pod
    template, or the manifests' when the workload is missing."""
    component = facts.expected.components[key]
    workload = facts["kube"].get(component.kind, component.name)
    if workload is None:
        workload = next(
            (
                o
                for o in facts.expected.objects
                if o.get("kind") == component.kind
                and (o.get("metadata") or {}).get("name") == component.name
            ),
            {},
        )
    spec = workload.get("spec") or {}
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
    cpu = memory = 0
    for container in containers:
        requests = (container.get("resources") or {}).get("requests") or {}
        cpu += cpu_millicores(requests.get("cpu", "0")) or 0
        memory += memory_bytes(requests.get("memory", "0")) or 0
    return cpu, memory, int(spec.get("replicas", 1) or 0)


def _mib(value: int) -> str:
    return f"{value / 2**20:.0f} MiB"


def _judge_allocatable(node: Mapping[str, Any], role: NodeRole, facts: Facts) -> Verdict:
    name, target = role.name, f"node/{role.name}"
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    cpu_free = cpu_millicores(allocatable.get("cpu"))
    memory_free = memory_bytes(allocatable.get("memory"))
    if cpu_free is None or memory_free is None:
        return skipped(f"node {name} reports no allocatable CPU or memory", target)
    cpu = memory = 0
    parts = []
    for key in role.workloads():
        one_cpu, one_memory, replicas = _workload_requests(facts, key)
        if key in role.pinned:
            count = replicas
        else:  # unpinned: the pods that run here now
            component = facts.expected.components[key]
            count = sum(
                1
                for pod in facts["kube"].pods_matching(component.labels)
                if (pod.get("spec") or {}).get("nodeName") == name
            )
        cpu, memory = cpu + one_cpu * count, memory + one_memory * count
        parts.append(f"{key} {one_cpu * count}m/{_mib(one_memory * count)}")
    text = (
        f"node {name}: Immich requests {cpu}m CPU of {cpu_free}m allocatable and "
        f"{_mib(memory)} of {_mib(memory_free)} memory ({', '.join(parts)})"
    )
    evidence = {
        "cpu_requested_millicores": cpu,
        "cpu_allocatable_millicores": cpu_free,
        "memory_requested_bytes": memory,
        "memory_allocatable_bytes": memory_free,
    }
    if cpu > cpu_free or memory > memory_free:
        return failed(f"{text}: the scheduler cannot place them all", target, **evidence)
    share = max(cpu / cpu_free if cpu_free else 1.0, memory / memory_free if memory_free else 1.0)
    if share > REQUESTS_WARN_SHARE:
        return warned(
            f"{text}: over {REQUESTS_WARN_SHARE:.0%}, little room for the system's pods",
            target,
            **evidence,
        )
    return passed(text, target, **evidence)


@check("IC-ND-704", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def nodes_fit_the_requests(facts: Facts) -> list[Verdict]:
    """Each node's allocatable CPU and memory cover the requests of the Immich pods it holds."""
    return _per_node(facts, _judge_allocatable)


def minor_version(text: str) -> tuple[int, int] | None:
    """(major, minor) of 'v1.32.4+k3s1'; None when the text is not a version."""
    match = _VERSION.match(text.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")


def _node_name(node: Mapping[str, Any]) -> str:
    return str((node.get("metadata") or {}).get("name") or "")


def _kubelet_version(node: Mapping[str, Any]) -> str:
    return str(((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion") or "")


def _control_plane_node(facts: Facts) -> Mapping[str, Any] | None:
    """The first node labelled as control plane, by name."""
    for node in sorted(facts["kube"].items("Node"), key=_node_name):
        labels = (node.get("metadata") or {}).get("labels") or {}
        if any(label in labels for label in CONTROL_PLANE_LABELS):
            return node
    return None


def _judge_kubelet(node: Mapping[str, Any], role: NodeRole, facts: Facts) -> Verdict:
    name, target = role.name, f"node/{role.name}"
    kubelet = _kubelet_version(node)
    server = str(facts["kube"].server_version or "")
    source = "API server"
    if not server:
        # A dump carries no /version; the control plane's own kubelet runs the API server's
        # release on k3s and kubeadm clusters, so it stands in for it.
        control_plane = _control_plane_node(facts)
        if control_plane is not None:
            server = _kubelet_version(control_plane)
            source = f"control plane ({_node_name(control_plane)})"
    kubelet_version, server_version = minor_version(kubelet), minor_version(server)
    if server_version is None:
        return skipped(
            f"node {name}: the API server's version is unknown (kubelet {kubelet}; a dump "
            "holds no version and no control-plane node)",
            target,
        )
    if kubelet_version is None:
        return skipped(f"node {name} reports no kubelet version", target)
    behind = (server_version[0] - kubelet_version[0]) * 100 + server_version[1] - kubelet_version[1]
    text = f"node {name}: kubelet {kubelet}, {source} {server}"
    if behind < 0:
        return warned(f"{text}: a kubelet newer than the {source} is not supported", target)
    if behind > MAX_KUBELET_MINORS_BEHIND:
        return warned(
            f"{text}: {behind} minor versions behind, more than the "
            f"{MAX_KUBELET_MINORS_BEHIND} the skew policy supports",
            target,
        )
    return passed(text, target)


@check("IC-ND-705", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def kubelet_version_skew(facts: Facts) -> list[Verdict]:
    """Each node's kubelet is within the supported version skew of the API server."""
    return _per_node(facts, _judge_kubelet)

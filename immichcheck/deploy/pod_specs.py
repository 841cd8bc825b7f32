"""Reading pod specs out of workload objects: containers, probes, node pinning."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

HOSTNAME_LABEL = "kubernetes.io/hostname"


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, StatefulSet, DaemonSet, Job, CronJob or Pod ({} if none)."""
    spec = obj.get("spec") or {}
    kind = obj.get("kind")
    if kind == "Pod":
        return dict(spec)
    if kind == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    template = spec.get("template") or {}
    return dict(template.get("spec") or {})


def hostname_choices(node_selector: Mapping[str, Any]) -> Iterator[list[Any]]:
    """The node names of each `kubernetes.io/hostname In [...]` term of a NodeSelector."""
    for term in node_selector.get("nodeSelectorTerms") or []:
        for expression in term.get("matchExpressions") or []:
            if expression.get("key") == HOSTNAME_LABEL and expression.get("operator") == "In":
                yield expression.get("values") or []


def pinned_node(pod: Mapping[str, Any]) -> str | None:
    """The node a pod spec is pinned to by nodeSelector or required nodeAffinity, if exactly one."""
    selected = (pod.get("nodeSelector") or {}).get(HOSTNAME_LABEL)
    if selected:
        return str(selected)
    required = ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for values in hostname_choices(required):
        if len(values) == 1:
            return str(values[0])
    return None


def iter_containers(pod: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Init containers, then containers, of a pod spec."""
    for group in ("initContainers", "containers"):
        for container in pod.get(group) or []:
            if isinstance(container, dict):
                yield container


def iter_probes(container: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(probe kind, probe) for the startup, readiness and liveness probes a container has."""
    for probe_kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(probe_kind)
        if isinstance(probe, dict):
            yield probe_kind, probe

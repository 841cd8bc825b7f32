"""Cluster checks: where the pods run and the volumes they hold (one snapshot)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from immichcheck.verify.checks import Facts, Verdict, check, failed, passed, warned
from immichcheck.verify.checks.cluster import (
    _NEEDS_NAMESPACE,
    _PROBES,
    _event_text,
    _read_error,
)


@check("IC-CL-008", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def pods_on_pinned_node(facts: Facts) -> list[Verdict]:
    """PostgreSQL, Redis and ML (whatever manifests/ pins) run on the pinned node.

    A component with node-local data (a local PersistentVolume or hostPath) on another node
    sees another disk: PostgreSQL starts on an empty data directory and Immich's database is
    not the one users filled (FAIL). A pinned component without local data only loses the
    placement the manifests chose (WARN).
    """
    verdicts = []
    for key, component in facts.expected.components.items():
        if not component.node:
            continue
        target = f"pods/{component.name}"
        pods = facts["kube"].pods_matching(component.labels)
        if not pods:
            verdicts.append(warned(f"{key}: no pod to place (see IC-CL-006)", target))
            continue
        nodes = sorted({str((p.get("spec") or {}).get("nodeName") or "") for p in pods})
        wrong = [n or "(not scheduled)" for n in nodes if n != component.node]
        if not wrong:
            verdicts.append(passed(f"{key} runs on {component.node}", target))
            continue
        text = f"{key} runs on {', '.join(wrong)}, manifests pin it to {component.node}"
        scheduled = [n for n in wrong if n != "(not scheduled)"]
        if component.host_paths and scheduled:
            verdicts.append(
                failed(
                    f"{text}, where its data lives ({', '.join(component.host_paths)}): on "
                    f"{', '.join(scheduled)} it reads another disk",
                    target,
                )
            )
        else:
            verdicts.append(warned(text, target))
    return verdicts


def capacity_bytes(claim: Mapping[str, Any]) -> int:
    """A bound claim's capacity in bytes (0 when the API reports none or nonsense)."""
    from immichcheck.deploy.expected_state import ManifestsError, parse_quantity

    storage = ((claim.get("status") or {}).get("capacity") or {}).get("storage")
    try:
        return parse_quantity(str(storage)) if storage is not None else 0
    except ManifestsError:
        return 0


@check("IC-CL-009", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def volume_claims_bound(facts: Facts) -> list[Verdict]:
    """Each shipped PVC exists and is Bound (its capacity is IC-CL-056's)."""
    error = _read_error(facts, "PersistentVolumeClaim")
    if error:
        return [error]
    snapshot = facts["kube"]
    verdicts = []
    for name in facts.expected.pvcs:
        target = f"pvc/{name}"
        live = snapshot.get("PersistentVolumeClaim", name)
        if live is None:
            verdicts.append(failed(f"PVC {name} does not exist", target))
            continue
        status = live.get("status") or {}
        phase = status.get("phase", "Unknown")
        if phase != "Bound":
            events = _event_text(snapshot.events_for("PersistentVolumeClaim", name))
            hint = f" (last events: {events})" if events else ""
            verdicts.append(failed(f"PVC {name} is {phase}{hint}", target))
            continue
        capacity = capacity_bytes(live)
        verdicts.append(
            passed(f"PVC {name} Bound, capacity {capacity} bytes", target, capacity_bytes=capacity)
        )
    return verdicts

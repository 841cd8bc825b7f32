"""Cluster checks: references between the live objects resolve (the rules `manifests validate`
runs on the files, from deploy/cross_references.py, applied to the snapshot).

A reference that does not resolve is an outage, not drift: a Service whose targetPort no
container listens on, or a DB_HOSTNAME naming no Service, leaves Immich down however closely
the rest matches the manifests. So these are FAIL and name both ends and the fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from immichcheck.deploy.cross_references import (
    BrokenReference,
    ObjectSet,
    immich_env_references,
    ingress_references,
    service_references,
    volume_references,
)
from immichcheck.verify.checks import Facts, Verdict, check, failed, passed, warned
from immichcheck.verify.checks.cluster import _NEEDS_NAMESPACE, _PROBES, _read_error
from immichcheck.verify.checks.cluster_placement import capacity_bytes

# The kinds the rules read; Pods are left out: their workloads stand for them (IC-CL-006
# judges the pods themselves).
_LIVE_KINDS = (
    "Service",
    "Ingress",
    "Deployment",
    "StatefulSet",
    "ConfigMap",
    "PersistentVolumeClaim",
)


def live_objects(facts: Facts) -> ObjectSet:
    """The snapshot as the rules' object set; Secrets: the ones verify reads, with their keys."""
    from immichcheck.clients.kubernetes import secret_keys

    snapshot = facts["kube"]
    # Keys only: the rules ask whether a key exists, and a support bundle's dump masks values.
    return ObjectSet(
        (obj for kind in _LIVE_KINDS for obj in snapshot.items(kind)),
        secrets=secret_keys(snapshot, facts.expected.secrets),
        judge_all_secrets=False,
        secrets_documented=False,
    )


def _judge(
    facts: Facts,
    kinds: Sequence[str],
    rule: Callable[[ObjectSet], Iterable[BrokenReference]],
    rule_names: Sequence[str],
    passed_text: Callable[[ObjectSet], str],
) -> list[Verdict]:
    """One FAIL per object with broken references of the given rules, or one PASS."""
    for kind in kinds:
        error = _read_error(facts, kind)
        if error:
            return [error]
    objects = live_objects(facts)
    by_object: dict[str, list[BrokenReference]] = {}
    for broken in rule(objects):
        if broken.rule in rule_names:
            by_object.setdefault(broken.label, []).append(broken)
    if not by_object:
        return [passed(passed_text(objects), target=facts["kube"].namespace)]
    return [
        failed("; ".join(b.sentence() for b in found), target=label.lower())
        for label, found in by_object.items()
    ]


@check("IC-CL-051", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def service_selectors_match_pods(facts: Facts) -> list[Verdict]:
    """Every Service's selector matches the pod labels of some workload."""
    return _judge(
        facts,
        ("Service", "Deployment", "StatefulSet"),
        service_references,
        ("selector",),
        lambda objects: f"{len(objects.items('Service'))} Service(s) select a workload's pods",
    )


@check("IC-CL-052", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def service_target_ports_exist(facts: Facts) -> list[Verdict]:
    """Every Service targetPort (number or name) is a container port of the pods it selects."""
    return _judge(
        facts,
        ("Service", "Deployment", "StatefulSet"),
        service_references,
        ("target-port",),
        lambda _objects: "every Service targetPort is a container port of its pods",
    )


@check("IC-CL-053", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def ingress_backends_exist(facts: Facts) -> list[Verdict]:
    """Every Ingress backend names an existing Service and one of its ports."""
    return _judge(
        facts,
        ("Ingress", "Service"),
        ingress_references,
        ("ingress-backend",),
        lambda objects: (
            f"the backends of {len(objects.items('Ingress'))} Ingress(es) name existing "
            "Services and ports"
        ),
    )


@check("IC-CL-054", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def immich_env_names_services(facts: Facts) -> list[Verdict]:
    """Immich's DB_*, REDIS_* and IMMICH_MACHINE_LEARNING_URL name Services and ports that exist."""
    return _judge(
        facts,
        ("Deployment", "StatefulSet", "Service"),
        immich_env_references,
        ("immich-env",),
        lambda _objects: (
            "DB_HOSTNAME/DB_PORT, REDIS_HOSTNAME/REDIS_PORT and IMMICH_MACHINE_LEARNING_URL "
            "name existing Services and ports"
        ),
    )


@check("IC-CL-055", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def volumes_resolve(facts: Facts) -> list[Verdict]:
    """Workload volumes and key references name existing claims, ConfigMaps, Secrets and keys."""
    return _judge(
        facts,
        ("Deployment", "StatefulSet", "ConfigMap", "PersistentVolumeClaim"),
        volume_references,
        ("volume",),
        lambda _objects: "every volume and key reference of the workloads resolves",
    )


@check("IC-CL-056", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def claims_hold_the_requested_capacity(facts: Facts) -> list[Verdict]:
    """Each bound claim holds at least the storage the manifests request."""
    error = _read_error(facts, "PersistentVolumeClaim")
    if error:
        return [error]
    verdicts = []
    for name, spec in facts.expected.pvcs.items():
        target = f"pvc/{name}"
        live = facts["kube"].get("PersistentVolumeClaim", name)
        if live is None or (live.get("status") or {}).get("phase") != "Bound":
            continue  # IC-CL-009 reports missing and unbound claims
        capacity = capacity_bytes(live)
        if spec.request_bytes and capacity < spec.request_bytes:
            verdicts.append(
                warned(
                    f"PVC {name} is Bound with {capacity} bytes, "
                    f"less than the {spec.request_bytes} requested",
                    target,
                    capacity_bytes=capacity,
                )
            )
        else:
            verdicts.append(
                passed(
                    f"PVC {name} holds {capacity} bytes, at least the {spec.request_bytes} "
                    "requested",
                    target,
                    capacity_bytes=capacity,
                )
            )
    return verdicts

"""Cluster checks: how traffic reaches the pods (endpoints, the NodePort, the ingress hosts)."""

from __future__ import annotations

from typing import Any

from immichcheck.verify.checks import Facts, Verdict, check, failed, passed, warned
from immichcheck.verify.checks.cluster import (
    _NEEDS_NAMESPACE,
    _PROBES,
    _name,
    _read_error,
)


@check("IC-CL-010", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def services_have_endpoints(facts: Facts) -> list[Verdict]:
    """Each shipped service exists and has at least one ready endpoint address."""
    for kind in ("Service", "Endpoints"):
        error = _read_error(facts, kind)
        if error:
            return [error]
    snapshot = facts["kube"]
    verdicts = []
    for name in facts.expected.services:
        target = f"service/{name}"
        if snapshot.get("Service", name) is None:
            verdicts.append(failed(f"service {name} does not exist", target))
            continue
        endpoints = snapshot.get("Endpoints", name) or {}
        ready = [a for s in endpoints.get("subsets") or [] for a in s.get("addresses") or []]
        not_ready = [
            a for s in endpoints.get("subsets") or [] for a in s.get("notReadyAddresses") or []
        ]
        if ready:
            verdicts.append(passed(f"service {name} has {len(ready)} ready endpoint(s)", target))
        elif not_ready:
            verdicts.append(
                failed(f"service {name}: {len(not_ready)} endpoint(s), none ready", target)
            )
        else:
            verdicts.append(failed(f"service {name} has no endpoints", target))
    return verdicts


@check("IC-CL-011", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def nodeport_as_shipped(facts: Facts) -> Verdict:
    """The NodePort service keeps the shipped port and ClientIP session affinity.

    The phones are set up with http://<node>:<nodePort>: another type or port is an outage for
    them (FAIL); lost affinity only risks long uploads once there are several replicas (WARN).
    """
    expected = facts.expected
    name = expected.nodeport_service
    target = f"service/{name}"
    live = facts["kube"].get("Service", name)
    if live is None:
        return failed(f"service {name} does not exist", target)
    spec = live.get("spec") or {}
    shipped = expected.services[name]
    broken, problems = [], []
    if spec.get("type") != "NodePort":
        broken.append(f"type {spec.get('type')}, shipped NodePort")
    node_ports = [p.get("nodePort") for p in spec.get("ports") or []]
    if expected.nodeport not in node_ports:
        broken.append(f"nodePort {node_ports}, shipped {expected.nodeport}")
    affinity = spec.get("sessionAffinity") or "None"
    if (shipped.session_affinity or "None") != affinity:
        problems.append(f"sessionAffinity {affinity}, shipped {shipped.session_affinity}")
    timeout = (((spec.get("sessionAffinityConfig") or {}).get("clientIP")) or {}).get(
        "timeoutSeconds"
    )
    if shipped.session_affinity_timeout and timeout != shipped.session_affinity_timeout:
        problems.append(f"affinity timeout {timeout}, shipped {shipped.session_affinity_timeout}")
    if broken:
        return failed(
            f"{name}: {'; '.join(broken + problems)}: apps set up for port {expected.nodeport} "
            "cannot connect",
            target,
        )
    if problems:
        return warned(f"{name}: {'; '.join(problems)}", target)
    return passed(
        f"{name}: NodePort {expected.nodeport}, sessionAffinity {affinity}"
        + (f" ({timeout} s)" if timeout else ""),
        target,
    )


@check("IC-CL-012", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def ingress_as_shipped(facts: Facts) -> list[Verdict]:
    """Every shipped ingress host has a rule, on an Ingress of the shipped class.

    Backends are IC-CL-053's (the cross-reference rules shared with `manifests validate`).
    """
    error = _read_error(facts, "Ingress")
    if error:
        return [error]
    snapshot = facts["kube"]
    classes = {
        _name(obj): (obj.get("spec") or {}).get("ingressClassName")
        for obj in facts.expected.objects
        if obj.get("kind") == "Ingress"
    }
    ingress_of: dict[str, dict[str, Any]] = {}
    for ingress in snapshot.items("Ingress"):
        for rule in (ingress.get("spec") or {}).get("rules") or []:
            ingress_of.setdefault(str(rule.get("host", "")), ingress)
    verdicts = []
    for host in facts.expected.ingress_hosts:
        target = f"ingress/{host}"
        ingress = ingress_of.get(host)
        if ingress is None:
            verdicts.append(
                failed(f"no ingress rule for host {host}: requests for it get 404", target)
            )
            continue
        name = _name(ingress)
        live_class = (ingress.get("spec") or {}).get("ingressClassName")
        shipped_class = classes.get(name)
        if shipped_class and live_class != shipped_class:
            verdicts.append(
                failed(
                    f"{host}: Ingress {name} has ingressClassName {live_class}, shipped "
                    f"{shipped_class}: the {shipped_class} controller does not serve it",
                    target,
                )
            )
        else:
            verdicts.append(passed(f"{host} is routed by Ingress {name}", target))
    return verdicts

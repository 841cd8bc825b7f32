"""Cluster checks: the live objects against manifests/, field by field (images, drift)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from immichcheck.verify.checks import Facts, Verdict, check, passed, warned
from immichcheck.verify.checks.cluster import (
    _NEEDS_NAMESPACE,
    _PROBES,
    _name,
    _workload,
)
from immichcheck.verify.checks.cluster_annotations import annotation_drift


def _containers(obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    template = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    return list(template.get("containers") or [])


@check("IC-CL-013", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def images_as_shipped(facts: Facts) -> list[Verdict]:
    """Each component's workload and its running pods use the image pinned in manifests/."""
    verdicts = []
    for key, component in facts.expected.components.items():
        target = f"{component.kind.lower()}/{component.name}"
        live = _workload(facts, component)
        if live is None:
            continue  # IC-CL-005 reports the missing workload
        images = {c.get("name"): c.get("image") for c in _containers(live)}
        running = {
            str(s.get("image"))
            for pod in facts["kube"].pods_matching(component.labels)
            for s in (pod.get("status") or {}).get("containerStatuses") or []
            if s.get("name") == component.container and s.get("image")
        }
        declared = images.get(component.container)
        problems = []
        if declared != component.image:
            problems.append(f"workload runs {declared}, shipped {component.image}")
        stale = sorted(i for i in running if _image_differs(i, component.image))
        if stale:
            problems.append(f"pods run {', '.join(stale)}")
        if problems:
            verdicts.append(warned(f"{key}: {'; '.join(problems)}", target))
        else:
            verdicts.append(passed(f"{key}: {component.image}", target))
    return verdicts


def _image_differs(running: str, shipped: str) -> bool:
    """Container statuses may report docker.io/library/ prefixes or a digest."""

    def normalise(image: str) -> str:
        image = image.split("@", 1)[0]
        for prefix in ("docker.io/library/", "docker.io/"):
            if image.startswith(prefix):
                image = image[len(prefix) :]
        return image

    return normalise(running) != normalise(shipped)


def _ports_of(container: Mapping[str, Any]) -> list[str]:
    return sorted(
        f"{p.get('containerPort')}/{p.get('protocol') or 'TCP'}"
        for p in container.get("ports") or []
    )


def _literal_env(container: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(e.get("name")): str(e.get("value"))
        for e in container.get("env") or []
        if "value" in e and "valueFrom" not in e
    }


def workload_drift(kind: str, shipped: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """Fields where a live Deployment/StatefulSet differs from the shipped one."""
    name = _name(shipped)
    prefix = f"{kind}/{name}"
    drift = []
    shipped_replicas = (shipped.get("spec") or {}).get("replicas", 1)
    live_replicas = (live.get("spec") or {}).get("replicas", 1)
    if shipped_replicas != live_replicas:
        drift.append(f"{prefix} replicas: live {live_replicas}, shipped {shipped_replicas}")
    live_containers = {c.get("name"): c for c in _containers(live)}
    for container in _containers(shipped):
        cname = container.get("name")
        other = live_containers.get(cname)
        where = f"{prefix} container {cname}"
        if other is None:
            drift.append(f"{where}: missing")
            continue
        if container.get("image") != other.get("image"):
            drift.append(
                f"{where} image: live {other.get('image')}, shipped {container.get('image')}"
            )
        if _ports_of(container) != _ports_of(other):
            drift.append(f"{where} ports: live {_ports_of(other)}, shipped {_ports_of(container)}")
        want, have = _literal_env(container), _literal_env(other)
        for env_name in sorted(set(want) | set(have)):
            if want.get(env_name) != have.get(env_name):
                live_value = have.get(env_name, "(unset)")
                drift.append(
                    f"{where} env {env_name}: live {live_value!r}, "
                    f"shipped {want.get(env_name, '(unset)')!r}"
                )
    return drift


def _service_ports(service: Mapping[str, Any]) -> list[str]:
    result = []
    for p in (service.get("spec") or {}).get("ports") or []:
        target = p.get("targetPort", p.get("port"))
        node = f" nodePort {p['nodePort']}" if p.get("nodePort") else ""
        result.append(f"{p.get('port')}->{target}/{p.get('protocol') or 'TCP'}{node}")
    return sorted(result)


def service_drift(shipped: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """Fields where a live Service differs from the shipped one (ports, type, selector)."""
    prefix = f"Service/{_name(shipped)}"
    drift = []
    want_spec, have_spec = shipped.get("spec") or {}, live.get("spec") or {}
    if (want_spec.get("type") or "ClusterIP") != (have_spec.get("type") or "ClusterIP"):
        drift.append(
            f"{prefix} type: live {have_spec.get('type')}, shipped {want_spec.get('type')}"
        )
    if (want_spec.get("selector") or {}) != (have_spec.get("selector") or {}):
        drift.append(
            f"{prefix} selector: live {have_spec.get('selector')}, "
            f"shipped {want_spec.get('selector')}"
        )
    want_ports, have_ports = _service_ports(shipped), _service_ports(live)
    # A live NodePort service always has a nodePort, shipped or not; unless one was shipped,
    # compare the ports without it.
    if any("nodePort" in p for p in want_ports):
        differs = want_ports != have_ports
    else:
        differs = [p.split(" nodePort")[0] for p in want_ports] != [
            p.split(" nodePort")[0] for p in have_ports
        ]
    if differs:
        drift.append(f"{prefix} ports: live {have_ports}, shipped {want_ports}")
    return drift


def configmap_drift(shipped: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
    """Keys whose live ConfigMap data differs from the shipped data."""
    prefix = f"ConfigMap/{_name(shipped)}"
    want, have = shipped.get("data") or {}, live.get("data") or {}
    drift = []
    for key in sorted(set(want) | set(have)):
        if key not in have:
            drift.append(f"{prefix} data {key}: missing live")
        elif key not in want:
            drift.append(f"{prefix} data {key}: only live")
        elif str(want[key]).strip() != str(have[key]).strip():
            settings = _setting_differences(key, str(want[key]), str(have[key]))
            if settings:
                drift += [f"{prefix} data {key} {line}" for line in settings]
            else:
                drift.append(f"{prefix} data {key}: live content differs")
    return drift


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """{"job": {"smartSearch": {"concurrency": 2}}} -> {"job.smartSearch.concurrency": 2}."""
    if isinstance(value, Mapping):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _setting_differences(key: str, shipped: str, live: str) -> list[str]:
    """Setting by setting for the config files verify can read, so drift names the setting.

    [] when the file cannot be parsed that way (the caller then says the content differs).
    """
    from immichcheck.deploy.expected_state import (
        ManifestsError,
        parse_postgresql_conf,
        parse_redis_conf,
    )

    try:
        if key.endswith(".json"):
            want, have = _flatten(json.loads(shipped)), _flatten(json.loads(live))
        elif key == "redis.conf":
            want, have = parse_redis_conf(shipped), parse_redis_conf(live)
        elif key.endswith(".conf"):
            want, have = parse_postgresql_conf(shipped), parse_postgresql_conf(live)
        else:
            return []
    except (ValueError, ManifestsError):
        return []
    return [
        f"{name}: live {have.get(name, '(unset)')!r}, shipped {want.get(name, '(unset)')!r}"
        for name in sorted(set(want) | set(have))
        if want.get(name) != have.get(name)
    ]


@check("IC-CL-014", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def no_drift(facts: Facts) -> Verdict:
    """Every compared field (images, literal env, ports, replicas, ConfigMap data, annotations)
    matches; differences that break something are the FAIL checks' (IC-CL-05x)."""
    snapshot = facts["kube"]
    drift: list[str] = []
    compared = 0
    for shipped in facts.expected.objects:
        kind = str(shipped.get("kind", ""))
        if kind not in ("Deployment", "StatefulSet", "Service", "ConfigMap", "Ingress"):
            continue
        live = snapshot.get(kind, _name(shipped))
        if live is None:
            continue  # a missing object is reported by the check for its kind
        compared += 1
        drift += annotation_drift(shipped, live)
        if kind in ("Deployment", "StatefulSet"):
            drift += workload_drift(kind, shipped, live)
        elif kind == "Service":
            drift += service_drift(shipped, live)
        elif kind == "ConfigMap":
            drift += configmap_drift(shipped, live)
    if drift:
        return warned(
            f"{len(drift)} field(s) differ from manifests/: " + "; ".join(drift),
            target=snapshot.namespace,
            drift=drift,
        )
    return passed(f"{compared} object(s) match manifests/", target=snapshot.namespace)

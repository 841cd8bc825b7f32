"""Cluster checks: the namespace's objects (one snapshot) against the state in manifests/."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from immichcheck.verify.checks import Facts, Verdict, check, errored, failed, passed, warned

NAMESPACE = "IC-CL-001"
_NEEDS_NAMESPACE = (NAMESPACE,)
_PROBES = ("kube",)

# Secret keys that are identifiers, not secrets: no strength rule applies to them.
_NOT_SECRET_KEYS = frozenset({"username", "user", "database"})
MIN_SECRET_LENGTH = 16
MIN_BITS_PER_CHAR = 3.0  # Shannon entropy of the value's characters (random base64 is ~5-6)
_WEAK_WORDS = ("password", "changeme", "immich", "secret", "postgres", "admin", "123456", "qwerty")
RESTART_WARN = 3


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _short(text: str, limit: int = 100) -> str:
    """Kubernetes messages repeat pod names and UIDs; a verdict keeps the first words."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _event_text(events: Iterable[Mapping[str, Any]]) -> str:
    lines = [f"{e.get('reason', '')}: {_short(e.get('message', ''))}" for e in events]
    return "; ".join(line for line in lines if line.strip(": "))


def _read_error(facts: Facts, kind: str) -> Verdict | None:
    """ERROR when the snapshot could not read a kind the check depends on."""
    reason = facts["kube"].errors.get(kind)
    return errored(f"cannot read {kind} objects: {reason}") if reason else None


@check(NAMESPACE, probes=_PROBES)
def namespace_exists(facts: Facts) -> Verdict:
    """The Immich namespace exists (inferred from its objects when RBAC hides the Namespace)."""
    snapshot = facts["kube"]
    exists = snapshot.namespace_exists()
    if exists:
        return passed(f"namespace {snapshot.namespace} exists", target=snapshot.namespace)
    return failed(
        f"namespace {snapshot.namespace} not found ({snapshot.source})", target=snapshot.namespace
    )


@check("IC-CL-002", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def secrets_present(facts: Facts) -> list[Verdict]:
    """Each manual secret exists and has every key the workloads read."""
    snapshot = facts["kube"]
    verdicts = []
    for name, keys in facts.expected.secrets.items():
        target = f"secret/{name}"
        if f"Secret/{name}" in snapshot.errors:
            verdicts.append(
                errored(f"cannot read {name}: {snapshot.errors[f'Secret/{name}']}", target)
            )
            continue
        secret = snapshot.get("Secret", name)
        if secret is None:
            verdicts.append(failed(f"secret {name} does not exist", target))
            continue
        present = set((secret.get("data") or {}) | (secret.get("stringData") or {}))
        missing = [key for key in keys if key not in present]
        if missing:
            verdicts.append(failed(f"secret {name} lacks key(s) {', '.join(missing)}", target))
        else:
            verdicts.append(passed(f"secret {name} has {', '.join(keys)}", target))
    return verdicts


def shannon_bits_per_char(value: str) -> float:
    """Entropy of the character distribution of `value`, in bits per character."""
    if not value:
        return 0.0
    counts = Counter(value)
    total = len(value)
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def secret_weakness(value: str) -> str:
    """Why a secret value is weak ("" when it looks strong); never includes the value."""
    if len(value) < MIN_SECRET_LENGTH:
        return f"has {len(value)} characters (fewer than {MIN_SECRET_LENGTH})"
    bits = shannon_bits_per_char(value)
    if bits < MIN_BITS_PER_CHAR:
        return (
            f"has low randomness ({bits:.1f} bits per character, fewer than {MIN_BITS_PER_CHAR:g})"
        )
    lowered = value.lower()
    for word in _WEAK_WORDS:
        if word in lowered and len(word) * 2 >= len(value) // 2:
            return "is built around a common word"
    return ""


@check("IC-CL-003", probes=_PROBES, requires=("IC-CL-002",))
def secrets_strong(facts: Facts) -> list[Verdict]:
    """Secret values are long and random enough (judged without ever printing them)."""
    from immichcheck.clients.kubernetes import secret_values

    values = secret_values(facts["kube"], facts.expected.secrets)
    verdicts = []
    for name, keys in facts.expected.secrets.items():
        data = values.get(name, {})
        problems = []
        for key in keys:
            if key in _NOT_SECRET_KEYS or key not in data:
                continue
            weakness = secret_weakness(data[key])
            if weakness:
                # "key has ..." rather than "key: ...", which reads like a secret to redaction.
                problems.append(f"{key} {weakness}")
        target = f"secret/{name}"
        if problems:
            verdicts.append(warned(f"{name} has weak values: {'; '.join(problems)}", target))
        else:
            verdicts.append(passed(f"{name} values look strong", target))
    return verdicts


def _parse_conf(text: str) -> list[str]:
    """Lines of a redis.conf / postgresql.conf that are neither comments nor key-value pairs."""
    bad = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key = line.replace("=", " ").split()[0]
        rest = line[len(key) :].strip().lstrip("=").strip()
        if not key.replace("_", "").replace("-", "").replace(".", "").isalnum() or not rest:
            bad.append(f"line {number}")
    return bad


def configmap_problems(name: str, data: Mapping[str, str]) -> list[str]:
    """Parse errors of a ConfigMap's files by their extension (JSON, YAML, .conf)."""
    import yaml

    from immichcheck.common import yaml_text

    problems = []
    for key, text in data.items():
        if key.endswith(".json"):
            try:
                json.loads(text)
            except json.JSONDecodeError as exc:
                problems.append(f"{key} is not valid JSON (line {exc.lineno}: {exc.msg})")
        elif key.endswith((".yaml", ".yml")):
            try:
                yaml_text.load(text)
            except yaml.YAMLError:
                problems.append(f"{key} is not valid YAML")
        elif key.endswith(".conf"):
            bad = _parse_conf(text)
            if bad:
                problems.append(f"{key} has unparseable {', '.join(bad[:3])}")
    return problems


@check("IC-CL-004", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def configmaps_parseable(facts: Facts) -> list[Verdict]:
    """Every shipped ConfigMap exists with its keys, and its files parse."""
    error = _read_error(facts, "ConfigMap")
    if error:
        return [error]
    verdicts = []
    for name, shipped in facts.expected.configmaps.items():
        target = f"configmap/{name}"
        live = facts["kube"].get("ConfigMap", name)
        if live is None:
            verdicts.append(failed(f"ConfigMap {name} does not exist", target))
            continue
        data = live.get("data") or {}
        missing = [key for key in shipped if key not in data]
        problems = ([f"missing key(s) {', '.join(missing)}"] if missing else []) + (
            configmap_problems(name, data)
        )
        if problems:
            verdicts.append(failed(f"ConfigMap {name}: {'; '.join(problems)}", target))
        else:
            verdicts.append(passed(f"ConfigMap {name} present, {len(data)} key(s) parse", target))
    return verdicts


def _workload(facts: Facts, component: Any) -> dict[str, Any] | None:
    return facts["kube"].get(component.kind, component.name)


@check("IC-CL-005", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def workloads_available(facts: Facts) -> list[Verdict]:
    """Each component's Deployment/StatefulSet exists and has its replicas ready."""
    verdicts = []
    for component in facts.expected.components.values():
        target = f"{component.kind.lower()}/{component.name}"
        error = _read_error(facts, component.kind)
        if error:
            verdicts.append(Verdict(error.status, error.message, target))
            continue
        live = _workload(facts, component)
        if live is None:
            verdicts.append(failed(f"{component.kind} {component.name} does not exist", target))
            continue
        wanted = int((live.get("spec") or {}).get("replicas", 1))
        ready = int((live.get("status") or {}).get("readyReplicas") or 0)
        if wanted == 0:
            verdicts.append(failed(f"{component.name} is scaled to 0 replicas", target))
        elif ready < wanted:
            verdicts.append(failed(f"{component.name}: {ready}/{wanted} replicas ready", target))
        else:
            verdicts.append(passed(f"{component.name}: {ready}/{wanted} replicas ready", target))
    return verdicts


def pod_problems(pod: Mapping[str, Any]) -> list[str]:
    """Why a pod is not Running and Ready: phase, waiting reasons, unready containers."""
    status = pod.get("status") or {}
    problems = []
    phase = status.get("phase", "Unknown")
    if phase != "Running":
        problems.append(f"phase {phase}")
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason:
            detail = f" ({_short(waiting['message'])})" if waiting.get("message") else ""
            problems.append(f"container {container.get('name')} {reason}{detail}")
        elif not container.get("ready", False):
            problems.append(f"container {container.get('name')} not ready")
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if not problems and conditions.get("Ready") != "True":
        problems.append("not Ready")
    return problems


@check("IC-CL-006", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def pods_ready(facts: Facts) -> list[Verdict]:
    """Every component has pods, all Running and Ready; failures name the reason and events."""
    error = _read_error(facts, "Pod")
    if error:
        return [error]
    snapshot = facts["kube"]
    verdicts = []
    for key, component in facts.expected.components.items():
        target = f"pods/{component.name}"
        pods = snapshot.pods_matching(component.labels)
        if not pods:
            events = _event_text(snapshot.events_for(component.kind, component.name))
            hint = f"; events: {events}" if events else ""
            verdicts.append(failed(f"{key}: no pods match {dict(component.labels)}{hint}", target))
            continue
        bad = []
        for pod in pods:
            problems = pod_problems(pod)
            if problems:
                events = _event_text(snapshot.events_for("Pod", _name(pod)))
                hint = f" (last events: {events})" if events else ""
                bad.append(f"{_name(pod)}: {', '.join(problems)}{hint}")
        if bad:
            verdicts.append(failed(f"{key}: {'; '.join(bad)}", target, pods=len(pods)))
        else:
            verdicts.append(passed(f"{key}: {len(pods)} pod(s) Running and Ready", target))
    return verdicts


@check("IC-CL-007", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def pods_not_restarting(facts: Facts) -> list[Verdict]:
    """Containers have not restarted repeatedly (the last termination reason is named)."""
    error = _read_error(facts, "Pod")
    if error:
        return [error]
    verdicts = []
    for key, component in facts.expected.components.items():
        target = f"pods/{component.name}"
        restarts = 0
        reasons = []
        for pod in facts["kube"].pods_matching(component.labels):
            for container in (pod.get("status") or {}).get("containerStatuses") or []:
                restarts += int(container.get("restartCount") or 0)
                last = (container.get("lastState") or {}).get("terminated") or {}
                if last.get("reason"):
                    code = last.get("exitCode")
                    reasons.append(
                        f"{last['reason']} (exit {code})" if code is not None else last["reason"]
                    )
        detail = f"; last termination: {', '.join(sorted(set(reasons)))}" if reasons else ""
        if restarts >= RESTART_WARN:
            verdicts.append(
                warned(f"{key}: {restarts} restart(s){detail}", target, restarts=restarts)
            )
        else:
            verdicts.append(
                passed(f"{key}: {restarts} restart(s){detail}", target, restarts=restarts)
            )
    return verdicts


@check("IC-CL-008", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def pods_on_pinned_node(facts: Facts) -> list[Verdict]:
    """PostgreSQL, Redis and ML (whatever manifests/ pins) run on the pinned node."""
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
        if wrong:
            verdicts.append(
                warned(
                    f"{key} runs on {', '.join(wrong)}, manifests pin it to {component.node}",
                    target,
                )
            )
        else:
            verdicts.append(passed(f"{key} runs on {component.node}", target))
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
    """Each shipped PVC is Bound with at least the requested capacity."""
    error = _read_error(facts, "PersistentVolumeClaim")
    if error:
        return [error]
    snapshot = facts["kube"]
    verdicts = []
    for name, spec in facts.expected.pvcs.items():
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
                    f"PVC {name} Bound, capacity {capacity} bytes", target, capacity_bytes=capacity
                )
            )
    return verdicts


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
    """The NodePort service keeps the shipped port and ClientIP session affinity."""
    expected = facts.expected
    name = expected.nodeport_service
    target = f"service/{name}"
    live = facts["kube"].get("Service", name)
    if live is None:
        return failed(f"service {name} does not exist", target)
    spec = live.get("spec") or {}
    shipped = expected.services[name]
    problems = []
    if spec.get("type") != "NodePort":
        problems.append(f"type {spec.get('type')}, shipped NodePort")
    node_ports = [p.get("nodePort") for p in spec.get("ports") or []]
    if expected.nodeport not in node_ports:
        problems.append(f"nodePort {node_ports}, shipped {expected.nodeport}")
    affinity = spec.get("sessionAffinity") or "None"
    if (shipped.session_affinity or "None") != affinity:
        problems.append(f"sessionAffinity {affinity}, shipped {shipped.session_affinity}")
    timeout = (((spec.get("sessionAffinityConfig") or {}).get("clientIP")) or {}).get(
        "timeoutSeconds"
    )
    if shipped.session_affinity_timeout and timeout != shipped.session_affinity_timeout:
        problems.append(f"affinity timeout {timeout}, shipped {shipped.session_affinity_timeout}")
    if problems:
        return warned(f"{name}: {'; '.join(problems)}", target)
    return passed(
        f"{name}: NodePort {expected.nodeport}, sessionAffinity {affinity}"
        + (f" ({timeout} s)" if timeout else ""),
        target,
    )


@check("IC-CL-012", probes=_PROBES, requires=_NEEDS_NAMESPACE)
def ingress_as_shipped(facts: Facts) -> list[Verdict]:
    """Every shipped ingress host has a rule whose backend service and port exist."""
    error = _read_error(facts, "Ingress")
    if error:
        return [error]
    snapshot = facts["kube"]
    rules: dict[str, list[dict[str, Any]]] = {}
    for ingress in snapshot.items("Ingress"):
        for rule in (ingress.get("spec") or {}).get("rules") or []:
            rules.setdefault(str(rule.get("host", "")), []).append(rule)
    verdicts = []
    for host in facts.expected.ingress_hosts:
        target = f"ingress/{host}"
        if host not in rules:
            verdicts.append(failed(f"no ingress rule for host {host}", target))
            continue
        problems = []
        for rule in rules[host]:
            for path in (rule.get("http") or {}).get("paths") or []:
                backend = (path.get("backend") or {}).get("service") or {}
                service = snapshot.get("Service", str(backend.get("name", "")))
                if service is None:
                    problems.append(f"backend service {backend.get('name')} does not exist")
                    continue
                port = backend.get("port") or {}
                ports = (service.get("spec") or {}).get("ports") or []
                if not any(
                    p.get("port") == port.get("number")
                    or (port.get("name") and p.get("name") == port.get("name"))
                    for p in ports
                ):
                    problems.append(
                        f"backend {backend.get('name')} has no port "
                        f"{port.get('number') or port.get('name')}"
                    )
        if problems:
            verdicts.append(failed(f"{host}: {'; '.join(problems)}", target))
        else:
            verdicts.append(passed(f"{host} routes to existing backends", target))
    return verdicts


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
    """Every compared field (images, literal env, ports, replicas, ConfigMap data) matches."""
    snapshot = facts["kube"]
    drift: list[str] = []
    compared = 0
    for shipped in facts.expected.objects:
        kind = str(shipped.get("kind", ""))
        live = snapshot.get(kind, _name(shipped))
        if live is None:
            continue  # a missing object is reported by the check for its kind
        compared += 1
        if kind in ("Deployment", "StatefulSet"):
            drift += workload_drift(kind, shipped, live)
        elif kind == "Service":
            drift += service_drift(shipped, live)
        elif kind == "ConfigMap":
            drift += configmap_drift(shipped, live)
        else:
            compared -= 1
    if drift:
        return warned(
            f"{len(drift)} field(s) differ from manifests/: " + "; ".join(drift),
            target=snapshot.namespace,
            drift=drift,
        )
    return passed(f"{compared} object(s) match manifests/", target=snapshot.namespace)

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

"""Job queue checks from the server's own view (GET /api/queues, or /api/jobs before v2.3).

Paused queues (an admin pressed pause and forgot), failures piling up, and stalled queues:
work waiting, nothing active and nothing changing across two readings a moment apart. A busy
queue that moves between the readings is not stalled. The last check compares the counts
with the BullMQ keys verify reads in Redis: when they differ, the server may use another Redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from immichcheck.clients.immich_admin import stall_candidates
from immichcheck.verify.checks import (
    Facts,
    Verdict,
    check,
    errored,
    failed,
    passed,
    warned,
)
from immichcheck.verify.checks.admin_answers import unusable

_PROBES = ("immich.queues",)
_AFTER_PING = ("IC-SV-401",)  # a server that does not answer is reported once, there
DEFAULT_FAILED_WARN = 10
# The counts BullMQ gives for a queue and the Redis key each comes from (clients/redis.py).
REDIS_STATE = {"waiting": "wait", "active": "active", "failed": "failed", "delayed": "delayed"}


def _states(facts: Facts) -> tuple[Mapping[str, Any], Verdict | None]:
    """The first reading, or the verdict that explains why there is none."""
    data = facts["immich.queues"]
    target = f"{data['url']}{data['path']}"
    problem = unusable(data["answer"], data["path"], target)
    if problem:
        return data, problem
    if data["first"] is None:
        return data, errored(f"could not run: {data['problem']}", target)
    return data, None


def _target(data: Mapping[str, Any]) -> str:
    return f"{data['url']}{data['path']}"


@check("IC-SV-425", probes=_PROBES, requires=_AFTER_PING)
def no_queue_paused(facts: Facts) -> Verdict:
    """No job queue is paused."""
    data, problem = _states(facts)
    if problem:
        return problem
    paused = sorted(name for name, state in data["first"].items() if state["paused"])
    if paused:
        waiting = {n: data["first"][n]["counts"].get("waiting", 0) for n in paused}
        listing = ", ".join(f"{n} ({waiting[n]} waiting)" for n in paused)
        return warned(
            f"paused: {listing}; resume in Administration > Job Queues, or "
            f'PUT /api/queues/{paused[0]} {{"isPaused": false}}',
            _target(data),
            paused=paused,
        )
    return passed(f"none of {len(data['first'])} queues paused", _target(data))


@check("IC-SV-426", probes=_PROBES, requires=_AFTER_PING)
def failed_jobs_under_threshold(facts: Facts) -> Verdict:
    """No queue holds more failed jobs than the threshold (--failed-jobs-warn)."""
    data, problem = _states(facts)
    if problem:
        return problem
    threshold = int(facts.settings.get("failed_jobs_warn", DEFAULT_FAILED_WARN))
    over = {
        name: state["counts"].get("failed", 0)
        for name, state in data["first"].items()
        if state["counts"].get("failed", 0) > threshold
    }
    if over:
        reasons = data.get("failures") or {}
        parts = []
        for name, count in sorted(over.items()):
            reason = str(reasons.get(name) or "").splitlines()[0:1]
            parts.append(f"{name} {count}" + (f" (newest: {reason[0][:120]})" if reason else ""))
        return warned(
            f"failed jobs over {threshold}: {'; '.join(parts)}", _target(data), failed=over
        )
    total = sum(state["counts"].get("failed", 0) for state in data["first"].values())
    return passed(f"{total} failed job(s) in all, none over {threshold} per queue", _target(data))


@check("IC-SV-427", probes=_PROBES, requires=_AFTER_PING)
def no_queue_stalled(facts: Facts) -> Verdict:
    """No queue has work waiting with nothing active and no change across two readings."""
    data, problem = _states(facts)
    if problem:
        return problem
    first, second = data["first"], data.get("second")
    # The same rule the probe used to decide on a second reading.
    candidates = stall_candidates(first)
    if not candidates:
        return passed("every queue with waiting work has jobs active (or is paused)", _target(data))
    if second is None:
        return errored("could not run: the second reading of the queues failed", _target(data))
    settle = float(data.get("settle_seconds", 0.0))
    stalled, moving = [], []
    for name in candidates:
        if name not in second:
            return errored(
                f"could not run: the second reading of the queues did not list {name}",
                _target(data),
            )
        before, after = first[name]["counts"], second[name]["counts"]
        if after == before and after.get("active", 0) == 0:
            stalled.append(f"{name} ({before.get('waiting', 0)} waiting)")
        else:
            moving.append(f"{name} (waiting {before.get('waiting')} -> {after.get('waiting')})")
    if stalled:
        also = f"; moving: {', '.join(moving)}" if moving else ""
        return failed(
            f"stalled: {', '.join(stalled)}: none active and no change in {settle:.1f} s{also}",
            _target(data),
            stalled=stalled,
        )
    return passed(f"moving: {', '.join(moving)}", _target(data))


@check("IC-SV-428", probes=("immich.queues", "redis"), requires=_AFTER_PING)
def queues_agree_with_redis(facts: Facts) -> Verdict:
    """The server's queue counts match the BullMQ keys in the Redis verify reads."""
    data, problem = _states(facts)
    if problem:
        return problem
    redis = facts["redis"]
    where = str(redis.get("location") or "redis")
    compared, differ = 0, []
    for name, state in data["first"].items():
        counts = state["counts"]
        keys = redis["queues"].get(name)
        if keys is None or counts.get("active", 0) > 0:
            continue  # a queue at work changes between the two reads: no fair comparison
        if data.get("second") and (data["second"].get(name) or {}).get("counts") != counts:
            continue
        compared += 1
        for api_name, key in REDIS_STATE.items():
            if keys.get(key, -1) >= 0 and keys[key] != counts.get(api_name, 0):
                differ.append(f"{name} {api_name} {counts.get(api_name, 0)} vs {key} {keys[key]}")
    if differ:
        registered = sum(1 for keys in redis["queues"].values() if keys.get("meta", 0) > 0)
        hint = (
            f"; {where} holds no Immich queue keys: the server uses another Redis"
            if registered == 0
            else ""
        )
        return warned(
            f"server and Redis {where} disagree: {'; '.join(differ[:4])}{hint}",
            _target(data),
            differ=differ,
        )
    return passed(f"{compared} idle queue(s) agree with Redis {where}", _target(data))

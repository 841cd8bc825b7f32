"""Redis checks: persistence, memory policy and Immich's BullMQ queues (probes/redis.py)."""

from __future__ import annotations

import re

from immichcheck.verify.checks import Facts, Verdict, check, failed, passed, warned

PING = "IC-RD-201"
AOF = "IC-RD-202"
_PROBES = ("redis",)
_AFTER_PING = (PING,)

MEMORY_WARN = 0.8
MEMORY_FAIL = 0.95
BACKLOG_WARN = 10_000  # waiting jobs in one queue before a backlog is worth a warning

_REDIS_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}


def redis_bytes(text: str) -> int:
    """A redis.conf memory value ("400mb", "1g", "1048576") in bytes (Redis's own unit rules)."""
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in _REDIS_UNITS:
        raise ValueError(f"not a Redis memory value: {text!r}")
    return int(match.group(1)) * _REDIS_UNITS[match.group(2).lower()]


def _target(facts: Facts) -> str:
    return str(facts["redis"].get("location") or "redis")


@check(PING, probes=_PROBES)
def answers_ping(facts: Facts) -> Verdict:
    """Redis answers PING."""
    redis = facts["redis"]
    if not redis["ping"]:
        return failed("PING did not return PONG", _target(facts))
    return passed(
        f"PONG in {redis['ping_seconds'] * 1000:.1f} ms "
        f"({redis['server_name']} {redis['version']})",
        _target(facts),
    )


@check(AOF, probes=_PROBES, requires=_AFTER_PING)
def aof_enabled(facts: Facts) -> Verdict:
    """Append-only persistence is on, so queued jobs survive a restart."""
    if not facts["redis"]["aof_enabled"]:
        return failed("appendonly is off: queued jobs are lost when Redis restarts", _target(facts))
    return passed("appendonly yes", _target(facts))


@check("IC-RD-203", probes=_PROBES, requires=(AOF,))
def aof_healthy(facts: Facts) -> Verdict:
    """The last AOF write and the last rewrite succeeded."""
    redis = facts["redis"]
    problems = [
        f"{field} is {redis[field]}"
        for field in ("aof_last_write_status", "aof_last_bgrewrite_status")
        if redis[field] and redis[field] != "ok"
    ]
    if problems:
        return failed("; ".join(problems), _target(facts))
    rewriting = " (a rewrite is in progress)" if redis["aof_rewrite_in_progress"] else ""
    return passed(f"last AOF write and rewrite ok{rewriting}", _target(facts))


@check("IC-RD-204", probes=_PROBES, requires=_AFTER_PING)
def memory_settings_as_shipped(facts: Facts) -> Verdict:
    """maxmemory and appendfsync are the values in immich-redis-config."""
    redis = facts["redis"]
    shipped = facts.expected.redis_settings
    problems = []
    if "maxmemory" in shipped:
        want = redis_bytes(shipped["maxmemory"])
        if redis["maxmemory"] != want:
            problems.append(
                f"maxmemory is {redis['maxmemory']} bytes, "
                f"shipped {shipped['maxmemory']} ({want} bytes)"
            )
    live_fsync = redis["config"].get("appendfsync")
    if "appendfsync" in shipped and live_fsync is not None and live_fsync != shipped["appendfsync"]:
        problems.append(f"appendfsync is {live_fsync}, shipped {shipped['appendfsync']}")
    if problems:
        return warned("; ".join(problems), _target(facts))
    return passed(
        f"maxmemory {redis['maxmemory']} bytes, "
        f"appendfsync {live_fsync or 'unknown (CONFIG disabled)'}",
        _target(facts),
    )


@check("IC-RD-205", probes=_PROBES, requires=_AFTER_PING)
def eviction_policy_safe(facts: Facts) -> Verdict:
    """maxmemory-policy is noeviction: BullMQ's jobs are keys an evicting policy would delete."""
    redis = facts["redis"]
    policy = redis["maxmemory_policy"]
    if policy != "noeviction":
        evicted = (
            f"; {redis['evicted_keys']} key(s) evicted so far" if redis["evicted_keys"] else ""
        )
        return failed(
            f"maxmemory-policy is {policy}: when memory fills, Redis evicts keys and BullMQ "
            f"jobs (Immich's queues) can be dropped silently{evicted}",
            _target(facts),
            policy=policy,
        )
    return passed("maxmemory-policy noeviction", _target(facts))


@check("IC-RD-206", probes=_PROBES, requires=_AFTER_PING)
def memory_headroom(facts: Facts) -> Verdict:
    """Used memory stays well below maxmemory."""
    redis = facts["redis"]
    used, maximum = redis["used_memory"], redis["maxmemory"]
    if not maximum:
        return warned(
            f"no maxmemory set; {used} bytes used and no limit to judge against", _target(facts)
        )
    share = used / maximum
    message = f"{used / 1024**2:.1f} MiB of {maximum / 1024**2:.0f} MiB used ({share:.0%})"
    if share >= MEMORY_FAIL:
        return failed(message, _target(facts), used_bytes=used)
    if share >= MEMORY_WARN:
        return warned(message, _target(facts), used_bytes=used)
    return passed(message, _target(facts), used_bytes=used)


@check("IC-RD-207", probes=_PROBES, requires=_AFTER_PING)
def queue_backlogs(facts: Facts) -> Verdict:
    """No Immich queue has a runaway backlog of waiting jobs."""
    queues = facts["redis"]["queues"]
    depths = {
        name: {
            state: n
            for state, n in counts.items()
            if state in ("wait", "active", "delayed") and n > 0
        }
        for name, counts in queues.items()
    }
    busy = {name: states for name, states in depths.items() if states}
    known = [name for name, counts in queues.items() if counts.get("meta", 0) > 0]
    summary = ", ".join(
        f"{name} " + "/".join(f"{state} {n}" for state, n in states.items())
        for name, states in busy.items()
    )
    big = [name for name, counts in queues.items() if counts.get("wait", 0) >= BACKLOG_WARN]
    evidence = {"queues": busy, "queues_seen": len(known)}
    if big:
        return warned(f"large backlog in {', '.join(big)}: {summary}", _target(facts), **evidence)
    if not busy:
        return passed(
            f"all queues idle ({len(known)} Immich queue(s) registered)", _target(facts), **evidence
        )
    return passed(f"queued work: {summary}", _target(facts), **evidence)


@check("IC-RD-208", probes=_PROBES, requires=_AFTER_PING)
def no_failed_jobs(facts: Facts) -> Verdict:
    """No Immich queue holds failed jobs."""
    queues = facts["redis"]["queues"]
    failed_jobs = {
        name: counts["failed"] for name, counts in queues.items() if counts.get("failed", 0) > 0
    }
    if failed_jobs:
        listing = ", ".join(f"{name} {n}" for name, n in sorted(failed_jobs.items()))
        return warned(
            f"{sum(failed_jobs.values())} failed job(s): {listing}",
            _target(facts),
            failed=failed_jobs,
        )
    return passed("no failed jobs", _target(facts))

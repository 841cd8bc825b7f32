"""What AOF did around one Redis measurement: INFO persistence and LATENCY LATEST before and
after, the difference, and the sentences a user should read about it."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

import redis.exceptions

from immichcheck.bench.suites.redis_control import RedisBenchError, RedisControl


def aof_snapshot(control: RedisControl) -> dict[str, Any]:
    """Persistence facts at one moment: INFO persistence plus LATENCY LATEST events."""
    persistence = control.info("persistence")
    events: dict[str, float] = {}
    with contextlib.suppress(redis.exceptions.ResponseError, RedisBenchError):
        for entry in control.call("LATENCY", "LATEST") or []:
            name = str(entry[0])
            events[name] = float(entry[3]) / 1000.0  # max latency in ms -> seconds
    return {
        "appendonly": control.config_get("appendonly"),
        "appendfsync": control.config_get("appendfsync"),
        "aof_enabled": persistence.get("aof_enabled"),
        "aof_delayed_fsync": int(persistence.get("aof_delayed_fsync", "0") or 0),
        "aof_rewrite_in_progress": persistence.get("aof_rewrite_in_progress") == "1",
        "aof_last_write_status": persistence.get("aof_last_write_status"),
        "aof_last_bgrewrite_status": persistence.get("aof_last_bgrewrite_status"),
        "latency_events": events,
    }


def aof_facts(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """What changed across one run."""
    return {
        "appendonly": after["appendonly"],
        "appendfsync": after["appendfsync"],
        "aof_delayed_fsync_delta": after["aof_delayed_fsync"] - before["aof_delayed_fsync"],
        "aof_rewrite_in_progress": after["aof_rewrite_in_progress"],
        "aof_last_write_status": after["aof_last_write_status"],
        "fsync_latency_events": {
            name: seconds
            for name, seconds in after["latency_events"].items()
            if "fsync" in name or "aof" in name
        },
    }


def aof_notes(facts: Mapping[str, Any]) -> list[str]:
    """Human sentences for the AOF facts that matter."""
    notes = []
    delayed = facts["aof_delayed_fsync_delta"]
    if delayed:
        notes.append(
            f"aof_delayed_fsync +{delayed}: the disk took over a second for an fsync while "
            "Redis waited (everysec can lose up to 2 s of jobs on a crash)"
        )
    if facts["aof_last_write_status"] not in (None, "ok"):
        notes.append(f"AOF last write status is {facts['aof_last_write_status']}")
    for name, seconds in facts["fsync_latency_events"].items():
        notes.append(f"latency event {name}: max {seconds * 1000:.0f} ms")
    return notes


def wait_for_rewrite(control: RedisControl, timeout: float = 60.0) -> None:
    """Wait until no AOF rewrite is running (switching AOF on starts one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = control.info("persistence")
        if info.get("aof_rewrite_in_progress") != "1" and info.get("aof_rewrite_scheduled") != "1":
            return
        time.sleep(0.05)

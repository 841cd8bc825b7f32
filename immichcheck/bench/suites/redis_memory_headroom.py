"""Whether the Redis benchmark's keys fit: refuse before writing anything that could push the
server into eviction (Immich's queued jobs) or OOM errors (Immich's writes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from immichcheck.bench.suites.redis_control import RedisBenchError

# Each list entry / job costs its value plus Redis bookkeeping (listpack/hash overhead).
PER_ITEM_OVERHEAD_BYTES = 64
# Refuse when used memory plus the footprint would pass this share of maxmemory.
MEMORY_SAFETY_SHARE = 0.80


def footprint_bytes(settings: Mapping[str, Any]) -> int:
    """The most memory the suite's keys can hold at once."""
    value = int(settings["value_bytes"]) + PER_ITEM_OVERHEAD_BYTES
    lists = int(settings["list_max_items"]) * value
    jobs = int(settings["bullmq_max_jobs"]) * (value + 160)  # hash fields beyond the data
    streams = 3 * 10_000 * 120  # events streams are capped near 10k entries
    return max(lists, jobs) + streams + int(settings["connections"]) * value


def check_memory_headroom(memory: Mapping[str, str], footprint: int, location: str) -> str:
    """Refuse (raise) when the footprint could push Redis into eviction or OOM; else a note."""
    used = int(memory.get("used_memory", "0"))
    maxmemory = int(memory.get("maxmemory", "0"))
    policy = memory.get("maxmemory_policy", "noeviction")
    limit = maxmemory or int(memory.get("total_system_memory", "0"))
    what = "maxmemory" if maxmemory else "system memory (maxmemory is 0: unlimited)"
    mib = 1024 * 1024
    if limit <= 0:
        return f"Redis reports no memory limit; footprint up to {footprint / mib:.0f} MiB"
    projected = used + footprint
    if projected > limit * MEMORY_SAFETY_SHARE:
        consequence = (
            "writes from Immich would fail with OOM errors"
            if policy == "noeviction"
            else f"policy {policy} would evict keys, possibly queued Immich jobs"
        )
        raise RedisBenchError(
            f"refusing to write to Redis at {location}: used {used / mib:.1f} MiB + benchmark "
            f"up to {footprint / mib:.1f} MiB = {projected / mib:.1f} MiB, "
            f"{projected / limit:.0%} of {what} {limit / mib:.0f} MiB "
            f"(limit {MEMORY_SAFETY_SHARE:.0%}; {consequence}); "
            "use a smaller --profile or raise maxmemory"
        )
    return (
        f"memory headroom: used {used / mib:.1f} MiB + up to {footprint / mib:.1f} MiB "
        f"of {what} {limit / mib:.0f} MiB ({policy})"
    )

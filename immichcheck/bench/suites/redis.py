"""Redis benchmarks: the write pattern Immich's BullMQ queues put on Redis, and what AOF costs.

Workloads (all keys under `immichcheck:bench:`, removed afterwards):

- `redis.set` / `redis.lpush`: throughput at pipeline 1 and 16 with 50 connections, values
  the size of an Immich job (a BullMQ job hash holds a few hundred bytes of JSON).
- `redis.get`: round-trip latency of one GET on one connection.
- `redis.bullmq.enqueue` / `redis.bullmq.dequeue`: Lua scripts shaped like BullMQ's addJob
  and moveToActive + moveToFinished (a job hash, the wait/active lists and the events
  stream), because that is what Immich really sends.
- `redis.set.aof` (`--local` only): the SET throughput with AOF off, everysec and always on
  the chosen data dir, so a user sees what durability costs on that disk.

Every result carries AOF facts from around its run (appendonly, appendfsync, the
aof_delayed_fsync delta, rewrite in progress, last write status, LATENCY LATEST events).
Before writing, the suite compares used_memory/maxmemory with the benchmark's footprint and
refuses when it could push the server into eviction or OOM errors. The load comes from
`engine.SocketLoadPool` (pre-encoded commands, reply counting); control commands, where the
client's speed does not matter, use redis-py (`redis_control.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from immichcheck.bench.base import BenchContext
from immichcheck.bench.load.engine import SocketJob, SocketLoadPool
from immichcheck.bench.load.resp_wire import encode_command
from immichcheck.bench.suites.redis_aof_facts import (
    aof_facts,
    aof_notes,
    aof_snapshot,
    wait_for_rewrite,
)
from immichcheck.bench.suites.redis_control import KEY_PREFIX, RedisControl, RedisTarget
from immichcheck.bench.suites.redis_memory_headroom import check_memory_headroom, footprint_bytes
from immichcheck.common.records import BenchmarkResult

DEFAULTS: Mapping[str, Any] = {
    "connections": 50,
    "pipelines": [1, 16],
    "value_bytes": 300,
    "list_max_items": 200_000,
    "bullmq_connections": 8,
    "bullmq_max_jobs": 50_000,
    "workers": 0,  # 0: engine default (half the cores)
    "aof_modes": ["no", "everysec", "always"],
}

ENQUEUE_SCRIPT = """
local id = redis.call('INCR', KEYS[1])
local jobKey = ARGV[1] .. id
redis.call('HSET', jobKey, 'name', ARGV[2], 'data', ARGV[3], 'opts', ARGV[4],
  'timestamp', ARGV[5], 'delay', '0', 'priority', '0')
redis.call('LPUSH', KEYS[2], id)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', '10000', '*', 'event', 'added', 'jobId', id,
  'name', ARGV[2])
return id
"""
MOVE_TO_ACTIVE_SCRIPT = """
local id = redis.call('RPOPLPUSH', KEYS[1], KEYS[2])
if not id then return 0 end
local jobKey = ARGV[1] .. id
redis.call('HSET', jobKey, 'processedOn', ARGV[2], 'attemptsMade', '1')
redis.call('XADD', KEYS[3], 'MAXLEN', '~', '10000', '*', 'event', 'active', 'jobId', id)
return redis.call('HGET', jobKey, 'timestamp') and 1 or 0
"""
MOVE_TO_FINISHED_SCRIPT = """
local id = redis.call('RPOP', KEYS[1])
if not id then return 0 end
redis.call('DEL', ARGV[1] .. id)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '10000', '*', 'event', 'completed', 'jobId', id)
return 1
"""


def job_value(size: int) -> bytes:
    """JSON shaped like an Immich job payload, padded to `size` bytes (no '-' so replies of
    GET never look like errors to the fast reply counter)."""
    body = b'{"id":"7f3c1e2a9b4d4c0e8f1a2b3c4d5e6f70","source":"upload","pad":"'
    tail = b'"}'
    return body + b"x" * max(0, size - len(body) - len(tail)) + tail


def redis_settings(ctx: BenchContext) -> dict[str, Any]:
    """The profile's `redis` section over the defaults."""
    return ctx.profile.suite_settings("redis", DEFAULTS)


class RedisSuite:
    """Redis throughput, latency, BullMQ-shaped jobs and AOF cost."""

    name = "redis"

    def unavailable_reason(self, ctx: BenchContext) -> str | None:
        """Needs a Redis URL (the local stack provides one)."""
        if not ctx.redis_url:
            return "no Redis to benchmark (give --redis-url or use --local)"
        if ctx.engine == "native":
            from immichcheck.bench.native.tool_process import tool_path

            if tool_path("redis-benchmark") is None:
                return "--engine native needs redis-benchmark on PATH (apt-get install redis-tools)"
        return None

    async def run(self, ctx: BenchContext) -> Sequence[BenchmarkResult]:
        """Run every Redis workload; the bench keys are removed even on Ctrl-C or failure."""
        assert ctx.redis_url
        target = RedisTarget.from_url(ctx.redis_url)
        settings = redis_settings(ctx)
        control = await asyncio.to_thread(RedisControl, target)
        try:
            server = await asyncio.to_thread(control.info, "server")
            ctx.service_versions["redis"] = server.get("redis_version", "unknown")
            # Leftovers of a run that crashed are ours (our prefix): remove them first.
            await asyncio.to_thread(control.remove_bench_keys)
            memory = await asyncio.to_thread(control.info, "memory")
            headroom = check_memory_headroom(memory, footprint_bytes(settings), target.location)
            ctx.progress.step("redis: " + headroom)
            if ctx.engine == "native":
                from immichcheck.bench.native.redis_benchmark import run_redis_benchmark

                value = job_value(int(settings["value_bytes"])).decode()
                return await run_redis_benchmark(
                    ctx, target, settings, key_prefix=KEY_PREFIX, value=value
                )
            return await self._run_workloads(ctx, target, control, settings)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.to_thread(_final_cleanup, control))

    async def _run_workloads(
        self,
        ctx: BenchContext,
        target: RedisTarget,
        control: RedisControl,
        settings: Mapping[str, Any],
    ) -> list[BenchmarkResult]:
        results: list[BenchmarkResult] = []
        handshake, handshake_replies = target.handshake()
        value = job_value(int(settings["value_bytes"]))
        connections = int(settings["connections"])
        workers = int(settings["workers"]) or None
        base = SocketJob(
            host=target.host,
            port=target.port,
            connections=connections,
            request=b"",
            replies_per_request=1,
            protocol="resp",
            warmup=float(settings["warmup_seconds"]),
            duration=float(settings["duration_seconds"]),
            setup=handshake,
            setup_replies=handshake_replies,
        )
        async with SocketLoadPool(workers) as pool:

            async def measure(
                workload: str,
                parameters: dict[str, Any],
                job: SocketJob,
                *,
                operations_per_request: int | None = None,
                after: str | None = None,
            ) -> BenchmarkResult:
                ctx.progress.step(f"{workload} {parameters}")
                before = await asyncio.to_thread(aof_snapshot, control)
                result = await pool.run(
                    workload,
                    parameters,
                    job,
                    operations_per_request=operations_per_request,
                    bytes_per_operation=len(value) if "value_bytes" in parameters else None,
                )
                after_snapshot = await asyncio.to_thread(aof_snapshot, control)
                facts = aof_facts(before, after_snapshot)
                if after:
                    await asyncio.to_thread(control.call, "UNLINK", after)
                return _with_aof(result, facts)

            for pipeline in settings["pipelines"]:
                pipeline = int(pipeline)
                set_request = b"".join(
                    encode_command("SET", f"{KEY_PREFIX}set:{i}", value) for i in range(pipeline)
                )
                results.append(
                    await measure(
                        "redis.set",
                        {"value_bytes": len(value), "pipeline": pipeline},
                        _with(base, request=set_request, replies_per_request=pipeline),
                    )
                )
                list_key = f"{KEY_PREFIX}list"
                results.append(
                    await measure(
                        "redis.lpush",
                        {"value_bytes": len(value), "pipeline": pipeline},
                        _with(
                            base,
                            request=encode_command("LPUSH", list_key, value) * pipeline,
                            replies_per_request=pipeline,
                            max_requests=int(settings["list_max_items"]) // pipeline,
                        ),
                        after=list_key,
                    )
                )
            await asyncio.to_thread(control.call, "SET", f"{KEY_PREFIX}get", value)
            results.append(
                await measure(
                    "redis.get",
                    {"value_bytes": len(value), "pipeline": 1},
                    _with(
                        base,
                        connections=1,
                        request=encode_command("GET", f"{KEY_PREFIX}get"),
                    ),
                )
            )
            results.extend(await self._bullmq(ctx, control, base, settings, measure))
            if ctx.local:
                results.extend(await self._aof_modes(ctx, control, base, value, settings, measure))
        return results

    async def _bullmq(
        self,
        ctx: BenchContext,
        control: RedisControl,
        base: SocketJob,
        settings: Mapping[str, Any],
        measure: Any,
    ) -> list[BenchmarkResult]:
        queue = f"{KEY_PREFIX}bull:thumbnailGeneration:"
        shas = {}
        for name, script in (
            ("enqueue", ENQUEUE_SCRIPT),
            ("active", MOVE_TO_ACTIVE_SCRIPT),
            ("finished", MOVE_TO_FINISHED_SCRIPT),
        ):
            shas[name] = str(await asyncio.to_thread(control.call, "SCRIPT", "LOAD", script))
        data = job_value(int(settings["value_bytes"]) // 2)
        opts = b'{"attempts":3,"removeOnComplete":true,"removeOnFail":false}'
        enqueue = encode_command(
            "EVALSHA",
            shas["enqueue"],
            3,
            queue + "id",
            queue + "wait",
            queue + "events",
            queue,
            "generate-thumbnails",
            data,
            opts,
            str(int(time.time() * 1000)),
        )
        connections = int(settings["bullmq_connections"])
        max_jobs = int(settings["bullmq_max_jobs"])
        results = [
            await measure(
                "redis.bullmq.enqueue",
                {"queue": "thumbnailGeneration", "data_bytes": len(data)},
                _with(base, connections=connections, request=enqueue, max_requests=max_jobs),
            )
        ]
        waiting = int(await asyncio.to_thread(control.call, "LLEN", queue + "wait"))
        dequeue = encode_command(
            "EVALSHA",
            shas["active"],
            3,
            queue + "wait",
            queue + "active",
            queue + "events",
            queue,
            str(int(time.time() * 1000)),
        ) + encode_command(
            "EVALSHA", shas["finished"], 2, queue + "active", queue + "events", queue
        )
        # No warm-up and a cap below the queue length: an empty queue would answer instantly.
        cap = max(1, waiting - connections * 2)
        results.append(
            await measure(
                "redis.bullmq.dequeue",
                {
                    "queue": "thumbnailGeneration",
                    "data_bytes": len(data),
                    "jobs": cap,
                    "pipeline": 1,
                },
                _with(
                    base,
                    connections=connections,
                    request=dequeue,
                    replies_per_request=2,
                    warmup=0.0,
                    max_requests=cap,
                ),
                operations_per_request=1,
            )
        )
        return results

    async def _aof_modes(
        self,
        ctx: BenchContext,
        control: RedisControl,
        base: SocketJob,
        value: bytes,
        settings: Mapping[str, Any],
        measure: Any,
    ) -> list[BenchmarkResult]:
        # CONFIG SET only ever runs on the throwaway server (ctx.local); restored afterwards.
        original = {
            "appendonly": control.config_get("appendonly") or "yes",
            "appendfsync": control.config_get("appendfsync") or "everysec",
        }
        request = encode_command("SET", f"{KEY_PREFIX}aof", value)
        results = []
        try:
            for mode in settings["aof_modes"]:
                if mode == "no":
                    await asyncio.to_thread(control.call, "CONFIG", "SET", "appendonly", "no")
                else:
                    await asyncio.to_thread(control.call, "CONFIG", "SET", "appendfsync", mode)
                    await asyncio.to_thread(control.call, "CONFIG", "SET", "appendonly", "yes")
                await asyncio.to_thread(wait_for_rewrite, control)
                results.append(
                    await measure(
                        "redis.set.aof",
                        {"value_bytes": len(value), "pipeline": 1, "aof": mode},
                        _with(base, request=request),
                    )
                )
        finally:
            await asyncio.to_thread(
                control.call, "CONFIG", "SET", "appendfsync", original["appendfsync"]
            )
            await asyncio.to_thread(
                control.call, "CONFIG", "SET", "appendonly", original["appendonly"]
            )
        return results


def _with(job: SocketJob, **changes: Any) -> SocketJob:
    return replace(job, **changes)


def _with_aof(result: BenchmarkResult, facts: Mapping[str, Any]) -> BenchmarkResult:
    return replace(
        result,
        facts={**result.facts, "aof": dict(facts)},
        notes=(*result.notes, *aof_notes(facts)),
    )


def _final_cleanup(control: RedisControl) -> None:
    try:
        control.remove_bench_keys()
    finally:
        control.close()


SUITE = RedisSuite()

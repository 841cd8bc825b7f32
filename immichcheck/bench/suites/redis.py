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
`engine.SocketLoadPool` (pre-encoded commands, reply counting); control commands use a tiny
blocking RESP client, so no Redis client library is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import unquote, urlsplit

from immichcheck.bench.base import BenchContext
from immichcheck.bench.load.engine import SocketJob, SocketLoadPool
from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.records import BenchmarkResult

KEY_PREFIX = "immichcheck:bench:"
CONTROL_TIMEOUT = 10.0
# Each list entry / job costs its value plus Redis bookkeeping (listpack/hash overhead).
PER_ITEM_OVERHEAD_BYTES = 64
# Refuse when used memory plus the footprint would pass this share of maxmemory.
MEMORY_SAFETY_SHARE = 0.80

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


class RedisBenchError(ImmichcheckError):
    """The Redis benchmark cannot run safely (memory, connection, refused config)."""


def encode_command(*args: str | bytes | int) -> bytes:
    """One RESP2 command, encoded once and sent many times."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def job_value(size: int) -> bytes:
    """JSON shaped like an Immich job payload, padded to `size` bytes (no '-' so replies of
    GET never look like errors to the fast reply counter)."""
    body = b'{"id":"7f3c1e2a9b4d4c0e8f1a2b3c4d5e6f70","source":"upload","pad":"'
    tail = b'"}'
    return body + b"x" * max(0, size - len(body) - len(tail)) + tail


# --------------------------------------------------------------------------- control client


@dataclass(frozen=True)
class RedisTarget:
    """Where the Redis under test is: parsed from a redis:// URL."""

    host: str
    port: int
    password: str | None
    username: str | None
    db: int

    @classmethod
    def from_url(cls, url: str) -> RedisTarget:
        """Parse redis://[user:password@]host[:port][/db]; rediss:// is not supported."""
        try:
            parts = urlsplit(url)
            port = parts.port or 6379
        except ValueError as exc:
            raise RedisBenchError(f"bad --redis-url: {exc}") from exc
        if parts.scheme != "redis" or not parts.hostname:
            raise RedisBenchError(
                "bad --redis-url: expected redis://[:password@]host[:port][/db]"
                + (" (TLS rediss:// is not supported)" if parts.scheme == "rediss" else "")
            )
        db_text = parts.path.lstrip("/") or "0"
        if not db_text.isdigit():
            raise RedisBenchError(f"bad --redis-url: database {db_text!r} is not a number")
        return cls(
            host=parts.hostname,
            port=port,
            password=unquote(parts.password) if parts.password else None,
            username=unquote(parts.username) if parts.username else None,
            db=int(db_text),
        )

    @property
    def location(self) -> str:
        """host:port/db, without credentials."""
        return f"{self.host}:{self.port}/{self.db}"

    def handshake(self) -> tuple[bytes, int]:
        """AUTH/SELECT commands every connection sends first, and their reply count."""
        commands = b""
        replies = 0
        if self.password is not None:
            auth = (
                ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
            )
            commands += encode_command(*auth)
            replies += 1
        if self.db:
            commands += encode_command("SELECT", self.db)
            replies += 1
        return commands, replies


class RespError(Exception):
    """An error reply from Redis."""


class RedisControl:
    """A small blocking RESP client for the few control commands the suite needs."""

    def __init__(self, target: RedisTarget, timeout: float = CONTROL_TIMEOUT) -> None:
        self.target = target
        try:
            self._sock = socket.create_connection((target.host, target.port), timeout=timeout)
        except OSError as exc:
            raise RedisBenchError(
                f"cannot connect to Redis at {target.location}: {exc.strerror or exc}"
            ) from exc
        self._buffer = b""
        try:
            if target.password is not None:
                auth = (
                    ("AUTH", target.username, target.password)
                    if target.username
                    else ("AUTH", target.password)
                )
                self.call(*auth)
            if target.db:
                self.call("SELECT", target.db)
        except RespError as exc:
            self.close()
            raise RedisBenchError(f"Redis at {target.location} refused us: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(OSError):
            self._sock.close()

    def __enter__(self) -> RedisControl:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def call(self, *args: str | bytes | int) -> Any:
        """Send one command and return its decoded reply (bytes for strings)."""
        try:
            self._sock.sendall(encode_command(*args))
            return self._read()
        except (OSError, ConnectionError) as exc:
            raise RedisBenchError(
                f"Redis at {self.target.location} stopped answering: {exc}"
            ) from exc

    def text(self, *args: str | bytes | int) -> str:
        """A command whose reply is text (INFO)."""
        reply = self.call(*args)
        return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def _exact(self, size: int) -> bytes:
        while len(self._buffer) < size + 2:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size + 2 :]
        return data

    def _read(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RespError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            return None if size < 0 else self._exact(size)
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._read() for _ in range(size)]
        raise ConnectionError(f"unexpected reply {line[:20]!r}")

    def info(self, section: str) -> dict[str, str]:
        """One INFO section as a dict."""
        fields: dict[str, str] = {}
        for line in self.text("INFO", section).splitlines():
            if ":" in line and not line.startswith("#"):
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        return fields

    def config_get(self, name: str) -> str | None:
        """One CONFIG GET value (None when the server hides CONFIG, e.g. renamed)."""
        try:
            reply = self.call("CONFIG", "GET", name)
        except RespError:
            return None
        if isinstance(reply, list) and len(reply) >= 2:
            value = reply[1]
            return value.decode() if isinstance(value, bytes) else str(value)
        return None

    def scan_keys(self, pattern: str) -> list[bytes]:
        """Every key matching `pattern` (SCAN, never KEYS: it does not block the server)."""
        cursor = b"0"
        keys: list[bytes] = []
        while True:
            cursor, batch = self.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            keys.extend(batch)
            if cursor == b"0":
                return keys

    def remove_bench_keys(self) -> int:
        """UNLINK every key under our prefix; nothing else is ever deleted."""
        keys = self.scan_keys(KEY_PREFIX + "*")
        removed = 0
        for start in range(0, len(keys), 500):
            batch = [k for k in keys[start : start + 500] if k.startswith(KEY_PREFIX.encode())]
            if batch:
                removed += int(self.call("UNLINK", *batch))
        return removed


# --------------------------------------------------------------------------- safety


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


# --------------------------------------------------------------------------- AOF facts


def aof_snapshot(control: RedisControl) -> dict[str, Any]:
    """Persistence facts at one moment: INFO persistence plus LATENCY LATEST events."""
    persistence = control.info("persistence")
    events: dict[str, float] = {}
    with contextlib.suppress(RespError, RedisBenchError):
        for entry in control.call("LATENCY", "LATEST") or []:
            name = entry[0].decode() if isinstance(entry[0], bytes) else str(entry[0])
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


# --------------------------------------------------------------------------- suite


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
            from immichcheck.bench.native.process import tool_path

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
            shas[name] = (await asyncio.to_thread(control.call, "SCRIPT", "LOAD", script)).decode()
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

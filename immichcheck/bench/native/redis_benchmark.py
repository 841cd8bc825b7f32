"""`--engine native` for Redis: run redis-benchmark and normalise its output.

redis-benchmark runs the same commands under our key prefix (custom-command mode) with
`--csv`, which reports p50/p95/p99/min/max/mean; p90 and p99.9 are not reported and are
marked as missing rather than invented.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from immichcheck.bench.base import BenchContext
from immichcheck.bench.native.tool_process import NATIVE_TIMEOUT_MARGIN, run_tool, tool_path
from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.records import BenchmarkResult


class RedisBenchmarkTarget(Protocol):
    """Where redis-benchmark connects: the Redis suite's target, described by its fields so this
    runner does not import the suite (read-only: the target is a frozen dataclass)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def password(self) -> str | None: ...

    @property
    def username(self) -> str | None: ...

    @property
    def db(self) -> int: ...


def parse_redis_benchmark_csv(
    text: str, workload: str, parameters: Mapping[str, Any], requests: int, operations: int
) -> BenchmarkResult:
    """One redis-benchmark --csv row -> a BenchmarkResult (missing percentiles marked)."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if len(lines) < 2:
        raise ImmichcheckError(f"redis-benchmark printed no result: {text.strip()[:200]}")
    header = [name.strip('"') for name in lines[0].split(",")]
    # The first column is the command text, which may itself hold commas and quotes (a JSON
    # value): split the numbers off from the right.
    fields = [value.strip('"') for value in lines[-1].rsplit(",", len(header) - 1)]
    row = dict(zip(header, fields, strict=True))

    def ms(name: str) -> float:
        return float(row[name]) / 1000.0

    rps = float(row["rps"])
    return BenchmarkResult(
        workload=workload,
        parameters=parameters,
        facts={"missing_percentiles": ["p90", "p999", "stddev"]},
        count=requests,
        min=ms("min_latency_ms"),
        p50=ms("p50_latency_ms"),
        p90=0.0,
        p95=ms("p95_latency_ms"),
        p99=ms("p99_latency_ms"),
        p999=0.0,
        max=ms("max_latency_ms"),
        mean=ms("avg_latency_ms"),
        stddev=0.0,
        throughput=rps,
        errors=0,
        duration=operations / rps if rps else 0.0,
        engine="redis-benchmark",
        notes=("redis-benchmark --csv reports p50/p95/p99 only",),
    )


async def redis_benchmark_workload(
    target: RedisBenchmarkTarget,
    workload: str,
    command: Sequence[str],
    *,
    connections: int,
    pipeline: int,
    requests: int,
    parameters: Mapping[str, Any],
) -> BenchmarkResult:
    """Run redis-benchmark on one custom command (kept under our key prefix)."""
    program = tool_path("redis-benchmark")
    if program is None:
        raise ImmichcheckError("redis-benchmark not found (apt-get install redis-tools)")
    argv = [
        program,
        "-h",
        target.host,
        "-p",
        str(target.port),
        "-c",
        str(connections),
        "-P",
        str(pipeline),
        "-n",
        str(requests),
        "--csv",
    ]
    env = dict(os.environ)
    if target.password is not None:
        # REDISCLI_AUTH keeps the password off the process list.
        env["REDISCLI_AUTH"] = target.password
        if target.username:
            argv += ["--user", target.username]
    if target.db:
        argv += ["--dbnum", str(target.db)]
    folder = tempfile.gettempdir()
    output = await run_tool([*argv, *command], env, folder, NATIVE_TIMEOUT_MARGIN + requests / 1000)
    return parse_redis_benchmark_csv(
        output,
        workload,
        {**parameters, "connections": connections, "pipeline": pipeline},
        requests,
        requests,
    )


async def run_redis_benchmark(
    ctx: BenchContext,
    target: RedisBenchmarkTarget,
    settings: Mapping[str, Any],
    *,
    key_prefix: str,
    value: str,
) -> list[BenchmarkResult]:
    """SET and LPUSH of `value` at each pipeline depth and GET latency, with redis-benchmark,
    every key under `key_prefix`."""
    connections = int(settings["connections"])
    per_second = 40_000 * float(settings["duration_seconds"])
    results = []
    for pipeline in settings["pipelines"]:
        pipeline = int(pipeline)
        requests = int(per_second * max(1, pipeline // 2))
        for workload, command in (
            ("redis.set", ["SET", f"{key_prefix}native:set", value]),
            ("redis.lpush", ["LPUSH", f"{key_prefix}native:list", value]),
        ):
            count = requests
            if workload == "redis.lpush":
                count = min(requests, int(settings["list_max_items"]))
            ctx.progress.step(f"{workload} pipeline={pipeline} (redis-benchmark)")
            results.append(
                await redis_benchmark_workload(
                    target,
                    workload,
                    command,
                    connections=connections,
                    pipeline=pipeline,
                    requests=count,
                    parameters={"value_bytes": len(value)},
                )
            )
    ctx.progress.step("redis.get (redis-benchmark)")
    results.append(
        await redis_benchmark_workload(
            target,
            "redis.get",
            ["GET", f"{key_prefix}native:set"],
            connections=1,
            pipeline=1,
            requests=int(10_000 * float(settings["duration_seconds"])),
            parameters={"value_bytes": len(value)},
        )
    )
    return results

"""`--engine native`: run pgbench and redis-benchmark and normalise their output.

- pgbench runs with `--log`, whose per-transaction latencies (microseconds) feed the same HDR
  histogram as immichcheck's own engine, so every percentile is real; transactions that
  finished during the warm-up are dropped by their timestamps.
- redis-benchmark runs the same commands under our key prefix (custom-command mode) with
  `--csv`, which reports p50/p95/p99/min/max/mean; p90 and p99.9 are not reported and are
  marked as missing rather than invented.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from immichcheck.bench.base import BenchContext
from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.records import BenchmarkResult
from immichcheck.common.statistics import LatencyRecorder, summarize

if TYPE_CHECKING:
    from immichcheck.bench.suites.postgres import PostgresTarget
    from immichcheck.bench.suites.redis import RedisTarget

NATIVE_TIMEOUT_MARGIN = 60.0


def tool_path(name: str) -> str | None:
    """The program on PATH (pgbench is also looked for beside the PostgreSQL server)."""
    found = shutil.which(name)
    if found or name != "pgbench":
        return found
    from immichcheck.bench.local_servers.stack import LocalStackError, find_postgres

    try:
        candidate = find_postgres().tool("pgbench")
    except LocalStackError:
        return None
    return str(candidate) if candidate.is_file() else None


async def _run(argv: Sequence[str], env: Mapping[str, str], cwd: str, timeout: float) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,  # Ctrl-C is ours to handle: we kill it below
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        detail = (stderr or stdout).decode("utf-8", "replace").strip().splitlines()
        raise ImmichcheckError(f"{Path(argv[0]).name} failed: {' | '.join(detail[-2:])}")
    return stdout.decode("utf-8", "replace")


# --------------------------------------------------------------------------- pgbench


def parse_pgbench_log(
    lines: Sequence[str], measure_from: float, measure_to: float
) -> tuple[LatencyRecorder, int]:
    """Per-transaction log lines -> (histogram of latencies, transactions in the window).

    Line format: client_id transaction_no time_us script_no epoch_s epoch_us.
    """
    recorder = LatencyRecorder()
    counted = 0
    for line in lines:
        fields = line.split()
        if len(fields) < 6:
            continue
        finished = int(fields[4]) + int(fields[5]) / 1_000_000
        if not measure_from <= finished < measure_to:
            continue
        if fields[2] == "failed" or fields[2] == "skipped":
            recorder.record_error(f"pgbench transaction {fields[2]}")
            continue
        recorder.record_ns(int(fields[2]) * 1000)
        counted += 1
    return recorder, counted


async def pgbench_workload(
    target: PostgresTarget,
    workload: str,
    sql: str,
    concurrency: int,
    warmup: float,
    duration: float,
) -> BenchmarkResult:
    """Run one pgbench script at one concurrency and normalise the result."""
    program = tool_path("pgbench")
    if program is None:
        raise ImmichcheckError("pgbench not found (apt-get install postgresql-client)")
    folder = tempfile.mkdtemp(prefix="immichcheck-pgbench-")
    try:
        script = Path(folder) / "workload.sql"
        script.write_text(sql + ";\n", encoding="utf-8")
        env = {**os.environ, "PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "immichcheck-pgbench"}
        if target.password is not None:
            env["PGPASSWORD"] = target.password
        if target.sslmode:
            env["PGSSLMODE"] = target.sslmode
        total = warmup + duration
        argv = [
            program,
            "-h",
            target.host,
            "-p",
            str(target.port),
            "-U",
            target.user,
            "-n",
            "-M",
            "prepared",
            "-c",
            str(concurrency),
            "-j",
            str(max(1, min(concurrency, os.cpu_count() or 1))),
            "-T",
            str(max(1, round(total))),
            "-f",
            str(script),
            "--log",
            "--log-prefix",
            str(Path(folder) / "tx"),
            target.database,
        ]
        wall_started = time.time()
        await _run(argv, env, folder, total + NATIVE_TIMEOUT_MARGIN)
        lines: list[str] = []
        for log in Path(folder).glob("tx*"):
            lines.extend(log.read_text(encoding="utf-8").splitlines())
        # pgbench's -T counts from after its connections are made: take the window from the
        # first logged transaction rather than our own clock.
        first = min(
            (int(f[4]) + int(f[5]) / 1e6 for f in (ln.split() for ln in lines) if len(f) >= 6),
            default=wall_started,
        )
        window_start = first + warmup
        window_end = window_start + duration
        recorder, counted = parse_pgbench_log(lines, window_start, window_end)
        last = max(
            (int(f[4]) + int(f[5]) / 1e6 for f in (ln.split() for ln in lines) if len(f) >= 6),
            default=window_end,
        )
        wall = max(1e-9, min(window_end, last) - window_start)
        return summarize(
            workload,
            {"concurrency": concurrency},
            recorder,
            wall,
            operations=counted,
            engine="pgbench",
            notes=("pgbench -M prepared, per-transaction log",),
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def run_pgbench(
    ctx: BenchContext, target: PostgresTarget, settings: Mapping[str, Any], *, live: bool
) -> list[BenchmarkResult]:
    """SELECT 1 and (unless read-only) the committed INSERT, at each concurrency level."""
    from immichcheck.bench.suites.postgres import SCHEMA

    statements = [("postgres.select1", "SELECT 1")]
    if not live:
        payload = "x" * int(settings["insert_payload_bytes"])
        statements.append(
            (
                "postgres.insert_commit",
                f"INSERT INTO {SCHEMA}.round_trip (payload) VALUES ('{payload}')",
            )
        )
    results = []
    for workload, sql in statements:
        for concurrency in settings["concurrency"]:
            ctx.progress.step(f"{workload} concurrency={concurrency} (pgbench)")
            results.append(
                await pgbench_workload(
                    target,
                    workload,
                    sql,
                    concurrency,
                    float(settings["warmup_seconds"]),
                    float(settings["duration_seconds"]),
                )
            )
    return results


# --------------------------------------------------------------------------- redis-benchmark


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
    target: RedisTarget,
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
    output = await _run([*argv, *command], env, folder, NATIVE_TIMEOUT_MARGIN + requests / 1000)
    return parse_redis_benchmark_csv(
        output,
        workload,
        {**parameters, "connections": connections, "pipeline": pipeline},
        requests,
        requests,
    )


async def run_redis_benchmark(
    ctx: BenchContext, target: RedisTarget, settings: Mapping[str, Any]
) -> list[BenchmarkResult]:
    """SET and LPUSH at each pipeline depth and GET latency, with redis-benchmark."""
    from immichcheck.bench.suites.redis import KEY_PREFIX, job_value

    value = job_value(int(settings["value_bytes"])).decode()
    connections = int(settings["connections"])
    per_second = 40_000 * float(settings["duration_seconds"])
    results = []
    for pipeline in settings["pipelines"]:
        pipeline = int(pipeline)
        requests = int(per_second * max(1, pipeline // 2))
        for workload, command in (
            ("redis.set", ["SET", f"{KEY_PREFIX}native:set", value]),
            ("redis.lpush", ["LPUSH", f"{KEY_PREFIX}native:list", value]),
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
            ["GET", f"{KEY_PREFIX}native:set"],
            connections=1,
            pipeline=1,
            requests=int(10_000 * float(settings["duration_seconds"])),
            parameters={"value_bytes": len(value)},
        )
    )
    return results

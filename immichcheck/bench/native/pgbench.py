"""`--engine native` for PostgreSQL: run pgbench and normalise its output.

pgbench runs with `--log`, whose per-transaction latencies (microseconds) feed the same HDR
histogram as immichcheck's own engine, so every percentile is real; transactions that
finished during the warm-up are dropped by their timestamps.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from immichcheck.bench.base import BenchContext
from immichcheck.bench.native.tool_process import NATIVE_TIMEOUT_MARGIN, run_tool, tool_path
from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.records import BenchmarkResult
from immichcheck.common.statistics import LatencyRecorder, summarize


class PgbenchTarget(Protocol):
    """Where pgbench connects: the PostgreSQL suite's target, described by its fields so this
    runner does not import the suite (read-only: the target is a frozen dataclass)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def user(self) -> str: ...

    @property
    def password(self) -> str | None: ...

    @property
    def database(self) -> str: ...

    @property
    def sslmode(self) -> str | None: ...


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
    target: PgbenchTarget,
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
        await run_tool(argv, env, folder, total + NATIVE_TIMEOUT_MARGIN)
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
    ctx: BenchContext,
    target: PgbenchTarget,
    settings: Mapping[str, Any],
    *,
    live: bool,
    schema: str,
) -> list[BenchmarkResult]:
    """SELECT 1 and (unless read-only) the committed INSERT into `schema`.round_trip, at each
    concurrency level."""
    statements = [("postgres.select1", "SELECT 1")]
    if not live:
        payload = "x" * int(settings["insert_payload_bytes"])
        statements.append(
            (
                "postgres.insert_commit",
                f"INSERT INTO {schema}.round_trip (payload) VALUES ('{payload}')",
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

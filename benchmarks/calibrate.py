"""Calibrate immichcheck's engines against the reference tools on the same throwaway servers.

    .venv/bin/python benchmarks/calibrate.py                 # PostgreSQL and Redis
    .venv/bin/python benchmarks/calibrate.py --duration 5
    .venv/bin/python benchmarks/calibrate.py --suite storage # delegates to calibrate_storage.py

Targets (issue 5): Redis throughput >= 80% of redis-benchmark at the same clients and
pipeline; PostgreSQL `SELECT 1` p50 within 1.5x of `pgbench -M prepared` at 1 client.
Exit code 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
from pathlib import Path

from immichcheck.bench.engine import SocketJob, SocketLoadPool
from immichcheck.bench.native import pgbench_workload, redis_benchmark_workload
from immichcheck.bench.postgres import PostgresTarget, prepared_statement
from immichcheck.bench.redis import KEY_PREFIX, RedisControl, RedisTarget, encode_command, job_value
from immichcheck.formatters.bench_table import format_rate, format_seconds
from immichcheck.local_stack import LocalStack

REDIS_TARGET_RATIO = 0.80
PG_TARGET_RATIO = 1.5


async def calibrate_redis(
    url: str, duration: float, workers: int | None
) -> list[tuple[str, float, float, bool]]:
    """(label, ours, reference, target met) for SET at pipeline 1 and 16 with 50 clients."""
    target = RedisTarget.from_url(url)
    value = job_value(300)
    rows = []
    async with SocketLoadPool(workers) as pool:
        for pipeline in (1, 16):
            request = encode_command("SET", f"{KEY_PREFIX}calibrate", value) * pipeline
            ours = await pool.run(
                "redis.set",
                {},
                SocketJob(
                    host=target.host,
                    port=target.port,
                    connections=50,
                    request=request,
                    replies_per_request=pipeline,
                    protocol="resp",
                    warmup=0.5,
                    duration=duration,
                ),
            )
            reference = await redis_benchmark_workload(
                target,
                "redis.set",
                ["SET", f"{KEY_PREFIX}calibrate", value.decode()],
                connections=50,
                pipeline=pipeline,
                requests=int(ours.throughput * duration) or 100_000,
                parameters={},
            )
            ratio = ours.throughput / reference.throughput if reference.throughput else 0.0
            label = f"redis SET c=50 P={pipeline} throughput"
            rows.append((label, ours.throughput, reference.throughput, ratio >= REDIS_TARGET_RATIO))
            saturated = [n for n in ours.notes if "core" in n]
            if saturated:
                print(f"  note ({label}): {saturated[0]}")
    with RedisControl(target) as control:
        control.remove_bench_keys()
    return rows


async def calibrate_postgres(dsn: str, duration: float) -> list[tuple[str, float, float, bool]]:
    """(label, ours, reference, target met) for SELECT 1 p50 at 1 client."""
    target = PostgresTarget.from_dsn(dsn)
    setup, request = prepared_statement("SELECT 1")
    async with SocketLoadPool(1) as pool:
        ours = await pool.run(
            "postgres.select1",
            {},
            SocketJob(
                host=target.host,
                port=target.port,
                connections=1,
                request=request,
                replies_per_request=1,
                protocol="pg",
                warmup=0.5,
                duration=duration,
                opener="immichcheck.bench.postgres:wire_connect",
                opener_args=(target.user, target.password, target.database),
                setup=setup,
                setup_replies=1,
            ),
        )
    reference = await pgbench_workload(target, "postgres.select1", "SELECT 1", 1, 0.5, duration)
    ratio = ours.p50 / reference.p50 if reference.p50 else float("inf")
    return [
        ("postgres SELECT 1 c=1 p50", ours.p50, reference.p50, ratio <= PG_TARGET_RATIO),
        ("postgres SELECT 1 c=1 throughput", ours.throughput, reference.throughput, True),
    ]


def print_rows(rows: list[tuple[str, float, float, bool]]) -> None:
    """One line per comparison with the ratio."""
    print(f"{'measurement':40} {'immichcheck':>14} {'reference':>14} {'ratio':>7}  target")
    for label, ours, reference, met in rows:
        is_latency = "p50" in label
        show = format_seconds if is_latency else format_rate
        ratio = ours / reference if reference else float("inf")
        goal = f"<= {PG_TARGET_RATIO}x" if is_latency else f">= {REDIS_TARGET_RATIO:.0%}"
        if "postgres" in label and not is_latency:
            goal = "(info)"
        verdict = "met" if met else "MISSED"
        print(f"{label:40} {show(ours):>14} {show(reference):>14} {ratio:7.2f}  {goal} {verdict}")


def run_storage(argv: list[str]) -> int:
    """Delegate to benchmarks/calibrate_storage.py (another helper's) when it is present."""
    path = Path(__file__).with_name("calibrate_storage.py")
    if not path.exists():
        print(f"storage calibration is not available: {path} does not exist")
        return 2
    spec = importlib.util.spec_from_file_location("calibrate_storage", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    """Start throwaway servers, run both engines on each, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("databases", "storage"), default="databases")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--workers", type=int, default=None, help="load worker processes")
    args, rest = parser.parse_known_args(argv)
    if args.suite == "storage":
        return run_storage(rest)
    rows: list[tuple[str, float, float, bool]] = []
    with LocalStack() as stack:
        redis = stack.start_redis()
        postgres = stack.start_postgres()
        print(f"servers: PostgreSQL {postgres.version}, Redis {redis.version} on 127.0.0.1")
        rows += asyncio.run(calibrate_redis(redis.url, args.duration, args.workers))
        rows += asyncio.run(calibrate_postgres(postgres.dsn, args.duration))
    print_rows(rows)
    return 0 if all(met for *_, met in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

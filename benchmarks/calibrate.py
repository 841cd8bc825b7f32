"""Calibrate immichcheck's engines against the reference tools on the same throwaway servers.

    .venv/bin/python benchmarks/calibrate.py                 # PostgreSQL and Redis
    .venv/bin/python benchmarks/calibrate.py --duration 5
    .venv/bin/python benchmarks/calibrate.py --suite storage # delegates to calibrate_storage.py

Targets (issue 5): Redis throughput >= 80% of redis-benchmark at the same clients and
pipeline; PostgreSQL `SELECT 1` p50 within 1.5x of `pgbench -M prepared` at 1 client.
Each measurement runs in alternating rounds (immichcheck, reference, ...) and the median
round ratio is judged, because other tenants of a shared machine skew single rounds.
Exit code 0 when every target is met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from immichcheck.bench.load.engine import SocketJob, SocketLoadPool
from immichcheck.bench.load.postgres_wire import prepared_statement
from immichcheck.bench.load.resp_wire import encode_command
from immichcheck.bench.local_servers.stack import LocalStack
from immichcheck.bench.native.pgbench import pgbench_workload
from immichcheck.bench.native.redis_benchmark import redis_benchmark_workload
from immichcheck.bench.suites.postgres_connection import PostgresTarget
from immichcheck.bench.suites.redis import job_value
from immichcheck.bench.suites.redis_control import KEY_PREFIX, RedisControl, RedisTarget
from immichcheck.bench.table import format_rate, format_seconds

REDIS_TARGET_RATIO = 0.80
PG_TARGET_RATIO = 1.5


@dataclass
class Comparison:
    """One measurement by both engines, repeated in alternating rounds."""

    label: str
    kind: str  # "throughput" (higher is better) or "latency" (lower is better)
    target: float | None  # ratio limit; None for information only
    ours: list[float] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ratios(self) -> list[float]:
        """immichcheck / reference, per round (the two ran back to back)."""
        return [
            a / b if b else float("inf") for a, b in zip(self.ours, self.reference, strict=True)
        ]

    @property
    def ratio(self) -> float:
        """The median round's ratio: other tenants of a shared machine skew single rounds."""
        return statistics.median(self.ratios)

    @property
    def met(self) -> bool:
        """Whether the median ratio meets the target."""
        if self.target is None:
            return True
        return self.ratio >= self.target if self.kind == "throughput" else self.ratio <= self.target


async def calibrate_redis(
    url: str, duration: float, workers: int | None, rounds: int
) -> list[Comparison]:
    """SET throughput at pipeline 1 and 16 with 50 clients, against redis-benchmark."""
    target = RedisTarget.from_url(url)
    value = job_value(300)
    comparisons = []
    async with SocketLoadPool(workers) as pool:
        for pipeline in (1, 16):
            comparison = Comparison(
                f"redis SET c=50 P={pipeline} throughput", "throughput", REDIS_TARGET_RATIO
            )
            request = encode_command("SET", f"{KEY_PREFIX}calibrate", value) * pipeline
            for _ in range(rounds):
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
                comparison.ours.append(ours.throughput)
                comparison.reference.append(reference.throughput)
                comparison.notes += [n for n in ours.notes if "core" in n][:1]
            comparisons.append(comparison)
    with RedisControl(target) as control:
        control.remove_bench_keys()
    return comparisons


async def calibrate_postgres(dsn: str, duration: float, rounds: int) -> list[Comparison]:
    """SELECT 1 at 1 client, against pgbench -M prepared."""
    target = PostgresTarget.from_dsn(dsn)
    setup, request = prepared_statement("SELECT 1")
    latency = Comparison("postgres SELECT 1 c=1 p50", "latency", PG_TARGET_RATIO)
    rate = Comparison("postgres SELECT 1 c=1 throughput", "throughput", None)
    async with SocketLoadPool(1) as pool:
        for _ in range(rounds):
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
                    opener="immichcheck.bench.load.postgres_wire:wire_connect",
                    opener_args=(target.user, target.password, target.database),
                    setup=setup,
                    setup_replies=1,
                ),
            )
            reference = await pgbench_workload(
                target, "postgres.select1", "SELECT 1", 1, 0.5, duration
            )
            latency.ours.append(ours.p50)
            latency.reference.append(reference.p50)
            rate.ours.append(ours.throughput)
            rate.reference.append(reference.throughput)
    return [latency, rate]


def print_comparisons(comparisons: list[Comparison]) -> None:
    """One line per comparison: medians, the median ratio, every round's ratio, verdict."""
    print(
        f"{'measurement':36} {'immichcheck':>12} {'reference':>12} {'ratio':>6}  "
        f"{'target':10} rounds"
    )
    for item in comparisons:
        show = format_seconds if item.kind == "latency" else format_rate
        if item.target is None:
            goal = "(info)"
        elif item.kind == "latency":
            goal = f"<= {item.target}x"
        else:
            goal = f">= {item.target:.0%}"
        verdict = "" if item.target is None else ("met" if item.met else "MISSED")
        rounds = " ".join(f"{r:.2f}" for r in item.ratios)
        print(
            f"{item.label:36} {show(statistics.median(item.ours)):>12} "
            f"{show(statistics.median(item.reference)):>12} {item.ratio:6.2f}  "
            f"{goal:10} [{rounds}] {verdict}"
        )
        for note in sorted(set(item.notes)):
            print(f"  note: {note}")


def run_storage(argv: list[str]) -> int:
    """Delegate to benchmarks/calibrate_storage.py (another helper's) when it is present."""
    path = Path(__file__).with_name("calibrate_storage.py")
    if not path.exists():
        print(f"storage calibration is not available: {path} does not exist")
        return 2
    spec = importlib.util.spec_from_file_location("calibrate_storage", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the module look themselves up here
    spec.loader.exec_module(module)
    return int(module.main(argv) or 0)


def main(argv: list[str] | None = None) -> int:
    """Start throwaway servers, run both engines on each, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=("databases", "storage"), default="databases")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--workers", type=int, default=None, help="load worker processes")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per measurement (median)"
    )
    args, rest = parser.parse_known_args(argv)
    if args.suite == "storage":
        return run_storage(rest)
    comparisons: list[Comparison] = []
    with LocalStack() as stack:
        redis = stack.start_redis()
        postgres = stack.start_postgres()
        print(f"servers: PostgreSQL {postgres.version}, Redis {redis.version} on 127.0.0.1")
        comparisons += asyncio.run(
            calibrate_redis(redis.url, args.duration, args.workers, args.rounds)
        )
        comparisons += asyncio.run(calibrate_postgres(postgres.dsn, args.duration, args.rounds))
    print_comparisons(comparisons)
    return 0 if all(item.met for item in comparisons) else 1


if __name__ == "__main__":
    sys.exit(main())

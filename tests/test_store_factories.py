"""Builders for run histories made of real run records (LatencyRecorder + summarize).

Other store/compare/report/export tests import these; the tests here pin down that the
generated samples have the shape the other tests rely on.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from immichcheck.common.records import (
    BenchmarkResult,
    CheckResult,
    HostFacts,
    RunRecord,
    Status,
)
from immichcheck.common.statistics import LatencyRecorder, decode_histogram, summarize

T0 = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)


def host(name: str = "node05") -> HostFacts:
    """Fixed host facts so the stored bytes do not depend on this machine."""
    return HostFacts(
        hostname=name,
        cpu_model="Cortex-A76",
        cpu_count=4,
        memory_bytes=8 * 1024**3,
        kernel="6.6.31",
        platform="Linux-aarch64",
        python="3.11.9",
    )


def samples(median: float, count: int = 2000, seed: int = 1, spread: float = 0.25) -> list[float]:
    """Log-normal latencies (seconds) around `median`, deterministic for a seed."""
    rng = random.Random(seed)
    return [median * rng.lognormvariate(0.0, spread) for _ in range(count)]


def bench(
    workload: str,
    parameters: Mapping[str, Any],
    latencies: Sequence[float],
    *,
    errors: int = 0,
    bytes_per_op: int | None = None,
) -> BenchmarkResult:
    """A real BenchmarkResult: samples recorded in an HDR histogram, then summarized."""
    recorder = LatencyRecorder()
    for value in latencies:
        recorder.record_seconds(value)
    for _ in range(errors):
        recorder.record_error("connection reset by peer")
    # One worker doing the operations back to back: wall time is the sum of latencies.
    wall = sum(latencies) / max(1, int(parameters.get("concurrency", 1)))
    moved = bytes_per_op * len(latencies) if bytes_per_op is not None else None
    return summarize(workload, parameters, recorder, wall, bytes_moved=moved)


@cache
def _cached_bench(
    workload: str, parameters_json: str, median: float, count: int, seed: int, spread: float
) -> BenchmarkResult:
    parameters = json.loads(parameters_json)
    bytes_per_op = 8192 if workload.startswith("storage.") else None
    return bench(
        workload, parameters, samples(median, count, seed, spread), bytes_per_op=bytes_per_op
    )


def generated(
    workload: str,
    parameters: Mapping[str, Any],
    median: float,
    *,
    count: int = 2000,
    seed: int = 1,
    spread: float = 0.25,
) -> BenchmarkResult:
    """`bench` over generated samples, cached: summarize is the slow part of building runs."""
    return _cached_bench(
        workload, json.dumps(dict(parameters), sort_keys=True), median, count, seed, spread
    )


def nightly_history() -> list[RunRecord]:
    """Six nights on node05 and two on node01, with known changes in the last night.

    * redis.set gets 30% slower on the last night (2000 samples each): a regression;
    * postgres.insert_commit gets 15% slower, but with 25 widely spread samples per run that
      is within noise;
    * postgres.select1 stays put (two seeds alternate, so the nights differ a little);
    * storage.fdatasync runs on an NVMe and an NFS path (about 15x apart);
    * node01 is slower than node05 and misses the sub-millisecond target.
    """
    history = []
    for night in range(6):
        seed = 1 + night % 2
        last = night == 5
        history.append(
            run(
                night,
                benchmarks=[
                    generated("postgres.select1", {"concurrency": 1}, 0.0004, seed=seed),
                    generated(
                        "postgres.insert_commit",
                        {"concurrency": 4},
                        0.002 * (1.15 if last else 1.0),
                        count=25,
                        seed=7 if last else 7 + night % 2,  # last: night 4's samples x 1.15
                        spread=0.6,
                    ),
                    generated(
                        "redis.set",
                        {"clients": 50, "pipeline": 16},
                        0.001 * (1.3 if last else 1.0),
                        seed=3 if last else seed,
                    ),
                    generated(
                        "storage.fdatasync",
                        {"path": "nvme", "block_bytes": 8192},
                        0.0008,
                        count=500,
                    ),
                    generated(
                        "storage.fdatasync", {"path": "nfs", "block_bytes": 8192}, 0.012, count=500
                    ),
                ],
                tags=("baseline",) if night == 2 else (),
            )
        )
    for night in (4, 5):
        history.append(
            run(
                night,
                node="node01",
                benchmarks=[
                    generated("postgres.select1", {"concurrency": 1}, 0.0011, seed=night),
                    generated("redis.set", {"clients": 50, "pipeline": 16}, 0.0015, seed=night),
                ],
            )
        )
    history.append(
        run(
            5,
            kind="verify",
            checks=[
                check("IC-RD-101", Status.FAIL, "redis", "maxmemory-policy is allkeys-lru"),
                check("IC-PG-101", Status.PASS, "postgres"),
            ],
            start=T0 + timedelta(minutes=30),
        )
    )
    return history


def check(
    code: str, status: Status, component: str, message: str = "", target: str = ""
) -> CheckResult:
    """A check result with a fixed duration."""
    return CheckResult(
        code=code,
        target=target or component,
        status=status,
        message=message or f"{code} is {status.value}",
        duration=0.01,
        component=component,
    )


def run(
    index: int,
    *,
    node: str = "node05",
    kind: str = "bench",
    benchmarks: Iterable[BenchmarkResult] = (),
    checks: Iterable[CheckResult] = (),
    tags: Iterable[str] = (),
    start: datetime = T0,
) -> RunRecord:
    """Run number `index` of a nightly history: one day apart, ids sortable by time."""
    started = start + timedelta(days=index)
    return RunRecord(
        run_id=f"{started.strftime('%Y%m%dT%H%M%SZ')}-{node}-{kind}",
        kind=kind,
        started_at=started,
        finished_at=started + timedelta(seconds=90),
        node=node,
        host=host(node),
        tool_version="0.1.0",
        service_versions={"postgres": "15.6", "redis": "7.0.15"},
        checks=tuple(checks),
        benchmarks=tuple(benchmarks),
        tags=tuple(tags),
        settings={"profile": "quick"},
    )


def test_bench_builder_keeps_the_generated_distribution() -> None:
    result = bench("postgres.select1", {"concurrency": 1}, samples(0.0004, seed=3))
    assert result.count == 2000
    assert 0.00036 < result.p50 < 0.00044
    assert result.p99 > result.p95 > result.p50
    assert result.histogram is not None
    assert decode_histogram(result.histogram).get_total_count() == 2000


def test_run_builder_is_deterministic() -> None:
    first = run(3, benchmarks=[bench("redis.set", {"clients": 50}, samples(0.001))])
    second = run(3, benchmarks=[bench("redis.set", {"clients": 50}, samples(0.001))])
    assert first == second
    assert first.run_id == "20261104T020000Z-node05-bench"

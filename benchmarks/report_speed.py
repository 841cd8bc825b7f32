"""How long `immichcheck report` takes over a year of nightly runs (target: under 2 s).

Generates 365 nightly bench runs on one node with 11 series each (99 metric rows per run,
36,135 in all), saves them with the real store, then times what `immichcheck report` does:
load every file, build the pandas frame and the comparisons (with the histogram bootstrap of
the compared pair), and render markdown and HTML. Each in-process repeat starts with cold
histogram caches; the first repeat also pays for importing pandas. Finally the real command
line is timed in a fresh process (`python -m immichcheck report --format html`), which is what
a cron job sees.

    .venv/bin/python benchmarks/report_speed.py [--runs 365] [--repeat 3] [--keep DIR]

Series are summarized once from generated samples (LatencyRecorder + summarize, like a real
bench run) and then scaled per night with a little jitter and a slow drift, so files have the
size and shape of real ones without spending minutes generating samples.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from immichcheck.common.records import BenchmarkResult, HostFacts, RunRecord
from immichcheck.common.statistics import LatencyRecorder, summarize
from immichcheck.history.compare import ReportOptions, build_report
from immichcheck.history.regression_rules import load_rules
from immichcheck.history.render import render_report
from immichcheck.history.significance import histogram_bins
from immichcheck.history.store import load_runs, save_run
from immichcheck.history.thresholds import load_targets

TARGET_SECONDS = 2.0
SERIES = (
    ("postgres.select1", {"concurrency": 1}, 0.0004),
    ("postgres.select1", {"concurrency": 4}, 0.0007),
    ("postgres.insert_commit", {"concurrency": 1}, 0.002),
    ("postgres.time_buckets", {"concurrency": 1}, 0.004),
    ("postgres.checksum_lookup", {"concurrency": 1}, 0.0005),
    ("redis.set", {"clients": 50, "pipeline": 16}, 0.001),
    ("redis.get", {"clients": 50, "pipeline": 16}, 0.0009),
    ("redis.lpush", {"clients": 50, "pipeline": 1}, 0.0003),
    ("storage.fdatasync", {"path": "nvme", "block_bytes": 8192}, 0.0008),
    ("storage.fdatasync", {"path": "nfs", "block_bytes": 8192}, 0.012),
    ("ml.clip_textual", {"model": "ViT-B-32__openai", "concurrency": 1}, 0.06),
)
LATENCY_FIELDS = ("min", "p50", "p90", "p95", "p99", "p999", "max", "mean", "stddev")


def template(
    workload: str, parameters: dict[str, object], median: float, seed: int
) -> BenchmarkResult:
    """One real summary from 5,000 log-normal samples."""
    rng = random.Random(seed)
    recorder = LatencyRecorder()
    samples = [median * rng.lognormvariate(0.0, 0.3) for _ in range(5000)]
    for value in samples:
        recorder.record_seconds(value)
    return summarize(workload, parameters, recorder, sum(samples))


def nightly(templates: list[BenchmarkResult], night: int, rng: random.Random) -> RunRecord:
    """Night `night`: every series scaled by jitter and a slow seasonal drift."""
    start = datetime(2025, 1, 1, 2, 0, tzinfo=UTC) + timedelta(days=night)
    benchmarks = []
    for base in templates:
        factor = rng.gauss(1.0, 0.03) * (1.0 + 0.05 * ((night % 90) / 90))
        changes: dict[str, float] = {f: getattr(base, f) * factor for f in LATENCY_FIELDS}
        changes["throughput"] = base.throughput / factor
        benchmarks.append(dataclasses.replace(base, **changes))  # type: ignore[arg-type]
    return RunRecord(
        run_id=f"{start:%Y%m%dT%H%M%SZ}-{night:04d}",
        kind="bench",
        started_at=start,
        finished_at=start + timedelta(minutes=3),
        node="node05",
        host=HostFacts("node05", "Cortex-A76", 4, 8 << 30, "6.6.31", "Linux-aarch64", "3.11.9"),
        tool_version="0.1.0",
        service_versions={"postgres": "15.6", "redis": "7.0.15"},
        benchmarks=tuple(benchmarks),
        settings={"profile": "quick"},
    )


def measure(folder: Path) -> dict[str, float]:
    """One full report over `folder`, timed by phase."""
    histogram_bins.cache_clear()
    started = time.perf_counter()
    loaded = load_runs(folder)
    loaded_at = time.perf_counter()
    options = ReportOptions(rules=load_rules(), targets=load_targets(), trend=14)
    report = build_report(loaded.runs, loaded.warnings, options)
    compared_at = time.perf_counter()
    render_report(report, "markdown")
    render_report(report, "html")
    rendered_at = time.perf_counter()
    return {
        "load": loaded_at - started,
        "compare": compared_at - loaded_at,
        "render": rendered_at - compared_at,
        "total": rendered_at - started,
        "runs": float(len(loaded.runs)),
    }


def main() -> int:
    """Generate the history, time the report, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="Write the history here and keep it.")
    args = parser.parse_args()

    templates = [template(w, p, m, seed) for seed, (w, p, m) in enumerate(SERIES)]
    rng = random.Random(365)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        generated_at = time.perf_counter()
        for night in range(args.runs):
            save_run(nightly(templates, night, rng), folder)
        size = sum(p.stat().st_size for p in (folder / "runs").rglob("*.json"))
        rows = args.runs * sum(9 + (b.bytes_per_second is not None) for b in templates)
        print(
            f"history: {args.runs} runs x {rows // args.runs} metrics = {rows:,} rows, "
            f"{size / 1e6:.1f} MB on disk (generated in {time.perf_counter() - generated_at:.1f} s)"
        )
        timings = [measure(folder) for _ in range(args.repeat)]
        command = [sys.executable, "-m", "immichcheck", "report", "--reports-dir", str(folder)]
        html = Path(scratch) / "report.html"  # a regular file: the command writes atomically
        command += ["--format", "html", "--output", str(html), "--fail-on", "none"]
        cli_started = time.perf_counter()
        subprocess.run(command, check=True)
        cli_seconds = time.perf_counter() - cli_started
    first = timings[0]
    best = min(timings, key=lambda t: t["total"])
    median = statistics.median(t["total"] for t in timings)
    print(
        f"report in process: load {best['load']:.2f} s + compare {best['compare']:.2f} s + "
        f"render {best['render']:.2f} s = {best['total']:.2f} s best, {median:.2f} s median of "
        f"{args.repeat}; first (importing pandas) {first['total']:.2f} s"
    )
    print(
        f"immichcheck report --format html in a fresh process: {cli_seconds:.2f} s "
        f"(target < {TARGET_SECONDS:.0f} s)"
    )
    return 0 if cli_seconds < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())

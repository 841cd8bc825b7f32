"""The latest result of every benchmark series, whichever run measured it.

A series is (node, workload, parameters). A partial run such as `bench --suite upload` only
measures some series; the others keep the figure of the last run that measured them, so the
export and the target verdicts built on it never go blank between full runs.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass

from immichcheck.common.records import BenchmarkResult, RunRecord


@dataclass(frozen=True)
class SeriesResult:
    """One series' latest result and the run it comes from (for its node and timestamp)."""

    run: RunRecord
    result: BenchmarkResult


def chronological(runs: Iterable[RunRecord]) -> list[RunRecord]:
    """Runs oldest first (start time, then id, so equal times keep a stable order)."""
    return sorted(runs, key=lambda r: (r.started_at, r.run_id))


def latest_series_results(runs: Iterable[RunRecord]) -> list[SeriesResult]:
    """The latest result per (node, workload, parameters), in the order first measured."""
    latest: dict[tuple[str, str, str], SeriesResult] = {}
    for run in chronological(runs):
        for result in run.benchmarks:
            key = (run.node, result.workload, json.dumps(dict(result.parameters), sort_keys=True))
            latest[key] = SeriesResult(run, result)
    return list(latest.values())


def latest_series_runs(runs: Iterable[RunRecord]) -> list[RunRecord]:
    """Per node, its latest benchmark run holding the latest result of every series instead."""
    runs = list(runs)
    newest: dict[str, RunRecord] = {}
    for run in chronological(r for r in runs if r.benchmarks):
        newest[run.node] = run
    merged: dict[str, list[BenchmarkResult]] = {node: [] for node in newest}
    for series in latest_series_results(runs):
        merged[series.run.node].append(series.result)
    return [
        dataclasses.replace(newest[node], benchmarks=tuple(merged[node])) for node in sorted(newest)
    ]

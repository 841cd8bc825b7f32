"""Run records as Prometheus metrics in the node_exporter textfile-collector format.

Shared by `verify --format prometheus` and `export --prometheus`/`--pushgateway`. A pure
function: it reads the runs it is given and returns the exposition text. Every family is one
row of `METRICS`; a new metric is a row there plus the lines that set its samples.

Which runs count:
- checks: the latest verify run per node (a verify run always covers every check, so a check
  that is gone from it is gone);
- benchmarks: the latest result per (node, workload, parameters) over every run given, so a
  partial run (`bench --suite upload`) does not blank the other workloads. Each series carries
  `immichcheck_benchmark_timestamp_seconds`, the finish time of the run it comes from, so an
  alert or a panel can tell a stale figure from tonight's;
- the "last success" timestamp looks at every run given, so pass the history when you have it.

Check status values (`immichcheck_check_status`) follow the Nagios order so that one
comparison makes an alert rule: 0 PASS, 1 WARN, 2 FAIL, 3 ERROR, and -1 SKIP (a check that
did not apply: below PASS so `immichcheck_check_status > 0` selects exactly what needs a look).
When one code ran against several targets, the worst status wins.

Latency is a real Prometheus summary: the quantiles of one benchmark's samples, with `_sum`
(total seconds) and `_count` (operations measured) of that same benchmark, so the mean is
`_sum / _count`. They describe one run, not a process's lifetime: `rate()` means nothing here.

Given the `report` built from the same runs (`immichcheck.history.compare.build_report`), the
report's verdicts are exported too: `immichcheck_target_met` (1 met, 0 missed; unmeasured
targets are left out) and `immichcheck_report_regressions` (significant regressions of each
node's latest run against its baseline).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence

from immichcheck.common.records import BenchmarkResult, RunRecord, Status
from immichcheck.history.exposition import (
    Exposition,
    MetricSpec,
    escape_label_value,
    format_value,
)
from immichcheck.history.latest_series import chronological, latest_series_results
from immichcheck.history.report_model import TARGET_MET, TARGET_MISSED, Report

__all__ = [
    "METRICS",
    "STATUS_VALUES",
    "escape_label_value",
    "format_value",
    "parameters_label",
    "render_prometheus",
    "run_succeeded",
]

STATUS_VALUES: Mapping[Status, int] = {
    Status.SKIP: -1,
    Status.PASS: 0,
    Status.WARN: 1,
    Status.FAIL: 2,
    Status.ERROR: 3,
}

# quantile label -> attribute of BenchmarkResult (seconds)
QUANTILES: tuple[tuple[str, str], ...] = (
    ("0.5", "p50"),
    ("0.9", "p90"),
    ("0.95", "p95"),
    ("0.99", "p99"),
    ("0.999", "p999"),
)

_SERIES = ("node", "params", "workload")
_RUN = ("kind", "node")

# Every family immichcheck exports, in the order they are written. Base units throughout.
METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "immichcheck_check_status",
        "gauge",
        ("code", "component", "node"),
        "Worst status of a check code: -1 SKIP, 0 PASS, 1 WARN, 2 FAIL, 3 ERROR.",
    ),
    MetricSpec(
        "immichcheck_checks",
        "gauge",
        ("kind", "node", "status"),
        "Number of check results per status in the latest run.",
    ),
    MetricSpec(
        "immichcheck_benchmark_latency_seconds",
        "summary",
        _SERIES,
        "Latency of one benchmark's operations in seconds (quantiles, sum and count).",
    ),
    MetricSpec(
        "immichcheck_benchmark_throughput_ops_per_second",
        "gauge",
        _SERIES,
        "Benchmark throughput in operations per second.",
    ),
    MetricSpec(
        "immichcheck_benchmark_bytes_per_second",
        "gauge",
        _SERIES,
        "Benchmark data rate in bytes per second.",
    ),
    MetricSpec(
        "immichcheck_benchmark_errors",
        "gauge",
        _SERIES,
        "Failed operations during the benchmark.",
    ),
    MetricSpec(
        "immichcheck_benchmark_timestamp_seconds",
        "gauge",
        _SERIES,
        "Unix time the run that measured this benchmark series finished.",
    ),
    MetricSpec(
        "immichcheck_last_run_timestamp_seconds",
        "gauge",
        _RUN,
        "Unix time the latest run finished.",
    ),
    MetricSpec(
        "immichcheck_last_success_timestamp_seconds",
        "gauge",
        _RUN,
        "Unix time the latest run without failures or errors finished.",
    ),
    MetricSpec(
        "immichcheck_target_met",
        "gauge",
        ("node", "params", "target", "workload"),
        "1 when the latest run meets a published target (benchmarks/targets.yaml), 0 when not.",
    ),
    MetricSpec(
        "immichcheck_report_regressions",
        "gauge",
        ("node",),
        "Significant regressions of the latest run against its baseline.",
    ),
    MetricSpec(
        "immichcheck_capacity_seconds",
        "gauge",
        ("estimate", "job", "node"),
        "Estimated seconds to process the whole library per node and job: estimate=p50 when "
        "every item takes the measured median, p90 when every item takes the p90.",
    ),
    MetricSpec(
        "immichcheck_exposition_generated_timestamp_seconds",
        "gauge",
        (),
        "Unix time this exposition was written.",
    ),
)


def parameters_label(parameters: Mapping[str, object]) -> str:
    """Parameters as one stable, readable label value: `clients=50,pipeline=16`."""
    return ",".join(f"{key}={_scalar(parameters[key])}" for key in sorted(parameters))


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def run_succeeded(run: RunRecord) -> bool:
    """A run succeeded when no check failed or errored and no benchmark recorded errors."""
    if any(check.status in (Status.FAIL, Status.ERROR) for check in run.checks):
        return False
    return not any(bench.errors for bench in run.benchmarks)


def _latest_per_node_kind(runs: Iterable[RunRecord]) -> list[RunRecord]:
    latest: dict[tuple[str, str], RunRecord] = {}
    for run in chronological(runs):
        latest[(run.node, run.kind)] = run
    return chronological(latest.values())


def render_prometheus(
    runs: Sequence[RunRecord], *, now: float | None = None, report: Report | None = None
) -> str:
    """node_exporter textfile text: latest checks per node, latest value per benchmark series."""
    out = Exposition(METRICS)
    latest_runs = _latest_per_node_kind(runs)
    for run in latest_runs:
        out.set(
            "immichcheck_last_run_timestamp_seconds",
            {"kind": run.kind, "node": run.node},
            run.finished_at.timestamp(),
        )
        _check_samples(run, out)
    for series in latest_series_results(runs):
        _benchmark_samples(series.run, series.result, out)
    for run in runs:
        if run_succeeded(run):
            labels = {"kind": run.kind, "node": run.node}
            finished = run.finished_at.timestamp()
            previous = out.get("immichcheck_last_success_timestamp_seconds", labels)
            if previous is None or finished > previous:
                out.set("immichcheck_last_success_timestamp_seconds", labels, finished)
    if report is not None:
        _report_samples(report, {run.node for run in runs}, out)
        _capacity_samples(report, {run.node for run in runs}, out)
    out.set("immichcheck_exposition_generated_timestamp_seconds", {}, _now(now))
    return out.render()


def _capacity_samples(report: Report, nodes: set[str], out: Exposition) -> None:
    """The capacity estimates (history/capacity.py) of the nodes exported, both ends."""
    for estimate in report.capacity.estimates if report.capacity else ():
        if estimate.node not in nodes:
            continue
        for bound, seconds in (("p50", estimate.seconds_p50), ("p90", estimate.seconds_p90)):
            if seconds is not None:
                labels = {"estimate": bound, "job": estimate.job, "node": estimate.node}
                out.set("immichcheck_capacity_seconds", labels, seconds)


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _check_samples(run: RunRecord, out: Exposition) -> None:
    worst: dict[tuple[str, str], int] = {}
    counts: dict[str, int] = {}
    for check in run.checks:
        key = (check.code, check.component)
        value = STATUS_VALUES[check.status]
        worst[key] = max(worst.get(key, value), value)
        counts[check.status.value] = counts.get(check.status.value, 0) + 1
    for (code, component), value in worst.items():
        labels = {"code": code, "component": component, "node": run.node}
        out.set("immichcheck_check_status", labels, value)
    if run.checks:
        for state in Status:
            labels = {"kind": run.kind, "node": run.node, "status": state.value}
            out.set("immichcheck_checks", labels, counts.get(state.value, 0))


def _benchmark_samples(run: RunRecord, bench: BenchmarkResult, out: Exposition) -> None:
    labels = {
        "node": run.node,
        "params": parameters_label(bench.parameters),
        "workload": bench.workload,
    }
    quantiles = (
        {label: float(getattr(bench, attribute)) for label, attribute in QUANTILES}
        if bench.count
        else {}
    )
    # The mean times the count is the samples' total, which the record keeps only as the mean.
    total = bench.mean * bench.count if bench.count and not math.isnan(bench.mean) else 0.0
    out.set_summary("immichcheck_benchmark_latency_seconds", labels, quantiles, total, bench.count)
    out.set("immichcheck_benchmark_throughput_ops_per_second", labels, bench.throughput)
    if bench.bytes_per_second is not None:
        out.set("immichcheck_benchmark_bytes_per_second", labels, bench.bytes_per_second)
    out.set("immichcheck_benchmark_errors", labels, bench.errors)
    out.set("immichcheck_benchmark_timestamp_seconds", labels, run.finished_at.timestamp())


def _report_samples(report: Report, nodes: set[str], out: Exposition) -> None:
    for verdict in report.targets:
        if verdict.node not in nodes or verdict.status not in (TARGET_MET, TARGET_MISSED):
            continue
        labels = {
            "node": verdict.node,
            "params": _parameters_text(verdict.parameters),
            "target": verdict.target,
            "workload": verdict.workload,
        }
        out.set("immichcheck_target_met", labels, 1 if verdict.status == TARGET_MET else 0)
    compared = {change.node for change in report.changes}
    for node in sorted(compared & nodes):
        count = sum(1 for c in report.regressions if c.node == node)
        out.set("immichcheck_report_regressions", {"node": node}, count)


def _parameters_text(parameters: str) -> str:
    return parameters_label(json.loads(parameters)) if parameters else ""

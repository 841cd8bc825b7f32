"""Run records as Prometheus metrics in the node_exporter textfile-collector format.

Shared by `verify --format prometheus` and `export --prometheus`/`--pushgateway`. A pure
function: it reads the runs it is given and returns the exposition text.

Which runs count: for every (node, kind) pair only the latest run (by `started_at`) feeds the
check and benchmark series, so a stale result never hides behind a newer one. The "last
success" timestamp looks at every run given, so pass the history when you have it.

Check status values (`immichcheck_check_status`) follow the Nagios order so that one
comparison makes an alert rule: 0 PASS, 1 WARN, 2 FAIL, 3 ERROR, and -1 SKIP (a check that
did not apply: below PASS so `immichcheck_check_status > 0` selects exactly what needs a look).
When one code ran against several targets, the worst status wins.

Given the `report` built from the same runs
(`immichcheck.history.compare.build_report`), the report's
verdicts are exported too: `immichcheck_target_met` (1 met, 0 missed; unmeasured targets are
left out) and `immichcheck_report_regressions` (significant regressions of each node's latest
run against its baseline).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from immichcheck.common.records import BenchmarkResult, RunRecord, Status
from immichcheck.history.report_model import TARGET_MET, TARGET_MISSED, Report

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


def escape_label_value(value: str) -> str:
    """Escape a label value as the exposition format requires (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def parameters_label(parameters: Mapping[str, object]) -> str:
    """Parameters as one stable, readable label value: `clients=50,pipeline=16`."""
    return ",".join(f"{key}={_scalar(parameters[key])}" for key in sorted(parameters))


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def format_value(value: float) -> str:
    """A sample value: shortest exact repr, with Prometheus spellings for the specials."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def run_succeeded(run: RunRecord) -> bool:
    """A run succeeded when no check failed or errored and no benchmark recorded errors."""
    if any(check.status in (Status.FAIL, Status.ERROR) for check in run.checks):
        return False
    return not any(bench.errors for bench in run.benchmarks)


@dataclass
class _Family:
    name: str
    help: str
    samples: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)

    def set(self, labels: Mapping[str, str], value: float) -> None:
        self.samples[tuple(labels.items())] = value

    def render(self) -> list[str]:
        if not self.samples:
            return []
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        for labels in sorted(self.samples):
            rendered = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels)
            selector = f"{{{rendered}}}" if rendered else ""
            lines.append(f"{self.name}{selector} {format_value(self.samples[labels])}")
        return lines


def _latest_per_node_kind(runs: Iterable[RunRecord]) -> list[RunRecord]:
    latest: dict[tuple[str, str], RunRecord] = {}
    for run in runs:
        key = (run.node, run.kind)
        current = latest.get(key)
        if current is None or (run.started_at, run.run_id) > (current.started_at, current.run_id):
            latest[key] = run
    # Oldest first, so a newer run's benchmark of the same series overwrites an older one.
    return sorted(latest.values(), key=lambda r: (r.started_at, r.run_id))


def render_prometheus(
    runs: Sequence[RunRecord], *, now: float | None = None, report: Report | None = None
) -> str:
    """node_exporter textfile text for the latest run per (node, kind) plus last-success times."""
    status = _Family(
        "immichcheck_check_status",
        "Worst status of a check code: -1 SKIP, 0 PASS, 1 WARN, 2 FAIL, 3 ERROR.",
    )
    checks_by_status = _Family(
        "immichcheck_checks", "Number of check results per status in the latest run."
    )
    latency = _Family(
        "immichcheck_benchmark_latency_seconds", "Benchmark latency quantile in seconds."
    )
    mean = _Family(
        "immichcheck_benchmark_latency_mean_seconds", "Mean benchmark latency in seconds."
    )
    throughput = _Family(
        "immichcheck_benchmark_throughput_ops_per_second",
        "Benchmark throughput in operations per second.",
    )
    bandwidth = _Family(
        "immichcheck_benchmark_bytes_per_second", "Benchmark data rate in bytes per second."
    )
    errors = _Family(
        "immichcheck_benchmark_errors", "Failed operations during the benchmark (latest run)."
    )
    last_run = _Family(
        "immichcheck_last_run_timestamp_seconds", "Unix time the latest run finished."
    )
    last_success = _Family(
        "immichcheck_last_success_timestamp_seconds",
        "Unix time the latest run without failures or errors finished.",
    )
    generated = _Family(
        "immichcheck_exposition_generated_timestamp_seconds",
        "Unix time this exposition was written.",
    )
    target_met = _Family(
        "immichcheck_target_met",
        "1 when the latest run meets a published target (benchmarks/targets.yaml), 0 when not.",
    )
    regressions = _Family(
        "immichcheck_report_regressions",
        "Significant regressions of the latest run against its baseline.",
    )
    if report is not None:
        _report_samples(report, {run.node for run in runs}, target_met, regressions)
    # Capacity (history/capacity.py): seconds for the whole library per job, p50 and p90 ends.
    capacity = _Family(
        "immichcheck_capacity_seconds",
        "Estimated seconds to process the whole library per node and job (p50/p90 per item).",
    )
    for estimate in report.capacity.estimates if report and report.capacity else ():
        measured = estimate.seconds_p50 is not None and estimate.seconds_p90 is not None
        if measured and estimate.node in {run.node for run in runs}:
            for quantile, seconds in (("0.5", estimate.seconds_p50), ("0.9", estimate.seconds_p90)):
                assert seconds is not None
                labels = {"job": estimate.job, "node": estimate.node, "quantile": quantile}
                capacity.set(labels, seconds)

    for run in _latest_per_node_kind(runs):
        last_run.set({"kind": run.kind, "node": run.node}, run.finished_at.timestamp())
        worst: dict[tuple[str, str], int] = {}
        counts: dict[str, int] = {}
        for check in run.checks:
            key = (check.code, check.component)
            value = STATUS_VALUES[check.status]
            worst[key] = max(worst.get(key, value), value)
            counts[check.status.value] = counts.get(check.status.value, 0) + 1
        for (code, component), value in worst.items():
            status.set({"code": code, "component": component, "node": run.node}, value)
        if run.checks:
            for state in Status:
                checks_by_status.set(
                    {"kind": run.kind, "node": run.node, "status": state.value},
                    counts.get(state.value, 0),
                )
        for bench in run.benchmarks:
            _benchmark_samples(run.node, bench, latency, mean, throughput, bandwidth, errors)

    for run in runs:
        if not run_succeeded(run):
            continue
        labels = {"kind": run.kind, "node": run.node}
        finished = run.finished_at.timestamp()
        success_key = tuple(labels.items())
        if finished > last_success.samples.get(success_key, -math.inf):
            last_success.set(labels, finished)

    generated.set({}, time.time() if now is None else now)
    families = (
        status,
        checks_by_status,
        latency,
        mean,
        throughput,
        bandwidth,
        errors,
        last_run,
        last_success,
        target_met,
        regressions,
        capacity,
        generated,
    )
    lines = [line for family in families for line in family.render()]
    return "\n".join(lines) + "\n"


def _benchmark_samples(
    node: str,
    bench: BenchmarkResult,
    latency: _Family,
    mean: _Family,
    throughput: _Family,
    bandwidth: _Family,
    errors: _Family,
) -> None:
    labels = {
        "node": node,
        "params": parameters_label(bench.parameters),
        "workload": bench.workload,
    }
    if bench.count:
        for quantile, attribute in QUANTILES:
            latency.set({**labels, "quantile": quantile}, float(getattr(bench, attribute)))
        mean.set(labels, bench.mean)
    throughput.set(labels, bench.throughput)
    if bench.bytes_per_second is not None:
        bandwidth.set(labels, bench.bytes_per_second)
    errors.set(labels, bench.errors)


def _report_samples(
    report: Report, nodes: set[str], target_met: _Family, regressions: _Family
) -> None:
    for verdict in report.targets:
        if verdict.node not in nodes or verdict.status not in (TARGET_MET, TARGET_MISSED):
            continue
        labels = {
            "node": verdict.node,
            "params": _parameters_text(verdict.parameters),
            "target": verdict.target,
            "workload": verdict.workload,
        }
        target_met.set(labels, 1 if verdict.status == TARGET_MET else 0)
    compared = {change.node for change in report.changes}
    for node in sorted(compared & nodes):
        count = sum(1 for c in report.regressions if c.node == node)
        regressions.set({"node": node}, count)


def _parameters_text(parameters: str) -> str:
    return parameters_label(json.loads(parameters)) if parameters else ""

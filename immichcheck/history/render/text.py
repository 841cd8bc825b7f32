"""Human-readable numbers and names shared by the report renderers (pure, no pandas)."""

from __future__ import annotations

import json
import math

from immichcheck.history.prometheus import parameters_label
from immichcheck.history.report_model import (
    IMPROVEMENT,
    TARGET_MET,
    WITHIN_NOISE,
    Change,
    Distribution,
    PairComparison,
    Report,
    RunInfo,
    metric_unit,
)

METRIC_TITLES = {
    "p50": "p50",
    "p90": "p90",
    "p95": "p95",
    "p99": "p99",
    "p999": "p99.9",
    "mean": "mean",
    "max": "max",
    "min": "min",
    "throughput": "throughput",
    "bytes_per_second": "data rate",
    "errors": "errors",
}
SPARK = "▁▂▃▄▅▆▇█"


def series_name(workload: str, parameters: str) -> str:
    """`redis.set clients=50,pipeline=16` from a workload and its canonical-JSON parameters."""
    label = parameters_label(json.loads(parameters)) if parameters else ""
    return f"{workload} {label}" if label else workload


def metric_title(metric: str) -> str:
    """A metric's display name (`p999` -> `p99.9`, `throughput_ratio` -> `throughput ratio`)."""
    if metric.endswith("_ratio"):
        return f"{metric_title(metric[: -len('_ratio')])} ratio"
    return METRIC_TITLES.get(metric, metric)


def _significant(value: float, digits: int = 3) -> str:
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def format_seconds(value: float) -> str:
    """0.000412 -> `412 µs`, 0.0011 -> `1.10 ms`, 2.5 -> `2.50 s` (three significant digits)."""
    if value < 1e-3:
        return f"{_significant(value * 1e6)} µs"
    if value < 1.0:
        return f"{_significant(value * 1e3)} ms"
    return f"{_significant(value)} s"


def format_value(metric: str, value: float | None) -> str:
    """A metric value with its unit scaled for reading."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    unit = metric_unit(metric)
    if unit == "seconds":
        return format_seconds(value)
    if unit == "ops/s":
        return f"{value:,.0f} ops/s" if value >= 100 else f"{_significant(value)} ops/s"
    if unit == "bytes/s":
        return f"{_significant(value / 1e6)} MB/s"
    if unit == "ratio":
        return f"{_significant(value)}x"
    return f"{value:,.0f}"


def format_change(change: float) -> str:
    """0.285 -> `+28.5%`."""
    return f"{change * 100:+.1f}%"


def format_noise(noise: float | None) -> str:
    """Half width of the noise band: `±3.1%`, or `unknown`."""
    return "unknown" if noise is None else f"±{noise * 100:.1f}%"


def format_ratio(ratio: float) -> str:
    """2.76 -> `2.76x`."""
    return f"{_significant(ratio)}x"


def sparkline(values: tuple[float, ...]) -> str:
    """Unicode bars scaled between the series' own minimum and maximum."""
    low, high = min(values), max(values)
    if high == low:
        return SPARK[3] * len(values)
    return "".join(SPARK[round((v - low) / (high - low) * (len(SPARK) - 1))] for v in values)


VERDICT_ORDER = {"regression": 0, "improvement": 1, "within noise": 2, "ok": 3}
METRIC_ORDER = {m: i for i, m in enumerate(METRIC_TITLES)}


def ordered_changes(changes: tuple[Change, ...]) -> list[Change]:
    """Regressions first, then improvements, noise, and the rest; stable within each."""
    return sorted(
        changes,
        key=lambda c: (
            VERDICT_ORDER.get(c.verdict, 9),
            c.node,
            c.workload,
            c.parameters,
            METRIC_ORDER.get(c.metric, 99),
        ),
    )


def headline(report: Report) -> list[str]:
    """The few sentences that say whether anything needs attention."""
    lines = []
    regressions = report.regressions
    if regressions:
        names = sorted({f"{c.node} {series_name(c.workload, c.parameters)}" for c in regressions})
        lines.append(f"{len(regressions)} regression(s): {'; '.join(names)}")
    improvements = [c for c in report.changes if c.verdict == IMPROVEMENT]
    if improvements:
        lines.append(f"{len(improvements)} significant improvement(s)")
    noisy = [c for c in report.changes if c.verdict == WITHIN_NOISE]
    if noisy:
        lines.append(
            f"{len(noisy)} change(s) beyond their rule but within noise (not called either way)"
        )
    missed = report.missed_targets
    if missed:
        names = sorted({f"{t.node} {t.target}" for t in missed})
        lines.append(f"{len(missed)} missed target(s): {'; '.join(names)}")
    met = [t for t in report.targets if t.status == TARGET_MET]
    if met:
        lines.append(f"{len(met)} target(s) met")
    if report.failing_checks:
        codes = sorted({f"{c.node} {c.code} {c.status}" for c in report.failing_checks})
        lines.append(f"{len(report.failing_checks)} check(s) not passing: {'; '.join(codes)}")
    if not lines:
        lines.append("nothing to flag")
    return lines


def distribution_metrics(item: Distribution) -> list[tuple[str, float]]:
    """The percentiles of a distribution in display order."""
    return [
        ("p50", item.p50),
        ("p90", item.p90),
        ("p95", item.p95),
        ("p99", item.p99),
        ("p999", item.p999),
        ("max", item.max),
    ]


def pair_difference(pair: PairComparison) -> str:
    """`nvme 15.0x faster`, or `within noise (1.02x)`."""
    factor = max(pair.ratio, 1.0 / pair.ratio) if pair.ratio > 0 else float("inf")
    if not pair.better:
        return f"within noise ({format_ratio(factor)})"
    return f"{pair.better} {format_ratio(factor)} faster"


# Tables whose cells are the same text in every format (HTML escapes them, Markdown pipes).
CHANGE_COLUMNS = (
    "Node",
    "Series",
    "Metric",
    "Baseline",
    "Latest",
    "Change",
    "Rule",
    "Verdict",
    "Noise",
)
LATEST_RUN_COLUMNS = ("Node", "Kind", "Run", "Started", "Benchmarks", "Checks", "Tags")
DISTRIBUTION_COLUMNS = (
    "Node",
    "Series",
    "Samples",
    "p50",
    "p90",
    "p95",
    "p99",
    "p99.9",
    "max",
    "Throughput",
    "Errors",
)


def latest_run_row(run: RunInfo) -> list[str]:
    """One row of the latest-runs table, cells in LATEST_RUN_COLUMNS order."""
    return [
        run.node,
        run.kind,
        run.run_id,
        run.started_at,
        str(run.benchmarks),
        ", ".join(f"{k} {v}" for k, v in sorted(run.check_counts.items())) or "-",
        ", ".join(run.tags) or "-",
    ]


def pair_columns(left: str, right: str) -> list[str]:
    """Header of a node-vs-node or path-vs-path table."""
    return ["Series", "Metric", left, right, "Difference", "Noise"]


def pair_row(pair: PairComparison) -> list[str]:
    """One row of a node-vs-node or path-vs-path table, cells in pair_columns order."""
    return [
        series_name(pair.workload, pair.parameters),
        metric_title(pair.metric),
        format_value(pair.metric, pair.left),
        format_value(pair.metric, pair.right),
        pair_difference(pair),
        format_noise(pair.noise),
    ]


def distribution_row(item: Distribution) -> list[str]:
    """One row of the latency-distributions table, cells in DISTRIBUTION_COLUMNS order."""
    return (
        [item.node, series_name(item.workload, item.parameters), f"{item.count:,}"]
        + [format_value(m, v) for m, v in distribution_metrics(item)]
        + [format_value("throughput", item.throughput), str(item.errors)]
    )

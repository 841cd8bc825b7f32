"""The report as CSV: one row per finding, base units, for spreadsheets and scripts.

Columns: section, node, workload, parameters, metric, reference, reference_value, value,
change, verdict, noise, detail. Sections:
* `change`: latest vs baseline (reference = baseline run id; change = relative);
* `node` / `path`: two nodes or storage paths (reference = left label, value = right side;
  change = right / left - 1; detail = which side is faster);
* `target`: a published target (reference = the bound, e.g. `<`; reference_value = threshold);
* `trend`: one row per run and metric (reference = run id);
* `latest`: the latest run's figures per series (reference = run id);
* `capacity`: time for the whole library per node and job (workload = Immich's queue name or
  `upload`; value = seconds at the p50 per item, reference_value = at the p90; detail = what it
  is built from, or what to run when there is no estimate).
"""

from __future__ import annotations

import csv
import io

from immichcheck.history.render.capacity import capacity_csv_rows
from immichcheck.history.render.text import distribution_metrics, pair_difference
from immichcheck.history.report_model import Report

COLUMNS = (
    "section",
    "node",
    "workload",
    "parameters",
    "metric",
    "reference",
    "reference_value",
    "value",
    "change",
    "verdict",
    "noise",
    "detail",
)


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def render_csv(report: Report) -> str:
    """All findings of the report as CSV text (RFC 4180 quoting, `\\n` line ends)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in report.changes:
        writer.writerow(
            [
                "change",
                c.node,
                c.workload,
                c.parameters,
                c.metric,
                c.baseline_run,
                _number(c.baseline),
                _number(c.current),
                _number(c.change),
                c.verdict,
                _number(c.noise),
                f"rule {c.rule}; run {c.current_run}; noise: {c.noise_method}",
            ]
        )
    for p in (*report.node_pairs, *report.path_pairs):
        writer.writerow(
            [
                p.kind,
                p.node,
                p.workload,
                p.parameters,
                p.metric,
                p.left_label,
                _number(p.left),
                _number(p.right),
                _number(p.ratio - 1.0),
                p.better or "within noise",
                _number(p.noise),
                f"{p.right_label} vs {p.left_label}: {pair_difference(p)}",
            ]
        )
    for t in report.targets:
        writer.writerow(
            [
                "target",
                t.node,
                t.workload,
                t.parameters,
                t.metric,
                t.op,
                _number(t.threshold),
                _number(t.value),
                "",
                t.status,
                "",
                f"{t.target}: {t.title}. Source: {t.source}",
            ]
        )
    for trend in report.trends:
        for metric, values in trend.values.items():
            for run_id, value in zip(trend.run_ids, values, strict=True):
                writer.writerow(
                    [
                        "trend",
                        trend.node,
                        trend.workload,
                        trend.parameters,
                        metric,
                        run_id,
                        "",
                        _number(value),
                        "",
                        "",
                        "",
                        "",
                    ]
                )
    for d in report.distributions:
        figures = [*distribution_metrics(d), ("throughput", d.throughput)]
        if d.bytes_per_second is not None:
            figures.append(("bytes_per_second", d.bytes_per_second))
        figures.append(("errors", float(d.errors)))
        for metric, value in figures:
            writer.writerow(
                [
                    "latest",
                    d.node,
                    d.workload,
                    d.parameters,
                    metric,
                    d.run_id,
                    "",
                    _number(value),
                    "",
                    "",
                    "",
                    f"{d.count} samples",
                ]
            )
    writer.writerows(capacity_csv_rows(report.capacity))
    return buffer.getvalue()

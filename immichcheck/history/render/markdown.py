"""The report as Markdown (GitHub-flavoured tables): the default, for terminals and CI logs.

On a terminal (`width` given) the tables become aligned text that fits it: a pipe table
wider than the screen folds every row, which is unreadable there.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from immichcheck.common.text_table import cell_len, fit_table
from immichcheck.history.render.capacity import capacity_markdown
from immichcheck.history.render.text import (
    CHANGE_COLUMNS,
    DISTRIBUTION_COLUMNS,
    LATEST_RUN_COLUMNS,
    distribution_row,
    format_change,
    format_noise,
    format_value,
    headline,
    latest_run_row,
    metric_title,
    ordered_changes,
    pair_columns,
    pair_row,
    series_name,
    sparkline,
)
from immichcheck.history.report_model import (
    TARGET_NOT_MEASURED,
    WITHIN_THRESHOLD,
    PairComparison,
    Report,
)

_STATUS_MARK = {
    "met": "✅ met",
    "missed": "❌ missed",
    "regression": "❌ regression",
    "improvement": "✅ improvement",
    "within noise": "〰 within noise",
    "ok": "ok",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int | None = None,
    droppable: Sequence[str] = (),
) -> list[str]:
    """A pipe table; with `width` (a terminal), aligned text that fits it, `droppable`
    columns left out (first named first) when even wrapped cells would not fit."""
    if width is not None:
        return [*fit_table(header, rows, width, droppable=droppable), ""]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _pairs_section(title: str, pairs: Sequence[PairComparison], width: int | None) -> list[str]:
    lines: list[str] = []
    groups: dict[tuple[str, str, str], list[PairComparison]] = {}
    for pair in pairs:
        groups.setdefault((pair.node, pair.left_label, pair.right_label), []).append(pair)
    for (node, left, right), rows in groups.items():
        heading = f"## {title}: {left} vs {right}"
        if rows[0].kind == "path":
            heading += f" (on {node})"
        lines += [heading, ""]
        lines += _table(pair_columns(left, right), [pair_row(p) for p in rows], width, ("Noise",))
    return lines


def render_markdown(report: Report, width: int | None = None) -> str:
    """The whole report as Markdown text; with `width`, laid out for a terminal that wide."""
    lines = [
        "# immichcheck report",
        "",
        f"As of {report.as_of} · {report.runs_considered} run(s) · baseline: {report.baseline}",
        "",
        "## Summary",
        "",
    ]
    lines += [f"- {line}" for line in headline(report)] + [""]

    if report.latest:
        lines += ["## Latest runs", ""]
        lines += _table(
            LATEST_RUN_COLUMNS,
            [latest_run_row(r) for r in report.latest],
            width,
            ("Benchmarks", "Kind", "Tags"),
        )
    if report.failing_checks:
        lines += ["## Checks not passing", ""]
        lines += _table(
            ["Node", "Code", "Status", "Component", "Message"],
            [[c.node, c.code, c.status, c.component, c.message] for c in report.failing_checks],
            width,
            ("Component",),
        )

    measured = [t for t in report.targets if t.status != TARGET_NOT_MEASURED]
    unmeasured = [t for t in report.targets if t.status == TARGET_NOT_MEASURED]
    if report.targets:
        lines += ["## Targets", ""]
        if measured:
            lines += _table(
                ["Target", "Node", "Series", "Value", "Needed", "Verdict", "Source"],
                [
                    [
                        t.title,
                        t.node,
                        series_name(t.workload, t.parameters),
                        f"{metric_title(t.metric)} {format_value(t.metric, t.value)}",
                        f"{t.op} {format_value(t.metric, t.threshold)}",
                        _STATUS_MARK[t.status],
                        t.source,
                    ]
                    for t in measured
                ],
                width,
                ("Source",),
            )
        if unmeasured:
            names: dict[str, list[str]] = {}
            for t in unmeasured:
                names.setdefault(f"{t.target} ({t.workload})", []).append(t.node)
            listed = "; ".join(f"{k} on {', '.join(v)}" for k, v in names.items())
            lines += [f"Not measured: {listed}.", ""]

    lines += capacity_markdown(report.capacity, width)
    if report.changes:
        shown = [c for c in ordered_changes(report.changes) if c.verdict != WITHIN_THRESHOLD]
        quiet = len(report.changes) - len(shown)
        lines += [f"## Changes against the baseline ({report.baseline})", ""]
        if shown:
            lines += _table(
                CHANGE_COLUMNS,
                [
                    [
                        c.node,
                        series_name(c.workload, c.parameters),
                        metric_title(c.metric),
                        format_value(c.metric, c.baseline),
                        format_value(c.metric, c.current),
                        format_change(c.change),
                        c.rule,
                        _STATUS_MARK[c.verdict],
                        format_noise(c.noise),
                    ]
                    for c in shown
                ],
                width,
                ("Noise", "Rule", "Node", "Baseline"),
            )
        lines += [f"{quiet} more metric(s) changed less than their rule.", ""]
        runs = sorted({(c.node, c.baseline_run, c.current_run) for c in report.changes})
        lines += [f"- {node}: {current} against {base}" for node, base, current in runs] + [""]

    if report.node_pairs:
        lines += _pairs_section("Nodes", report.node_pairs, width)
    if report.path_pairs:
        lines += _pairs_section("Storage paths", report.path_pairs, width)

    if report.trends:
        count = max(len(t.run_ids) for t in report.trends)
        lines += [f"## Trends (last {count} runs)", ""]
        lines += _table(
            ["Node", "Series", "Runs", "p50", "p95", "p99", "Throughput"],
            [
                [t.node, series_name(t.workload, t.parameters), str(len(t.run_ids))]
                + [
                    f"{sparkline(t.values[m])} {format_change(t.change[m])}"
                    if m in t.values
                    else "-"
                    for m in ("p50", "p95", "p99", "throughput")
                ]
                for t in report.trends
            ],
            width,
            ("Runs", "p95", "Node"),
        )

    if report.distributions:
        lines += ["## Latest latency distributions", ""]
        lines += _table(
            DISTRIBUTION_COLUMNS,
            [distribution_row(d) for d in report.distributions],
            width,
            ("p90", "Samples", "p99.9", "max", "p95", "Node"),
        )

    if report.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    if report.warnings:
        lines += ["## Skipped files", ""] + [f"- {w}" for w in report.warnings] + [""]
    if width is not None:
        lines = _wrapped(lines, width)
    return "\n".join(lines).rstrip("\n") + "\n"


def _wrapped(lines: list[str], width: int) -> list[str]:
    """Text lines wrapped to `width` (tables already fit), list items' continuations indented."""
    out: list[str] = []
    for line in lines:
        if cell_len(line) <= width:
            out.append(line)
            continue
        indent = "  " if line.startswith("- ") else ""
        out += textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False)
    return out

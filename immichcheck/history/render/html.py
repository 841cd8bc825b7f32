"""The report as one self-contained HTML page: inline CSS and SVG charts, no scripts, no network.

Charts are drawn here as SVG so the file opens anywhere (a browser on a laptop, an artefact
viewer in CI) without fetching a library:

* `#chart-distribution-<node>`: per series, p50..p99 as a bar on a log time axis, whisker to
  max, marks at p90/p95/p99.9;
* `#chart-nodes-<metric>` / `#chart-paths-<metric>`: paired bars per series;
* `.chart-trend`: one small line chart per series (p50, p95, p99 over the last runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from immichcheck.history.render.capacity import capacity_html
from immichcheck.history.render.text import (
    CHANGE_COLUMNS,
    DISTRIBUTION_COLUMNS,
    LATEST_RUN_COLUMNS,
    distribution_metrics,
    distribution_row,
    format_change,
    format_noise,
    format_seconds,
    format_value,
    headline,
    latest_run_row,
    metric_title,
    ordered_changes,
    pair_columns,
    pair_row,
    series_name,
)
from immichcheck.history.report_model import (
    TARGET_NOT_MEASURED,
    WITHIN_THRESHOLD,
    Distribution,
    PairComparison,
    Report,
    Trend,
)

COLORS = ("#2b6cb0", "#dd6b20", "#2f855a", "#805ad5")
TREND_COLORS = {"p50": "#2f855a", "p95": "#2b6cb0", "p99": "#c53030"}
MAX_TREND_CHARTS = 48
LABEL_WIDTH = 330
PLOT_WIDTH = 520
ROW_HEIGHT = 26

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:1100px;padding:0 1rem;color:#1a202c;background:#fff;line-height:1.4}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #e2e8f0;padding-bottom:.2rem}
.meta{color:#4a5568;margin-top:0}
table{border-collapse:collapse;width:100%;margin:.5rem 0 1rem;font-size:.88rem}
th,td{border:1px solid #e2e8f0;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#f7fafc}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bad{color:#c53030;font-weight:600}.good{color:#2f855a;font-weight:600}.noise{color:#975a16}
ul.summary li{margin:.2rem 0}
svg.chart{display:block;margin:.5rem 0 1rem;max-width:100%;height:auto}
svg text{font-family:inherit;font-size:12px;fill:#1a202c}
svg .axis{stroke:#a0aec0;stroke-width:1}svg .grid{stroke:#edf2f7;stroke-width:1}
svg .tick-label{fill:#4a5568;font-size:11px}
.trends{display:flex;flex-wrap:wrap;gap:.5rem 1rem}
.trends figure{margin:0}.trends figcaption{font-size:.8rem;color:#4a5568;max-width:330px}
.legend span{display:inline-block;margin-right:1rem;font-size:.85rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px}
.muted{color:#718096;font-size:.85rem}
"""


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-").lower() or "x"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for index, cell in enumerate(row):
            css = ' class="num"' if index in numeric else ""
            cells.append(f"<td{css}>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _verdict_html(verdict: str) -> str:
    css = {
        "regression": "bad",
        "missed": "bad",
        "improvement": "good",
        "met": "good",
        "within noise": "noise",
    }.get(verdict, "")
    return f'<span class="{css}">{escape(verdict)}</span>' if css else escape(verdict)


# --------------------------------------------------------------------------- charts


def _log_ticks(low: float, high: float) -> list[float]:
    """Decades, plus 2 and 5 times them when the axis spans few decades."""
    steps = (1.0,) if high / low > 1000 else (1.0, 2.0, 5.0)
    ticks = []
    exponent = math.floor(math.log10(low))
    while 10.0**exponent <= high:
        for step in steps:
            tick = step * 10.0**exponent
            if low <= tick <= high:
                ticks.append(tick)
        exponent += 1
    return ticks


def distribution_chart(node: str, items: Sequence[Distribution]) -> str:
    """Latency distribution per series on a shared log axis (SVG)."""
    items = [d for d in items if d.count and d.p50 > 0]
    if not items:
        return ""
    low = min(d.min if d.min > 0 else d.p50 for d in items) / 1.3
    high = max(d.max for d in items) * 1.3
    span = math.log10(high) - math.log10(low)
    height = 40 + ROW_HEIGHT * len(items)
    width = LABEL_WIDTH + PLOT_WIDTH + 20

    def x(value: float) -> float:
        return LABEL_WIDTH + (math.log10(max(value, low)) - math.log10(low)) / span * PLOT_WIDTH

    parts = [
        f'<svg id="chart-distribution-{_slug(node)}" class="chart chart-distribution" '
        f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="Latency distribution on {escape(node)}">'
    ]
    for tick in _log_ticks(low, high):
        tx = x(tick)
        parts.append(
            f'<line class="grid" x1="{tx:.1f}" y1="10" x2="{tx:.1f}" y2="{height - 25}"/>'
            f'<text class="tick-label" x="{tx:.1f}" y="{height - 10}" text-anchor="middle">'
            f"{escape(format_seconds(tick))}</text>"
        )
    for row, item in enumerate(items):
        y = 20 + row * ROW_HEIGHT
        name = series_name(item.workload, item.parameters)
        summary = ", ".join(
            f"{metric_title(m)} {format_seconds(v)}" for m, v in distribution_metrics(item)
        )
        parts.append(
            f'<g class="series"><title>{escape(name)}: {escape(summary)}</title>'
            f'<text x="{LABEL_WIDTH - 8}" y="{y + 4}" text-anchor="end">'
            f"{escape(_short(name))}</text>"
            f'<line x1="{x(item.p50):.1f}" y1="{y}" x2="{x(item.max):.1f}" y2="{y}" '
            f'stroke="#a0aec0" stroke-width="2"/>'
            f'<rect class="bar" x="{x(item.p50):.1f}" y="{y - 7}" '
            f'width="{max(x(item.p99) - x(item.p50), 2):.1f}" height="14" fill="#bee3f8" '
            f'stroke="#2b6cb0"/>'
            f'<line x1="{x(item.p90):.1f}" y1="{y - 7}" x2="{x(item.p90):.1f}" y2="{y + 7}" '
            f'stroke="#2b6cb0"/>'
            f'<line x1="{x(item.p95):.1f}" y1="{y - 7}" x2="{x(item.p95):.1f}" y2="{y + 7}" '
            f'stroke="#2b6cb0"/>'
            f'<circle cx="{x(item.p50):.1f}" cy="{y}" r="4" fill="#2b6cb0"/>'
            f'<path d="M{x(item.p999):.1f} {y - 5}l5 5-5 5-5-5z" fill="#c53030"/></g>'
        )
    parts.append("</svg>")
    legend = (
        '<p class="legend"><span>● p50</span><span>▭ p50 to p99 (ticks at p90, p95)</span>'
        '<span style="color:#c53030">◆ p99.9</span><span>— to max</span></p>'
    )
    return "".join(parts) + legend


def _short(name: str, limit: int = 44) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def pair_chart(chart_id: str, css: str, metric: str, pairs: Sequence[PairComparison]) -> str:
    """Paired horizontal bars (left vs right) per series for one metric (SVG)."""
    rows = [p for p in pairs if p.metric == metric]
    if not rows:
        return ""
    left_label, right_label = rows[0].left_label, rows[0].right_label
    height = 30 + 2 * ROW_HEIGHT * len(rows)
    width = LABEL_WIDTH + PLOT_WIDTH + 190  # room for the value after the longest bar
    parts = [
        f'<svg id="{chart_id}" class="chart {css}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(metric_title(metric))}: {escape(left_label)} vs '
        f'{escape(right_label)}">'
    ]
    for row, pair in enumerate(rows):
        top = 10 + row * 2 * ROW_HEIGHT
        scale = max(pair.left, pair.right) or 1.0
        name = series_name(pair.workload, pair.parameters)
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{top + ROW_HEIGHT}" text-anchor="end">'
            f"{escape(_short(name))}</text>"
        )
        for offset, (label, value, color) in enumerate(
            ((left_label, pair.left, COLORS[0]), (right_label, pair.right, COLORS[1]))
        ):
            y = top + 4 + offset * (ROW_HEIGHT - 2)
            bar = max(value / scale * PLOT_WIDTH, 1.0)
            text = f"{label}: {format_value(metric, value)}"
            parts.append(
                f'<g class="bar"><title>{escape(name)} {escape(text)}</title>'
                f'<rect x="{LABEL_WIDTH}" y="{y}" width="{bar:.1f}" height="{ROW_HEIGHT - 8}" '
                f'fill="{color}"/><text x="{LABEL_WIDTH + bar + 6:.1f}" y="{y + 13}">'
                f"{escape(text)}</text></g>"
            )
    parts.append("</svg>")
    return "".join(parts)


def trend_chart(trend: Trend) -> str:
    """p50/p95/p99 of one series over the last runs (SVG), with the values as tooltips."""
    width, height, pad_left, pad = 330, 150, 58, 14
    metrics = [m for m in ("p50", "p95", "p99") if m in trend.values]
    if not metrics:
        return ""
    top = max(max(trend.values[m]) for m in metrics) * 1.1 or 1.0
    count = len(trend.run_ids)

    def point(index: int, value: float) -> tuple[float, float]:
        px = pad_left + (index / max(count - 1, 1)) * (width - pad_left - pad)
        py = height - 22 - (value / top) * (height - 22 - pad)
        return px, py

    name = series_name(trend.workload, trend.parameters)
    parts = [
        f'<svg class="chart chart-trend" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="Trend of {escape(name)} on {escape(trend.node)}">',
        f'<line class="axis" x1="{pad_left}" y1="{height - 22}" x2="{width - pad}" '
        f'y2="{height - 22}"/>',
        f'<line class="axis" x1="{pad_left}" y1="{pad}" x2="{pad_left}" y2="{height - 22}"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        value = top * fraction
        _, ty = point(0, value)
        parts.append(
            f'<text class="tick-label" x="{pad_left - 4}" y="{ty + 4:.1f}" text-anchor="end">'
            f"{escape(format_seconds(value) if value else '0')}</text>"
        )
    parts.append(
        f'<text class="tick-label" x="{pad_left}" y="{height - 6}">'
        f"{escape(trend.started_at[0][:10])}</text>"
        f'<text class="tick-label" x="{width - pad}" y="{height - 6}" text-anchor="end">'
        f"{escape(trend.started_at[-1][:10])}</text>"
    )
    for metric in metrics:
        values = trend.values[metric]
        points = " ".join(
            f"{px:.1f},{py:.1f}" for px, py in (point(i, v) for i, v in enumerate(values))
        )
        color = TREND_COLORS[metric]
        parts.append(
            f'<polyline class="line line-{metric}" fill="none" stroke="{color}" '
            f'stroke-width="2" points="{points}"/>'
        )
        for index, value in enumerate(values):
            px, py = point(index, value)
            tip = f"{metric_title(metric)} {format_seconds(value)} ({trend.run_ids[index]})"
            parts.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{color}">'
                f"<title>{escape(tip)}</title></circle>"
            )
    parts.append("</svg>")
    changes = ", ".join(
        f"{metric_title(m)} {format_change(trend.change[m])}" for m in metrics if m in trend.change
    )
    caption = f"{trend.node} · {name} · {changes}"
    return f"<figure>{''.join(parts)}<figcaption>{escape(caption)}</figcaption></figure>"


# --------------------------------------------------------------------------- page


def _pairs_html(kind: str, title: str, pairs: Sequence[PairComparison]) -> list[str]:
    out: list[str] = []
    groups: dict[tuple[str, str, str], list[PairComparison]] = {}
    for pair in pairs:
        groups.setdefault((pair.node, pair.left_label, pair.right_label), []).append(pair)
    for (node, left, right), rows in groups.items():
        heading = f"{title}: {left} vs {right}" + (f" (on {node})" if kind == "path" else "")
        slug = _slug(f"{node}-{left}-{right}" if kind == "path" else f"{left}-{right}")
        out.append(f'<section id="{kind}s-{slug}"><h2>{escape(heading)}</h2>')
        out.append(
            f'<p class="legend"><span><i style="background:{COLORS[0]}"></i>{escape(left)}</span>'
            f'<span><i style="background:{COLORS[1]}"></i>{escape(right)}</span>'
            '<span class="muted">bars scaled per series</span></p>'
        )
        for metric in ("p95", "throughput"):
            chart = pair_chart(f"chart-{kind}s-{slug}-{metric}", f"chart-{kind}s", metric, rows)
            if chart:
                out.append(f"<h3>{escape(metric_title(metric))}</h3>{chart}")
        out.append(
            _table(
                pair_columns(left, right),
                [[escape(cell) for cell in pair_row(p)] for p in rows],
                {2, 3, 5},
            )
        )
        out.append("</section>")
    return out


def render_html(report: Report) -> str:
    """The whole report as one standalone HTML document."""
    body: list[str] = [
        "<h1>immichcheck report</h1>",
        f'<p class="meta">As of {escape(report.as_of)} · {report.runs_considered} run(s) · '
        f"baseline: {escape(report.baseline)}</p>",
        '<section id="summary"><h2>Summary</h2><ul class="summary">',
    ]
    body += [f"<li>{escape(line)}</li>" for line in headline(report)]
    body.append("</ul></section>")

    if report.latest:
        body.append('<section id="latest"><h2>Latest runs</h2>')
        body.append(
            _table(
                LATEST_RUN_COLUMNS,
                [[escape(cell) for cell in latest_run_row(r)] for r in report.latest],
                {4},
            )
        )
        body.append("</section>")

    if report.failing_checks:
        body.append('<section id="checks"><h2>Checks not passing</h2>')
        body.append(
            _table(
                ["Node", "Code", "Status", "Component", "Message"],
                [
                    [
                        escape(c.node),
                        escape(c.code),
                        f'<span class="bad">{escape(c.status)}</span>',
                        escape(c.component),
                        escape(c.message),
                    ]
                    for c in report.failing_checks
                ],
                set(),
            )
        )
        body.append("</section>")

    if report.targets:
        measured = [t for t in report.targets if t.status != TARGET_NOT_MEASURED]
        unmeasured = [t for t in report.targets if t.status == TARGET_NOT_MEASURED]
        body.append('<section id="targets"><h2>Targets</h2>')
        if measured:
            body.append(
                _table(
                    ["Target", "Node", "Series", "Value", "Needed", "Verdict", "Source"],
                    [
                        [
                            escape(t.title),
                            escape(t.node),
                            escape(series_name(t.workload, t.parameters)),
                            escape(f"{metric_title(t.metric)} {format_value(t.metric, t.value)}"),
                            escape(f"{t.op} {format_value(t.metric, t.threshold)}"),
                            _verdict_html(t.status),
                            f'<span class="muted">{escape(t.source)}</span>',
                        ]
                        for t in measured
                    ],
                    {3, 4},
                )
            )
        if unmeasured:
            listed = sorted({f"{t.target} ({t.workload}) on {t.node}" for t in unmeasured})
            body.append(f'<p class="muted">Not measured: {escape("; ".join(listed))}.</p>')
        body.append("</section>")

    if report.changes:
        shown = [c for c in ordered_changes(report.changes) if c.verdict != WITHIN_THRESHOLD]
        body.append(
            f'<section id="changes"><h2>Changes against the baseline '
            f"({escape(report.baseline)})</h2>"
        )
        if shown:
            body.append(
                _table(
                    CHANGE_COLUMNS,
                    [
                        [
                            escape(c.node),
                            escape(series_name(c.workload, c.parameters)),
                            escape(metric_title(c.metric)),
                            escape(format_value(c.metric, c.baseline)),
                            escape(format_value(c.metric, c.current)),
                            escape(format_change(c.change)),
                            escape(c.rule),
                            _verdict_html(c.verdict),
                            f'<span title="{escape(c.noise_method)}">'
                            f"{escape(format_noise(c.noise))}</span>",
                        ]
                        for c in shown
                    ],
                    {3, 4, 5, 8},
                )
            )
        quiet = len(report.changes) - len(shown)
        body.append(f'<p class="muted">{quiet} more metric(s) changed less than their rule.</p>')
        body.append("</section>")

    if report.node_pairs:
        body += _pairs_html("node", "Nodes", report.node_pairs)
    if report.path_pairs:
        body += _pairs_html("path", "Storage paths", report.path_pairs)

    if report.distributions:
        body.append('<section id="distributions"><h2>Latest latency distributions</h2>')
        nodes = sorted({d.node for d in report.distributions})
        for node in nodes:
            items = [d for d in report.distributions if d.node == node]
            body.append(f"<h3>{escape(node)}</h3>{distribution_chart(node, items)}")
        body.append(
            _table(
                DISTRIBUTION_COLUMNS,
                [[escape(cell) for cell in distribution_row(d)] for d in report.distributions],
                set(range(2, 11)),
            )
        )
        body.append("</section>")

    if report.trends:
        count = max(len(t.run_ids) for t in report.trends)
        body.append(f'<section id="trends"><h2>Trends (last {count} runs)</h2>')
        body.append(
            '<p class="legend">'
            + "".join(
                f'<span><i style="background:{color}"></i>{metric_title(metric)}</span>'
                for metric, color in TREND_COLORS.items()
            )
            + "</p>"
        )
        shown_trends = report.trends[:MAX_TREND_CHARTS]
        body.append(
            '<div class="trends">' + "".join(trend_chart(t) for t in shown_trends) + "</div>"
        )
        if len(report.trends) > len(shown_trends):
            body.append(
                f'<p class="muted">{len(report.trends) - len(shown_trends)} more series in the '
                "JSON and CSV formats.</p>"
            )
        body.append("</section>")

    body += capacity_html(report.capacity)
    if report.notes:
        body.append('<section id="notes"><h2>Notes</h2><ul>')
        body += [f"<li>{escape(n)}</li>" for n in report.notes]
        body.append("</ul></section>")
    if report.warnings:
        body.append('<section id="warnings"><h2>Skipped files</h2><ul>')
        body += [f"<li>{escape(w)}</li>" for w in report.warnings]
        body.append("</ul></section>")

    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No scripts, styles or images from anywhere else: the page must open offline.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>immichcheck report · {escape(report.as_of)}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )

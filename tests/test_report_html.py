"""The HTML report: self-contained, escaped, with charts; opened in headless Chromium if present."""

# Golden SVG lines are as long as the format makes them.
# ruff: noqa: E501

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from immichcheck.history.compare import ReportOptions, build_report
from immichcheck.history.regression_rules import load_rules
from immichcheck.history.render.html import render_html, trend_chart
from immichcheck.history.thresholds import load_targets
from tests.test_report_formats import small_report
from tests.test_store_factories import generated, nightly_history, run

EXPECTED_REDIS_TREND = (
    '<figure><svg class="chart chart-trend" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 330 150" width="330" height="150" role="img" aria-label="Trend of redis.set clients=50 on node05">'
    '<line class="axis" x1="58" y1="128" x2="316" y2="128"/><line class="axis" x1="58" y1="14" x2="58" y2="128"/>'
    '<text class="tick-label" x="54" y="132.0" text-anchor="end">0</text>'
    '<text class="tick-label" x="54" y="75.0" text-anchor="end">1.29 ms</text>'
    '<text class="tick-label" x="54" y="18.0" text-anchor="end">2.58 ms</text>'
    '<text class="tick-label" x="58" y="144">2026-11-01</text>'
    '<text class="tick-label" x="316" y="144" text-anchor="end">2026-11-02</text>'
    '<polyline class="line line-p50" fill="none" stroke="#2f855a" stroke-width="2" points="58.0,84.3 316.0,67.5"/>'
    '<circle cx="58.0" cy="84.3" r="2.5" fill="#2f855a"><title>p50 988 µs (20261101T020000Z-node05-bench)</title></circle>'
    '<circle cx="316.0" cy="67.5" r="2.5" fill="#2f855a"><title>p50 1.37 ms (20261102T020000Z-node05-bench)</title></circle>'
    '<polyline class="line line-p95" fill="none" stroke="#2b6cb0" stroke-width="2" points="58.0,62.2 316.0,36.7"/>'
    '<circle cx="58.0" cy="62.2" r="2.5" fill="#2b6cb0"><title>p95 1.49 ms (20261101T020000Z-node05-bench)</title></circle>'
    '<circle cx="316.0" cy="36.7" r="2.5" fill="#2b6cb0"><title>p95 2.07 ms (20261102T020000Z-node05-bench)</title></circle>'
    '<polyline class="line line-p99" fill="none" stroke="#c53030" stroke-width="2" points="58.0,57.1 316.0,24.4"/>'
    '<circle cx="58.0" cy="57.1" r="2.5" fill="#c53030"><title>p99 1.60 ms (20261101T020000Z-node05-bench)</title></circle>'
    '<circle cx="316.0" cy="24.4" r="2.5" fill="#c53030"><title>p99 2.34 ms (20261102T020000Z-node05-bench)</title></circle>'
    "</svg><figcaption>node05 · redis.set clients=50 · p50 +38.4%, p95 +38.7%, p99 +46.2%</figcaption></figure>"
)


def test_trend_chart_bytes() -> None:
    report = small_report()
    redis = next(t for t in report.trends if t.workload == "redis.set")
    assert trend_chart(redis) == EXPECTED_REDIS_TREND


def test_page_is_self_contained_and_has_its_charts() -> None:
    page = render_html(small_report())
    assert page.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert page.endswith("</body></html>\n")
    assert "<script" not in page and "<link" not in page and "@import" not in page
    # The only URL is the SVG namespace, which is a name, not a fetch.
    assert set(re.findall(r"https?://[^\"' )]+", page)) == {"http://www.w3.org/2000/svg"}
    assert page.count('<svg id="chart-distribution-node05" class="chart chart-distribution"') == 1
    assert page.count('class="chart chart-trend"') == 2
    assert EXPECTED_REDIS_TREND in page
    assert '<span class="bad">regression</span>' in page
    assert '<td><span class="bad">FAIL</span></td>' in page


def test_everything_from_the_runs_is_escaped() -> None:
    hostile = run(
        0,
        node='node"<b>',
        benchmarks=[generated("redis.<script>alert(1)</script>", {"x": "<i>"}, 0.001, count=50)],
    )
    page = render_html(build_report([hostile], [], ReportOptions()))
    assert "<script>" not in page and "<i>" not in page and "<b>" not in page
    assert "redis.&lt;script&gt;alert(1)&lt;/script&gt; x=&lt;i&gt;" in page


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed")
def test_report_opens_in_headless_chromium(tmp_path: Path) -> None:
    history = nightly_history()
    report = build_report(
        history,
        [],
        ReportOptions(rules=load_rules(), targets=load_targets(), nodes=("node05", "node01")),
    )
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    command = [
        str(_chromium()),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        page.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    # The browser parsed the SVG into elements (it re-serialises them in the DOM dump).
    for chart_id in (
        "chart-distribution-node01",
        "chart-distribution-node05",
        "chart-nodes-node05-node01-p95",
        "chart-nodes-node05-node01-throughput",
        "chart-paths-node05-nfs-nvme-p95",
        "chart-paths-node05-nfs-nvme-throughput",
    ):
        assert re.search(rf'<svg id="{chart_id}" class="chart', dom), chart_id
    assert len(re.findall(r'<svg class="chart chart-trend"', dom)) == len(report.trends) == 7
    assert len(re.findall(r"<polyline ", dom)) == 7 * 3
    assert "<title>immichcheck report · 2026-11-06T02:31:30+00:00</title>" in dom

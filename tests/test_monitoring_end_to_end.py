"""The monitoring path on real parts: node_exporter, Pushgateway and Prometheus from Debian.

Saved runs go through `immichcheck export` exactly as the nightly CronJob does; the shipped
alert rules and the shipped Grafana dashboard's queries run on what Prometheus scraped.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from immichcheck.common.project_files import project_folder
from immichcheck.common.records import Status
from immichcheck.history.store import save_run
from tests.fixtures.cli import run_cli
from tests.fixtures.prometheus_exports import alert_rules_text, export_textfile
from tests.fixtures.prometheus_stack import (
    node_exporter,
    prometheus,
    pushgateway,
    query,
    require,
    wait_for,
)
from tests.test_store_factories import check, generated, run

pytestmark = pytest.mark.slow


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard shipped in manifests/10-monitoring.yaml."""
    manifest = project_folder("manifests") / "10-monitoring.yaml"
    for document in yaml.safe_load_all(manifest.read_text()):
        if document["metadata"]["name"] == "immichcheck-grafana-dashboard":
            assert document["metadata"]["labels"]["grafana_dashboard"] == "1"
            return dict(json.loads(document["data"]["immichcheck-dashboard.json"]))
    raise AssertionError("no immichcheck-grafana-dashboard ConfigMap")


def panel_queries() -> dict[str, str]:
    """Panel title -> PromQL, with the dashboard's `$node` variable set to All."""
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    every_node = variables["node"]["allValue"]
    return {
        panel["title"]: target["expr"].replace("$node", every_node)
        for panel in dashboard()["panels"]
        for target in panel["targets"]
    }


def _save_history(reports: Path) -> None:
    select = generated("postgres.select1", {"concurrency": 1}, 0.0004)
    fsync = generated("storage.fdatasync", {"path": "nvme", "block_bytes": 8192}, 0.001, count=500)
    for night in (0, 1):
        save_run(run(night, benchmarks=[select, fsync]), reports)
    passing = [
        check("IC-RD-101", Status.PASS, "redis"),
        check("IC-PG-101", Status.PASS, "postgres"),
    ]
    save_run(run(0, kind="verify", checks=passing), reports)
    failing = [
        check("IC-RD-101", Status.FAIL, "redis"),
        check("IC-PG-101", Status.PASS, "postgres"),
    ]
    save_run(run(1, kind="verify", checks=failing), reports)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_dashboard_panels_each_say_which_question_they_answer() -> None:
    panels = dashboard()["panels"]
    titles = [panel["title"] for panel in panels]
    assert titles == [
        "Check status per component",
        "Failing checks",
        "Benchmark p50 latency",
        "Benchmark p99 latency",
        "Benchmark throughput",
        "Age of each benchmark figure",
        "Since the last successful run",
        "Targets met",
    ]
    readme = (project_folder("manifests").parent / "README.md").read_text()
    for panel in panels:
        assert panel["description"].endswith("?"), panel["title"]
        assert f"**{panel['title']}**" in readme, f"README does not describe {panel['title']}"
    assert all(p["targets"][0]["datasource"]["uid"] == "${datasource}" for p in panels)


def test_textfile_through_node_exporter_into_prometheus_fires_the_failing_check_alert(
    tmp_path: Path,
) -> None:
    reports, textfile = tmp_path / "reports", tmp_path / "textfile"
    _save_history(reports)
    written = export_textfile(reports, textfile / "immichcheck.prom")
    # The export with every family (verdicts included) is what Prometheus's own linter accepts.
    linted = subprocess.run(
        [require("promtool"), "check", "metrics"],
        input=written,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (linted.returncode, linted.stdout, linted.stderr) == (0, "", "")

    with node_exporter(textfile, tmp_path / "node-exporter") as exporter:
        scraped = httpx.get(f"{exporter.url}/metrics", timeout=10.0).text
        # node_exporter read the file whole and says so: no scrape error, every series as written.
        assert re.search(r"^node_textfile_scrape_error 0$", scraped, re.M), scraped[-2000:]
        ours = {k: v for k, v in _samples(scraped).items() if k[0].startswith("immichcheck_")}
        assert ours == _samples(written)

        with prometheus(
            exporter.url.removeprefix("http://"), alert_rules_text(), tmp_path / "prom"
        ) as prom:

            def failing_alert() -> list[dict[str, Any]]:
                alerts = httpx.get(f"{prom.url}/api/v1/alerts", timeout=10.0).json()["data"][
                    "alerts"
                ]
                return [
                    a
                    for a in alerts
                    if a["labels"]["alertname"] == "ImmichcheckCheckFailing"
                    and a["state"] in ("pending", "firing")
                ]

            alerts = wait_for(failing_alert, "ImmichcheckCheckFailing in the Prometheus API")
            assert [(a["labels"]["code"], a["labels"]["component"]) for a in alerts] == [
                ("IC-RD-101", "redis")
            ]
            assert (
                alerts[0]["annotations"]["summary"]
                == "immichcheck IC-RD-101 fails on redis (node05)"
            )

            for title, expr in panel_queries().items():
                result = query(prom, expr)
                assert result, f"panel {title!r}: {expr} returned no series"
            failing = query(prom, panel_queries()["Failing checks"])
            assert [r["metric"]["code"] for r in failing] == ["IC-RD-101"]


def test_pushgateway_holds_one_group_per_node_and_a_second_push_replaces_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports"
    _save_history(reports)
    select = generated("postgres.select1", {"concurrency": 1}, 0.0011)
    save_run(run(1, node="node01", benchmarks=[select]), reports)

    with pushgateway(tmp_path / "pushgateway") as gateway:

        def push() -> dict[tuple[str, str], dict[str, Any]]:
            code, _, err = run_cli(
                ["export", "--reports-dir", str(reports), "--pushgateway", gateway.url], capsys
            )
            assert (code, err) == (0, "")
            groups = httpx.get(f"{gateway.url}/api/v1/metrics", timeout=10.0).json()["data"]
            return {(g["labels"]["job"], g["labels"]["instance"]): g for g in groups}

        groups = push()
        assert set(groups) == {("immichcheck", "node01"), ("immichcheck", "node05")}
        first_push = float(
            groups[("immichcheck", "node05")]["push_time_seconds"]["metrics"][0]["value"]
        )

        def status_lines() -> list[str]:
            text = httpx.get(f"{gateway.url}/metrics", timeout=10.0).text
            return sorted(
                line for line in text.splitlines() if line.startswith("immichcheck_check_status{")
            )

        assert len(status_lines()) == 2 and any(
            'code="IC-RD-101"' in line for line in status_lines()
        )

        # The next night's verify run no longer reports IC-RD-101: the group is replaced whole.
        save_run(
            run(2, kind="verify", checks=[check("IC-PG-101", Status.PASS, "postgres")]), reports
        )
        groups = push()
        assert set(groups) == {("immichcheck", "node01"), ("immichcheck", "node05")}
        second_push = float(
            groups[("immichcheck", "node05")]["push_time_seconds"]["metrics"][0]["value"]
        )
        assert second_push >= first_push
        lines = status_lines()
        assert len(lines) == 1 and 'code="IC-PG-101"' in lines[0] and lines[0].endswith(" 0")
        text = httpx.get(f"{gateway.url}/metrics", timeout=10.0).text
        counts = [
            line
            for line in text.splitlines()
            if line.startswith("immichcheck_benchmark_latency_seconds_count{")
        ]
        assert len(counts) == 3  # node05: select1 and fdatasync, node01: select1; none doubled

"""The shipped alert rules, checked and unit-tested with promtool on what `export` writes.

Every rule in `manifests/10-monitoring.yaml` gets a `promtool test rules` case that fires and
one that stays silent. The immichcheck rules read series made by the real export command from
saved runs (tests/fixtures/prometheus_exports.py), so a renamed metric or label fails here.
The workload rules read kube-state-metrics and kubelet series, typed in their real shape.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from immichcheck.common.records import Status
from immichcheck.history.store import save_run
from tests.fixtures.prometheus_exports import (
    Timeline,
    alert_rules_text,
    export_textfile,
    parse_series,
    selector,
)
from tests.test_store_factories import check, generated, run

pytestmark = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian package prometheus) is not installed"
)

NODE = "node05"
ORIGIN = run(0).finished_at.timestamp()  # promtool's time 0 is when the first run finished
SELECT1 = {"node": NODE, "params": "concurrency=1", "workload": "postgres.select1"}
FSYNC = {"node": NODE, "params": "block_bytes=8192,path=nvme", "workload": "storage.fdatasync"}


class Store:
    """A reports folder that grows run by run; `export()` is the textfile at that moment."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.exports = 0

    def save(self, *runs: Any) -> Store:
        """Save runs as `bench`/`verify` would."""
        for record in runs:
            save_run(record, self.folder / "reports")
        return self

    def export(self) -> dict[str, float]:
        """The series `immichcheck export --prometheus` writes now."""
        self.exports += 1
        target = self.folder / "textfile" / f"export-{self.exports}.prom"
        return parse_series(export_textfile(self.folder / "reports", target), ORIGIN)


def _alert(name: str, at: str, *expected: tuple[dict[str, str], dict[str, str]]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [
            {"exp_labels": labels, "exp_annotations": notes} for labels, notes in expected
        ],
    }


def _checks_case(tmp_path: Path) -> dict[str, Any]:
    store = Store(tmp_path / "checks")
    broken = store.save(
        run(
            0,
            kind="verify",
            checks=[
                check("IC-RD-101", Status.FAIL, "redis"),
                check("IC-PG-103", Status.ERROR, "postgres"),
                check("IC-PG-101", Status.WARN, "postgres"),
                check("IC-ML-101", Status.PASS, "ml"),
            ],
        )
    ).export()
    mended = store.save(
        run(
            4,
            kind="verify",
            checks=[
                check(code, Status.PASS, component)
                for code, component in [
                    ("IC-RD-101", "redis"),
                    ("IC-PG-103", "postgres"),
                    ("IC-PG-101", "postgres"),
                    ("IC-ML-101", "ml"),
                ]
            ],
        )
    ).export()
    failing = {"code": "IC-RD-101", "component": "redis", "node": NODE, "severity": "critical"}
    erroring = {"code": "IC-PG-103", "component": "postgres", "node": NODE, "severity": "warning"}
    warning = {"code": "IC-PG-101", "component": "postgres", "node": NODE, "severity": "info"}
    return {
        "interval": "1h",
        "input_series": Timeline().add(broken, 80).add(mended, 10).input_series(),
        "alert_rule_test": [
            _alert(
                "ImmichcheckCheckFailing",
                "1h",
                (
                    failing,
                    {
                        "summary": "immichcheck IC-RD-101 fails on redis (node05)",
                        "description": "Run `immichcheck verify` for the reason and remediation.",
                    },
                ),
            ),
            _alert("ImmichcheckCheckError", "23h"),
            _alert(
                "ImmichcheckCheckError",
                "25h",
                (
                    erroring,
                    {"summary": "immichcheck IC-PG-103 could not run on postgres for a day"},
                ),
            ),
            _alert("ImmichcheckCheckWarning", "71h"),
            _alert(
                "ImmichcheckCheckWarning",
                "73h",
                (warning, {"summary": "immichcheck IC-PG-101 has warned on postgres for 3 days"}),
            ),
            # Once the next verify run passes, every check alert clears.
            _alert("ImmichcheckCheckFailing", "81h"),
            _alert("ImmichcheckCheckError", "81h"),
            _alert("ImmichcheckCheckWarning", "81h"),
        ],
    }


def _schedule_case(tmp_path: Path) -> dict[str, Any]:
    store = Store(tmp_path / "schedule")
    select = generated("postgres.select1", {"concurrency": 1}, 0.0004)
    passing = [check("IC-RD-101", Status.PASS, "redis")]
    failing = [check("IC-RD-101", Status.FAIL, "redis")]
    timeline = Timeline()
    # Night 0 everything passes; from night 1 verify fails and bench no longer runs.
    timeline.add(
        store.save(run(0, kind="verify", checks=passing), run(0, benchmarks=[select])).export(), 24
    )
    for night in (1, 2, 3):
        timeline.add(store.save(run(night, kind="verify", checks=failing)).export(), 24)
    bench = {"kind": "bench", "node": NODE, "severity": "warning"}
    verify = {"kind": "verify", "node": NODE, "severity": "warning"}
    not_running = {
        "summary": "immichcheck has not run for more than 26 hours",
        "description": "Check `kubectl -n immich get cronjob immichcheck-nightly` "
        "and its last Job's logs.",
    }
    no_success = {"summary": "No immichcheck run has passed for 3 days"}
    return {
        "interval": "1h",
        "input_series": timeline.input_series(),
        "alert_rule_test": [
            _alert("ImmichcheckNotRunning", "25h"),
            _alert("ImmichcheckNotRunning", "27h", (bench, not_running)),
            _alert("ImmichcheckNoSuccessfulRun", "71h"),
            _alert("ImmichcheckNoSuccessfulRun", "73h", (bench, no_success), (verify, no_success)),
        ],
    }


def _regression_case(tmp_path: Path, slower: float) -> dict[str, Any]:
    store = Store(tmp_path / f"regression-{slower}")
    # Six steady nights: the report needs 5+ earlier runs to judge noise and call a regression.
    for night in range(6):
        select = generated("postgres.select1", {"concurrency": 1}, 0.0004, seed=1 + night % 2)
        store.save(run(night, benchmarks=[select]))
    week = store.export()
    after = store.save(
        run(
            7,
            benchmarks=[generated("postgres.select1", {"concurrency": 1}, 0.0004 * slower, seed=2)],
        )
    ).export()
    return {
        "interval": "1h",
        "input_series": Timeline().add(week, 168).add(after, 3).input_series(),
    }


def _regressions_fire(tmp_path: Path) -> dict[str, Any]:
    case = _regression_case(tmp_path, 2.0)
    case["alert_rule_test"] = [
        _alert(
            "ImmichcheckLatencyRegression",
            "170h",
            (
                {**SELECT1, "quantile": "0.95", "severity": "warning"},
                {
                    "summary": "postgres.select1 p95 latency on node05 "
                    "is 50% above its 7-day average"
                },
            ),
        ),
        _alert(
            "ImmichcheckThroughputRegression",
            "170h",
            (
                {**SELECT1, "severity": "warning"},
                {
                    "summary": "postgres.select1 throughput on node05 dropped by a third "
                    "against its 7-day average"
                },
            ),
        ),
        _alert(
            "ImmichcheckSignificantRegression",
            "170h",
            (
                {"node": NODE, "severity": "warning"},
                {
                    # p50, p95, p99 and throughput each regressed
                    "summary": "4 significant benchmark regression(s) on node05",
                    "description": "Run `immichcheck report --node node05` "
                    "for the workloads and figures.",
                },
            ),
        ),
    ]
    return case


def _regressions_silent(tmp_path: Path) -> dict[str, Any]:
    case = _regression_case(tmp_path, 1.02)  # within noise: no rule may call it a regression
    case["alert_rule_test"] = [
        _alert("ImmichcheckLatencyRegression", "170h"),
        _alert("ImmichcheckThroughputRegression", "170h"),
        _alert("ImmichcheckSignificantRegression", "170h"),
    ]
    return case


def _targets_case(tmp_path: Path, select_median: float, fsync_median: float) -> dict[str, Any]:
    store = Store(tmp_path / f"targets-{fsync_median}")
    night = store.save(
        run(
            0,
            benchmarks=[
                generated("postgres.select1", {"concurrency": 1}, select_median),
                generated(
                    "storage.fdatasync",
                    {"path": "nvme", "block_bytes": 8192},
                    fsync_median,
                    count=500,
                ),
            ],
        )
    ).export()
    return {"interval": "1h", "input_series": Timeline().add(night, 30).input_series()}


def _targets_missed(tmp_path: Path) -> dict[str, Any]:
    case = _targets_case(tmp_path, 0.002, 0.03)
    missed = (
        "benchmarks/targets.yaml names the target's source; `immichcheck report` shows the figures."
    )
    case["alert_rule_test"] = [
        _alert(
            "ImmichcheckWalFsyncSlow",
            "1h",
            (
                {**FSYNC, "target": "database-log-fdatasync-p99", "severity": "warning"},
                {"summary": "fdatasync p99 on node05 (block_bytes=8192,path=nvme) is above 10 ms"},
            ),
        ),
        _alert("ImmichcheckTargetMissed", "23h"),
        _alert(
            "ImmichcheckTargetMissed",
            "25h",
            (
                {**SELECT1, "target": "postgres-sub-millisecond", "severity": "info"},
                {
                    "summary": "postgres.select1 on node05 misses target postgres-sub-millisecond",
                    "description": missed,
                },
            ),
            (
                {**FSYNC, "target": "database-log-fdatasync-iops", "severity": "info"},
                {
                    "summary": "storage.fdatasync on node05 "
                    "misses target database-log-fdatasync-iops",
                    "description": missed,
                },
            ),
        ),
    ]
    return case


def _targets_met(tmp_path: Path) -> dict[str, Any]:
    case = _targets_case(tmp_path, 0.0004, 0.001)
    case["alert_rule_test"] = [
        _alert("ImmichcheckWalFsyncSlow", "25h"),
        _alert("ImmichcheckTargetMissed", "25h"),
    ]
    return case


def _kube(name: str, values: str, **labels: str) -> dict[str, str]:
    """A kube-state-metrics/kubelet series in the immich namespace (scrape `up` has none)."""
    namespace = {} if name == "up" else {"namespace": "immich"}
    return {"series": selector(name, {**labels, **namespace}), "values": values}


def _workloads_case() -> dict[str, Any]:
    # kube-state-metrics and kubelet series as they name them; not immichcheck's to generate.
    return {
        "interval": "1m",
        "input_series": [
            _kube(
                "kube_deployment_status_replicas_available", "1 1 0x30", deployment="immich-server"
            ),
            _kube("kube_deployment_status_replicas_available", "1x32", deployment="immich-ml"),
            _kube(
                "kube_pod_container_status_restarts_total",
                "0+1x70",
                container="immich-server",
                pod="immich-server-7d9f",
            ),
            _kube(
                "kube_pod_container_status_restarts_total",
                "0x30 1x40",
                container="immich-ml",
                pod="immich-ml-5c6b",
            ),
            _kube(
                "kubelet_volume_stats_available_bytes",
                "5x30",
                persistentvolumeclaim="immich-postgres",
            ),
            _kube(
                "kubelet_volume_stats_capacity_bytes",
                "100x30",
                persistentvolumeclaim="immich-postgres",
            ),
            _kube(
                "kubelet_volume_stats_available_bytes",
                "50x30",
                persistentvolumeclaim="immich-library",
            ),
            _kube(
                "kubelet_volume_stats_capacity_bytes",
                "100x30",
                persistentvolumeclaim="immich-library",
            ),
            _kube(
                "up", "0x30", component="api", instance="immich-server:8081", job="immich-server"
            ),
            _kube(
                "up", "1x30", component="jobs", instance="immich-server:8082", job="immich-server"
            ),
        ],
        "alert_rule_test": [
            _alert("ImmichDeploymentUnavailable", "6m"),
            _alert(
                "ImmichDeploymentUnavailable",
                "8m",
                (
                    {"deployment": "immich-server", "namespace": "immich", "severity": "critical"},
                    {
                        "summary": "immich-server has no available replica",
                        "description": "Check `kubectl -n immich describe deployment "
                        "immich-server` "
                        "and run `immichcheck verify`.",
                    },
                ),
            ),
            _alert(
                "ImmichPodRestarting",
                "65m",
                (
                    {
                        "container": "immich-server",
                        "namespace": "immich",
                        "pod": "immich-server-7d9f",
                        "severity": "warning",
                    },
                    {"summary": "immich-server-7d9f restarted more than 3 times in an hour"},
                ),
            ),
            _alert("ImmichVolumeFillingUp", "14m"),
            _alert(
                "ImmichVolumeFillingUp",
                "16m",
                (
                    {
                        "namespace": "immich",
                        "persistentvolumeclaim": "immich-postgres",
                        "severity": "warning",
                    },
                    {"summary": "Volume immich-postgres has less than 10% free space"},
                ),
            ),
            _alert("ImmichServerScrapeDown", "4m"),
            _alert(
                "ImmichServerScrapeDown",
                "6m",
                (
                    {
                        "component": "api",
                        "instance": "immich-server:8081",
                        "job": "immich-server",
                        "severity": "warning",
                    },
                    {"summary": "Prometheus cannot scrape Immich server metrics (api)"},
                ),
            ),
        ],
    }


def _workloads_quiet() -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [
            _kube("kube_deployment_status_replicas_available", "1x70", deployment="immich-server"),
            _kube(
                "kube_pod_container_status_restarts_total",
                "0x30 1x40",
                container="immich-ml",
                pod="immich-ml-5c6b",
            ),
            _kube(
                "kubelet_volume_stats_available_bytes",
                "50x70",
                persistentvolumeclaim="immich-library",
            ),
            _kube(
                "kubelet_volume_stats_capacity_bytes",
                "100x70",
                persistentvolumeclaim="immich-library",
            ),
            _kube(
                "up", "1x70", component="api", instance="immich-server:8081", job="immich-server"
            ),
        ],
        "alert_rule_test": [
            _alert(name, "65m")
            for name in (
                "ImmichDeploymentUnavailable",
                "ImmichPodRestarting",
                "ImmichVolumeFillingUp",
                "ImmichServerScrapeDown",
            )
        ],
    }


def _write_rule_tests(tmp_path: Path) -> list[Path]:
    """Two test files: immichcheck's series arrive nightly (hourly steps, hourly evaluation);
    the workload series every minute. promtool takes one evaluation interval per file, and a
    step longer than the 5-minute lookback would leave the series absent between samples."""
    (tmp_path / "immich-alerts.yaml").write_text(alert_rules_text())
    files = {
        "immichcheck.test.yaml": (
            "1h",
            [
                _checks_case(tmp_path),
                _schedule_case(tmp_path),
                _regressions_fire(tmp_path),
                _regressions_silent(tmp_path),
                _targets_missed(tmp_path),
                _targets_met(tmp_path),
            ],
        ),
        "workloads.test.yaml": ("1m", [_workloads_case(), _workloads_quiet()]),
    }
    written = []
    for name, (interval, cases) in files.items():
        document = {
            "rule_files": ["immich-alerts.yaml"],
            "evaluation_interval": interval,
            "tests": cases,
        }
        (tmp_path / name).write_text(yaml.safe_dump(document, sort_keys=False, width=1_000_000))
        written.append(tmp_path / name)
    return written


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_check_rules_accepts_the_shipped_rules(tmp_path: Path) -> None:
    (tmp_path / "immich-alerts.yaml").write_text(alert_rules_text())
    result = _promtool("check", "rules", "immich-alerts.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    rule_count = sum(len(group["rules"]) for group in yaml.safe_load(alert_rules_text())["groups"])
    assert f"SUCCESS: {rule_count} rules found" in result.stdout


def test_every_rule_fires_when_it_should_and_stays_silent_otherwise(tmp_path: Path) -> None:
    files = _write_rule_tests(tmp_path)
    result = _promtool("test", "rules", *(f.name for f in files), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)

    rules = {
        rule["alert"]
        for group in yaml.safe_load(alert_rules_text())["groups"]
        for rule in group["rules"]
    }
    cases = [
        t
        for path in files
        for case in yaml.safe_load(path.read_text())["tests"]
        for t in case["alert_rule_test"]
    ]
    fired = {t["alertname"] for t in cases if t["exp_alerts"]}
    silent = {t["alertname"] for t in cases if not t["exp_alerts"]}
    assert fired == rules, f"rules without a firing case: {rules - fired}"
    assert silent == rules, f"rules without a silent case: {rules - silent}"


def test_a_wrong_expectation_fails_promtool(tmp_path: Path) -> None:
    # The rule tests above can fail: expecting silence where the failing check fires does.
    tests = _write_rule_tests(tmp_path)[0]
    document = yaml.safe_load(tests.read_text())
    document["tests"][0]["alert_rule_test"][0]["exp_alerts"] = []
    tests.write_text(yaml.safe_dump(document, sort_keys=False, width=1_000_000))
    result = _promtool("test", "rules", tests.name, cwd=tmp_path)
    assert result.returncode == 1
    assert "alertname: ImmichcheckCheckFailing" in result.stdout + result.stderr

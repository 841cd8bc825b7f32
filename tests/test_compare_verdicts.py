"""Comparisons over a stored history: regressions, noise, baselines, nodes, paths, targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from immichcheck.common.errors import ExitCode, ImmichcheckError
from immichcheck.history.compare import ReportOptions, build_report
from immichcheck.history.regression_rules import RuleSet, load_rules, parse_rule, parse_rules
from immichcheck.history.report_model import (
    IMPROVEMENT,
    REGRESSION,
    TARGET_MET,
    TARGET_MISSED,
    TARGET_NOT_MEASURED,
    WITHIN_NOISE,
    WITHIN_THRESHOLD,
    Report,
)
from immichcheck.history.runs_frame import runs_frame
from immichcheck.history.significance import bootstrap_intervals, judge_noise
from immichcheck.history.store import LoadedRuns, load_runs, save_run
from immichcheck.history.thresholds import load_targets
from tests.test_store_factories import generated, nightly_history, run

REDIS = ("redis.set", '{"clients":50,"pipeline":16}')
INSERT = ("postgres.insert_commit", '{"concurrency":4}')
SELECT = ("postgres.select1", '{"concurrency":1}')


@pytest.fixture(scope="module")
def stored_history(tmp_path_factory: pytest.TempPathFactory) -> LoadedRuns:
    """The nightly history saved with save_run and loaded back, as the command does."""
    folder = tmp_path_factory.mktemp("reports")
    for record in nightly_history():
        save_run(record, folder)
    return load_runs(folder)


def _report(loaded: LoadedRuns, **options: object) -> Report:
    defaults: dict[str, object] = {"rules": load_rules(), "targets": load_targets()}
    defaults.update(options)
    return build_report(loaded.runs, loaded.warnings, ReportOptions(**defaults))  # type: ignore[arg-type]


def _verdicts(report: Report, node: str, series: tuple[str, str]) -> dict[str, str]:
    return {
        c.metric: c.verdict
        for c in report.changes
        if c.node == node and (c.workload, c.parameters) == series
    }


def test_frame_has_one_row_per_run_workload_and_metric(stored_history: LoadedRuns) -> None:
    frame = runs_frame([r for r in stored_history.runs if r.benchmarks])
    # node05: 6 runs x (3 plain series x 9 metrics + 2 storage series x 10 with bytes/s);
    # node01: 2 runs x 2 series x 9 metrics.
    assert len(frame) == 6 * (3 * 9 + 2 * 10) + 2 * 2 * 9
    row = frame[(frame["run_id"] == "20261106T020000Z-node05-bench") & (frame["metric"] == "p95")]
    assert set(row["workload"]) == {
        "postgres.select1",
        "postgres.insert_commit",
        "redis.set",
        "storage.fdatasync",
    }


def test_thirty_percent_regression_is_called_and_noise_is_not(stored_history: LoadedRuns) -> None:
    report = _report(stored_history)
    assert _verdicts(report, "node05", REDIS) == {
        "p50": REGRESSION,
        "p95": REGRESSION,
        "p99": REGRESSION,
        "throughput": REGRESSION,
    }
    p95 = next(c for c in report.regressions if c.metric == "p95" and c.workload == "redis.set")
    assert 0.25 < p95.change < 0.35
    assert p95.noise is not None and p95.noise < 0.1
    assert p95.interval is not None and p95.interval[0] > 0.1
    assert p95.baseline_run == "20261105T020000Z-node05-bench"
    assert "bootstrap of histograms (2000 vs 2000 samples)" in p95.noise_method
    assert "run-to-run spread of 5 earlier runs" in p95.noise_method

    # insert_commit is 15% slower, beyond its 10% rule, but 25 samples cannot show it.
    insert = {c.metric: c for c in report.changes if (c.workload, c.parameters) == INSERT}
    assert insert["p50"].verdict == WITHIN_NOISE
    assert insert["p50"].change == pytest.approx(0.15, abs=0.01)
    assert insert["p50"].noise is not None and insert["p50"].noise > 0.15
    assert insert["p95"].verdict == WITHIN_NOISE
    assert insert["throughput"].verdict == WITHIN_NOISE

    assert set(_verdicts(report, "node05", SELECT).values()) == {WITHIN_THRESHOLD}
    assert set(_verdicts(report, "node01", SELECT).values()) == {WITHIN_THRESHOLD}
    assert {(c.node, c.workload) for c in report.regressions} == {("node05", "redis.set")}


def test_improvement_when_the_order_is_reversed(stored_history: LoadedRuns) -> None:
    bench_runs = [r for r in stored_history.runs if r.node == "node05" and r.benchmarks]
    slow, fast = bench_runs[-1], bench_runs[-2]
    # Present the slow night as the baseline of a later, faster run.
    later = run(9, benchmarks=fast.benchmarks)
    report = build_report(
        [slow, later], [], ReportOptions(rules=load_rules(), trend=0, min_history=0)
    )
    assert _verdicts(report, "node05", REDIS)["p95"] == IMPROVEMENT


def test_baseline_by_tag_and_by_run_id(stored_history: LoadedRuns) -> None:
    by_tag = _report(stored_history, baseline="baseline", node="node05")
    assert {c.baseline_run for c in by_tag.changes} == {"20261103T020000Z-node05-bench"}
    # Only node05 carries the tag: node01 is not compared with node05's run.
    both = _report(stored_history, baseline="baseline")
    assert {c.node for c in both.changes} == {"node05"}
    assert both.notes == (
        "node01: no baseline run for 'baseline' on this node; only targets judged",
    )
    by_id = _report(stored_history, baseline="20261101T020000Z-node05-bench", node="node05")
    assert {c.baseline_run for c in by_id.changes} == {"20261101T020000Z-node05-bench"}
    with pytest.raises(ImmichcheckError) as raised:
        _report(stored_history, baseline="no-such-thing")
    assert raised.value.exit_code == ExitCode.UNKNOWN
    assert "unknown baseline 'no-such-thing'" in raised.value.message


def test_nodes_and_paths_are_compared(stored_history: LoadedRuns) -> None:
    report = _report(stored_history, nodes=("node05", "node01"))
    select = {p.metric: p for p in report.node_pairs if p.workload == "postgres.select1"}
    assert select["p50"].better == "node05"
    assert select["p50"].ratio == pytest.approx(1.1 / 0.4, rel=0.05)
    assert select["throughput"].better == "node05"
    paths = {p.metric: p for p in report.path_pairs}
    assert (paths["p99"].left_label, paths["p99"].right_label) == ("nfs", "nvme")
    assert paths["p99"].better == "nvme"
    assert paths["throughput"].ratio == pytest.approx(15.0, rel=0.01)
    assert paths["p99"].parameters == '{"block_bytes":8192}'
    unknown = _report(stored_history, node="node05", paths=("nvme", "ssd"))
    assert unknown.path_pairs == ()
    assert unknown.notes == (
        "node05: storage path(s) ssd not measured in the latest run (measured: nfs, nvme)",
    )
    with pytest.raises(ImmichcheckError, match=r"no benchmark runs for node\(s\) node09"):
        _report(stored_history, nodes=("node05", "node09"))


def test_targets_with_sources(stored_history: LoadedRuns) -> None:
    report = _report(stored_history)
    verdicts = {(t.target, t.node): t for t in report.targets}
    assert verdicts[("postgres-sub-millisecond", "node01")].status == TARGET_MISSED
    assert verdicts[("postgres-sub-millisecond", "node05")].status == TARGET_MET
    assert "sub-millisecond" in verdicts[("postgres-sub-millisecond", "node05")].source
    fdatasync = verdicts[("database-log-fdatasync-p99", "node05")]
    assert fdatasync.status == TARGET_MET and "nvme" in fdatasync.parameters  # NFS excluded
    assert "etcd" in fdatasync.source
    ratio = verdicts[("local-storage-10x-nfs", "node05")]
    assert ratio.status == TARGET_MET and ratio.value == pytest.approx(15.0, rel=0.01)
    assert verdicts[("ml-within-worker-timeout", "node05")].status == TARGET_NOT_MEASURED
    assert [(t.node, t.target) for t in report.missed_targets] == [
        ("node01", "postgres-sub-millisecond")
    ]


def test_trend_over_the_last_runs(stored_history: LoadedRuns) -> None:
    report = _report(stored_history, trend=4, node="node05")
    trend = next(t for t in report.trends if (t.workload, t.parameters) == REDIS)
    assert len(trend.run_ids) == 4 and trend.run_ids[-1] == "20261106T020000Z-node05-bench"
    assert trend.change["p95"] == pytest.approx(0.29, abs=0.05)
    assert trend.values["p95"][-1] > 1.2 * trend.values["p95"][0]
    assert _report(stored_history, trend=0).trends == ()


def test_a_single_run_still_judges_targets(tmp_path: Path) -> None:
    save_run(
        run(
            0,
            node="node01",
            benchmarks=[generated("postgres.select1", {"concurrency": 1}, 0.0011, seed=4)],
        ),
        tmp_path,
    )
    loaded = load_runs(tmp_path)
    report = _report(loaded)
    assert report.changes == ()
    assert report.notes == (
        "node01: no baseline run for 'previous' on this node; only targets judged",
    )
    assert [t.status for t in report.targets if t.target == "postgres-sub-millisecond"] == [
        TARGET_MISSED
    ]
    with pytest.raises(ImmichcheckError, match="no runs to report for node node05"):
        _report(loaded, node="node05")


def test_rules_parse_and_take_the_workload_specific_one_first() -> None:
    assert parse_rule("p95:+10%").threshold == pytest.approx(0.10)
    assert parse_rule("throughput:-5%").worse_when_higher is False
    assert parse_rule("throughput:5%").text == "throughput:-5%"  # direction from the metric
    assert parse_rule("p99:25%").text == "p99:+25%"
    for bad in ("p95", "p95:+10", "latency:+10%", "p95:+x%", "p95:+0%"):
        with pytest.raises(ImmichcheckError, match="bad regression rule"):
            parse_rule(bad)
    rules = parse_rules(
        {"global": ["p95:+10%", "p99:+20%"], "workloads": {"storage.*": ["p99:+30%"]}}, "test"
    )
    assert [r.text for r in rules.rules_for("storage.fdatasync")] == ["p95:+10%", "p99:+30%"]
    assert [r.text for r in rules.rules_for("redis.set")] == ["p95:+10%", "p99:+20%"]
    assert RuleSet().rules_for("x") == []
    with pytest.raises(ImmichcheckError, match="unknown key"):
        parse_rules({"globals": []}, "test")
    assert load_rules().rules_for("ml.clip_visual")[0].text == "p50:+25%"


def test_bootstrap_sees_a_shift_and_not_a_copy() -> None:
    before = generated("x", {}, 0.001, seed=11).histogram
    after = generated("x", {}, 0.0013, seed=12).histogram
    assert before is not None and after is not None
    same = bootstrap_intervals(before, before, ["p50", "p95", "mean"])
    for low, high in same.values():
        assert low < 0 < high
    shifted = bootstrap_intervals(before, after, ["p50", "p99"])
    assert 0.2 < shifted["p50"][0] < 0.3 < shifted["p50"][1] < 0.4
    assert judge_noise(0.3, None, [], None).method.startswith("unknown")
    assert judge_noise(0.3, None, [1.0, 1.1, 0.9, 1.0, 1.05], None).significant is True
    assert judge_noise(0.05, None, [1.0, 1.1, 0.9, 1.0, 1.05], None).significant is False


def test_two_runs_are_not_enough_to_call_a_change(stored_history: LoadedRuns) -> None:
    # The histograms see only the noise inside one run; without earlier runs to size the
    # run-to-run noise, even the deliberate 30% regression is reported as within noise.
    bench_runs = [r for r in stored_history.runs if r.node == "node05" and r.benchmarks]
    report = build_report(bench_runs[-2:], [], ReportOptions(rules=load_rules(), trend=0))
    redis = [c for c in report.changes if (c.workload, c.parameters) == REDIS]
    assert redis and all(c.verdict in (WITHIN_NOISE, WITHIN_THRESHOLD) for c in redis)
    # The baseline is the one earlier run; five are needed to size the run-to-run noise.
    unknown = "run-to-run noise unknown: 1 earlier run(s), 5 needed"
    assert {c.verdict for c in redis} == {WITHIN_NOISE}
    assert all(unknown in c.noise_method for c in redis)
    assert report.regressions == []

"""`immichcheck report` end to end: exit codes, formats, files, tags, retention, bad input."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from immichcheck.cli.main import main
from immichcheck.common.records import Status, utc_now
from immichcheck.history.store import load_runs, save_run
from tests.test_store_factories import check, generated, nightly_history, run


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


@pytest.fixture(scope="module")
def history_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("history")
    for record in nightly_history():
        save_run(record, folder)
    return folder


def test_regression_fails_the_report_unless_told_otherwise(
    history_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run_cli(["report", "--reports-dir", str(history_dir)], capsys)
    assert code == 2
    assert out.startswith("# immichcheck report\n")
    assert "| node05 | redis.set clients=50,pipeline=16 | p95 |" in out
    assert "❌ regression" in out and "〰 within noise" in out
    assert err == ""

    code, _, _ = _run_cli(
        ["report", "--reports-dir", str(history_dir), "--fail-on", "none"], capsys
    )
    assert code == 0
    # node05 meets every target it measured; only the regression remains.
    code, _, _ = _run_cli(
        ["report", "--reports-dir", str(history_dir), "--node", "node05", "--fail-on", "target"],
        capsys,
    )
    assert code == 0
    code, _, _ = _run_cli(
        ["report", "--reports-dir", str(history_dir), "--node", "node01", "--fail-on", "target"],
        capsys,
    )
    assert code == 2  # node01 misses the sub-millisecond target
    code, _, _ = _run_cli(
        [
            "report",
            "--reports-dir",
            str(history_dir),
            "--node",
            "node01",
            "--fail-on",
            "regression",
        ],
        capsys,
    )
    assert code == 0


def test_formats_and_output_file(
    history_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / "report.html"
    code, out, _ = _run_cli(
        [
            "report",
            "--reports-dir",
            str(history_dir),
            "--format",
            "html",
            "--output",
            str(target),
            "--nodes",
            "node05,node01",
            "--paths",
            "nvme,nfs",
            "--fail-on",
            "none",
        ],
        capsys,
    )
    assert code == 0 and out == ""
    page = target.read_text(encoding="utf-8")
    assert 'id="chart-nodes-node05-node01-p95"' in page
    assert 'id="chart-paths-node05-nvme-nfs-p95"' in page

    code, out, _ = _run_cli(
        ["report", "--reports-dir", str(history_dir), "--format", "json", "--trend", "3"], capsys
    )
    data = json.loads(out)
    assert code == 2
    assert {c["verdict"] for c in data["changes"]} == {"ok", "within noise", "regression"}
    assert {len(t["run_ids"]) for t in data["trends"] if t["node"] == "node05"} == {3}

    code, out, _ = _run_cli(
        ["report", "--reports-dir", str(history_dir), "--format", "csv", "--fail-on", "none"],
        capsys,
    )
    assert out.splitlines()[0].startswith("section,node,workload,parameters,metric")
    assert any(line.startswith("target,node01,postgres.select1,") for line in out.splitlines())


def test_tag_then_use_it_as_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for record in nightly_history()[:4]:  # nights 0-3 of node05
        save_run(record, tmp_path)
    code, _, err = _run_cli(
        ["report", "--reports-dir", str(tmp_path), "--tag", "before-upgrade", "--fail-on", "none"],
        capsys,
    )
    assert code == 0
    assert "tagged run 20261104T020000Z-node05-bench as 'before-upgrade'" in err
    for record in nightly_history()[4:6]:  # nights 4 and 5: the regression arrives
        save_run(record, tmp_path)
    code, out, _ = _run_cli(
        [
            "report",
            "--reports-dir",
            str(tmp_path),
            "--baseline",
            "before-upgrade",
            "--format",
            "json",
        ],
        capsys,
    )
    data = json.loads(out)
    assert code == 2
    assert {c["baseline_run"] for c in data["changes"]} == {"20261104T020000Z-node05-bench"}
    assert data["baselines"][0]["tags"] == ["before-upgrade"]


def test_prune_keeps_recent_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = utc_now()
    select = generated("postgres.select1", {"concurrency": 1}, 0.0004, count=100, seed=5)
    for age in (40, 20, 1):
        save_run(run(0, start=now - timedelta(days=age), benchmarks=[select]), tmp_path)
    code, _, err = _run_cli(
        ["report", "--reports-dir", str(tmp_path), "--prune", "--keep-days", "30"], capsys
    )
    assert code == 0
    assert "pruned 1 run(s) older than 30 day(s)" in err
    assert len(load_runs(tmp_path).runs) == 2
    code, _, err = _run_cli(["report", "--reports-dir", str(tmp_path), "--prune"], capsys)
    assert (code, err) == (3, "immichcheck: error: --prune needs --keep-days N\n")


def test_bad_input_exits_3_with_one_line(
    history_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    code, out, err = _run_cli(["report", "--reports-dir", str(empty)], capsys)
    assert (code, out, err) == (3, "", f"immichcheck: error: no runs to report under {empty}\n")

    code, _, err = _run_cli(
        ["report", "--reports-dir", str(history_dir), "--baseline", "nope"], capsys
    )
    assert code == 3
    assert err == (
        "immichcheck: error: unknown baseline 'nope': not 'previous', a stored benchmark run id "
        "or a tag\n"
    )
    rules = tmp_path / "rules.yaml"
    rules.write_text("global: ['p95:ten percent']\n")
    code, _, err = _run_cli(
        ["report", "--reports-dir", str(history_dir), "--rules", str(rules)], capsys
    )
    assert code == 3 and "bad regression rule 'p95:ten percent'" in err
    code, _, err = _run_cli(
        ["report", "--reports-dir", str(history_dir), "--nodes", "node05"], capsys
    )
    assert code == 3 and "--nodes needs two or more different names" in err


def test_corrupt_file_is_named_but_does_not_stop_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for record in nightly_history()[:2]:
        save_run(record, tmp_path)
    bad = tmp_path / "runs/node05/2026-11-02/broken.bench.json"
    bad.write_text("{ not json")
    code, out, err = _run_cli(["report", "--reports-dir", str(tmp_path)], capsys)
    assert code == 0
    assert (
        "immichcheck: warning: runs/node05/2026-11-02/broken.bench.json: skipped: not valid JSON"
        in err
    )
    assert "## Skipped files" in out and "broken.bench.json" in out


def test_verify_runs_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_run(run(0, kind="verify", checks=[check("IC-PG-101", Status.WARN, "postgres")]), tmp_path)
    code, out, _ = _run_cli(["report", "--reports-dir", str(tmp_path)], capsys)
    assert code == 0
    assert "| node05 | IC-PG-101 | WARN | postgres | IC-PG-101 is WARN |" in out
    assert "- no benchmark runs stored: nothing to compare and no targets judged" in out


def test_the_label_for_new_runs_does_not_tag_stored_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # IMMICHCHECK_TAG labels the runs verify and bench save; report reads its own variable.
    for record in nightly_history()[:2]:
        save_run(record, tmp_path)
    monkeypatch.setenv("IMMICHCHECK_TAG", "nightly")
    monkeypatch.setenv("IMMICHCHECK_NODE", "node-that-does-not-exist")
    code, _, err = _run_cli(["report", "--reports-dir", str(tmp_path), "--fail-on", "none"], capsys)
    assert code == 0 and "tagged" not in err
    assert all(not r.tags for r in load_runs(tmp_path).runs)
    monkeypatch.setenv("IMMICHCHECK_REPORT_TAG", "before-upgrade")
    code, _, err = _run_cli(["report", "--reports-dir", str(tmp_path), "--fail-on", "none"], capsys)
    assert code == 0 and "as 'before-upgrade'" in err

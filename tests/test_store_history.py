"""Run history: tolerant loading, schema migration and rejection, tagging, retention."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.records import SCHEMA_VERSION
from immichcheck.history import store
from immichcheck.history.store import load_runs, prune, save_run, tag_run
from tests.test_store_factories import T0, generated, run


def _history(tmp_path: Path) -> list[Path]:
    paths = []
    for index in range(3):
        for node in ("node01", "node05"):
            record = run(
                index,
                node=node,
                benchmarks=[generated("redis.set", {"clients": 50}, 0.001, count=50)],
            )
            paths.append(save_run(record, tmp_path))
    return paths


def test_saved_runs_load_back_in_time_order(tmp_path: Path) -> None:
    paths = _history(tmp_path)
    assert paths[0] == tmp_path / "runs/node01/2026-11-01/20261101T020000Z-node01-bench.bench.json"
    loaded = load_runs(tmp_path)
    assert loaded.warnings == []
    assert [r.run_id for r in loaded.runs] == [
        "20261101T020000Z-node01-bench",
        "20261101T020000Z-node05-bench",
        "20261102T020000Z-node01-bench",
        "20261102T020000Z-node05-bench",
        "20261103T020000Z-node01-bench",
        "20261103T020000Z-node05-bench",
    ]
    assert loaded.runs[0] == run(
        0, node="node01", benchmarks=[generated("redis.set", {"clients": 50}, 0.001, count=50)]
    )
    only_node05 = load_runs(tmp_path, nodes={"node05"})
    assert {r.node for r in only_node05.runs} == {"node05"} and len(only_node05.runs) == 3
    assert load_runs(tmp_path, kinds={"verify"}).runs == []


def test_bad_files_are_named_and_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _history(tmp_path)
    day = tmp_path / "runs/node05/2026-11-01"
    (day / "truncated.bench.json").write_text('{"schema_version": 1, "run_id": "x", "ki')
    (day / "foreign.json").write_text('{"apiVersion": "v1", "kind": "ConfigMap"}')
    (day / "notes.txt").write_text("hello")
    (day / ".half-written.json.tmp").write_text("{")  # a write in progress: silently ignored
    good = json.loads((day / "20261101T020000Z-node05-bench.bench.json").read_text())
    newer = dict(good, schema_version=SCHEMA_VERSION + 1, run_id="from-the-future")
    (day / "newer.json").write_text(json.dumps(newer))
    older = dict(good, schema_version=0, run_id="from-the-past")
    (day / "older.json").write_text(json.dumps(older))
    broken = dict(good, run_id="broken", started_at="yesterday")
    (day / "broken.json").write_text(json.dumps(broken))
    (day / "copy.json").write_text(json.dumps(good))

    loaded = load_runs(tmp_path)
    assert len(loaded.runs) == 6
    assert loaded.warnings == [
        "runs/node05/2026-11-01/broken.json: skipped: malformed run record "
        "(ValueError: Invalid isoformat string: 'yesterday')",
        "runs/node05/2026-11-01/copy.json: skipped duplicate of run "
        "20261101T020000Z-node05-bench "
        "(runs/node05/2026-11-01/20261101T020000Z-node05-bench.bench.json)",
        "runs/node05/2026-11-01/foreign.json: skipped: not an immichcheck run record "
        "(no schema_version, run_id, kind)",
        f"runs/node05/2026-11-01/newer.json: skipped: schema version {SCHEMA_VERSION + 1} is "
        f"newer than this immichcheck supports ({SCHEMA_VERSION}); upgrade immichcheck to read it",
        "runs/node05/2026-11-01/notes.txt: skipped foreign file (not a .json run record)",
        f"runs/node05/2026-11-01/older.json: skipped: schema version 0 is too old to migrate "
        f"(supported: {SCHEMA_VERSION}..{SCHEMA_VERSION})",
        "runs/node05/2026-11-01/truncated.bench.json: skipped: not valid JSON "
        "(Unterminated string starting at: line 1 column 38 (char 37))",
    ]

    # With a migration from schema 0 registered, the old file is upgraded instead.
    def rename_field(data: dict) -> dict:
        return dict(data, settings={"migrated": True})

    monkeypatch.setitem(store.MIGRATIONS, 0, rename_field)
    migrated = load_runs(tmp_path).by_id("from-the-past")
    assert migrated is not None
    assert migrated.schema_version == SCHEMA_VERSION
    assert migrated.settings == {"migrated": True}


def test_missing_folder_loads_nothing(tmp_path: Path) -> None:
    loaded = load_runs(tmp_path / "absent")
    assert loaded.runs == [] and loaded.warnings == []


def test_tag_marks_a_run_and_keeps_unknown_fields(tmp_path: Path) -> None:
    paths = _history(tmp_path)
    data = json.loads(paths[-1].read_text())
    data["added_by_a_newer_minor_version"] = {"x": 1}
    paths[-1].write_text(json.dumps(data))
    assert tag_run(tmp_path, "20261103T020000Z-node05-bench", "before-upgrade") == paths[-1]
    tag_run(tmp_path, "20261103T020000Z-node05-bench", "before-upgrade")  # idempotent
    stored = json.loads(paths[-1].read_text())
    assert stored["tags"] == ["before-upgrade"]
    assert stored["added_by_a_newer_minor_version"] == {"x": 1}
    assert load_runs(tmp_path).runs[-1].tags == ("before-upgrade",)
    with pytest.raises(ImmichcheckError, match="no stored run with id 'nope'"):
        tag_run(tmp_path, "nope", "x")
    with pytest.raises(ImmichcheckError, match="invalid tag"):
        tag_run(tmp_path, "20261103T020000Z-node05-bench", "a,b")


def test_prune_keeps_recent_days_and_removes_empty_folders(tmp_path: Path) -> None:
    _history(tmp_path)
    (tmp_path / "runs/node05/2026-11-01/corrupt.json").write_text("{")
    now = T0 + timedelta(days=2, hours=1)  # the third night's run is one hour old
    deleted = prune(tmp_path, keep_days=1, now=now)
    assert sorted(p.name for p in deleted) == [
        "20261101T020000Z-node01-bench.bench.json",
        "20261101T020000Z-node05-bench.bench.json",
        "20261102T020000Z-node01-bench.bench.json",
        "20261102T020000Z-node05-bench.bench.json",
    ]
    assert not (tmp_path / "runs/node01/2026-11-01").exists()
    assert (tmp_path / "runs/node05/2026-11-01/corrupt.json").exists()  # left for a human
    assert [r.started_at for r in load_runs(tmp_path).runs] == [T0 + timedelta(days=2)] * 2
    with pytest.raises(ImmichcheckError, match="at least 1"):
        prune(tmp_path, keep_days=0)

"""Capacity answers against the fakes: ML at a known latency, a server with a known library.

One bench run (ml + upload) is made per module against the fake ML service (every request
held 50 ms) and the fake Immich server (1,200 photos and 30 videos, smartSearch concurrency 2,
faceDetection 1); the tests then read its answer as bench, report, export and the pure model
give it, and check the arithmetic from the stored figures.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import yaml

from immichcheck.cli.main import main
from immichcheck.clients.immich_library import read_library_facts
from immichcheck.common.project_files import project_folder
from immichcheck.common.records import BenchmarkResult, RunRecord
from immichcheck.history.capacity import (
    FACTS_SETTING,
    CapacityInputs,
    JobSettings,
    LibrarySize,
    estimate_capacity,
    format_duration,
    format_estimate,
    inputs_from_runs,
)
from immichcheck.history.prometheus import format_value
from immichcheck.history.store import save_run
from tests.fakes.immich_library import seed_library
from tests.fakes.immich_server import FakeImmichServer
from tests.fakes.ml_service import FakeMLService
from tests.test_store_factories import generated, run

ML_LATENCY = 0.05  # seconds the fake ML service holds every request
PHOTOS, VIDEOS = 1200, 30
PHOTO_BYTES, VIDEO_BYTES = 3_000_000, 50_000_000
LIBRARY_BYTES = PHOTOS * PHOTO_BYTES + VIDEOS * VIDEO_BYTES
TINY_PROFILE = {
    "duration_seconds": 0.6,
    "warmup_seconds": 0.05,
    "concurrency": [1],
    "ml": {"concurrency": [1, 2], "clip_images": ["preview"]},
    "upload": {"count": 4, "concurrency": [1], "image_width": 800, "image_height": 600},
}


def _run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(args)
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


def _tiny_home(home: Path) -> Path:
    (home / "benchmarks").mkdir(parents=True)
    profiles = {"quick": TINY_PROFILE, "standard": TINY_PROFILE, "full": TINY_PROFILE}
    (home / "benchmarks" / "workloads.yaml").write_text(yaml.safe_dump({"profiles": profiles}))
    for name in ("regression-rules.yaml", "targets.yaml"):
        shutil.copy(project_folder("benchmarks") / name, home / "benchmarks" / name)
    (home / "manifests").symlink_to(project_folder("manifests"))
    return home


@dataclass
class Measured:
    """The module's bench run: what bench printed, where it saved, and the run itself."""

    stdout: str
    reports: Path
    record: RunRecord
    run_file: Path
    api_key: str


def _result(record: RunRecord, workload: str, concurrency: int) -> BenchmarkResult:
    return next(
        b
        for b in record.benchmarks
        if b.workload == workload
        and b.parameters.get("concurrency") == concurrency
        and b.parameters.get("image") in ("preview", "face", None)
    )


@pytest.fixture(scope="module")
def measured(
    tmp_path_factory: pytest.TempPathFactory,
    ml_service_session: FakeMLService,
    immich_server_session: FakeImmichServer,
) -> Iterator[Measured]:
    """bench --suite ml --suite upload against the fakes, once for the module."""
    folder = tmp_path_factory.mktemp("capacity")
    ml_service_session.reset()
    ml_service_session.latency = ML_LATENCY
    server = immich_server_session
    server.reset()
    seed_library(
        server, photos=PHOTOS, videos=VIDEOS, photo_bytes=PHOTO_BYTES, video_bytes=VIDEO_BYTES
    )
    server.admin.config["job"]["faceDetection"]["concurrency"] = 1
    # A secret the real config holds (SMTP): the run record must never carry it.
    server.admin.config["notifications"]["smtp"]["transport"]["password"] = "smtp-secret"
    reports = folder / "reports"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IMMICHCHECK_HOME", str(_tiny_home(folder / "home")))
        patch.setenv("COLUMNS", "200")
        with pytest.raises(SystemExit) as exited:
            main(
                [
                    "bench",
                    "--suite", "ml",
                    "--suite", "upload",
                    "--profile", "quick",
                    "--ml-url", ml_service_session.url,
                    "--server-url", server.url,
                    "--api-key", server.admin_api_key,
                    "--reports-dir", str(reports),
                    "--output", str(folder / "bench.txt"),
                ]
            )  # fmt: skip
    assert exited.value.code == 0
    run_file = next(reports.glob("runs/*/*/*.json"))
    record = RunRecord.from_json(run_file.read_text())
    printed = (folder / "bench.txt").read_text()
    yield Measured(printed, reports, record, run_file, server.admin_api_key)
    ml_service_session.reset()
    server.reset()


def _expected(record: RunRecord, workload: str, level: int, assets: int) -> tuple[float, float]:
    result = _result(record, workload, level)
    return assets * result.p50 / level, assets * result.p90 / level


# ---------------------------------------------------------------------------- the arithmetic


@pytest.mark.slow
def test_stored_run_carries_library_and_settings_but_no_secret(measured: Measured) -> None:
    facts = measured.record.settings[FACTS_SETTING]
    assert facts["statistics"] == {"photos": PHOTOS, "videos": VIDEOS, "usage": LIBRARY_BYTES}
    assert facts["settings"]["job_concurrency"] == {
        "smartSearch": 2,
        "faceDetection": 1,
        "ocr": 1,
        "thumbnailGeneration": 3,
    }
    assert facts["settings"]["preview_size"] == 1440
    text = measured.run_file.read_text()
    assert "smtp-secret" not in text and measured.api_key not in text


@pytest.mark.slow
def test_estimates_equal_the_arithmetic_within_the_measured_spread(measured: Measured) -> None:
    record = measured.record
    section = estimate_capacity([record], inputs_from_runs([record]))
    by_job = {e.job: e for e in section.estimates}
    assets = PHOTOS + VIDEOS

    clip = _result(record, "ml.clip_visual", 2)
    # The fake holds each request 50 ms: the measured median is that plus loopback overhead.
    assert ML_LATENCY <= clip.p50 <= clip.p90 < ML_LATENCY + 0.05
    smart = by_job["smartSearch"]
    assert (smart.seconds_p50, smart.seconds_p90) == _expected(record, "ml.clip_visual", 2, assets)
    # 1,230 assets x 50 ms / 2 workers = 30.75 s is the floor; overhead only adds.
    assert assets * ML_LATENCY / 2 <= smart.seconds_p50 <= smart.seconds_p90  # type: ignore[operator]
    assert smart.seconds_p90 < assets * (ML_LATENCY + 0.05) / 2  # type: ignore[operator]
    assert "ml.clip_visual ViT-B-32__openai on the 1440 px preview at concurrency 2" in smart.basis
    assert "(the server's job.smartSearch.concurrency is 2)" in smart.basis

    faces = by_job["faceDetection"]
    assert (faces.seconds_p50, faces.seconds_p90) == _expected(
        record, "ml.facial_recognition", 1, assets
    )
    assert "at concurrency 1 (the server's job.faceDetection.concurrency is 1)" in faces.basis
    assert "faces found per image: 1; the server sends its 1440 px previews" in faces.basis

    upload = by_job["upload"]
    photo = _result(record, "upload.photo", 1)
    file_bytes = photo.parameters["file_bytes"]
    assert upload.seconds_p50 == pytest.approx(LIBRARY_BYTES * photo.p50 / file_bytes)
    assert upload.seconds_p90 == pytest.approx(LIBRARY_BYTES * photo.p90 / file_bytes)

    ocr = by_job["ocr"]
    assert (ocr.seconds_p50, ocr.seconds_p90) == _expected(record, "ml.ocr", 1, assets)
    assert assets * ML_LATENCY <= ocr.seconds_p50 <= ocr.seconds_p90  # type: ignore[operator]
    assert (
        "ml.ocr PP-OCRv5_mobile on the 1440 px preview at concurrency 1 "
        "(the server's job.ocr.concurrency is 1)" in ocr.basis
    )
    assert "texts found per image: 2" in ocr.basis
    assert section.library.startswith("1,230 assets (1,200 photos, 30 videos), 5.1 GB, from GET")


@pytest.mark.slow
def test_bench_prints_the_answer_paragraph(measured: Measured) -> None:
    paragraphs = measured.stdout.split("\n\n")
    text = " ".join(next(p for p in paragraphs if p.startswith("Capacity on")).split())
    node = measured.record.node
    low, high = _expected(measured.record, "ml.clip_visual", 2, PHOTOS + VIDEOS)
    assert text.startswith(
        f"Capacity on {node}: smart search {format_duration(low)} (p50) to "
        f"{format_duration(high)} (p90); faces "
    )
    ocr_low, ocr_high = _expected(measured.record, "ml.ocr", 1, PHOTOS + VIDEOS)
    assert f"; OCR {format_duration(ocr_low)} (p50) to {format_duration(ocr_high)} (p90);" in text
    assert "OCR: run " in text and "ml.ocr PP-OCRv5_mobile on the 1440 px preview" in text
    assert "Library: 1,230 assets (1,200 photos, 30 videos), 5.1 GB, from GET" in text
    assert "Not measured: thumbnail generation, metadata extraction and video transcoding" in text
    assert "Faces: 1 per photo assumed (immichcheck's assumption, not a measured figure" in text


@pytest.mark.slow
def test_report_markdown_json_csv_html_hold_the_capacity_section(
    measured: Measured, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = str(measured.reports)
    node = measured.record.node
    low, high = _expected(measured.record, "ml.clip_visual", 2, PHOTOS + VIDEOS)
    code, markdown, _ = _run_cli(["report", "--reports-dir", reports, "--fail-on", "none"], capsys)
    assert code == 0
    section = markdown[markdown.index("## Capacity") :]
    expected_cell = f"{format_duration(low)} (p50) to {format_duration(high)} (p90)"
    assert f"| {node} | smart search | {expected_cell} | run {measured.record.run_id}:" in section
    assert "Library: 1,230 assets (1,200 photos, 30 videos), 5.1 GB, from GET" in section
    assert "Settings: job concurrency smartSearch 2, faceDetection 1, ocr 1" in section

    code, text, _ = _run_cli(["report", "--reports-dir", reports, "--format", "json"], capsys)
    estimates = json.loads(text)["capacity"]["estimates"]
    smart = next(e for e in estimates if e["job"] == "smartSearch")
    assert (smart["seconds_p50"], smart["seconds_p90"]) == (low, high)

    code, text, _ = _run_cli(["report", "--reports-dir", reports, "--format", "csv"], capsys)
    rows = [line for line in text.splitlines() if line.startswith(f"capacity,{node},smartSearch")]
    assert rows and rows[0].startswith(
        f"capacity,{node},smartSearch,,seconds,p90,{high!r},{low!r},,,,"
    )

    code, text, _ = _run_cli(["report", "--reports-dir", reports, "--format", "html"], capsys)
    assert '<section id="capacity"><h2>Capacity</h2>' in text


@pytest.mark.slow
def test_assets_flag_overrides_the_stored_library(
    measured: Measured, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["report", "--reports-dir", str(measured.reports), "--format", "json"]
    code, text, _ = _run_cli([*args, "--assets", "60000", "--faces-per-photo", "2.5"], capsys)
    assert code == 0
    capacity = json.loads(text)["capacity"]
    smart = next(e for e in capacity["estimates"] if e["job"] == "smartSearch")
    assert smart["seconds_p50"] == _expected(measured.record, "ml.clip_visual", 2, 60000)[0]
    assert capacity["library"].startswith("60,000 assets, 5.1 GB, from --assets 60000 (the rest")
    assert any(
        "Faces: 2.5 per photo assumed (--faces-per-photo): about 150,000 faces" in x
        for x in capacity["limits"]
    )


@pytest.mark.slow
def test_export_writes_capacity_seconds(
    measured: Measured, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "immichcheck.prom"
    code, _, _ = _run_cli(
        ["export", "--reports-dir", str(measured.reports), "--prometheus", str(target)], capsys
    )
    assert code == 0
    low, high = _expected(measured.record, "ml.clip_visual", 2, PHOTOS + VIDEOS)
    labels = f'job="smartSearch",node="{measured.record.node}"'
    lines = target.read_text().splitlines()
    assert f'immichcheck_capacity_seconds{{estimate="p50",{labels}}} {format_value(low)}' in lines
    assert f'immichcheck_capacity_seconds{{estimate="p90",{labels}}} {format_value(high)}' in lines
    ocr_low, _ = _expected(measured.record, "ml.ocr", 1, PHOTOS + VIDEOS)
    ocr_labels = f'job="ocr",node="{measured.record.node}"'
    assert (
        f'immichcheck_capacity_seconds{{estimate="p50",{ocr_labels}}} {format_value(ocr_low)}'
        in lines
    )


# ---------------------------------------------------------------------------- missing pieces


def _with_facts(record: RunRecord, facts: dict[str, object]) -> RunRecord:
    return replace(record, settings={**record.settings, FACTS_SETTING: facts})


@pytest.mark.slow
def test_ocr_and_faces_disabled_on_the_server_say_so(
    measured: Measured, fake_immich_server: FakeImmichServer
) -> None:
    learning = fake_immich_server.admin.config["machineLearning"]
    learning["ocr"]["enabled"] = False
    learning["facialRecognition"]["enabled"] = False
    facts = read_library_facts(fake_immich_server.url, fake_immich_server.admin_api_key, 5.0)
    record = _with_facts(measured.record, facts)
    by_job = {e.job: e for e in estimate_capacity([record], inputs_from_runs([record])).estimates}
    assert by_job["ocr"].missing == (
        "OCR is disabled on the server (machineLearning.ocr.enabled): nothing to process"
    )
    assert by_job["faceDetection"].missing == (
        "faces is disabled on the server (machineLearning.facialRecognition.enabled): "
        "nothing to process"
    )
    assert by_job["smartSearch"].seconds_p50 is not None


def test_a_key_without_admin_rights_is_a_sentence_not_a_zero(
    fake_immich_server: FakeImmichServer,
) -> None:
    user = fake_immich_server.create_user("someone@immichcheck.test", "pw", "Someone")
    key = fake_immich_server.create_api_key(user, "not-admin").secret
    facts = read_library_facts(fake_immich_server.url, key, 5.0)
    assert facts["statistics_problem"] == (
        "/api/server/statistics answered 403: the API key must belong to an admin and carry "
        "the server.statistics permission"
    )
    assert facts["settings_problem"].startswith("/api/system-config answered 403")
    facts = read_library_facts(fake_immich_server.url, "wrong", 5.0)
    assert facts["statistics_problem"] == (
        "/api/server/statistics refused the API key (401): check --api-key"
    )


@pytest.mark.slow
def test_no_key_means_defaults_and_a_sentence_about_the_library(
    measured: Measured, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The same run as bench without --api-key stores it: no library facts.
    settings = {k: v for k, v in measured.record.settings.items() if k != FACTS_SETTING}
    save_run(replace(measured.record, settings=settings), tmp_path)
    code, text, _ = _run_cli(
        ["report", "--reports-dir", str(tmp_path), "--fail-on", "none"], capsys
    )
    assert code == 0
    section = text[text.index("## Capacity") :]
    assert (
        "Library: unknown: give --assets N or --library-bytes SIZE, or run bench with "
        "--server-url and an admin --api-key so GET /api/server/statistics is read and stored "
        "with the run." in section
    )
    assert (
        "Settings: job concurrency smartSearch 2, faceDetection 2, ocr 1, previews 1440 px, from "
        "Immich's defaults (server/src/config.ts) (no admin key was given to read "
        "GET /api/system-config)." in section
    )
    node = measured.record.node
    assert f"| {node} | smart search | library size unknown: give --assets N" in section
    assert "| 0 s" not in section and "0 s (p50)" not in section


def test_no_ml_run_says_what_to_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    select = generated("postgres.select1", {"concurrency": 1}, 0.0004, count=100, seed=5)
    save_run(run(0, benchmarks=[select]), tmp_path)
    code, text, _ = _run_cli(
        ["report", "--reports-dir", str(tmp_path), "--fail-on", "none", "--assets", "100"], capsys
    )
    assert code == 0
    assert (
        "| - | smart search | no ML benchmark run stored: run immichcheck bench --suite ml "
        "--ml-url URL (or bench --node NODE) | - |" in text
    )


def test_configured_concurrency_not_measured_uses_the_level_below() -> None:
    results = [
        generated("ml.clip_visual", {"image": "preview", "width": 1440, "concurrency": c,
                  "model": "ViT-B-32__openai"}, 0.1 * c, count=50, seed=c)
        for c in (1, 2)
    ]  # fmt: skip
    record = run(0, benchmarks=results)
    settings = JobSettings({"smartSearch": 3, "faceDetection": 2, "ocr": 1}, {}, 1440, "test")
    inputs = CapacityInputs(LibrarySize(assets=1000, size_bytes=None, source="test"), settings)
    smart = estimate_capacity([record], inputs).estimates[0]
    level2 = results[1]
    assert smart.seconds_p50 == 1000 * level2.p50 / 2
    assert "3 was not measured, so this uses 2 and assumes no gain above it" in smart.basis


def test_ocr_uses_the_server_concurrency_and_says_what_to_run_without_a_run() -> None:
    result = generated(
        "ml.ocr",
        {"model": "PP-OCRv5_mobile", "image": "preview", "width": 1440, "concurrency": 2},
        0.4,
        count=50,
        seed=3,
    )
    result = replace(result, notes=("texts found per image: 2",))
    settings = JobSettings({"smartSearch": 2, "faceDetection": 2, "ocr": 2}, {}, 1440, "test")
    inputs = CapacityInputs(LibrarySize(assets=1000, size_bytes=None, source="test"), settings)
    by_job = {e.job: e for e in estimate_capacity([run(0, benchmarks=[result])], inputs).estimates}
    assert (by_job["ocr"].seconds_p50, by_job["ocr"].seconds_p90) == (
        1000 * result.p50 / 2,
        1000 * result.p90 / 2,
    )
    assert "at concurrency 2 (the server's job.ocr.concurrency is 2); per request p50" in (
        by_job["ocr"].basis
    )
    assert by_job["ocr"].basis.endswith("; texts found per image: 2")

    # An ml run from before the suite timed OCR: a sentence saying what to run, not a zero.
    clip = generated("ml.clip_visual", {"image": "preview", "width": 1440, "concurrency": 2}, 0.1)
    by_job = {e.job: e for e in estimate_capacity([run(1, benchmarks=[clip])], inputs).estimates}
    assert by_job["ocr"].seconds_p50 is None
    assert by_job["ocr"].missing == (
        "no ml.ocr result: run immichcheck bench --suite ml --ml-url URL (or bench --node NODE)"
    )


def test_two_nodes_are_compared(tmp_path: Path) -> None:
    def clip(node: str, seconds: float, index: int) -> RunRecord:
        result = generated(
            "ml.clip_visual",
            {"image": "preview", "width": 1440, "concurrency": 2, "model": "m"},
            seconds,
            count=50,
            seed=index,
        )
        return run(index, node=node, benchmarks=[result])

    runs = [clip("node05", 0.1, 0), clip("node02", 0.35, 1)]
    inputs = CapacityInputs(
        LibrarySize(assets=60000, size_bytes=None, source="--assets 60000"),
        JobSettings({"smartSearch": 2, "faceDetection": 2, "ocr": 1}, {}, 1440, "test"),
    )
    section = estimate_capacity(runs, inputs)
    fast = next(e for e in section.estimates if e.node == "node05" and e.job == "smartSearch")
    slow = next(e for e in section.estimates if e.node == "node02" and e.job == "smartSearch")
    assert section.comparisons == (
        f"smart search: node05 {format_duration(fast.seconds_p50 or 0)}, "
        f"node02 {format_duration(slow.seconds_p50 or 0)} (p50)",
    )


def test_durations_read_as_people_say_them() -> None:
    assert [format_duration(s) for s in (42, 720, 3.2 * 3600, 2.5 * 86400)] == [
        "42 s",
        "12 min",
        "3.2 h",
        "2.5 days",
    ]


def test_bad_library_size_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run_cli(
        ["report", "--reports-dir", str(tmp_path), "--library-bytes", "lots"], capsys
    )
    assert code == 3
    assert err.strip().splitlines()[-1].startswith("immichcheck: error:")
    assert "'lots' is not a size" in err


def _clip_result(p50: float, p90: float) -> BenchmarkResult:
    return BenchmarkResult(
        workload="ml.clip_visual",
        parameters={"model": "ViT-B-32__openai", "image": "preview", "width": 1440,
                    "concurrency": 2},
        count=200, min=p50 * 0.8, p50=p50, p90=p90, p95=p90, p99=p90, p999=p90, max=p90,
        mean=p50, stddev=0.01, throughput=2 / p50, errors=0,
    )  # fmt: skip


def test_the_readme_worked_example() -> None:
    runs = [
        run(0, node="node05", benchmarks=[_clip_result(0.190, 0.240)]),
        run(1, node="node02", benchmarks=[_clip_result(0.610, 0.700)]),
    ]
    section = estimate_capacity(runs, inputs_from_runs(runs, assets=60000))
    smart = next(e for e in section.estimates if e.node == "node05" and e.job == "smartSearch")
    assert smart.seconds_p50 == pytest.approx(5700) and smart.seconds_p90 == pytest.approx(7200)
    readme = " ".join((project_folder("benchmarks").parent / "README.md").read_text().split())
    assert format_estimate(smart) == "1.6 h (p50) to 2.0 h (p90)"
    assert "`smart search | 1.6 h (p50) to 2.0 h (p90) | run ...: ml.clip_visual" in readme
    assert section.comparisons == ("smart search: node05 1.6 h, node02 5.1 h (p50)",)
    assert "`smart search: node05 1.6 h, node02 5.1 h (p50)`" in readme


def test_a_face_run_that_found_no_face_says_recognition_was_not_timed() -> None:
    note = (
        "no face found in the generated portrait: only detection was exercised, recognition "
        "had nothing to embed"
    )
    result = generated(
        "ml.facial_recognition",
        {"model": "buffalo_l", "image": "face", "width": 1024, "concurrency": 2},
        0.3,
        count=50,
    )
    record = run(0, benchmarks=[replace(result, notes=(note,))])
    section = estimate_capacity([record], inputs_from_runs([record], assets=1000))
    faces = next(e for e in section.estimates if e.job == "faceDetection")
    assert faces.seconds_p50 == 1000 * result.p50 / 2
    assert f"; {note}; the server sends its 1440 px previews" in faces.basis

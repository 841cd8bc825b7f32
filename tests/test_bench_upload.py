"""The upload suite against the fake Immich server: units, duplicates, and cleanup always."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from immichcheck.bench.base import BenchContext, Profile
from immichcheck.bench.suites import upload
from immichcheck.bench.suites.upload import (
    DEVICE_ID,
    LEDGER_NAME,
    SUITE,
    UploadLedger,
    UploadSuite,
    is_our_asset,
)
from immichcheck.clients.immich_upload import ImmichAssetClient, UploadRequestError
from tests.fakes.immich_server import FakeAsset, FakeImmichServer


def make_ctx(
    server: FakeImmichServer | None, reports: Path, count: int = 3, **options: Any
) -> BenchContext:
    """A context with small images and two concurrency levels."""
    section = {"count": count, "concurrency": [1, 2], "image_width": 200, "image_height": 150}
    return BenchContext(
        run_id="20260101T000000Z-up0001",
        profile=Profile(name="test", settings={"upload": section}),
        server_url=server.url if server else None,
        api_key=server.admin_api_key if server else None,
        options={"reports_dir": str(reports), **options},
    )


def assert_all_cleaned(server: FakeImmichServer, reports: Path) -> None:
    """Nothing uploaded remains on the server and the ledger is empty."""
    assert server.live_assets() == []
    assert not (reports / LEDGER_NAME).exists()


async def test_uploads_measure_throughput_and_everything_is_deleted(
    fake_immich_server: FakeImmichServer, tmp_path: Path
) -> None:
    results = await SUITE.run(make_ctx(fake_immich_server, tmp_path, video_size=300_000))
    keyed = {(r.workload, r.parameters.get("concurrency")): r for r in results}
    assert list(keyed) == [
        ("upload.photo", 1),
        ("upload.photo", 2),
        ("upload.video", None),
        ("upload.duplicate", None),
        ("upload.cleanup", None),
    ]
    for level in (1, 2):
        photo = keyed[("upload.photo", level)]
        assert photo.count == 3 and photo.errors == 0
        assert photo.bytes_per_second is not None
        file_bytes = photo.parameters["file_bytes"]
        # bytes/s x wall time gives back the bytes sent (3 images, each a few bytes longer
        # than the base image because of its unique comment).
        assert photo.bytes_per_second * photo.duration == pytest.approx(3 * file_bytes, rel=0.01)
        assert photo.throughput == pytest.approx(3 / photo.duration)
        assert 0 < photo.p50 <= photo.max < 10  # seconds
    video = keyed[("upload.video", None)]
    assert video.count == 1 and video.bytes_per_second and video.bytes_per_second > 0
    duplicate = keyed[("upload.duplicate", None)]
    assert duplicate.count == 1 and duplicate.errors == 0
    cleanup = keyed[("upload.cleanup", None)]
    assert cleanup.errors == 0
    assert "force-deleted and verified gone: 7 assets" in cleanup.notes

    uploaded = fake_immich_server.deleted_assets()
    assert len(uploaded) == 7  # 3 + 3 photos, 1 video; the duplicate stored nothing
    assert {a.device_id for a in uploaded} == {DEVICE_ID}
    assert all(
        a.device_asset_id.startswith("immichcheck-bench-20260101T000000Z-up0001-") for a in uploaded
    )
    assert len({a.checksum for a in uploaded}) == 7
    assert {a.type for a in uploaded} == {"IMAGE", "VIDEO"}
    assert_all_cleaned(fake_immich_server, tmp_path)


async def test_cancelled_run_deletes_what_it_uploaded(
    fake_immich_server: FakeImmichServer, tmp_path: Path
) -> None:
    fake_immich_server.latency = 0.05
    task = asyncio.create_task(SUITE.run(make_ctx(fake_immich_server, tmp_path, count=200)))
    deadline = time.monotonic() + 20
    while len(fake_immich_server.live_assets()) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert len(fake_immich_server.live_assets()) >= 3
    task.cancel()  # what Ctrl-C does to the bench command's task
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fake_immich_server.deleted_assets()
    assert_all_cleaned(fake_immich_server, tmp_path)


async def test_a_crash_mid_run_still_deletes_everything(
    fake_immich_server: FakeImmichServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> Any:
        raise RuntimeError("boom after the uploads")

    monkeypatch.setattr(UploadSuite, "_duplicate", broken)
    with pytest.raises(RuntimeError, match="boom"):
        await SUITE.run(make_ctx(fake_immich_server, tmp_path))
    assert len(fake_immich_server.deleted_assets()) == 6
    assert_all_cleaned(fake_immich_server, tmp_path)


@pytest.mark.parametrize(
    ("knob", "value", "reason"),
    [
        ("upload_limit_bytes", 1000, "upload: HTTP 413"),
        ("fail_mode", "500", "upload: HTTP 500"),
        ("fail_mode", "garbage", "upload: answer is not JSON"),
    ],
)
async def test_server_failures_are_counted_with_their_reason(
    fake_immich_server: FakeImmichServer, tmp_path: Path, knob: str, value: Any, reason: str
) -> None:
    setattr(fake_immich_server, knob, value)
    results = await SUITE.run(make_ctx(fake_immich_server, tmp_path, count=2))
    photos = [r for r in results if r.workload == "upload.photo"]
    assert all(r.errors == 2 and r.count == 0 for r in photos)
    assert all(r.error_messages[0].startswith(reason) for r in photos)
    duplicate = next(r for r in results if r.workload == "upload.duplicate")
    assert duplicate.error_messages == ("no image was uploaded, so there is nothing to send twice",)
    setattr(fake_immich_server, knob, None)
    assert fake_immich_server.live_assets() == []


async def test_hung_server_uploads_time_out(
    fake_immich_server: FakeImmichServer, tmp_path: Path
) -> None:
    fake_immich_server.fail_mode = "hang"
    ctx = make_ctx(fake_immich_server, tmp_path, count=1)
    ctx.profile = Profile(
        name="test",
        settings={
            "upload": {
                "count": 1,
                "concurrency": [1],
                "image_width": 64,
                "image_height": 48,
                "timeout_seconds": 0.3,
            }
        },
    )
    results = await SUITE.run(ctx)
    photo = next(r for r in results if r.workload == "upload.photo")
    assert photo.errors == 1 and photo.error_messages[0] == "POST /api/assets: no answer in time"


async def test_leftovers_of_a_killed_run_are_removed_from_the_ledger_only(
    fake_immich_server: FakeImmichServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def no_search(*args: Any) -> Any:
        # A server without `POST /api/search/metadata`: the ledger alone must find leftovers.
        raise UploadRequestError("search: HTTP 404: Cannot POST /api/search/metadata", 404)

    monkeypatch.setattr(ImmichAssetClient, "search_by_device", no_search)
    ledger = UploadLedger(tmp_path / LEDGER_NAME, fake_immich_server.url)
    async with ImmichAssetClient(fake_immich_server.url, fake_immich_server.admin_api_key) as c:
        ours = await c.upload(
            b"\xff\xd8leftover",
            filename="immichcheck-bench-old-1.jpg",
            device_asset_id="immichcheck-bench-old-1",
            device_id=DEVICE_ID,
            created_at="2026-01-01T00:00:00Z",
        )
        users = await c.upload(
            b"\xff\xd8holiday",
            filename="IMG_0001.jpg",
            device_asset_id="IMG_0001",
            device_id="iphone",
            created_at="2026-01-01T00:00:00Z",
        )
    ledger.add(ours.asset_id, "old")
    # Another server's entry must not be touched or sent to this server.
    (tmp_path / LEDGER_NAME).open("a").write(
        json.dumps({"server": "http://elsewhere:2283", "id": "x", "run_id": "old"}) + "\n"
    )

    results = await SUITE.run(make_ctx(fake_immich_server, tmp_path, count=1))

    assert fake_immich_server.assets[ours.asset_id].is_deleted
    assert not fake_immich_server.assets[users.asset_id].is_deleted  # the user's photo stays
    assert any("removed 1 leftover assets of earlier runs" in n for n in results[0].notes)
    assert any("used the ledger only" in n for n in results[0].notes)
    remaining = (tmp_path / LEDGER_NAME).read_text().splitlines()
    assert [json.loads(line)["server"] for line in remaining] == ["http://elsewhere:2283"]


def test_only_assets_that_prove_they_are_ours_count_as_leftovers() -> None:
    assert is_our_asset({"deviceId": DEVICE_ID, "deviceAssetId": "immichcheck-bench-r-1"})
    assert is_our_asset({"originalFileName": "immichcheck-bench-r-1.jpg"})  # no deviceId field
    assert not is_our_asset({"deviceId": "iphone", "originalFileName": "immichcheck-bench-1.jpg"})
    assert not is_our_asset({"deviceId": DEVICE_ID, "originalFileName": "IMG_0001.jpg"})
    assert not is_our_asset({"id": "x"})


def test_unavailable_without_server_or_key(tmp_path: Path) -> None:
    assert "--server-url" in str(SUITE.unavailable_reason(make_ctx(None, tmp_path)))
    ctx = make_ctx(None, tmp_path)
    ctx.server_url = "http://127.0.0.1:2283"
    assert "--api-key" in str(SUITE.unavailable_reason(ctx))
    ctx.api_key = "secret"
    assert SUITE.unavailable_reason(ctx) is None


def test_upload_module_keeps_its_tag_constants() -> None:
    # Later runs find leftovers by these exact values; changing them orphans old uploads.
    assert upload.DEVICE_ID == "immichcheck-bench"
    assert upload.NAME_PREFIX == "immichcheck-bench-"


TINY_PROFILES = """
profiles:
  quick:
    duration_seconds: 0.2
    warmup_seconds: 0.0
    ml: {concurrency: [1], clip_images: [thumbnail]}
    upload: {count: 2, concurrency: [1], image_width: 120, image_height: 90}
    storage: {seq_write_file_bytes: 65536, seq_write_files: 2, small_files_max: 20,
              fdatasync_max_ops: 20, free_space_margin_bytes: 1048576}
"""


@pytest.mark.slow
def test_bench_command_runs_ml_upload_and_storage_together(
    fake_immich_server: FakeImmichServer,
    fake_ml_service: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from immichcheck.cli.main import main

    home = tmp_path / "home"
    (home / "benchmarks").mkdir(parents=True)
    (home / "benchmarks" / "workloads.yaml").write_text(TINY_PROFILES)
    monkeypatch.setenv("IMMICHCHECK_HOME", str(home))
    media = tmp_path / "media"
    media.mkdir()
    reports = tmp_path / "reports"
    args = [
        "bench",
        "--profile", "quick",
        "--suite", "ml", "--suite", "upload", "--suite", "storage",
        "--ml-url", fake_ml_service.url,
        "--server-url", fake_immich_server.url,
        "--api-key", fake_immich_server.admin_api_key,
        "--path", f"media={media}",
        "--upload-count", "2",
        "--clip-model", "ViT-B-32__openai",
        "--reports-dir", str(reports),
        "--format", "json",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    assert exit_info.value.code == 0, err
    record = json.loads(out)
    workloads = {b["workload"] for b in record["benchmarks"]}
    assert {"ml.clip_visual", "upload.photo", "upload.cleanup", "storage.fdatasync"} <= workloads
    assert fake_immich_server.admin_api_key not in out + err
    assert [fs["path"] for fs in record["host"]["filesystems"]] == [str(media.resolve())]
    assert_all_cleaned(fake_immich_server, reports)
    assert not [p for p in media.iterdir()]


class FilterIgnoringImmichServer(FakeImmichServer):
    """A server whose metadata search ignores every filter and returns all the user's assets.

    Such a server (one that does not know a filter) leaves the suite's own ownership check as
    the only thing protecting the user's photos.
    """

    def _metadata_matches(self, asset: FakeAsset, filters: dict[str, Any]) -> bool:
        return True


@pytest.fixture
def filter_ignoring_server() -> Iterator[FakeImmichServer]:
    """A running FilterIgnoringImmichServer, stopped after the test."""
    server = FilterIgnoringImmichServer().start()
    yield server
    server.stop()


@pytest.mark.parametrize("server_fixture", ["fake_immich_server", "filter_ignoring_server"])
async def test_leftovers_found_by_server_search_are_removed_and_nothing_else(
    tmp_path: Path, server_fixture: str, request: pytest.FixtureRequest
) -> None:
    server: FakeImmichServer = request.getfixturevalue(server_fixture)
    async with ImmichAssetClient(server.url, server.admin_api_key) as client:

        async def put(name: str, device: str) -> str:
            answer = await client.upload(
                b"\xff\xd8" + name.encode(),
                filename=name,
                device_asset_id=name.rsplit(".", 1)[0],
                device_id=device,
                created_at="2026-01-01T00:00:00Z",
            )
            return answer.asset_id

        # Left by a run that was killed before writing its ledger line.
        ours = await put("immichcheck-bench-killed-1.jpg", DEVICE_ID)
        # The user's photos, one with a confusingly similar name.
        lookalike = await put("IMG_immichcheck-bench-copy.jpg", "iphone")
        holiday = await put("IMG_0002.jpg", "iphone")

    results = await SUITE.run(make_ctx(server, tmp_path, count=1))

    assert server.assets[ours].is_deleted
    assert not server.assets[lookalike].is_deleted
    assert not server.assets[holiday].is_deleted
    assert any("removed 1 leftover assets of earlier runs" in n for n in results[0].notes)
    assert not any("search for leftovers not available" in n for n in results[0].notes)
    assert {a.id for a in server.live_assets()} == {lookalike, holiday}


async def test_a_video_larger_than_the_temp_space_is_an_explained_error(
    fake_immich_server: FakeImmichServer, tmp_path: Path
) -> None:
    results = await SUITE.run(make_ctx(fake_immich_server, tmp_path, count=1, video_size=1 << 60))
    video = next(r for r in results if r.workload == "upload.video")
    assert video.errors == 1 and "not enough temporary space" in video.error_messages[0]
    assert_all_cleaned(fake_immich_server, tmp_path)

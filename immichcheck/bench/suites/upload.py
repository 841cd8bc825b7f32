"""Upload throughput through the Immich server, the path every phone backup takes.

Workloads (needs `--server-url` and `--api-key`):

- `upload.photo`: N unique photo-sized JPEGs through `POST /api/assets` at each concurrency of
  the profile (1 and 4): per-upload latency, assets/s and MB/s (`bytes_per_second`).
- `upload.video`: with `--video-size BYTES`, one video-sized file.
- `upload.duplicate`: one image sent again with its `x-immich-checksum`; the server must
  answer 200 `duplicate` with the first asset's id, without storing a second copy.
- `upload.cleanup`: every asset the run created is force-deleted and checked gone
  (`GET /api/assets/<id>` answers 400/404); errors count assets still present.

Everything uploaded carries deviceId `immichcheck-bench` and deviceAssetId / file name
`immichcheck-bench-<run id>-<n>`. Deletion runs at the end, after a failure and on Ctrl-C
(task cancellation). Two safety nets catch what a killed process leaves: a ledger of created
ids in the reports folder (`upload-ledger.jsonl`), and a server search for the device id;
both are swept at the start of the next run. Only assets whose own fields prove they are
ours are ever deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from immichcheck.bench.base import BenchContext
from immichcheck.bench.suites import images
from immichcheck.clients.immich_upload import ImmichAssetClient, UploadAnswer, UploadRequestError
from immichcheck.common.records import BenchmarkResult
from immichcheck.common.statistics import LatencyRecorder, summarize
from immichcheck.history.store import atomic_write_text, reports_lock

DEVICE_ID = "immichcheck-bench"
NAME_PREFIX = "immichcheck-bench-"
LEDGER_NAME = "upload-ledger.jsonl"
DEFAULTS: Mapping[str, Any] = {
    "count": 8,
    "concurrency": [1, 4],
    "image_width": images.PHOTO_SIZE[0],
    "image_height": images.PHOTO_SIZE[1],
    "timeout_seconds": 120.0,
}
_DELETE_BATCH = 100
_VERIFY_ATTEMPTS = 3
_VERIFY_PAUSE_SECONDS = 0.5
_CLEANUP_TIMEOUT_SECONDS = 30.0
_TEMP_MARGIN_BYTES = 64 * 1024 * 1024


class UploadLedger:
    """Created asset ids on disk, one JSON line each, until they are verified deleted.

    Written (and fsynced) right after each upload, so even a killed process leaves a record
    of what it put on the server; the next run against the same server deletes those.
    """

    def __init__(self, path: Path, server_url: str) -> None:
        self.path = path
        self.server_url = server_url.rstrip("/")

    def _entries(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        entries = []
        for line in lines:
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, dict) and isinstance(entry.get("id"), str):
                    entries.append(entry)
        return entries

    def add(self, asset_id: str, run_id: str) -> None:
        """Record one created asset before anything else happens."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"server": self.server_url, "id": asset_id, "run_id": run_id})
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def pending(self) -> list[str]:
        """Ids recorded for this server and not yet verified deleted."""
        return [e["id"] for e in self._entries() if e.get("server") == self.server_url]

    def forget(self, ids: Iterable[str]) -> None:
        """Drop verified-deleted ids; the file goes when nothing is left."""
        gone = set(ids)
        if not gone or not self.path.exists():
            return
        with reports_lock(self.path.parent):
            keep = [
                e
                for e in self._entries()
                if not (e.get("server") == self.server_url and e["id"] in gone)
            ]
            if keep:
                atomic_write_text(self.path, "".join(json.dumps(e) + "\n" for e in keep))
            else:
                self.path.unlink(missing_ok=True)


def is_our_asset(item: Mapping[str, Any]) -> bool:
    """Whether a search result is provably an immichcheck benchmark upload."""
    device_ok = item.get("deviceId") == DEVICE_ID
    name_ok = str(item.get("originalFileName", "")).startswith(NAME_PREFIX) or str(
        item.get("deviceAssetId", "")
    ).startswith(NAME_PREFIX)
    # Newer servers may omit deviceId from answers; the name alone is then the proof.
    return name_ok and (device_ok or "deviceId" not in item)


@dataclass
class CleanupReport:
    """What deleting a set of assets achieved."""

    deleted: list[str] = field(default_factory=list)
    still_present: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


async def delete_and_verify(client: ImmichAssetClient, ids: Sequence[str]) -> CleanupReport:
    """Force-delete `ids` in batches, then check each is gone; never raises for the server."""
    report = CleanupReport()
    started = time.perf_counter()
    for start in range(0, len(ids), _DELETE_BATCH):
        batch = list(ids[start : start + _DELETE_BATCH])
        try:
            await client.delete(batch)
        except UploadRequestError as exc:
            # Immich rejects a whole batch when one id is already gone (400): go one by one.
            report.errors.append(str(exc))
            for asset_id in batch:
                with contextlib.suppress(UploadRequestError):
                    await client.delete([asset_id])
    remaining = list(ids)
    for attempt in range(_VERIFY_ATTEMPTS):
        still: list[str] = []
        for asset_id in remaining:
            try:
                if await client.exists(asset_id):
                    still.append(asset_id)
            except UploadRequestError as exc:
                report.errors.append(str(exc))
                still.append(asset_id)
        remaining = still
        if not remaining:
            break
        if attempt + 1 < _VERIFY_ATTEMPTS:
            await asyncio.sleep(_VERIFY_PAUSE_SECONDS)
            with contextlib.suppress(UploadRequestError):
                await client.delete(remaining)
    report.still_present = remaining
    report.deleted = [i for i in ids if i not in set(remaining)]
    report.seconds = time.perf_counter() - started
    return report


async def upload_tracked(
    client: ImmichAssetClient,
    ledger: UploadLedger,
    created: list[str],
    run_id: str,
    content: bytes | Path,
    **fields: Any,
) -> UploadAnswer:
    """Upload and record a created asset in the ledger and `created`, even when cancelled.

    A cancelled client does not stop the server: an upload in flight at Ctrl-C may still be
    stored. So the request is shielded and, on cancellation, its answer awaited (bounded) to
    learn the id before the cancellation goes on to the cleanup.
    """

    def track(answer: UploadAnswer) -> None:
        if answer.status_code == 201:
            ledger.add(answer.asset_id, run_id)
            created.append(answer.asset_id)

    request = asyncio.ensure_future(client.upload(content, **fields))
    try:
        answer = await asyncio.shield(request)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            track(await asyncio.wait_for(request, _CLEANUP_TIMEOUT_SECONDS))
        raise
    track(answer)
    return answer


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class TrackedUploads:
    """One run's uploads: each is named and tagged as ours and tracked for the cleanup."""

    client: ImmichAssetClient
    ledger: UploadLedger
    created: list[str]
    run_id: str

    def name(self, suffix: str | int) -> str:
        """The device asset id of one of this run's assets (found again by its prefix)."""
        return f"{NAME_PREFIX}{self.run_id}-{suffix}"

    async def send(
        self, content: bytes | Path, name: str, filename: str, created_at: datetime, **fields: Any
    ) -> UploadAnswer:
        """Upload one asset under our device id; a created one is recorded even if cancelled."""
        return await upload_tracked(
            self.client,
            self.ledger,
            self.created,
            self.run_id,
            content,
            filename=filename,
            device_asset_id=name,
            device_id=DEVICE_ID,
            created_at=_iso(created_at),
            **fields,
        )


class UploadSuite:
    """Upload throughput, duplicate detection and guaranteed cleanup."""

    name = "upload"

    def unavailable_reason(self, ctx: BenchContext) -> str | None:
        """Needs the server URL and an API key with asset upload/delete permission."""
        if not ctx.server_url:
            return "no Immich server URL (use --server-url)"
        if not ctx.api_key:
            return "no API key (use --api-key; it needs asset upload, read and delete permission)"
        return None

    async def run(self, ctx: BenchContext) -> Sequence[BenchmarkResult]:
        """Upload, check duplicates, then delete everything, whatever happens in between."""
        assert ctx.server_url is not None and ctx.api_key is not None
        section = {**DEFAULTS, **ctx.profile.section("upload")}
        count = int(ctx.options.get("upload_count") or section["count"])
        video_size = int(ctx.options.get("video_size") or 0)
        concurrency = [int(c) for c in section["concurrency"]]
        reports_dir = Path(ctx.options.get("reports_dir") or "reports")
        ledger = UploadLedger(reports_dir / LEDGER_NAME, ctx.server_url)
        created: list[str] = []
        results: list[BenchmarkResult] = []
        async with ImmichAssetClient(
            ctx.server_url,
            ctx.api_key,
            timeout=float(section["timeout_seconds"]),
            max_connections=max(concurrency) + 1,
        ) as client:
            try:
                notes = await self._sweep_leftovers(ctx, client, ledger)
                ctx.progress.step("upload: generating test images")
                photo = await asyncio.to_thread(
                    images.photo_jpeg, int(section["image_width"]), int(section["image_height"])
                )
                uploads = TrackedUploads(client, ledger, created, ctx.run_id)
                sequence = iter(range(1, 1_000_000))
                first_upload: tuple[bytes, str] | None = None
                for level in concurrency:
                    result, first = await self._upload_photos(
                        ctx, uploads, photo, sequence, count, level, notes
                    )
                    results.append(result)
                    first_upload = first_upload or first
                if video_size > 0:
                    results.append(await self._upload_video(ctx, uploads, video_size, sequence))
                results.append(await self._duplicate(ctx, uploads, first_upload))
            finally:
                # Runs on success, on an exception and on cancellation (Ctrl-C): what this
                # run created must not stay in someone's photo library.
                ctx.progress.step(f"upload: deleting {len(created)} uploaded assets")
                report = await asyncio.wait_for(
                    delete_and_verify(client, created), _CLEANUP_TIMEOUT_SECONDS + 10 * len(created)
                )
                ledger.forget(report.deleted)
            results.append(self._cleanup_result(report))
        return results

    async def _sweep_leftovers(
        self, ctx: BenchContext, client: ImmichAssetClient, ledger: UploadLedger
    ) -> list[str]:
        """Delete what earlier runs left: ids in the ledger, then tagged assets on the server."""
        notes: list[str] = []
        candidates = ledger.pending()
        try:
            found = await client.search_by_device(DEVICE_ID, NAME_PREFIX)
            candidates += [str(item["id"]) for item in found if is_our_asset(item)]
        except UploadRequestError as exc:
            notes.append(f"server search for leftovers not available ({exc}); used the ledger only")
        candidates = list(dict.fromkeys(candidates))
        if candidates:
            ctx.progress.step(f"upload: removing {len(candidates)} leftovers of earlier runs")
            report = await delete_and_verify(client, candidates)
            ledger.forget(report.deleted)
            notes.append(f"removed {len(report.deleted)} leftover assets of earlier runs")
            if report.still_present:
                notes.append(f"{len(report.still_present)} leftover assets could not be removed")
        return notes

    async def _upload_photos(
        self,
        ctx: BenchContext,
        uploads: TrackedUploads,
        photo: bytes,
        sequence: Iterator[int],
        count: int,
        concurrency: int,
        notes: Sequence[str],
    ) -> tuple[BenchmarkResult, tuple[bytes, str] | None]:
        """`count` unique photos at one concurrency; the first success is kept for the dup test."""
        ctx.progress.step(f"upload.photo concurrency={concurrency} count={count}")
        numbers = [next(sequence) for _ in range(count)]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for number in numbers:
            queue.put_nowait(number)
        recorder = LatencyRecorder()
        moved = 0
        first: tuple[bytes, str] | None = None
        moment = datetime.now(UTC)

        async def worker() -> None:
            nonlocal moved, first
            while True:
                try:
                    number = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                name = uploads.name(number)
                data = images.unique_variant(photo, name)
                begin = time.perf_counter_ns()
                try:
                    answer = await uploads.send(
                        data, name, f"{name}.jpg", moment - timedelta(minutes=number)
                    )
                except UploadRequestError as exc:
                    recorder.record_error(str(exc))
                    continue
                elapsed = time.perf_counter_ns() - begin
                if answer.status_code == 201:
                    recorder.record_ns(elapsed)
                    moved += len(data)
                    if first is None:
                        first = (data, answer.asset_id)
                else:
                    # Unique bytes cannot be a duplicate: the id belongs to someone else's asset.
                    recorder.record_error(
                        f"unique image answered {answer.status_code} {answer.status}"
                    )
                ctx.progress.advance(recorder.count + recorder.errors, count)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(max(concurrency, 1))))
        wall = time.perf_counter() - started
        result = summarize(
            "upload.photo",
            {"concurrency": concurrency, "count": count, "file_bytes": len(photo)},
            recorder,
            wall,
            bytes_moved=moved,
            notes=(*notes, "latency per upload; throughput in assets/s"),
        )
        return result, first

    async def _upload_video(
        self,
        ctx: BenchContext,
        uploads: TrackedUploads,
        size: int,
        sequence: Iterator[int],
    ) -> BenchmarkResult:
        """One video-sized file, streamed from a temporary file so memory stays flat."""
        ctx.progress.step(f"upload.video {size} bytes")
        number = next(sequence)
        name = uploads.name(number)
        recorder = LatencyRecorder()
        free = shutil.disk_usage(tempfile.gettempdir()).free
        if free < size + _TEMP_MARGIN_BYTES:
            recorder.record_error(
                f"not enough temporary space for a {size}-byte video in {tempfile.gettempdir()} "
                f"({free} bytes free; set TMPDIR to a larger folder)"
            )
            return summarize("upload.video", {"file_bytes": size}, recorder, 0.0)
        with tempfile.TemporaryDirectory(prefix="immichcheck-video-") as folder:
            path = Path(folder) / f"{name}.mp4"
            await asyncio.to_thread(_write_random_file, path, size)
            begin = time.perf_counter()
            try:
                answer = await uploads.send(
                    path, name, path.name, datetime.now(UTC), content_type="video/mp4"
                )
                if answer.status_code == 201:
                    recorder.record_seconds(time.perf_counter() - begin)
                else:
                    recorder.record_error(
                        f"unique video answered {answer.status_code} {answer.status}"
                    )
            except UploadRequestError as exc:
                recorder.record_error(str(exc))
            wall = time.perf_counter() - begin
        return summarize(
            "upload.video",
            {"file_bytes": size},
            recorder,
            wall,
            bytes_moved=size if recorder.count else 0,
            notes=("random bytes named .mp4: measures transfer and storage, not transcoding",),
        )

    async def _duplicate(
        self,
        ctx: BenchContext,
        uploads: TrackedUploads,
        first: tuple[bytes, str] | None,
    ) -> BenchmarkResult:
        """Send an uploaded image again with its checksum: the server must say duplicate."""
        recorder = LatencyRecorder()
        if first is None:
            recorder.record_error("no image was uploaded, so there is nothing to send twice")
            return summarize("upload.duplicate", {}, recorder, 0.0)
        data, original_id = first
        name = uploads.name("duplicate")
        ctx.progress.step("upload.duplicate")
        begin = time.perf_counter()
        try:
            answer = await uploads.send(
                data, name, f"{name}.jpg", datetime.now(UTC), checksum=images.sha1_hex(data)
            )
            elapsed = time.perf_counter() - begin
            if answer.status_code == 201:
                recorder.record_error(
                    "the server stored a second copy (201 created), not duplicate"
                )
            elif answer.status != "duplicate" or answer.asset_id != original_id:
                recorder.record_error(
                    f"expected 200 duplicate of the first upload, got {answer.status_code} "
                    f"{answer.status!r}"
                )
            else:
                recorder.record_seconds(elapsed)
        except UploadRequestError as exc:
            recorder.record_error(str(exc))
        return summarize(
            "upload.duplicate",
            {"file_bytes": len(data)},
            recorder,
            time.perf_counter() - begin,
            notes=("same bytes with x-immich-checksum: 200 duplicate expected",),
        )

    @staticmethod
    def _cleanup_result(report: CleanupReport) -> BenchmarkResult:
        """The deletion as a result: count deleted, errors = assets still on the server."""
        recorder = LatencyRecorder()
        if report.deleted:
            recorder.record_seconds(report.seconds)
        for asset_id in report.still_present:
            recorder.record_error(f"asset {asset_id} is still on the server after force delete")
        for message in report.errors:
            # Failed batch deletes that the one-by-one retry fixed explain, but do not count.
            if message not in recorder.error_messages and len(recorder.error_messages) < 5:
                recorder.error_messages.append(message)
        return summarize(
            "upload.cleanup",
            {},
            recorder,
            report.seconds,
            operations=len(report.deleted),
            notes=(
                f"force-deleted and verified gone: {len(report.deleted)} assets",
                *(
                    [f"still present (ids kept in the ledger): {len(report.still_present)}"]
                    if report.still_present
                    else []
                ),
            ),
        )


def _write_random_file(path: Path, size: int) -> None:
    """A file of `size` random bytes (incompressible, unique), written in 1 MiB blocks."""
    block = os.urandom(1024 * 1024)
    with path.open("wb") as handle:
        remaining = size
        while remaining > 0:
            chunk = block[: min(remaining, len(block))]
            handle.write(chunk)
            remaining -= len(chunk)
        # One random tail makes each file unique although the block repeats.
        handle.write(os.urandom(64))


SUITE = UploadSuite()

"""Storage under the media and the databases: the I/O patterns Immich puts on each volume.

For every path given (`--path uploads=/mnt/storage/immich/uploads --path nvme=/opt/immich`):

- `storage.seq_write`: photo-sized files written sequentially and fsynced (MB/s): uploads.
- `storage.small_files`: thumbnail-sized create+write+fsync+stat+delete (files/s): thumbs/.
- `storage.seq_read`: the photo-sized files read back, bypassing the page cache with O_DIRECT
  where the filesystem supports it (MB/s): serving originals.
- `storage.fdatasync`: 8 KiB sequential writes each followed by fdatasync (latency p50/p99):
  the PostgreSQL WAL / Redis AOF pattern, judged against the published p99 < 10 ms guidance.

The work happens in a scratch folder `.immichcheck-bench-<run id>` inside each path, marked
with a marker file and removed at the end, on Ctrl-C and after a failure; a later run removes
leftovers from this host whose process is gone. With `--engine native` fio runs equivalent
jobs (immichcheck.bench.native.fio) and its output is normalised into the same records.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import mmap
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from immichcheck.bench.base import BenchContext
from immichcheck.bench.native import fio
from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.host_facts import filesystem_facts
from immichcheck.common.records import BenchmarkResult, FilesystemFacts
from immichcheck.common.statistics import LatencyRecorder, summarize

SCRATCH_PREFIX = ".immichcheck-bench-"
MARKER_NAME = ".immichcheck-bench-marker"
# A leftover scratch folder from another host (shared NFS) is only removed once it is this old:
# its owner may still be running.
STALE_FOREIGN_SECONDS = 24 * 3600

MIB = 1024 * 1024
_CHUNK = MIB  # sequential I/O block: large enough to stream, small enough to stop quickly
_ALIGN = 4096  # O_DIRECT buffer and size alignment

# Published guidance (etcd's disk recommendation, widely reused for PostgreSQL WAL).
FDATASYNC_P99_LIMIT_SECONDS = 0.010
FDATASYNC_MIN_IOPS = 50.0
# The deployment README's claim: NVMe is 10-100x faster than NFS.
CLAIM_LOW, CLAIM_HIGH = 10.0, 100.0

DEFAULTS: Mapping[str, Any] = {
    "seq_write_file_bytes": 4 * MIB,  # a 12 MP phone JPEG is 3-5 MB
    "seq_write_files": 16,
    "small_file_bytes": 32 * 1024,  # Immich thumbnails (webp, 250 px) are tens of KiB
    "small_files_max": 5000,
    "small_files_fio_count": 500,
    "fdatasync_block_bytes": 8192,
    "fdatasync_max_ops": 5000,
    "free_space_margin_bytes": 256 * MIB,
}

T = TypeVar("T")


@dataclass(frozen=True)
class StorageSettings:
    """Sizes of one storage run, from the profile's `storage` section."""

    seq_write_file_bytes: int
    seq_write_files: int
    small_file_bytes: int
    small_files_max: int
    small_files_fio_count: int
    fdatasync_block_bytes: int
    fdatasync_max_ops: int
    free_space_margin_bytes: int
    duration_seconds: float

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> StorageSettings:
        """Settings from a profile section, defaults filling gaps; sizes rounded for O_DIRECT."""
        values = {**DEFAULTS, **section}

        def aligned(value: Any) -> int:
            number = max(int(value), _ALIGN)
            return (number + _ALIGN - 1) // _ALIGN * _ALIGN

        return cls(
            seq_write_file_bytes=aligned(values["seq_write_file_bytes"]),
            seq_write_files=max(int(values["seq_write_files"]), 1),
            small_file_bytes=max(int(values["small_file_bytes"]), 1),
            small_files_max=max(int(values["small_files_max"]), 1),
            small_files_fio_count=max(int(values["small_files_fio_count"]), 1),
            fdatasync_block_bytes=max(int(values["fdatasync_block_bytes"]), 512),
            fdatasync_max_ops=max(int(values["fdatasync_max_ops"]), 1),
            free_space_margin_bytes=max(int(values["free_space_margin_bytes"]), 0),
            duration_seconds=float(values.get("duration_seconds", 3.0)),
        )

    @property
    def bytes_needed(self) -> int:
        """Most bytes one path's run holds on disk at once (the fio engine needs no more)."""
        small = self.small_file_bytes * 2
        return (
            self.seq_write_file_bytes * self.seq_write_files
            + small
            + self.fdatasync_block_bytes * self.fdatasync_max_ops
        )


def human_bytes(value: float) -> str:
    """Bytes in binary units for messages (1.5 GiB)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


# --- mount facts -------------------------------------------------------------------------


def parse_mount_options(options: str) -> dict[str, str]:
    """Mount options as a mapping: 'rw,vers=4.2,hard' -> {'rw': '', 'vers': '4.2', 'hard': ''}."""
    parsed: dict[str, str] = {}
    for item in options.split(","):
        item = item.strip()
        if item:
            key, _, value = item.partition("=")
            parsed[key] = value
    return parsed


def is_nfs(facts: FilesystemFacts) -> bool:
    """Whether the path sits on an NFS mount."""
    return facts.fstype.startswith("nfs")


def nfs_summary(facts: FilesystemFacts) -> dict[str, str]:
    """The NFS client settings that decide media performance and safety."""
    options = parse_mount_options(facts.options)
    version = (
        options.get("vers") or options.get("nfsvers") or ("4" if facts.fstype == "nfs4" else "")
    )
    return {
        "version": version or "unknown",
        "proto": options.get("proto", "unknown"),
        "rsize": options.get("rsize", "unknown"),
        "wsize": options.get("wsize", "unknown"),
        "mode": "soft" if "soft" in options else "hard",  # hard is the kernel default
        "nconnect": options.get("nconnect", "1"),
        "timeo": options.get("timeo", "default"),
    }


def filesystem_notes(label: str, facts: FilesystemFacts) -> list[str]:
    """Human-readable lines about where a path lives, with NFS settings worth knowing."""
    notes = [
        f"{label}: {facts.fstype or 'unknown'} {facts.device or '?'} mounted at "
        f"{facts.mountpoint} ({facts.options or 'no options'})"
    ]
    if is_nfs(facts):
        nfs = nfs_summary(facts)
        notes.append(
            f"{label}: NFS version {nfs['version']}, proto {nfs['proto']}, rsize {nfs['rsize']}, "
            f"wsize {nfs['wsize']}, {nfs['mode']}, nconnect {nfs['nconnect']}"
        )
        if nfs["mode"] == "soft":
            notes.append(
                f"{label}: soft NFS mount: a server hiccup returns I/O errors to Immich instead "
                "of waiting; media should be mounted hard"
            )
        if nfs["nconnect"] == "1":
            notes.append(
                f"{label}: nconnect not set: one TCP connection carries all NFS traffic "
                "(nconnect=4..8 often raises throughput)"
            )
        for key in ("rsize", "wsize"):
            if nfs[key].isdigit() and int(nfs[key]) < MIB:
                notes.append(f"{label}: {key}={nfs[key]} is below 1 MiB (the usual maximum)")
    return notes


# --- scratch folders ---------------------------------------------------------------------


def remove_leftover_scratch(path: Path, *, now: float | None = None) -> list[Path]:
    """Remove `.immichcheck-bench-*` folders that a marker proves are ours and abandoned."""
    import psutil

    now = time.time() if now is None else now
    removed: list[Path] = []
    host = socket.gethostname()
    try:
        candidates = [p for p in path.iterdir() if p.name.startswith(SCRATCH_PREFIX)]
    except OSError:
        return removed
    for candidate in candidates:
        marker = candidate / MARKER_NAME
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # no marker we wrote: not provably ours, leave it alone
        if not isinstance(info, dict) or not candidate.is_dir() or candidate.is_symlink():
            continue
        same_host = info.get("host") == host
        pid = info.get("pid")
        abandoned = (
            same_host and isinstance(pid, int) and not psutil.pid_exists(pid)
        ) or now - float(info.get("created", now)) > STALE_FOREIGN_SECONDS
        if abandoned:
            shutil.rmtree(candidate, ignore_errors=True)
            if not candidate.exists():
                removed.append(candidate)
    return removed


def create_scratch(path: Path, run_id: str) -> Path:
    """Create the scratch folder for this run inside `path`, with its marker file."""
    scratch = path / f"{SCRATCH_PREFIX}{run_id}"
    scratch.mkdir()
    marker = {
        "run_id": run_id,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "created": time.time(),
    }
    (scratch / MARKER_NAME).write_text(json.dumps(marker), encoding="utf-8")
    return scratch


def check_free_space(
    label: str, path: Path, facts: FilesystemFacts, settings: StorageSettings
) -> None:
    """Refuse to start when the path has less room than the run needs plus a margin."""
    needed = settings.bytes_needed + settings.free_space_margin_bytes
    if facts.free_bytes < needed:
        raise ImmichcheckError(
            f"not enough free space for the storage benchmark on {label} ({path}): "
            f"{human_bytes(facts.free_bytes)} free, it needs {human_bytes(settings.bytes_needed)} "
            f"plus a {human_bytes(settings.free_space_margin_bytes)} margin"
        )


# --- the immichcheck engine's workloads (blocking; run in a worker thread) ---------------


class _Stopped(Exception):
    """The run was cancelled: the worker thread stops at the next operation."""


def _random_block(size: int) -> bytes:
    """Incompressible data, so compressing filesystems (ZFS, btrfs) cannot flatter the figures."""
    return os.urandom(size)


def _write_file(path: Path, size: int, block: bytes) -> None:
    """Write `size` bytes to a new file in 1 MiB blocks and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        remaining = size
        while remaining > 0:
            view = memoryview(block)[: min(remaining, len(block))]
            written = os.write(fd, view)
            remaining -= written
        os.fsync(fd)
    finally:
        os.close(fd)


def seq_write(
    directory: Path, settings: StorageSettings, stop: threading.Event
) -> tuple[LatencyRecorder, float, int, list[Path]]:
    """Photo-sized files written and fsynced one by one; returns (latencies, wall, bytes, files)."""
    recorder = LatencyRecorder()
    block = _random_block(_CHUNK)
    files: list[Path] = []
    moved = 0
    started = time.perf_counter()
    for index in range(settings.seq_write_files):
        if stop.is_set():
            raise _Stopped
        target = directory / f"photo-{index:05d}.jpg"
        begin = time.perf_counter_ns()
        try:
            _write_file(target, settings.seq_write_file_bytes, block)
        except OSError as exc:
            recorder.record_error(f"write {target.name}: {exc.strerror or exc}")
            continue
        recorder.record_ns(time.perf_counter_ns() - begin)
        files.append(target)
        moved += settings.seq_write_file_bytes
    return recorder, time.perf_counter() - started, moved, files


def _open_uncached(path: Path) -> tuple[int, bool]:
    """Open for reading with O_DIRECT when the filesystem allows it; (fd, direct?)."""
    direct_flag = getattr(os, "O_DIRECT", 0)
    if direct_flag:
        try:
            return os.open(path, os.O_RDONLY | direct_flag), True
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                raise
    fd = os.open(path, os.O_RDONLY)
    # Without O_DIRECT (tmpfs, some FUSE), ask the kernel to drop the file's clean pages:
    # this is what fio's invalidate=1 does and works unprivileged, but is only advice.
    with contextlib.suppress(OSError, AttributeError):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    return fd, False


def seq_read(
    files: Sequence[Path], stop: threading.Event
) -> tuple[LatencyRecorder, float, int, bool]:
    """Read the files back in 1 MiB blocks; returns (latencies, wall, bytes, all direct?)."""
    recorder = LatencyRecorder()
    buffer = mmap.mmap(-1, _CHUNK)  # page-aligned, as O_DIRECT requires
    moved = 0
    all_direct = True
    started = time.perf_counter()
    try:
        for target in files:
            if stop.is_set():
                raise _Stopped
            begin = time.perf_counter_ns()
            try:
                fd, direct = _open_uncached(target)
                all_direct = all_direct and direct
                try:
                    while True:
                        count = os.readv(fd, [buffer])
                        moved += count
                        if count < _CHUNK:
                            break
                finally:
                    os.close(fd)
            except OSError as exc:
                recorder.record_error(f"read {target.name}: {exc.strerror or exc}")
                continue
            recorder.record_ns(time.perf_counter_ns() - begin)
    finally:
        buffer.close()
    return recorder, time.perf_counter() - started, moved, all_direct


def small_files(
    directory: Path, settings: StorageSettings, stop: threading.Event
) -> tuple[LatencyRecorder, float]:
    """Thumbnail-like create+write+fsync+close+stat+delete cycles for the profile's duration."""
    recorder = LatencyRecorder()
    payload = _random_block(settings.small_file_bytes)
    deadline = time.perf_counter() + settings.duration_seconds
    started = time.perf_counter()
    for index in range(settings.small_files_max):
        if stop.is_set():
            raise _Stopped
        if time.perf_counter() >= deadline:
            break
        target = directory / f"thumb-{index:06d}.webp"
        begin = time.perf_counter_ns()
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.stat(target)
            os.unlink(target)
        except OSError as exc:
            recorder.record_error(f"small file: {exc.strerror or exc}")
            with contextlib.suppress(OSError):
                os.unlink(target)
            continue
        recorder.record_ns(time.perf_counter_ns() - begin)
    return recorder, time.perf_counter() - started


def fdatasync_writes(
    directory: Path, settings: StorageSettings, stop: threading.Event
) -> tuple[LatencyRecorder, float]:
    """8 KiB appends each followed by fdatasync, like a database log, for the duration."""
    recorder = LatencyRecorder()
    block = _random_block(settings.fdatasync_block_bytes)
    target = directory / "wal.log"
    deadline = time.perf_counter() + settings.duration_seconds
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    started = time.perf_counter()
    try:
        for _ in range(settings.fdatasync_max_ops):
            if stop.is_set():
                raise _Stopped
            if time.perf_counter() >= deadline:
                break
            begin = time.perf_counter_ns()
            try:
                os.write(fd, block)
                os.fdatasync(fd)
            except OSError as exc:
                recorder.record_error(f"write+fdatasync: {exc.strerror or exc}")
                continue
            recorder.record_ns(time.perf_counter_ns() - begin)
        wall = time.perf_counter() - started
    finally:
        os.close(fd)
    return recorder, wall


async def _in_thread(function: Callable[..., T], *args: Any, stop: threading.Event) -> T:
    """Run blocking I/O in a thread; on cancellation stop it and wait, so cleanup comes after."""
    task = asyncio.ensure_future(asyncio.to_thread(function, *args, stop))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(BaseException):
            await task
        raise


# --- judging -----------------------------------------------------------------------------


def fdatasync_verdict(result: BenchmarkResult) -> str:
    """Whether the 8 KiB fdatasync latency meets the database-log guidance."""
    p99_ms = result.p99 * 1000
    if result.count == 0:
        return "fdatasync: no successful operation, cannot judge against p99 < 10 ms"
    meets = result.p99 < FDATASYNC_P99_LIMIT_SECONDS and result.throughput >= FDATASYNC_MIN_IOPS
    verdict = "meets" if meets else "does NOT meet"
    return (
        f"fdatasync p99 {p99_ms:.2f} ms at {result.throughput:.0f} IOPS: {verdict} the database "
        f"log guidance (p99 < {FDATASYNC_P99_LIMIT_SECONDS * 1000:.0f} ms, >= "
        f"{FDATASYNC_MIN_IOPS:.0f} IOPS)"
    )


def _speed(result: BenchmarkResult) -> float:
    """A 'higher is faster' figure for comparing two paths on one workload."""
    if result.workload == "storage.fdatasync":
        return 1.0 / result.p99 if result.p99 > 0 else 0.0
    if result.bytes_per_second:
        return result.bytes_per_second
    return result.throughput


def comparison_notes(
    results: Sequence[BenchmarkResult], facts: Mapping[str, FilesystemFacts]
) -> dict[int, list[str]]:
    """Speed ratios between paths measured in this run, keyed by result index.

    The deployment README claims NVMe is 10-100x faster than NFS; with one local and one NFS
    path measured in the same run the ratio says whether that holds, per workload.
    """
    notes: dict[int, list[str]] = {}
    by_workload: dict[str, list[int]] = {}
    for index, result in enumerate(results):
        by_workload.setdefault(result.workload, []).append(index)
    for workload, indexes in by_workload.items():
        if len(indexes) < 2:
            continue
        for i in indexes:
            label = str(results[i].parameters.get("path"))
            for j in indexes:
                other = str(results[j].parameters.get("path"))
                if i == j or _speed(results[j]) <= 0:
                    continue
                ratio = _speed(results[i]) / _speed(results[j])
                local_vs_nfs = (
                    label in facts
                    and other in facts
                    and not is_nfs(facts[label])
                    and is_nfs(facts[other])
                )
                if local_vs_nfs:
                    if ratio < CLAIM_LOW:
                        verdict = "below the README's 10-100x NVMe-vs-NFS claim"
                    elif ratio > CLAIM_HIGH:
                        verdict = "above the README's 10-100x claim"
                    else:
                        verdict = "within the README's 10-100x NVMe-vs-NFS claim"
                    notes.setdefault(i, []).append(
                        f"{workload}: {label} is {ratio:.1f}x as fast as {other} (NFS): {verdict}"
                    )
                elif not any(is_nfs(f) for f in facts.values()) and i == indexes[0]:
                    notes.setdefault(i, []).append(
                        f"{workload}: {label} is {ratio:.2f}x as fast as {other} (no NFS path "
                        "measured: the README's NVMe-vs-NFS claim is not judged)"
                    )
    return notes


# --- the suite ---------------------------------------------------------------------------


class StorageSuite:
    """Sequential, small-file and fdatasync I/O on each given path."""

    name = "storage"

    def unavailable_reason(self, ctx: BenchContext) -> str | None:
        """Needs at least one path; the native engine needs fio."""
        if not ctx.paths:
            return "no storage path given (use --path LABEL=DIR)"
        if ctx.engine == "native" and fio.fio_path() is None:
            return "--engine native needs fio on PATH (apt-get install fio)"
        return None

    async def run(self, ctx: BenchContext) -> Sequence[BenchmarkResult]:
        """Measure every path in turn; scratch folders are removed whatever happens."""
        settings = StorageSettings.from_section(ctx.profile.section("storage"))
        prepared: list[tuple[str, Path, FilesystemFacts]] = []
        for label, raw_path in ctx.paths.items():
            path = Path(raw_path)
            if not path.is_dir():
                raise ImmichcheckError(f"storage path {label}={path} is not a directory")
            if not os.access(path, os.W_OK | os.X_OK):
                raise ImmichcheckError(f"storage path {label}={path} is not writable")
            facts = filesystem_facts(path)
            check_free_space(label, path, facts, settings)
            prepared.append((label, path, facts))

        results: list[BenchmarkResult] = []
        facts_by_label: dict[str, FilesystemFacts] = {}
        for label, path, facts in prepared:
            if path not in ctx.measured_paths:
                ctx.measured_paths.append(path)
            facts_by_label[label] = facts
            removed = remove_leftover_scratch(path)
            notes = filesystem_notes(label, facts)
            notes += [f"{label}: removed leftover scratch folder {p.name}" for p in removed]
            ctx.progress.step(f"storage {label} ({path})")
            results.extend(await self._measure_path(ctx, label, path, settings, notes))

        extra = comparison_notes(results, facts_by_label)
        return [
            replace(result, notes=(*result.notes, *extra.get(index, ())))
            for index, result in enumerate(results)
        ]

    async def _measure_path(
        self,
        ctx: BenchContext,
        label: str,
        path: Path,
        settings: StorageSettings,
        notes: Sequence[str],
    ) -> list[BenchmarkResult]:
        """One path's workloads inside its scratch folder, which is always removed."""
        scratch = create_scratch(path, ctx.run_id)
        stop = threading.Event()
        try:
            if ctx.engine == "native":
                results = await self._measure_with_fio(label, scratch, settings, ())
            else:
                results = await self._measure_with_immichcheck(label, scratch, settings, (), stop)
            # Where the path lives is said once per path, on its first result.
            first = results[0]
            return [replace(first, notes=(*notes, *first.notes)), *results[1:]]
        finally:
            stop.set()
            shutil.rmtree(scratch, ignore_errors=True)

    async def _measure_with_immichcheck(
        self,
        label: str,
        scratch: Path,
        settings: StorageSettings,
        notes: Sequence[str],
        stop: threading.Event,
    ) -> list[BenchmarkResult]:
        """immichcheck's own engine: Python os calls, one operation at a time."""
        size = settings.seq_write_file_bytes
        base = {"path": label}
        recorder, wall, moved, files = await _in_thread(seq_write, scratch, settings, stop=stop)
        write_result = summarize(
            "storage.seq_write",
            {**base, "file_bytes": size, "files": settings.seq_write_files},
            recorder,
            wall,
            bytes_moved=moved,
            notes=(*notes, "latency is per file (write 1 MiB blocks + fsync + close)"),
        )

        recorder, wall, moved, direct = await _in_thread(seq_read, files, stop=stop)
        cache_note = (
            "reads use O_DIRECT: the page cache is bypassed"
            if direct
            else "O_DIRECT unsupported here: pages were dropped with posix_fadvise(DONTNEED) "
            "before reading, which the kernel may ignore; the figure can include page cache hits"
        )
        read_result = summarize(
            "storage.seq_read",
            {**base, "file_bytes": size, "files": len(files)},
            recorder,
            wall,
            bytes_moved=moved,
            notes=(*notes, cache_note, "latency is per file"),
        )
        for target in files:
            with contextlib.suppress(OSError):
                target.unlink()

        recorder, wall = await _in_thread(small_files, scratch, settings, stop=stop)
        small_result = summarize(
            "storage.small_files",
            {**base, "file_bytes": settings.small_file_bytes},
            recorder,
            wall,
            bytes_moved=recorder.count * settings.small_file_bytes,
            notes=(*notes, "one operation = create + write + fsync + close + stat + delete"),
        )

        recorder, wall = await _in_thread(fdatasync_writes, scratch, settings, stop=stop)
        sync_result = summarize(
            "storage.fdatasync",
            {**base, "block_bytes": settings.fdatasync_block_bytes},
            recorder,
            wall,
            bytes_moved=recorder.count * settings.fdatasync_block_bytes,
            notes=(*notes, "one operation = 8 KiB append + fdatasync (database log pattern)"),
        )
        sync_result = replace(
            sync_result, notes=(*sync_result.notes, fdatasync_verdict(sync_result))
        )
        return [write_result, read_result, small_result, sync_result]

    async def _measure_with_fio(
        self, label: str, scratch: Path, settings: StorageSettings, notes: Sequence[str]
    ) -> list[BenchmarkResult]:
        """The native engine: fio jobs equivalent to the workloads above."""
        binary = fio.fio_path()
        if binary is None:
            raise ImmichcheckError("--engine native needs fio on PATH (apt-get install fio)")
        size = settings.seq_write_file_bytes
        files = settings.seq_write_files
        base = {"path": label}
        timeout = settings.duration_seconds + 600.0
        jobs: list[tuple[fio.FioJob, dict[str, Any]]] = [
            (fio.seq_write_job(size, files), {**base, "file_bytes": size, "files": files}),
            (fio.seq_read_job(size, files), {**base, "file_bytes": size, "files": files}),
            (
                fio.small_files_job(settings.small_file_bytes, settings.small_files_fio_count),
                {**base, "file_bytes": settings.small_file_bytes},
            ),
            (
                fio.fdatasync_job(
                    settings.fdatasync_block_bytes,
                    settings.fdatasync_max_ops,
                    settings.duration_seconds,
                ),
                {**base, "block_bytes": settings.fdatasync_block_bytes},
            ),
        ]
        results: list[BenchmarkResult] = []
        for job, parameters in jobs:
            # The read job reads the files the write job just wrote and fsynced, as the
            # immichcheck engine does; files fio laid out itself could still be dirty in the
            # page cache, and O_DIRECT reads would first wait for their writeback.
            workdir = scratch / ("seq" if job.kind in ("seq_write", "seq_read") else job.kind)
            workdir.mkdir(exist_ok=True)
            data = await fio.run_fio(binary, job, workdir, timeout)
            result = fio.normalise(job, data, parameters, notes)
            if job.kind == "fdatasync":
                result = replace(result, notes=(*result.notes, fdatasync_verdict(result)))
            results.append(result)
            if job.kind != "seq_write":
                # Each job's files go before the next, so the free-space check stays valid.
                shutil.rmtree(workdir, ignore_errors=True)
        return results


SUITE = StorageSuite()

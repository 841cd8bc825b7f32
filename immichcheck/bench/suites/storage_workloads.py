"""The storage suite's own engine: photo-sized sequential writes and reads, thumbnail-sized
files and 8 KiB fdatasync writes, each a blocking loop run in a worker thread that stops when
the run is cancelled; and the sizes those loops use."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import mmap
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from immichcheck.common.statistics import LatencyRecorder

MIB = 1024 * 1024
_CHUNK = MIB  # sequential I/O block: large enough to stream, small enough to stop quickly
_ALIGN = 4096  # O_DIRECT buffer and size alignment

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


async def run_in_thread(function: Callable[..., T], *args: Any, stop: threading.Event) -> T:
    """Run blocking I/O in a thread; on cancellation stop it and wait, so cleanup comes after."""
    task = asyncio.ensure_future(asyncio.to_thread(function, *args, stop))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(BaseException):
            await task
        raise

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

import contextlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from immichcheck.bench.base import BenchContext
from immichcheck.bench.native import fio
from immichcheck.bench.suites.storage_workloads import (
    MIB,
    StorageSettings,
    fdatasync_writes,
    run_in_thread,
    seq_read,
    seq_write,
    small_files,
)
from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.host_facts import filesystem_facts
from immichcheck.common.records import BenchmarkResult, FilesystemFacts
from immichcheck.common.statistics import summarize

SCRATCH_PREFIX = ".immichcheck-bench-"
MARKER_NAME = ".immichcheck-bench-marker"
# A leftover scratch folder from another host (shared NFS) is only removed once it is this old:
# its owner may still be running.
STALE_FOREIGN_SECONDS = 24 * 3600

# Published guidance (etcd's disk recommendation, widely reused for PostgreSQL WAL).
FDATASYNC_P99_LIMIT_SECONDS = 0.010
FDATASYNC_MIN_IOPS = 50.0
# The deployment README's claim: NVMe is 10-100x faster than NFS.
CLAIM_LOW, CLAIM_HIGH = 10.0, 100.0


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
        recorder, wall, moved, files = await run_in_thread(seq_write, scratch, settings, stop=stop)
        write_result = summarize(
            "storage.seq_write",
            {**base, "file_bytes": size, "files": settings.seq_write_files},
            recorder,
            wall,
            bytes_moved=moved,
            notes=(*notes, "latency is per file (write 1 MiB blocks + fsync + close)"),
        )

        recorder, wall, moved, direct = await run_in_thread(seq_read, files, stop=stop)
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

        recorder, wall = await run_in_thread(small_files, scratch, settings, stop=stop)
        small_result = summarize(
            "storage.small_files",
            {**base, "file_bytes": settings.small_file_bytes},
            recorder,
            wall,
            bytes_moved=recorder.count * settings.small_file_bytes,
            notes=(*notes, "one operation = create + write + fsync + close + stat + delete"),
        )

        recorder, wall = await run_in_thread(fdatasync_writes, scratch, settings, stop=stop)
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

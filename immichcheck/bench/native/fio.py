"""The storage suite's native engine: run fio jobs equivalent to immichcheck's own storage
workloads and normalise fio's JSON output into the same `BenchmarkResult` records.

fio is the reference tool for storage measurements; `--engine native` runs it so its figures
can be set beside immichcheck's (see benchmarks/calibrate_storage.py). Each job mirrors one
workload of `immichcheck.bench.suites.storage` as closely as fio allows; where fio measures
something
slightly different the result carries a note saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.records import BenchmarkResult

FIO_ENGINE = "fio"
_PERCENTILES = "50:90:95:99:99.9"
_MIB = 1024 * 1024
_NS = 1_000_000_000
# fio itself finishes within the job's runtime; this only bounds a hung fio (e.g. a dead NFS).
_EXTRA_SECONDS = 120.0


class FioError(ImmichcheckError):
    """fio could not be run or its output could not be read."""


def fio_path() -> str | None:
    """Where fio is on PATH, or None."""
    return shutil.which("fio")


@dataclass(frozen=True)
class FioJob:
    """One fio invocation: the workload it stands for and its command-line job options."""

    workload: str
    options: Mapping[str, str]
    kind: str  # "seq_write" | "small_files" | "seq_read" | "fdatasync"
    files: int = 1  # files the job creates (small_files: one operation per file)
    notes: tuple[str, ...] = ()


def seq_write_job(file_bytes: int, files: int) -> FioJob:
    """Photo-sized files written sequentially in 1 MiB blocks, fsync on each file's close."""
    return FioJob(
        workload="storage.seq_write",
        kind="seq_write",
        files=files,
        options={
            "rw": "write",
            "bs": str(min(file_bytes, _MIB)),
            "filesize": str(file_bytes),
            "nrfiles": str(files),
            "openfiles": "1",
            "file_service_type": "sequential",
            "fsync_on_close": "1",
            "invalidate": "0",  # immichcheck does not drop caches before writing either
        },
        notes=("fio: latency is per 1 MiB write, not per file; compare MB/s",),
    )


def small_files_job(file_bytes: int, files: int) -> FioJob:
    """Thumbnail-sized files created, written and fsynced one after the other, then removed."""
    return FioJob(
        workload="storage.small_files",
        kind="small_files",
        files=files,
        options={
            "rw": "write",
            "bs": str(file_bytes),
            "filesize": str(file_bytes),
            "nrfiles": str(files),
            "openfiles": "1",
            "file_service_type": "sequential",
            "fsync_on_close": "1",
            "create_on_open": "1",
            "unlink": "1",
            "invalidate": "0",
        },
        notes=("fio: create+write+fsync per file timed as a whole job; stat and delete not timed",),
    )


def seq_read_job(file_bytes: int, files: int) -> FioJob:
    """The photo-sized files read back in 1 MiB blocks with O_DIRECT (no page cache)."""
    return FioJob(
        workload="storage.seq_read",
        kind="seq_read",
        files=files,
        options={
            "rw": "read",
            "bs": str(min(file_bytes, _MIB)),
            "filesize": str(file_bytes),
            "nrfiles": str(files),
            "openfiles": "1",
            "file_service_type": "sequential",
            "direct": "1",
        },
        notes=("fio: O_DIRECT reads; latency is per 1 MiB read, not per file",),
    )


def fdatasync_job(block_bytes: int, max_ops: int, duration_seconds: float) -> FioJob:
    """The database-log pattern: 8 KiB sequential writes, each followed by fdatasync."""
    return FioJob(
        workload="storage.fdatasync",
        kind="fdatasync",
        options={
            "rw": "write",
            "bs": str(block_bytes),
            "size": str(block_bytes * max_ops),
            "fdatasync": "1",
            "invalidate": "0",
            "runtime": f"{max(duration_seconds, 0.1):.3f}s",
        },
        notes=("fio: latency = fdatasync latency percentile + mean write latency",),
    )


def fio_command(binary: str, job: FioJob, directory: Path, name: str = "immichcheck") -> list[str]:
    """The fio command line for one job in `directory`."""
    command = [
        binary,
        f"--name={name}",
        f"--directory={directory}",
        "--ioengine=sync",
        "--numjobs=1",
        # immichcheck's engine writes without preallocating (like an appended log or a new
        # upload); fio's default fallocate would make its fdatasync cheaper than ours.
        "--fallocate=none",
        "--output-format=json",
        f"--percentile_list={_PERCENTILES}",
    ]
    command.extend(f"--{key}={value}" for key, value in job.options.items())
    return command


async def run_fio(binary: str, job: FioJob, directory: Path, timeout: float) -> Mapping[str, Any]:
    """Run one fio job and return its parsed JSON; the process is killed on cancellation."""
    process = await asyncio.create_subprocess_exec(
        *fio_command(binary, job, directory),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout + _EXTRA_SECONDS)
    except BaseException:
        # Timeout, Ctrl-C or cancellation: fio must not keep writing into the scratch folder.
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(Exception):
            await asyncio.shield(process.wait())
        raise
    if process.returncode != 0:
        message = stderr.decode(errors="replace").strip().splitlines()
        detail = message[-1] if message else f"exit status {process.returncode}"
        raise FioError(f"fio {job.workload} failed: {detail}")
    return parse_fio_json(stdout.decode(errors="replace"))


def parse_fio_json(text: str) -> Mapping[str, Any]:
    """fio's JSON output, skipping any text fio printed before it (warnings)."""
    start = text.find("{")
    if start < 0:
        raise FioError("fio printed no JSON output")
    try:
        data = json.loads(text[start:])
    except json.JSONDecodeError as exc:
        raise FioError(f"fio printed JSON that cannot be read: {exc}") from exc
    if not isinstance(data, dict) or not data.get("jobs"):
        raise FioError("fio's JSON output has no jobs")
    return data


def _percentile(percentiles: Mapping[str, float], wanted: float) -> float:
    """One percentile (ns) out of fio's {"99.000000": ns} mapping; 0 when absent."""
    for key, value in percentiles.items():
        if abs(float(key) - wanted) < 1e-6:
            return float(value)
    return 0.0


def _latency_fields(lat: Mapping[str, Any], shift_ns: float = 0.0) -> dict[str, float]:
    """BenchmarkResult latency fields (seconds) from a fio `lat_ns`/`clat_ns` block."""
    percentiles: Mapping[str, float] = lat.get("percentile", {}) or {}

    def seconds(ns: float) -> float:
        return (float(ns) + shift_ns) / _NS if ns else 0.0

    return {
        "min": seconds(lat.get("min", 0)),
        "p50": seconds(_percentile(percentiles, 50.0)),
        "p90": seconds(_percentile(percentiles, 90.0)),
        "p95": seconds(_percentile(percentiles, 95.0)),
        "p99": seconds(_percentile(percentiles, 99.0)),
        "p999": seconds(_percentile(percentiles, 99.9)),
        "max": seconds(lat.get("max", 0)),
        "mean": seconds(lat.get("mean", 0.0)),
        "stddev": float(lat.get("stddev", 0.0)) / _NS,
    }


def normalise(
    job: FioJob,
    data: Mapping[str, Any],
    parameters: Mapping[str, Any],
    notes: Sequence[str] = (),
) -> BenchmarkResult:
    """One `BenchmarkResult` (engine "fio") from fio's JSON output for `job`."""
    fio_job = data["jobs"][0]
    direction = "read" if job.kind == "seq_read" else "write"
    io = fio_job[direction]
    runtime_seconds = float(io.get("runtime", 0)) / 1000.0
    if runtime_seconds <= 0:
        runtime_seconds = float(fio_job.get("job_runtime", 0)) / 1000.0
    errors = 1 if int(fio_job.get("error", 0)) else 0
    error_messages = (f"fio job error {fio_job.get('error')}",) if errors else ()
    io_bytes = int(io.get("io_bytes", 0))
    if job.kind == "small_files":
        # One operation per file: the job's wall time covers create, write and fsync of each.
        count = min(int(io.get("total_ios", 0)), job.files) or job.files
        per_file = runtime_seconds / count if count else 0.0
        latency = dict.fromkeys(
            ("min", "p50", "p90", "p95", "p99", "p999", "max", "mean"), per_file
        )
        latency["stddev"] = 0.0
        job_notes = (*job.notes, "fio: latency is the job's mean per file (no percentiles)")
    elif job.kind == "fdatasync":
        count = int(io.get("total_ios", 0))
        sync_lat = fio_job.get("sync", {}).get("lat_ns", {})
        write_mean = float(io.get("lat_ns", {}).get("mean", 0.0))
        latency = _latency_fields(sync_lat, shift_ns=write_mean)
        job_notes = job.notes
    else:
        count = int(io.get("total_ios", 0))
        latency = _latency_fields(io.get("clat_ns", {}))
        job_notes = job.notes
    throughput = count / runtime_seconds if runtime_seconds > 0 else 0.0
    if job.kind in ("seq_write", "seq_read"):
        # immichcheck counts files; fio counts 1 MiB blocks. Files per second keeps them comparable.
        throughput = job.files / runtime_seconds if runtime_seconds > 0 else 0.0
    return BenchmarkResult(
        workload=job.workload,
        parameters=dict(parameters),
        count=count,
        throughput=throughput,
        errors=errors,
        duration=runtime_seconds,
        bytes_per_second=float(io.get("bw_bytes", 0)) if io_bytes else None,
        histogram=None,
        engine=FIO_ENGINE,
        notes=(*job_notes, *notes),
        error_messages=error_messages,
        min=latency["min"],
        p50=latency["p50"],
        p90=latency["p90"],
        p95=latency["p95"],
        p99=latency["p99"],
        p999=latency["p999"],
        max=latency["max"],
        mean=latency["mean"],
        stddev=latency["stddev"],
    )

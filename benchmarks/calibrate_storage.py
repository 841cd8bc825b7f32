"""Calibrate immichcheck's storage engine against fio on the same folder.

Runs the storage suite twice per round on one folder, once with immichcheck's own engine and
once with fio (`--engine native`), and prints immichcheck/fio ratios for each workload's key
figure. The target is agreement within 20%. Each round runs both engines back to back (the
order alternating) and gives one paired ratio per workload; the median of `--rounds N` such
ratios is judged, and their range is printed so the noise of a shared machine is visible.

    .venv/bin/python benchmarks/calibrate_storage.py --path /tmp --profile quick --rounds 5

Exit status: 0 when every ratio is within the target, 1 when one is not, 3 when it could not
run (no fio, bad folder).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from immichcheck.bench.base import BenchContext, Profile, load_profile
from immichcheck.bench.native.fio import fio_path
from immichcheck.bench.suites.storage import SUITE
from immichcheck.common.errors import ExitCode, ImmichcheckError
from immichcheck.common.records import BenchmarkResult, new_run_id

TARGET = 0.20

# workload -> (figure name, how to read it from a result, unit scale, unit)
FIGURES: dict[str, tuple[str, Callable[[BenchmarkResult], float], float, str]] = {
    "storage.seq_write": ("throughput", lambda r: r.bytes_per_second or 0.0, 1e-6, "MB/s"),
    "storage.seq_read": ("throughput", lambda r: r.bytes_per_second or 0.0, 1e-6, "MB/s"),
    "storage.small_files": ("files/s", lambda r: r.throughput, 1.0, "files/s"),
    "storage.fdatasync": ("ops/s", lambda r: r.throughput, 1.0, "ops/s"),
}


def _run_suite(path: Path, profile: Profile, engine: str) -> list[BenchmarkResult]:
    """One storage suite run on one folder with one engine."""
    ctx = BenchContext(
        run_id=new_run_id(), profile=profile, engine=engine, paths={"calibration": path}
    )
    reason = SUITE.unavailable_reason(ctx)
    if reason:
        raise ImmichcheckError(reason)
    return list(asyncio.run(SUITE.run(ctx)))


def _profile(name: str, duration: float | None, files: int | None) -> Profile:
    """The named profile with optional overrides for a shorter or longer calibration."""
    profile = load_profile(name)
    settings = dict(profile.settings)
    storage = dict(settings.get("storage", {}))
    if duration is not None:
        settings["duration_seconds"] = duration
    if files is not None:
        storage["seq_write_files"] = files
    # fio creates a fixed number of small files; immichcheck does the same number here (its
    # own runs are bounded by time), so both engines do the same work.
    storage["small_files_max"] = storage.get("small_files_fio_count", 500)
    settings["storage"] = storage
    return Profile(name=profile.name, settings=settings)


@dataclass(frozen=True)
class Row:
    """One workload's comparison: medians of both engines and the paired per-round ratios."""

    workload: str
    unit: str
    immichcheck: float
    fio: float
    ratio: float  # median of the per-round ratios
    low: float  # smallest per-round ratio
    high: float  # largest per-round ratio

    @property
    def within_target(self) -> bool:
        """Whether the median ratio is within ±20%."""
        return abs(self.ratio - 1.0) <= TARGET


def compare(
    rounds: Sequence[tuple[Sequence[BenchmarkResult], Sequence[BenchmarkResult]]],
) -> list[Row]:
    """One row per workload. Ratios are paired per round: both engines ran back to back, so
    a burst of load from other processes hits both sides of one ratio, not just one side."""
    rows = []
    for workload, (_, read, scale, unit) in FIGURES.items():
        pairs = []
        for own, native in rounds:
            ours = [read(r) for r in own if r.workload == workload]
            theirs = [read(r) for r in native if r.workload == workload]
            if ours and theirs and theirs[0] > 0:
                pairs.append((ours[0] * scale, theirs[0] * scale))
        if not pairs:
            continue
        ratios = [a / b for a, b in pairs]
        rows.append(
            Row(
                workload=workload,
                unit=unit,
                immichcheck=statistics.median(a for a, _ in pairs),
                fio=statistics.median(b for _, b in pairs),
                ratio=statistics.median(ratios),
                low=min(ratios),
                high=max(ratios),
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Compare both engines on one folder and print the ratios; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=Path("."), help="folder to measure in")
    parser.add_argument("--profile", default="quick", help="workloads.yaml profile")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per engine (median)")
    parser.add_argument("--duration", type=float, help="override duration_seconds")
    parser.add_argument("--files", type=int, help="override storage.seq_write_files")
    args = parser.parse_args(argv)
    if fio_path() is None:
        print("fio is not on PATH: nothing to calibrate against", file=sys.stderr)
        return int(ExitCode.UNKNOWN)
    try:
        profile = _profile(args.profile, args.duration, args.files)
        rounds = []
        for index in range(max(args.rounds, 1)):
            # Alternate which engine goes first so a warming disk favours neither.
            order = ("immichcheck", "native") if index % 2 == 0 else ("native", "immichcheck")
            runs = {engine: _run_suite(args.path, profile, engine) for engine in order}
            rounds.append((runs["immichcheck"], runs["native"]))
    except ImmichcheckError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.INTERRUPTED)

    rows = compare(rounds)
    print(f"storage calibration on {args.path.resolve()} ({len(rounds)} rounds, medians)")
    print(
        f"{'workload':<22}{'immichcheck':>12}{'fio':>12}  {'unit':<8}{'ratio':>6}  "
        f"{'rounds':>11}  target ±20%"
    )
    for row in rows:
        print(
            f"{row.workload:<22}{row.immichcheck:>12.1f}{row.fio:>12.1f}  {row.unit:<8}"
            f"{row.ratio:>6.2f}  {row.low:>5.2f}-{row.high:<5.2f}  "
            f"{'within' if row.within_target else 'OUTSIDE'}"
        )
    return 0 if rows and all(row.within_target for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

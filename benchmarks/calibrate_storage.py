"""Calibrate immichcheck's storage engine against fio on the same folder.

Runs the storage suite twice per round on one folder, once with immichcheck's own engine and
once with fio (`--engine native`), and prints immichcheck/fio ratios for each workload's key
figure. The target is agreement within 20%; each round alternates the engines, and with
`--rounds N` the median of the rounds is compared, which damps a noisy shared machine.

    .venv/bin/python benchmarks/calibrate_storage.py --path /tmp --profile quick --rounds 3

Exit status: 0 when every ratio is within the target, 1 when one is not, 3 when it could not
run (no fio, bad folder).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from immichcheck.bench.base import BenchContext, Profile, load_profile
from immichcheck.bench.fio import fio_path
from immichcheck.bench.storage import SUITE
from immichcheck.errors import ExitCode, ImmichcheckError
from immichcheck.records import BenchmarkResult, new_run_id

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
    settings["storage"] = storage
    return Profile(name=profile.name, settings=settings)


def compare(
    rounds: Sequence[tuple[Sequence[BenchmarkResult], Sequence[BenchmarkResult]]],
) -> list[tuple[str, str, float, float, float, bool]]:
    """(workload, unit, immichcheck, fio, ratio, within target) per workload, medians of rounds."""
    rows = []
    for workload, (_, read, scale, unit) in FIGURES.items():
        ours = [read(r) for own, _ in rounds for r in own if r.workload == workload]
        theirs = [read(r) for _, native in rounds for r in native if r.workload == workload]
        if not ours or not theirs:
            continue
        own_value = statistics.median(ours) * scale
        fio_value = statistics.median(theirs) * scale
        ratio = own_value / fio_value if fio_value else float("inf")
        rows.append((workload, unit, own_value, fio_value, ratio, abs(ratio - 1.0) <= TARGET))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Compare both engines on one folder and print the ratios; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=Path("."), help="folder to measure in")
    parser.add_argument("--profile", default="quick", help="workloads.yaml profile")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per engine (median)")
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
    print(f"storage calibration on {args.path.resolve()} ({args.rounds} rounds, medians)")
    print(f"{'workload':<22}{'immichcheck':>12}{'fio':>12}  {'unit':<8}{'ratio':>6}  target ±20%")
    for workload, unit, own_value, fio_value, ratio, ok in rows:
        print(
            f"{workload:<22}{own_value:>12.1f}{fio_value:>12.1f}  {unit:<8}{ratio:>6.2f}  "
            f"{'within' if ok else 'OUTSIDE'}"
        )
    return 0 if rows and all(row[5] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

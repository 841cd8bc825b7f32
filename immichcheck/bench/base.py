"""What every benchmark suite shares: the context it runs in, profiles, and the suite contract.

A suite (postgres, redis, ml, upload, storage) is a small object with a name, a reason it
cannot run here (or None), and an async `run` that returns `BenchmarkResult`s. The bench
command builds one `BenchContext`, asks each selected suite whether it applies, runs it, and
gathers the results into one run record. Suites never print; they report progress through
`ctx.progress`, which is quiet when output is not a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.project_files import load_yaml_file, project_folder
from immichcheck.common.records import BenchmarkResult

WORKLOADS_FILE = "workloads.yaml"


class Progress(Protocol):
    """Where long work reports what it is doing (a rich progress bar, or nothing)."""

    def step(self, message: str) -> None:
        """Announce the next step (e.g. 'redis SET pipeline=16 clients=50')."""

    def advance(self, done: int, total: int | None = None) -> None:
        """Report progress within the current step."""


class SilentProgress:
    """Progress that goes nowhere: for cron, pipes and tests."""

    def step(self, message: str) -> None:
        """Ignore the step."""

    def advance(self, done: int, total: int | None = None) -> None:
        """Ignore the progress."""


@dataclass(frozen=True)
class Profile:
    """A named size of benchmark run (quick, standard, full) read from benchmarks/workloads.yaml.

    Each suite reads its own section (`profile.section("redis")`); shared keys such as
    `duration_seconds`, `warmup_seconds` and `concurrency` sit at the top level.
    """

    name: str
    settings: Mapping[str, Any]

    def section(self, suite: str) -> Mapping[str, Any]:
        """A suite's own settings, with the shared top-level keys as defaults."""
        shared = {k: v for k, v in self.settings.items() if not isinstance(v, dict)}
        own = self.settings.get(suite, {})
        return {**shared, **own}

    def suite_settings(self, suite: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """`defaults`, then the profile's timing, then the keys of the suite's section it knows."""
        timing = {
            "warmup_seconds": self.warmup_seconds,
            "duration_seconds": self.duration_seconds,
            "concurrency": list(self.concurrency),
        }
        own = self.section(suite)
        return {
            **defaults,
            **timing,
            **{k: v for k, v in own.items() if k in defaults or k in timing},
        }

    @property
    def duration_seconds(self) -> float:
        """Measured time per workload step."""
        return float(self.settings.get("duration_seconds", 3.0))

    @property
    def warmup_seconds(self) -> float:
        """Unmeasured time before each workload step."""
        return float(self.settings.get("warmup_seconds", 0.5))

    @property
    def concurrency(self) -> tuple[int, ...]:
        """Concurrency levels each latency workload runs at."""
        return tuple(int(c) for c in self.settings.get("concurrency", (1, 4, 16)))


@lru_cache(maxsize=4)
def _load_workloads(directory: str) -> Mapping[str, Any]:
    path = Path(directory) / WORKLOADS_FILE
    data = load_yaml_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("profiles"), dict):
        raise ImmichcheckError(f"{path} has no 'profiles' mapping")
    return data


def load_profile(name: str, benchmarks_dir: str | Path | None = None) -> Profile:
    """One profile by name; an unknown name is a clear error listing the known ones."""
    folder = project_folder("benchmarks", benchmarks_dir)
    profiles = _load_workloads(str(folder))["profiles"]
    if name not in profiles:
        raise ImmichcheckError(
            f"unknown profile {name!r}; known profiles: {', '.join(sorted(profiles))}"
        )
    return Profile(name=name, settings=profiles[name])


@dataclass
class BenchContext:
    """Everything a suite needs to reach its target and size its work."""

    run_id: str
    profile: Profile
    engine: str = "immichcheck"  # or "native": run pgbench / redis-benchmark / fio instead
    pg_dsn: str | None = None
    redis_url: str | None = None
    server_url: str | None = None
    ml_url: str | None = None
    api_key: str | None = None
    paths: Mapping[str, Path] = field(default_factory=dict)  # storage paths by label
    data_dir: Path | None = None  # --local: where the throwaway servers keep their data
    local: bool = False  # True when the servers are throwaway ones we started
    progress: Progress = field(default_factory=SilentProgress)
    # Service versions found while benchmarking (e.g. {"postgres": "15.6"}), for the run record.
    service_versions: dict[str, str] = field(default_factory=dict)
    # Paths whose filesystem facts belong in the run record.
    measured_paths: list[Path] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)  # suite-specific flags


class BenchmarkSuite(Protocol):
    """The contract every suite module's `SUITE` object follows."""

    name: str

    def unavailable_reason(self, ctx: BenchContext) -> str | None:
        """Why this suite cannot run with this context (None when it can)."""

    async def run(self, ctx: BenchContext) -> Sequence[BenchmarkResult]:
        """Run the suite's workloads and return their results; clean up even on cancellation."""

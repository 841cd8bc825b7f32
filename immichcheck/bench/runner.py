"""Builds and runs one benchmark run: context, throwaway servers, suites, run record, save.

`run_bench(request)` is the one library call behind `immichcheck bench`. With `local=True` it
starts a throwaway PostgreSQL and Redis in the data dir (or a temporary folder) and always
stops and removes them, including on Ctrl-C (KeyboardInterrupt reaches the caller after
cleanup) and on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from immichcheck import __version__
from immichcheck.bench.base import BenchContext, Progress, load_profile
from immichcheck.bench.progress_display import InWords, terminal_progress
from immichcheck.bench.suites import SUITE_MODULES, available_suites, load_suite
from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.host_facts import host_facts
from immichcheck.common.records import BenchmarkResult, RunRecord, new_run_id, utc_now

LOCAL_SUITES = ("postgres", "redis", "storage")


@dataclass
class BenchRequest:
    """Everything `immichcheck bench` was asked to do."""

    local: bool = False
    data_dir: Path | None = None
    suites: tuple[str, ...] = ()
    profile: str = "standard"
    engine: str = "immichcheck"
    paths: Mapping[str, Path] = field(default_factory=dict)
    live_readonly: bool = False
    tags: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    pg_dsn: str | None = None
    redis_url: str | None = None
    server_url: str | None = None
    ml_url: str | None = None
    api_key: str | None = None
    manifests_dir: str | None = None
    benchmarks_dir: str | None = None
    node: str | None = None


@dataclass
class BenchOutcome:
    """The saved run plus what the command should tell the user."""

    record: RunRecord
    skipped: dict[str, str]
    suite_errors: dict[str, str]


def select_suites(request: BenchRequest, ctx: BenchContext) -> tuple[list[str], dict[str, str]]:
    """The suites to run and, for the others, why they are skipped.

    An explicitly requested suite that cannot run is an error; by default every suite that can
    run with the given targets does.
    """
    present = available_suites()
    requested = list(request.suites)
    for name in requested:
        if name not in SUITE_MODULES:
            raise ImmichcheckError(
                f"unknown suite {name!r}; known suites: {', '.join(SUITE_MODULES)}"
            )
        if name not in present:
            raise ImmichcheckError(f"suite {name!r} is not part of this build")
    candidates = requested or present
    chosen: list[str] = []
    skipped: dict[str, str] = {}
    for name in candidates:
        reason = load_suite(name).unavailable_reason(ctx)
        if reason is None:
            chosen.append(name)
        elif requested:
            raise ImmichcheckError(f"suite {name} cannot run: {reason}")
        else:
            skipped[name] = reason
    if not chosen:
        raise ImmichcheckError(
            "nothing to benchmark: use --local, or give --pg-dsn, --redis-url, --ml-url, "
            "--server-url or --path"
        )
    return chosen, skipped


async def run_suites(
    ctx: BenchContext, names: Sequence[str]
) -> tuple[list[BenchmarkResult], dict[str, str]]:
    """Run the suites one after another (they measure the same machine: never in parallel)."""
    results: list[BenchmarkResult] = []
    errors: dict[str, str] = {}
    for name in names:
        ctx.progress.step(f"{name}: starting")
        try:
            results.extend(await load_suite(name).run(ctx))
        except ImmichcheckError as exc:
            errors[name] = exc.message
    return results, errors


def _asyncio_run(coroutine: Any) -> Any:
    # asyncio.Runner turns the first Ctrl-C into cancellation of the main task, so every
    # suite's `finally` runs, then re-raises KeyboardInterrupt here.
    with asyncio.Runner() as runner:
        return runner.run(coroutine)


def run_bench(
    request: BenchRequest, *, progress_enabled: bool = True, progress: Progress | None = None
) -> BenchOutcome:
    """Run the requested benchmarks and return the (not yet saved) run record.

    `progress` replaces the terminal display (bench --in-job prints plain lines instead).
    """
    profile = load_profile(request.profile, request.benchmarks_dir)
    run_id = new_run_id()
    started = utc_now()
    options = dict(request.options)
    options["live_readonly"] = request.live_readonly
    ctx = BenchContext(
        run_id=run_id,
        profile=profile,
        engine=request.engine,
        pg_dsn=request.pg_dsn,
        redis_url=request.redis_url,
        server_url=request.server_url,
        ml_url=request.ml_url,
        api_key=request.api_key,
        paths=dict(request.paths),
        options=options,
    )
    settings: dict[str, Any] = {
        "profile": profile.name,
        "engine": request.engine,
        "local": request.local,
        "live_readonly": request.live_readonly,
    }
    chosen_progress = (
        contextlib.nullcontext(progress)
        if progress is not None
        else terminal_progress(progress_enabled)
    )
    with chosen_progress as shown:
        ctx.progress = InWords(shown)
        if request.local:
            results, names, skipped, errors = _run_local(request, ctx, settings)
        else:
            names, skipped = select_suites(request, ctx)
            results, errors = _asyncio_run(run_suites(ctx, names))
    for path in ctx.paths.values():
        if Path(path) not in ctx.measured_paths:
            ctx.measured_paths.append(Path(path))
    settings.update({"suites": names, "skipped": skipped, "suite_errors": errors})
    record = RunRecord(
        run_id=run_id,
        kind="bench",
        started_at=started,
        finished_at=utc_now(),
        node=request.node or socket.gethostname(),
        host=host_facts([p for p in ctx.measured_paths if p.exists()]),
        tool_version=__version__,
        service_versions=dict(ctx.service_versions),
        benchmarks=tuple(results),
        tags=tuple(request.tags),
        settings=settings,
    )
    return BenchOutcome(record, skipped, errors)


def _run_local(
    request: BenchRequest, ctx: BenchContext, settings: dict[str, Any]
) -> tuple[list[BenchmarkResult], list[str], dict[str, str], dict[str, str]]:
    from immichcheck.bench.local_servers.binaries import find_postgres, find_redis_server
    from immichcheck.bench.local_servers.service_user import check_data_dir, service_user
    from immichcheck.bench.local_servers.stack import LocalStack

    wanted = list(request.suites) or [
        name for name in available_suites() if name in LOCAL_SUITES or _has_remote(name, request)
    ]
    # Fail fast, before creating anything, on the problems a user can fix.
    if request.data_dir is not None:
        check_data_dir(request.data_dir, service_user())
    if "postgres" in wanted:
        find_postgres()
    if "redis" in wanted:
        find_redis_server()
    data_parent = request.data_dir
    with LocalStack(data_parent, manifests_dir=request.manifests_dir) as stack:
        assert stack.folder is not None
        ctx.local = True
        ctx.data_dir = stack.folder
        measured = request.data_dir.resolve() if request.data_dir else stack.folder.parent
        ctx.measured_paths.append(measured)
        settings["data_dir"] = str(measured)
        settings["server_settings_source"] = stack.settings.source
        if "postgres" in wanted:
            ctx.progress.step("starting a throwaway PostgreSQL")
            postgres = stack.start_postgres()
            ctx.pg_dsn = postgres.dsn
            ctx.service_versions["postgres"] = postgres.version
            if postgres.dropped_settings:
                settings["postgres_settings_dropped"] = dict(postgres.dropped_settings)
        if "redis" in wanted:
            ctx.progress.step("starting a throwaway Redis")
            redis = stack.start_redis()
            ctx.redis_url = redis.url
            ctx.service_versions["redis"] = redis.version
            if redis.dropped_settings:
                settings["redis_settings_dropped"] = dict(redis.dropped_settings)
        if "storage" in wanted and not ctx.paths:
            # Storage is measured where the databases live: the chosen data dir.
            ctx.paths = {"data": stack.folder}
        local_request = BenchRequest(**{**request.__dict__, "suites": tuple(wanted)})
        names, skipped = (
            select_suites(local_request, ctx) if request.suites else _local_select(wanted, ctx)
        )
        results, errors = _asyncio_run(run_suites(ctx, names))
        if ctx.paths.get("data") == stack.folder:
            # Report the user's folder, not our temporary subfolder that is about to vanish.
            ctx.paths = {"data": measured}
    return results, names, skipped, errors


def _local_select(wanted: Sequence[str], ctx: BenchContext) -> tuple[list[str], dict[str, str]]:
    chosen, skipped = [], {}
    for name in wanted:
        reason = load_suite(name).unavailable_reason(ctx)
        if reason is None:
            chosen.append(name)
        else:
            skipped[name] = reason
    return chosen, skipped


def _has_remote(name: str, request: BenchRequest) -> bool:
    """ml and upload join a --local run when their services are given."""
    if name == "ml":
        return bool(request.ml_url)
    if name == "upload":
        return bool(request.server_url and request.api_key)
    return False


def writable_reports_dir(path: str | os.PathLike[str]) -> Path:
    """The reports folder, created if needed; one clear error when it cannot be."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ImmichcheckError(
            f"cannot create --reports-dir {folder}: {exc.strerror or exc}"
        ) from exc
    if not os.access(folder, os.W_OK):
        raise ImmichcheckError(f"--reports-dir {folder} is not writable")
    return folder

"""verify's engine: probes concurrently with timeouts, checks over their facts, --wait loops.

Every probe a selected check needs starts at once (the Kubernetes snapshot, PostgreSQL,
Redis, the HTTP services, storage); a probe that must first learn credentials from the
snapshot awaits the shared snapshot task, so the whole run costs about its slowest probe.
Outcomes become statuses in exactly one place (`evaluate`): a probe that broke makes its
checks ERROR with the reason, a probe that does not apply makes them SKIP with the reason,
and a check whose prerequisite did not pass is SKIP naming that prerequisite.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from immichcheck.clients import ProbeError, ProbeSkipped, bounded
from immichcheck.common.errors import ExitCode
from immichcheck.common.records import (
    CheckResult,
    HostFacts,
    JSONValue,
    RunRecord,
    Status,
    new_run_id,
)
from immichcheck.common.redaction import Redactor
from immichcheck.verify.check_runner import run_check
from immichcheck.verify.checks import (
    CatalogueEntry,
    Facts,
    RegisteredCheck,
    Verdict,
    load_catalogue,
    registered_checks,
)

DEFAULT_TIMEOUT = 3.0
DEFAULT_INFERENCE_TIMEOUT = 10.0
WAIT_INTERVAL = 2.0
PASSING = (Status.PASS, Status.WARN)


@dataclass(frozen=True)
class ProbeOutcome:
    """What one probe produced: data, or why it broke (error) or did not apply (skipped)."""

    name: str
    data: Any = None
    error: str = ""
    skipped: str = ""
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        """The probe returned data."""
        return not self.error and not self.skipped


ProbeFunction = Callable[[], Awaitable[Any]]


async def run_probe(name: str, function: ProbeFunction, guard: float) -> ProbeOutcome:
    """Run one probe under a safety timeout, turning every failure into a reason."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(guard):
            data = await function()
    except ProbeSkipped as exc:
        return ProbeOutcome(name, skipped=str(exc), duration=time.perf_counter() - started)
    except ProbeError as exc:
        return ProbeOutcome(name, error=str(exc), duration=time.perf_counter() - started)
    except TimeoutError:
        return ProbeOutcome(
            name, error=f"no answer within {guard:g} s", duration=time.perf_counter() - started
        )
    except Exception as exc:  # a probe bug or an unexpected library error is still only ERROR
        return ProbeOutcome(
            name, error=f"{type(exc).__name__}: {exc}", duration=time.perf_counter() - started
        )
    return ProbeOutcome(name, data=data, duration=time.perf_counter() - started)


async def run_probes(
    functions: Mapping[str, tuple[ProbeFunction, float]], needed: Sequence[str]
) -> dict[str, ProbeOutcome]:
    """Run the needed probes concurrently; `functions` maps name -> (function, guard seconds)."""
    names = [name for name in needed if name in functions]
    outcomes = await asyncio.gather(*(run_probe(name, *functions[name]) for name in names))
    result = dict(zip(names, outcomes, strict=True))
    for name in needed:
        result.setdefault(name, ProbeOutcome(name, skipped=f"no probe named {name}"))
    return result


def required_closure(codes: Sequence[str], registry: Mapping[str, RegisteredCheck]) -> list[str]:
    """The selected codes plus every prerequisite they need, in dependency order."""
    ordered: list[str] = []

    def visit(code: str) -> None:
        if code in ordered:
            return
        for requirement in registry[code].requires:
            visit(requirement)
        ordered.append(code)

    for code in codes:
        visit(code)
    return ordered


def probes_needed(codes: Sequence[str], registry: Mapping[str, RegisteredCheck]) -> list[str]:
    """Every probe the given checks (and their prerequisites) read, in first-use order."""
    names: list[str] = []
    for code in required_closure(codes, registry):
        for probe in registry[code].probes:
            if probe not in names:
                names.append(probe)
    return names


def _capped(status: Status, entry: CatalogueEntry) -> Status:
    """A check's FAIL becomes WARN when the catalogue rates the check a warning."""
    if status == Status.FAIL and entry.severity == Status.WARN:
        return Status.WARN
    return status


def evaluate(
    codes: Sequence[str],
    outcomes: Mapping[str, ProbeOutcome],
    expected: Any,
    settings: Mapping[str, Any] | None = None,
    registry: Mapping[str, RegisteredCheck] | None = None,
    catalogue: Mapping[str, CatalogueEntry] | None = None,
) -> list[CheckResult]:
    """Turn probe outcomes into results for `codes` (prerequisites evaluated, not reported)."""
    registry = registry if registry is not None else registered_checks()
    catalogue = catalogue if catalogue is not None else load_catalogue()
    facts = Facts(expected, {n: o.data for n, o in outcomes.items() if o.ok}, settings)
    statuses: dict[str, Status] = {}
    results: dict[str, list[CheckResult]] = {}
    for code in required_closure(codes, registry):
        check, entry = registry[code], catalogue[code]
        used = [outcomes[name] for name in check.probes if name in outcomes]
        duration = max((o.duration for o in used), default=0.0)

        def result(
            verdict: Verdict, entry: CatalogueEntry = entry, duration: float = duration
        ) -> CheckResult:
            status = _capped(verdict.status, entry)
            return CheckResult(
                code=entry.code,
                target=verdict.target or entry.component,
                status=status,
                message=verdict.message,
                remediation=entry.remediation if status not in (Status.PASS, Status.SKIP) else "",
                duration=duration,
                evidence=dict(verdict.evidence),
                component=entry.component,
                title=entry.title,
            )

        blocking = [r for r in check.requires if statuses.get(r) not in PASSING]
        broken = [o for o in used if o.error]
        absent = [o for o in used if o.skipped]
        if blocking:
            first = blocking[0]
            verdicts = [
                Verdict(
                    Status.SKIP,
                    f"skipped: prerequisite {first} ({catalogue[first].title}) is "
                    f"{statuses[first].value}",
                )
            ]
        elif broken:
            verdicts = [Verdict(Status.ERROR, f"could not run: {broken[0].error}")]
        elif absent:
            verdicts = [Verdict(Status.SKIP, f"skipped: {absent[0].skipped}")]
        else:
            verdicts = run_check(check, facts)
        results[code] = [result(v) for v in verdicts]
        statuses[code] = worst_status(r.status for r in results[code])
    return [r for code in codes for r in results[code]]


_ORDER = {Status.PASS: 0, Status.SKIP: 1, Status.WARN: 2, Status.ERROR: 3, Status.FAIL: 4}


def worst_status(statuses: Any) -> Status:
    """The most severe status: FAIL > ERROR > WARN > SKIP > PASS (PASS when empty)."""
    result = Status.PASS
    for status in statuses:
        if _ORDER[status] > _ORDER[result]:
            result = status
    return result


def exit_code_for(results: Sequence[CheckResult], strict: bool = False) -> ExitCode:
    """Nagios convention: FAIL 2, else ERROR 3, else WARN 1 (2 with --strict), else 0."""
    statuses = {r.status for r in results}
    if Status.FAIL in statuses:
        return ExitCode.FAILURE
    if Status.ERROR in statuses:
        return ExitCode.UNKNOWN
    if Status.WARN in statuses:
        return ExitCode.FAILURE if strict else ExitCode.WARNING
    return ExitCode.OK


def redact_results(results: Sequence[CheckResult], redactor: Redactor) -> list[CheckResult]:
    """Results with every secret value scrubbed from messages, targets and evidence."""
    return [
        CheckResult(
            code=r.code,
            target=redactor.text(r.target),
            status=r.status,
            message=redactor.text(r.message),
            remediation=r.remediation,
            duration=r.duration,
            evidence=redactor.data(dict(r.evidence)),
            component=r.component,
            title=r.title,
        )
        for r in results
    ]


@dataclass
class RunSettings:
    """Knobs of one verify run (timeouts, thresholds, what to skip)."""

    timeout: float = DEFAULT_TIMEOUT
    inference_timeout: float = DEFAULT_INFERENCE_TIMEOUT
    inference: bool = True
    slow_inference_seconds: float = 1.0
    clip_model: str = "ViT-B-32__openai"
    min_free_bytes: dict[str, int] = field(default_factory=dict)
    storage_warn_percent: float = 80.0  # the server's view of the media disk (IC-ST-505)
    storage_fail_percent: float = 95.0
    failed_jobs_warn: int = 10  # failed jobs per queue before IC-SV-426 warns
    # access checks (immichcheck/clients/access.py)
    body_limit_size: int = 100_000_000
    body_limit_budget: float = 60.0

    def for_checks(self) -> dict[str, Any]:
        """The subset checks read through `Facts.settings`."""
        return {
            "slow_inference_seconds": self.slow_inference_seconds,
            "min_free_bytes": dict(self.min_free_bytes),
            "storage_warn_percent": self.storage_warn_percent,
            "storage_fail_percent": self.storage_fail_percent,
            "failed_jobs_warn": self.failed_jobs_warn,
        }


def probe_functions(targets: Any, settings: RunSettings) -> dict[str, tuple[ProbeFunction, float]]:
    """Every probe verify knows, bound to this run's targets; value = (function, safety guard)."""
    from immichcheck.clients import http, postgres, redis, storage
    from immichcheck.verify.admin_probes import AdminProbes

    options = targets.options
    admin = AdminProbes(targets, settings)
    timeout = settings.timeout
    # The guard covers waiting for the snapshot or a port-forward first, plus the probe itself.
    after_kube = 3 * timeout + 1.0

    async def kube_probe() -> Any:
        return await targets.snapshot()

    async def postgres_probe() -> Any:
        return await postgres.probe_postgres(await targets.postgres_dsn(), timeout)

    async def redis_probe() -> Any:
        return await redis.probe_redis(await targets.redis_url(), timeout)

    ml_ping_task: asyncio.Task[Any] | None = None

    async def ml_ping_once() -> Any:
        url = await targets.ml_url()
        return await bounded(http.ml_ping(url, timeout), timeout, url)

    def ml_ping_shared() -> asyncio.Task[Any]:
        # One /ping per run, awaited by both ML probes: the inference waits for its answer.
        nonlocal ml_ping_task
        if ml_ping_task is None:
            ml_ping_task = asyncio.ensure_future(ml_ping_once())
            # Retrieved even when every waiter was cancelled, so asyncio logs nothing.
            ml_ping_task.add_done_callback(lambda t: t.cancelled() or t.exception())
        return ml_ping_task

    async def ml_ping_probe() -> Any:
        return await asyncio.shield(ml_ping_shared())

    async def ml_predict_probe() -> Any:
        if not settings.inference:
            raise ProbeSkipped("inference disabled with --no-inference")
        # The model the server is configured with, read while /ping is awaited.
        model = asyncio.ensure_future(admin.clip_model(settings.clip_model))
        try:
            await asyncio.shield(ml_ping_shared())
        except ProbeSkipped:
            model.cancel()
            raise
        except Exception as exc:
            model.cancel()
            # A service that did not answer /ping would only hold the run for the whole
            # inference timeout (10 s) before failing the same way.
            raise ProbeSkipped(f"the ML service did not answer /ping: {exc}") from exc
        url = await targets.ml_url()
        return await bounded(
            http.ml_text_embedding(url, settings.inference_timeout, await model),
            settings.inference_timeout,
            f"{url}/predict",
        )

    async def server_probe() -> Any:
        url = await targets.server_url()
        return await bounded(http.server_facts(url, timeout, api_key=options.api_key), timeout, url)

    async def nodeport_probe() -> Any:
        if not options.node_ip:
            raise ProbeSkipped("no --node-ip given")
        url = f"http://{with_default_port(options.node_ip, targets.expected.nodeport)}"
        return await bounded(http.server_facts(url, timeout, details=False), timeout, url)

    async def ingress_probe() -> Any:
        if not options.ingress_ip:
            raise ProbeSkipped("no --ingress-ip given")
        scheme, _, address = options.ingress_ip.rstrip("/").rpartition("://")
        scheme = scheme.lower() or "http"
        base = f"{scheme}://{with_default_port(address, 443 if scheme == 'https' else 80)}"

        async def one(host: str) -> Any:
            try:
                return await bounded(
                    http.server_facts(
                        base, timeout, host=host, details=False, ca_file=options.ca_file
                    ),
                    timeout,
                    f"{base} (Host: {host})",
                )
            except ProbeError as exc:
                return str(exc)

        hosts = list(targets.expected.ingress_hosts)
        answers = await asyncio.gather(*(one(host) for host in hosts))
        return dict(zip(hosts, answers, strict=True))

    async def storage_probe() -> Any:
        paths = {"media": options.media_path, "data": options.data_path}
        chosen = {role: path for role, path in paths.items() if path}
        if not chosen:
            raise ProbeSkipped("no storage path given (--media-path, --data-path)")

        async def one(role: str, path: str) -> Any:
            try:
                return await storage.storage_facts(path, role, timeout)
            except ProbeError as exc:
                return str(exc)

        answers = await asyncio.gather(*(one(role, path) for role, path in chosen.items()))
        return dict(zip(chosen, answers, strict=True))

    from immichcheck.clients.access import bind_access_probes

    return {
        **bind_access_probes(targets, settings),
        **admin.functions(),
        "kube": (kube_probe, 2 * timeout + 1.0),
        "postgres": (postgres_probe, after_kube),
        "redis": (redis_probe, after_kube),
        "ml.ping": (ml_ping_probe, after_kube),
        "ml.predict": (ml_predict_probe, after_kube + settings.inference_timeout),
        "server": (server_probe, after_kube),
        "server.nodeport": (nodeport_probe, timeout + 1.0),
        "server.ingress": (ingress_probe, timeout + 1.0),
        "storage": (storage_probe, timeout + 1.0),
    }


def with_default_port(address: str, port: int) -> str:
    """`10.0.0.5` -> `10.0.0.5:31283`; an explicit `HOST:PORT` (NAT, tests) is kept."""
    host, _, explicit = address.rpartition(":")
    if host and explicit.isdigit() and not address.endswith("]"):
        return address
    return f"{address}:{port}"


@dataclass
class VerifyOutcome:
    """One finished verify: results (redacted), versions seen, attempts, wall time."""

    results: list[CheckResult]
    service_versions: dict[str, str]
    attempts: int
    started: float
    finished: float
    reached: dict[str, str]


def verify_run_record(
    outcome: VerifyOutcome,
    *,
    node: str,
    host: HostFacts,
    tags: Sequence[str],
    settings: Mapping[str, JSONValue],
) -> RunRecord:
    """The run record of one verify (what `verify` saves and the support bundle holds)."""
    from datetime import UTC, datetime

    from immichcheck import __version__

    started = datetime.fromtimestamp(outcome.started, UTC)
    return RunRecord(
        run_id=new_run_id(started),
        kind="verify",
        started_at=started,
        finished_at=datetime.fromtimestamp(outcome.finished, UTC),
        node=node,
        host=host,
        tool_version=__version__,
        service_versions=outcome.service_versions,
        checks=tuple(outcome.results),
        tags=tuple(tags),
        settings=settings,
    )


def service_versions(outcomes: Mapping[str, ProbeOutcome]) -> dict[str, str]:
    """Versions of the services measured, for the run record."""
    versions: dict[str, str] = {}
    kube = outcomes.get("kube")
    kube_version = str(getattr(kube.data, "server_version", "")) if kube and kube.ok else ""
    if kube_version:
        versions["kubernetes"] = kube_version
    pg = outcomes.get("postgres")
    if pg and pg.ok:
        versions["postgres"] = str(pg.data.get("version", ""))
        extensions = pg.data.get("extensions", {})
        for name in ("vchord", "vector", "vectors"):
            if name in extensions:
                versions[name] = str(extensions[name])
    rd = outcomes.get("redis")
    if rd and rd.ok:
        versions[str(rd.data.get("server_name") or "redis")] = str(rd.data.get("version", ""))
    server = outcomes.get("server")
    if server and server.ok:
        from immichcheck.verify.checks.server import version_text

        text = version_text(server.data)
        if text:
            versions["immich"] = text
    return versions


async def verify_once(
    codes: Sequence[str],
    targets: Any,
    settings: RunSettings,
) -> tuple[list[CheckResult], dict[str, ProbeOutcome]]:
    """One pass: probes concurrently, then every check; results redacted."""
    registry = registered_checks()
    try:
        functions = probe_functions(targets, settings)
        outcomes = await run_probes(functions, probes_needed(codes, registry))
    finally:
        await targets.close()
    results = evaluate(codes, outcomes, targets.expected, settings.for_checks(), registry)
    return redact_results(results, targets.redactor), outcomes


async def verify(
    codes: Sequence[str],
    make_targets: Callable[[], Any],
    settings: RunSettings,
    *,
    wait: float = 0.0,
    strict: bool = False,
    progress: Callable[[int, list[CheckResult], float], None] | None = None,
) -> VerifyOutcome:
    """Run verify once, or with `wait` > 0 again every few seconds until it passes or time is up."""
    started = time.time()
    deadline = time.monotonic() + wait
    attempt = 0
    while True:
        attempt += 1
        targets = make_targets()
        results, outcomes = await verify_once(codes, targets, settings)
        remaining = deadline - time.monotonic()
        # Warnings end the wait unless --strict makes them failures.
        done = exit_code_for(results, strict) in (ExitCode.OK, ExitCode.WARNING)
        if progress is not None and wait > 0:
            progress(attempt, results, max(0.0, remaining))
        if done or remaining <= 0:
            return VerifyOutcome(
                results=results,
                service_versions=service_versions(outcomes),
                attempts=attempt,
                started=started,
                finished=time.time(),
                reached=targets.describe(),
            )
        await asyncio.sleep(min(WAIT_INTERVAL, remaining))


@dataclass
class VerifyRequest:
    """Everything one verify needs, parsed: the library entry point's one argument."""

    options: Any  # endpoints.TargetOptions: how each service is reached
    expected: Any  # the expected state read from manifests/
    codes: Sequence[str]
    settings: RunSettings
    kube_access: Any = None  # None: no cluster to read (the cluster checks SKIP)
    snapshot: Any = None  # a snapshot already read (a dump, the support bundle's own read)
    wait: float = 0.0
    strict: bool = False
    tags: Sequence[str] = ()
    record_settings: Mapping[str, JSONValue] = field(default_factory=dict)
    progress: Callable[[int, list[CheckResult], float], None] | None = None
    redactor: Redactor = field(default_factory=Redactor)


@dataclass(frozen=True)
class VerifyRun:
    """One finished verify: the run record to save or render, and the outcome it came from."""

    record: RunRecord
    outcome: VerifyOutcome


async def run_verify(request: VerifyRequest) -> VerifyRun:
    """Verify a deployment: probes, checks, --wait, and the run record (secrets redacted)."""
    from immichcheck.common.host_facts import host_facts
    from immichcheck.verify.endpoints import Targets

    options = request.options

    def make_targets() -> Targets:
        return Targets(
            options,
            request.expected,
            request.kube_access,
            request.settings.timeout,
            request.redactor,
            request.snapshot,
        )

    # Host facts (psutil, /proc) are system calls: ~1 ms here, more on a node with hundreds
    # of mounts. Gathered in a thread while the probes wait on the network.
    paths = [p for p in (options.media_path, options.data_path) if p]
    host = asyncio.ensure_future(asyncio.to_thread(host_facts, paths))
    outcome = await verify(
        request.codes,
        make_targets,
        request.settings,
        wait=request.wait,
        strict=request.strict,
        progress=request.progress,
    )
    record = verify_run_record(
        outcome,
        node=request.expected.node,
        host=await host,
        tags=request.tags,
        settings=request.redactor.data(
            {
                "namespace": options.namespace or request.expected.namespace,
                "reached": outcome.reached,
                **request.record_settings,
                "attempts": outcome.attempts,
            }
        ),
    )
    return VerifyRun(record=record, outcome=outcome)


def print_progress(attempt: int, results: list[CheckResult], remaining: float) -> None:
    """--wait progress on stderr, only on a terminal (cron and pipes stay quiet)."""
    if not sys.stderr.isatty():
        return
    pending = [r.code for r in results if r.status in (Status.FAIL, Status.ERROR)]
    if pending:
        shown = ", ".join(sorted(set(pending))[:6])
        more = "..." if len(set(pending)) > 6 else ""
        # The last attempt ends its line so the report starts on a fresh one.
        end = "\n" if remaining <= 0 else ""
        sys.stderr.write(
            f"\rattempt {attempt}: {len(set(pending))} not passing ({shown}{more}); "
            f"{remaining:.0f} s left   {end}"
        )
    else:
        sys.stderr.write(f"\rattempt {attempt}: all checks pass{' ' * 40}\n")
    sys.stderr.flush()

"""Load generation that is not itself what gets measured.

Two engines share one timing model (warm-up, then a measured window of fixed duration or a
maximum count, one HDR histogram per workload):

- `run_async_workload`: N asyncio clients (asyncpg connections) each awaiting one operation
  after another. Good for queries whose latency is in the hundreds of microseconds or more.
- `SocketLoadPool`: worker processes driving raw non-blocking sockets with pre-encoded
  requests and counting replies without decoding them, one epoll loop per process. This is
  what lets a Python client keep up with `redis-benchmark` and `pgbench`: redis-py spends
  most of its time building and parsing objects, which the server never needed.

Both report when the client itself used most of a core during the measured window, because
then the numbers describe the client as much as the server.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import importlib
import multiprocessing
import multiprocessing.pool
import os
import select
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import psutil

from immichcheck.bench.load.postgres_wire import PgReplyCounter
from immichcheck.bench.load.resp_wire import RespReplyCounter
from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.records import BenchmarkResult
from immichcheck.common.statistics import (
    LatencyRecorder,
    decode_histogram,
    encode_histogram,
    summarize,
)

# Above this share of one core the client is likely the bottleneck; say so in the result.
SATURATION_THRESHOLD = 0.90
# Time the parent allows workers to connect before the common measured window starts.
CONNECT_SLACK_SECONDS = 0.25
WORKER_START_TIMEOUT = 60.0
_RECV_BYTES = 65536  # larger buffers cost an mmap per recv()


@dataclass(frozen=True)
class Timing:
    """How long a workload step runs: warm-up, then a measured window capped by `max_ops`."""

    warmup: float
    duration: float
    max_ops: int | None = None


def saturation_note(cpu_seconds: float, wall_seconds: float, who: str = "client") -> str | None:
    """A note when a load-generating process used most of a core while measuring."""
    if wall_seconds <= 0:
        return None
    share = cpu_seconds / wall_seconds
    if share >= SATURATION_THRESHOLD:
        return (
            f"{who} used {share:.0%} of a core: the client may limit this result "
            "(more worker processes or a faster machine would tell)"
        )
    return None


def _process_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


# --------------------------------------------------------------------------- asyncio engine


class AsyncClient(Protocol):
    """One connection: `operation()` performs one measured operation."""

    async def operation(self) -> None:
        """Run one operation; raise on failure."""

    async def close(self) -> None:
        """Release the connection."""


async def run_async_workload(
    workload: str,
    parameters: Mapping[str, Any],
    make_client: Callable[[], Awaitable[AsyncClient]],
    concurrency: int,
    timing: Timing,
    *,
    notes: Sequence[str] = (),
) -> BenchmarkResult:
    """Run `concurrency` clients in parallel: warm-up, then the measured window."""
    opened = await asyncio.gather(
        *(make_client() for _ in range(concurrency)), return_exceptions=True
    )
    clients = [client for client in opened if not isinstance(client, BaseException)]
    failures = [client for client in opened if isinstance(client, BaseException)]
    if failures:
        # Do not leak the connections that did open when one of them failed.
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
        raise failures[0]
    recorder = LatencyRecorder()
    measured_ops = 0
    try:
        loop_clock = time.perf_counter
        warm_end = loop_clock() + timing.warmup
        end = warm_end + timing.duration
        limit = timing.max_ops

        async def drive(client: AsyncClient) -> None:
            nonlocal measured_ops
            perf_ns = time.perf_counter_ns
            while True:
                now = loop_clock()
                if now >= end or (limit is not None and measured_ops >= limit):
                    return
                started = perf_ns()
                try:
                    await client.operation()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if loop_clock() >= warm_end:
                        recorder.record_error(f"{type(exc).__name__}: {exc}"[:200])
                        measured_ops += 1
                    continue
                finished = perf_ns()
                if now >= warm_end:
                    recorder.record_ns(finished - started)
                    measured_ops += 1

        tasks = [asyncio.create_task(drive(client)) for client in clients]
        # The measured window begins once the warm-up ends; CPU is sampled from then on.
        await asyncio.sleep(max(0.0, warm_end - loop_clock()))
        cpu_before = _process_cpu_seconds()
        window_start = loop_clock()
        await asyncio.gather(*tasks)
        wall = loop_clock() - window_start
        cpu = _process_cpu_seconds() - cpu_before
    finally:
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
    all_notes = list(notes)
    note = saturation_note(cpu, wall, "the benchmark process")
    if note:
        all_notes.append(note)
    return summarize(
        workload,
        {**parameters, "concurrency": concurrency},
        recorder,
        wall,
        notes=all_notes,
    )


# --------------------------------------------------------------------------- socket engine


class ReplyCounter(Protocol):
    """Counts complete replies in a byte stream without decoding them."""

    def feed(self, data: bytes) -> int:
        """Consume bytes; return how many replies completed."""

    @property
    def errors(self) -> list[str]:
        """Error replies seen so far (drained by the caller)."""


COUNTERS: dict[str, Callable[[], ReplyCounter]] = {
    "resp": RespReplyCounter,
    "pg": PgReplyCounter,
}


@dataclass(frozen=True)
class SocketJob:
    """What one worker process runs: connections, the request bytes and how to count replies.

    `request` is sent as one write and completes after `replies_per_request` replies (a
    pipeline of 16 commands is one request of 16 replies). `opener` is "module:function"
    returning a connected, ready socket for protocols that need a handshake (PostgreSQL);
    plain TCP otherwise. `setup` is sent once per connection before the measured requests.
    """

    host: str
    port: int
    connections: int
    request: bytes
    replies_per_request: int
    protocol: str  # key of COUNTERS
    warmup: float
    duration: float
    start_at: float = 0.0  # time.time() at which the measured window opens (set by the pool)
    max_requests: int | None = None  # per worker
    opener: str | None = None
    opener_args: tuple[Any, ...] = ()
    setup: bytes = b""
    setup_replies: int = 0


@dataclass
class WorkerReport:
    """A worker's measured window: encoded histogram, counts, errors and CPU use."""

    histogram: str | None
    requests: int
    errors: int
    error_messages: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0


def _open_socket(job: SocketJob) -> socket.socket:
    if job.opener:
        module_name, _, name = job.opener.partition(":")
        opener = getattr(importlib.import_module(module_name), name)
        sock: socket.socket = opener(job.host, job.port, *job.opener_args)
    else:
        sock = socket.create_connection((job.host, job.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if job.setup:
        sock.settimeout(30)
        sock.sendall(job.setup)
        counter = COUNTERS[job.protocol]()
        seen = 0
        while seen < job.setup_replies:
            data = sock.recv(_RECV_BYTES)
            if not data:
                raise ConnectionError("connection closed during setup")
            seen += counter.feed(data)
        if counter.errors:
            raise ConnectionError(f"setup failed: {counter.errors[0]}")
    sock.setblocking(False)
    return sock


def socket_worker(job: SocketJob) -> WorkerReport:
    """Drive `job.connections` sockets until the measured window closes (runs in a worker)."""
    recorder = LatencyRecorder()
    sockets: dict[int, socket.socket] = {}
    counters: dict[int, ReplyCounter] = {}
    pending: dict[int, int] = {}
    sent_at: dict[int, int] = {}
    try:
        for _ in range(job.connections):
            sock = _open_socket(job)
            sockets[sock.fileno()] = sock
    except OSError as exc:
        for sock in sockets.values():
            sock.close()
        return WorkerReport(None, 0, 1, [f"connect: {exc}"[:200]])
    poller = select.epoll()
    perf_ns = time.perf_counter_ns
    wall = time.time
    # The parent sets one window for all workers; a worker that started late (a slow spawn)
    # still warms up before measuring rather than measuring nothing.
    window_start = job.start_at if job.start_at > wall() else wall() + job.warmup
    window_end = window_start + job.duration
    request = job.request
    per_request = job.replies_per_request
    limit = job.max_requests
    completed = 0
    issued_after_start = 0
    # Latencies go into a flat C array while measuring (one append) and into the HDR
    # histogram afterwards: recording into the histogram costs microseconds in Python,
    # which at 100k requests/s would make the client the bottleneck.
    latencies = array.array("q")
    latencies_append = latencies.append
    cpu_start: float | None = None
    try:
        now_ns = perf_ns()
        for fd, sock in sockets.items():
            counters[fd] = COUNTERS[job.protocol]()
            pending[fd] = per_request
            sent_at[fd] = now_ns
            sock.send(request)
            poller.register(fd, select.EPOLLIN)
        active = len(sockets)
        while active:
            events = poller.poll(0.5)
            now_wall = wall()
            if cpu_start is None and now_wall >= window_start:
                cpu_start = _process_cpu_seconds()
            closing = now_wall >= window_end
            for fd, _event in events:
                sock = sockets[fd]
                try:
                    data = sock.recv(_RECV_BYTES)
                except BlockingIOError:
                    continue
                if not data:
                    raise ConnectionError("server closed the connection")
                counter = counters[fd]
                done = counter.feed(data)
                if counter.errors:
                    if now_wall >= window_start:
                        for message in counter.errors:
                            recorder.record_error(message)
                    counter.errors.clear()
                left = pending[fd] - done
                if left > 0:
                    pending[fd] = left
                    continue
                finished = perf_ns()
                in_window = window_start <= now_wall < window_end
                if in_window:
                    latencies_append(finished - sent_at[fd])
                    completed += 1
                if closing or (limit is not None and issued_after_start >= limit):
                    poller.unregister(fd)
                    active -= 1
                    continue
                if now_wall >= window_start:
                    issued_after_start += 1
                pending[fd] = per_request
                sent_at[fd] = finished
                sock.send(request)
            if not events and closing:
                break  # replies that never came: the server stalled; stop at the window's end
        measured_wall = min(wall(), window_end) - window_start
        cpu = _process_cpu_seconds() - cpu_start if cpu_start is not None else 0.0
    except OSError as exc:
        recorder.record_error(f"{type(exc).__name__}: {exc}"[:200])
        measured_wall = max(0.0, min(wall(), window_end) - window_start)
        cpu = _process_cpu_seconds() - cpu_start if cpu_start is not None else 0.0
    finally:
        poller.close()
        for sock in sockets.values():
            with contextlib.suppress(OSError):
                sock.close()
    for value in latencies:
        recorder.record_ns(value)
    return WorkerReport(
        histogram=encode_histogram(recorder.histogram) if recorder.count else None,
        requests=completed,
        errors=recorder.errors,
        error_messages=list(recorder.error_messages),
        cpu_seconds=cpu,
        wall_seconds=max(measured_wall, 0.0),
    )


def _ignore_interrupts() -> None:
    # The parent decides when workers stop (it terminates the pool on Ctrl-C); a worker that
    # also received the terminal's SIGINT would print a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_ready(index: int) -> int:
    """A no-op run once per worker at pool start (see SocketLoadPool.__aenter__)."""
    time.sleep(0.01)
    return index


def default_workers() -> int:
    """Worker processes for socket loads: half the cores (the server needs the rest), 1..4."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


class SocketLoadPool:
    """A pool of load-generating worker processes, kept for a whole suite.

    `async with SocketLoadPool(2) as pool: result = await pool.run(...)`. On cancellation
    (Ctrl-C) the workers are terminated at once.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()
        self._pool: multiprocessing.pool.Pool | None = None

    async def __aenter__(self) -> SocketLoadPool:
        context = multiprocessing.get_context("spawn")
        self._pool = context.Pool(self.workers, initializer=_ignore_interrupts)
        # Wait until every worker has started and imported this module, so the first
        # measured window does not open while workers are still booting.
        # Polled rather than waited on in a thread: a worker that cannot start (it crashes
        # on import and the pool respawns it forever) must not hang the whole program.
        ready = self._pool.map_async(_worker_ready, range(self.workers * 2), 1)
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        try:
            while not ready.ready():
                if time.monotonic() > deadline:
                    raise ImmichcheckError(
                        f"the {self.workers} load worker process(es) did not start within "
                        f"{WORKER_START_TIMEOUT:.0f} s"
                    )
                await asyncio.sleep(0.02)
            ready.get()
        except BaseException:
            self.close(terminate=True)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close(terminate=exc_info[0] is not None)

    def close(self, *, terminate: bool = False) -> None:
        """Stop the worker processes."""
        if self._pool is None:
            return
        if terminate:
            self._pool.terminate()
        else:
            self._pool.close()
        self._pool.join()
        self._pool = None

    async def run(
        self,
        workload: str,
        parameters: Mapping[str, Any],
        job: SocketJob,
        *,
        operations_per_request: int | None = None,
        bytes_per_operation: int | None = None,
        notes: Sequence[str] = (),
        workers: int | None = None,
    ) -> BenchmarkResult:
        """Split `job.connections` over the workers, run them in one window, merge results."""
        assert self._pool is not None, "use `async with SocketLoadPool()`"
        count = max(1, min(workers or self.workers, job.connections))
        start_at = time.time() + CONNECT_SLACK_SECONDS + job.warmup
        jobs = []
        for index in range(count):
            connections = job.connections // count + (1 if index < job.connections % count else 0)
            max_requests = None
            if job.max_requests is not None:
                max_requests = max(1, job.max_requests // count)
            jobs.append(
                replace(job, connections=connections, start_at=start_at, max_requests=max_requests)
            )
        pending = [self._pool.apply_async(socket_worker, (one,)) for one in jobs]
        try:
            while not all(result.ready() for result in pending):
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            self.close(terminate=True)
            raise
        reports: list[WorkerReport] = [result.get() for result in pending]
        recorder = LatencyRecorder()
        requests = 0
        wall = 0.0
        busiest = 0.0
        for report in reports:
            if report.histogram:
                recorder.histogram.add(decode_histogram(report.histogram))
            for message in report.error_messages:
                recorder.record_error(message)
            recorder.errors += max(0, report.errors - len(report.error_messages))
            requests += report.requests
            wall = max(wall, report.wall_seconds)
            if report.wall_seconds > 0:
                busiest = max(busiest, report.cpu_seconds / report.wall_seconds)
        per_request = operations_per_request or job.replies_per_request
        operations = requests * per_request
        all_notes = list(notes)
        note = saturation_note(busiest, 1.0, f"a load worker ({count} in all)")
        if note:
            all_notes.append(note)
        return summarize(
            workload,
            {
                "connections": job.connections,
                "pipeline": job.replies_per_request,
                **parameters,
                "workers": count,
            },
            recorder,
            wall,
            operations=operations,
            bytes_moved=operations * bytes_per_operation if bytes_per_operation else None,
            notes=all_notes,
        )

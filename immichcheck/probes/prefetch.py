"""The probes a forked child runs on the other core while verify's parent does the rest.

Why: verify is CPU-bound, and on one core its imports alone would be its time: kr8s takes
~0.11 s to import before the first API request can go out, asyncpg ~25 ms, redis-py 8
~50 ms, and the parent needs httpx and the checks besides. So as soon as the credentials
are known (before any thread exists), verify forks a child (copy-on-write, ~2 ms). The
child imports kr8s, with its imports for features the snapshot never uses deferred
(`immichcheck.deferred_import`), while the parent parses manifests/ and then sends it the
namespace and secret names over a pipe; the child reads the snapshot. A probe whose URL was
given (--pg-dsn, --redis-url: a "direct" probe, see DIRECT_PROBES) can run in the child
too, beside the snapshot: its client's import fills the time the snapshot's requests are
out, and the parent never imports that client (verify picks which, to balance the two
processes). Ways to a service that depend on the cluster (credentials from a Secret,
cluster DNS, port-forward) stay in the parent. Measured on 2 cores against the fake
cluster: verify's median went from 0.69 s to 0.56 s with the first version of this (the
snapshot only), 0.39-0.44 s with the deferred imports; a direct probe in the child saves
another ~65 ms (paired runs).

Only the first attempt of a run is prefetched: it forks before any thread exists (forking
a threaded process can copy a lock that is held forever). Later attempts (`--wait`), other
platforms than Linux (macOS system frameworks are not fork-safe) and processes that
already run threads probe in process, as before.

The child answers with one JSON line per probe over a pipe, each as soon as it is known,
in memory: the secret values in the snapshot are never written anywhere. Whatever happens
to the child, each of its probes ends with facts or a one-line error: a child that dies
says so with its exit status, and the parent kills and reaps it when the run ends or is
cancelled. Ctrl-C and SIGTERM end the child silently (their default action; they are
blocked across the fork so none can run the parent's handlers in the child); the parent
reports them. A child whose parent dies, even by SIGKILL, is killed by the kernel
(PR_SET_PDEATHSIG). A fork that fails (a pids limit, no memory) leaves no descriptor open
and everything runs in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import importlib
import json
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from immichcheck.deferred_import import defer
from immichcheck.probes import ProbeError
from immichcheck.probes.kube import KubeAccess, KubeError, Snapshot, open_connection, read_snapshot

READ_CHUNK = 1 << 16
# httpx imports httpcore lazily, and anyio (4.16) imports its parts on first attribute use:
# its asyncio backend, streams and thread pool come with the first connection, in both
# processes, ~35 ms each time unless they are imported here once.
SHARED_IMPORTS = (
    "httpx",
    "httpcore",
    "certifi",
    "anyio",
    "anyio._backends._asyncio",
    "anyio.lowlevel",
    "anyio.streams.memory",
    "anyio.streams.stapled",
    "anyio.streams.tls",
    "anyio.to_thread",
)
CHILD_SIGNALS = {signal.SIGINT, signal.SIGTERM}
PR_SET_PDEATHSIG = 1  # linux/prctl.h
TARGETS_WAIT = 60.0  # seconds the child waits for the parent to say what to read
# Probes the child can run when their URL is given: name -> (module, its `async (url,
# timeout)` that returns the facts as the parent's probe does, the service for messages).
DIRECT_PROBES = {
    "postgres": ("immichcheck.probes.postgres", "probe_postgres", "PostgreSQL"),
    "redis": ("immichcheck.probes.redis", "probe_redis", "Redis"),
}
# Imported by kr8s for JSONPath on objects, websocket exec/port-forward and client-certificate
# names; loaded on first use in the child (see immichcheck.deferred_import).
KR8S_UNUSED_HERE = ("jsonpath", "httpx_ws", "cryptography.x509")


class ProbePrefetch:
    """A forked child reading the snapshot and running the direct probes given to it.

    `start`, then `send_targets` once the parent knows the namespace and secrets, then
    `snapshot()` (and `facts(probe)` for the direct probes it runs) for the answers;
    `close()` always.
    """

    def __init__(self, pid: int, answer_fd: int, targets_fd: int, probes: Sequence[str]) -> None:
        self.pid = pid
        self.probes = tuple(probes)
        self._answer_fd: int | None = answer_fd
        self._targets_fd: int | None = targets_fd
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # the one reading the answers
        self._reaped = False
        self._status: int | None = None

    @classmethod
    def start(
        cls, access: KubeAccess, timeout: float, direct: Mapping[str, str] | None = None
    ) -> ProbePrefetch | None:
        """Fork the child, or None where forking is not safe (then everything runs in process).

        The child imports kr8s at once; what to read (namespace, secret names, from
        manifests/) follows over a pipe, so parsing manifests/ is not on its way. `direct`
        maps probes of DIRECT_PROBES to the URL given for them (--pg-dsn, --redis-url): the
        child runs those too, beside the snapshot.
        """
        direct = dict(direct or {})
        unknown = set(direct) - set(DIRECT_PROBES)
        if unknown:
            raise ValueError(f"the child cannot run {sorted(unknown)}")
        if not sys.platform.startswith("linux") or threading.active_count() > 1:
            return None
        # Both processes need httpx and what it loads on first use (the child for the API,
        # the parent for the Immich services): imported once before the fork, this CPU is
        # not paid twice.
        for name in SHARED_IMPORTS:
            importlib.import_module(name)
        pipes: list[int] = []
        try:
            pipes += os.pipe()
            pipes += os.pipe()
        except OSError:  # out of file descriptors: read in process
            _close_all(*pipes)
            return None
        answer_read, answer_write, targets_read, targets_write = pipes
        _widen(answer_write)
        # Buffered output would be written twice (once by each process) if left unflushed.
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:  # None when the descriptor was closed (`>&-`)
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
        parent = os.getpid()
        # No signal may arrive between the fork and the child's own handlers: a Ctrl-C there
        # would run the parent's code (its "interrupted" message, its atexit) in the child.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, CHILD_SIGNALS)
        try:
            pid = os.fork()
        except OSError:  # a pids limit or no memory: read in process instead
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            _close_all(answer_read, answer_write, targets_read, targets_write)
            return None
        if pid == 0:  # the child: never returns
            _close_all(answer_read, targets_write)
            work = _ChildWork(access, timeout, direct)
            _child_main(answer_write, targets_read, work, parent, blocked)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        _close_all(answer_write, targets_read)
        return cls(pid, answer_read, targets_write, ("kube", *direct))

    def runs(self, probe: str) -> bool:
        """Whether the child runs this probe (then the parent must not run it too)."""
        return probe in self.probes

    def send_targets(self, namespace: str, secret_names: Sequence[str]) -> None:
        """Tell the child what to read (once; a few hundred bytes fit the pipe at once)."""
        if self._targets_fd is None:
            return
        # A child that has already ended (killed, out of memory) closed its end: the write
        # fails, and the answers say how the child ended.
        with contextlib.suppress(OSError):
            os.write(self._targets_fd, json.dumps([namespace, list(secret_names)]).encode())
        os.close(self._targets_fd)
        self._targets_fd = None

    async def snapshot(self) -> Snapshot:
        """The child's snapshot; KubeError with its one-line reason when it had none."""
        try:
            answer = await self._answer("kube")
        except _NoAnswer as exc:
            raise KubeError(f"the process reading the cluster {exc}") from None
        if "error" in answer:
            raise KubeError(str(answer["error"]))
        return Snapshot(**answer["snapshot"])

    async def facts(self, probe: str) -> dict[str, Any]:
        """The facts of a direct probe, as run in process; ProbeError when there are none."""
        try:
            answer = await self._answer(probe)
        except _NoAnswer as exc:
            raise ProbeError(f"the process probing {DIRECT_PROBES[probe][2]} {exc}") from None
        if "error" in answer:
            raise ProbeError(str(answer["error"]))
        return dict(answer["facts"])

    async def _answer(self, probe: str) -> dict[str, Any]:
        """The child's message for `probe`, read as it arrives (each probe's in its own time)."""
        if probe not in self.probes:
            raise _NoAnswer(f"was not asked for {probe}")
        if self._loop is None:  # the first probe to ask starts the reading
            if self._answer_fd is None:
                raise _NoAnswer("was already closed")
            self._listen(asyncio.get_running_loop())
        return await asyncio.shield(self._answers[probe])

    def _listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Read the child's answers without a thread: one JSON line per probe, then EOF."""
        fd = self._answer_fd
        assert fd is not None
        self._loop = loop
        self._answers = {name: loop.create_future() for name in self.probes}
        pending = bytearray()
        os.set_blocking(fd, False)

        def readable() -> None:
            try:
                chunk = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError as exc:
                self._end(f"could not be read from: {exc}", kill=True)
                return
            if not chunk:  # the child closed its end: it has ended
                self._end(None, kill=False)
                return
            if b"\n" not in chunk:  # only new bytes are searched: a big snapshot stays linear
                pending.extend(chunk)
                return
            *lines, rest = chunk.split(b"\n")
            lines[0] = bytes(pending) + lines[0]
            pending[:] = rest
            for line in lines:
                self._deliver(line)

        loop.add_reader(fd, readable)

    def _deliver(self, line: bytes) -> None:
        """Settle the probe a well-formed answer is for; anything else is not an answer, and
        the probe it was meant for ends "without an answer"."""
        try:
            message = json.loads(line)
        except (UnicodeDecodeError, ValueError):
            return
        if not isinstance(message, dict) or not isinstance(message.get("probe"), str):
            return
        probe = message["probe"]
        payload = "snapshot" if probe == "kube" else "facts"
        if not isinstance(message.get("error"), str) and not isinstance(message.get(payload), dict):
            return
        future = self._answers.get(probe)
        if future is not None and not future.done():
            future.set_result(message)

    def close(self) -> None:
        """Stop the child if it still runs and reap it (safe to call more than once)."""
        self._end("was stopped before it answered", kill=True)

    def _end(self, reason: str | None, kill: bool) -> None:
        """Close the pipes, stop (with `kill`) and reap the child, and fail every probe it has
        not answered with `reason` (None: how the child ended)."""
        self._close_fds()
        if kill and not self._reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self._reap()
        if self._loop is None or self._loop.is_closed():
            return  # nobody can be waiting any more
        why = reason or self._ended_without_answer()
        for future in self._answers.values():
            if not future.done():
                future.set_exception(_NoAnswer(why))
                future.exception()  # retrieved: an answer nobody awaits is not an error

    def _close_fds(self) -> None:
        # The loop forgets the descriptor first: a closed number can be reused at once.
        if self._answer_fd is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._answer_fd)
        for name in ("_answer_fd", "_targets_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def _reap(self) -> None:
        """Wait for the child's exit (it has ended or been killed) and keep its status."""
        if self._reaped:
            return
        self._reaped = True
        with contextlib.suppress(ChildProcessError):  # already reaped elsewhere
            self._status = os.waitpid(self.pid, 0)[1]

    def _ended_without_answer(self) -> str:
        status = self._status
        if status is not None and os.WIFSIGNALED(status):
            how = f"was killed by signal {os.WTERMSIG(status)}"
        elif status is not None:
            how = f"exited with status {os.WEXITSTATUS(status)}"
        else:
            how = "ended"
        return f"{how} without an answer"


class _NoAnswer(Exception):
    """The child ended (or was closed) before it answered for a probe; says how."""


@dataclasses.dataclass(frozen=True)
class _ChildWork:
    """What the child runs: the snapshot through `access`, and each direct probe with its URL."""

    access: KubeAccess
    timeout: float
    direct: Mapping[str, str]


def _child_main(
    answer_fd: int,
    targets_fd: int,
    work: _ChildWork,
    parent: int,
    signal_mask: set[int | signal.Signals],
) -> None:
    """Run the probes, write one JSON line per probe, exit without the parent's cleanup."""
    code = 0
    try:
        # Ctrl-C and SIGTERM end the child at once, without a traceback; the parent
        # reports them. Should the parent die first, by any signal, the child dies with it.
        for number in CHILD_SIGNALS:
            signal.signal(number, signal.SIG_DFL)
        _die_with_parent(parent)
        signal.pthread_sigmask(signal.SIG_SETMASK, signal_mask)
        _run_child_probes(work, targets_fd, lambda message: _write_line(answer_fd, message))
    except BaseException:  # the parent turns a missing answer into a one-line error
        code = 1
    finally:
        # os._exit: none of the parent's atexit handlers, buffers or finalisers run twice.
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when the parent dies (prctl PR_SET_PDEATHSIG)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def _write_line(fd: int, message: dict[str, Any]) -> None:
    """One answer as one line: json.dumps escapes every newline inside strings."""
    view = memoryview(json.dumps(message).encode() + b"\n")
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _run_child_probes(
    work: _ChildWork, targets_fd: int, send: Callable[[dict[str, Any]], None]
) -> None:
    """Each probe's answer is sent as soon as it is known: a direct probe need not wait for
    the API server."""
    # The snapshot's preparation: any failure here is its answer, said as the in-process
    # read says it; the direct probes run regardless.
    snapshot_error = ""
    namespace, secret_names = "", list[str]()
    try:
        # kr8s imports these for features the snapshot never uses: ~85 ms of its ~110 ms.
        defer(*KR8S_UNUSED_HERE)
        importlib.import_module("kr8s.asyncio")  # the long part, while the parent parses
        # The parent sends what to read as soon as manifests/ are parsed (~20 ms after the
        # fork here); however slow the machine, it either sends or closes the pipe.
        namespace, secret_names = _receive_targets(targets_fd, time.monotonic() + TARGETS_WAIT)
    except _NoTargets as exc:
        snapshot_error = str(exc)
    except Exception as exc:  # kr8s missing or broken
        snapshot_error = f"{type(exc).__name__}: {exc}"

    async def snapshot() -> None:
        if snapshot_error:
            send({"probe": "kube", "error": snapshot_error})
            return
        send(await _snapshot_answer(work, namespace, secret_names))

    async def direct(probe: str, target: str) -> None:
        send(await _direct_answer(probe, target, work.timeout))

    async def every_probe() -> None:
        # The snapshot first: while its requests are out, the direct probes import clients.
        jobs = [snapshot()] + [direct(probe, target) for probe, target in work.direct.items()]
        await asyncio.gather(*jobs)

    asyncio.run(every_probe())


async def _snapshot_answer(
    work: _ChildWork, namespace: str, secret_names: Sequence[str]
) -> dict[str, Any]:
    """{"snapshot": ...} or {"error": one line}, as the in-process read would have raised."""
    limit = 2 * work.timeout + 1.0  # the bound the parent's probe guard puts on the whole read
    answer: dict[str, Any] = {"probe": "kube"}
    try:
        async with asyncio.timeout(limit):
            connection = await open_connection(work.access, namespace, work.timeout)
            snapshot = await read_snapshot(connection, namespace, secret_names, work.timeout)
    except KubeError as exc:
        return answer | {"error": str(exc)}
    except TimeoutError:
        return answer | {"error": f"no answer within {limit:g} s"}
    except Exception as exc:  # a library error is still only this probe's ERROR
        return answer | {"error": f"{type(exc).__name__}: {exc}"}
    # The fields as they are (asdict would deep-copy every object only to serialise it).
    fields = {f.name: getattr(snapshot, f.name) for f in dataclasses.fields(snapshot)}
    return answer | {"snapshot": fields}


async def _direct_answer(probe: str, target: str, timeout: float) -> dict[str, Any]:
    """{"facts": ...} or {"error": one line}, as the parent's own probe would have ended."""
    module, function, _label = DIRECT_PROBES[probe]
    answer: dict[str, Any] = {"probe": probe}
    try:
        run = getattr(importlib.import_module(module), function)
        return answer | {"facts": await run(target, timeout)}
    except ProbeError as exc:
        return answer | {"error": str(exc)}
    except Exception as exc:  # as run_probe words an unexpected error
        return answer | {"error": f"{type(exc).__name__}: {exc}"}


def _widen(fd: int) -> None:
    """Let the pipe hold a whole snapshot (1 MiB), so the child never waits on the parent's
    loop to write it while its direct probe could run; the default 64 KiB where refused."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)


def _close_all(*fds: int) -> None:
    for fd in fds:
        os.close(fd)


class _NoTargets(Exception):
    """The parent closed the pipe without saying what to read (it stopped early)."""


def _receive_targets(fd: int, deadline: float) -> tuple[str, list[str]]:
    """(namespace, secret names) from the parent, read until it closes its end."""
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0.0))
        if not ready:
            raise _NoTargets("the parent did not say what to read in time")
        chunk = os.read(fd, READ_CHUNK)
        if not chunk:
            break
        chunks.append(chunk)
    try:
        namespace, secret_names = json.loads(b"".join(chunks))
    except ValueError:
        raise _NoTargets("the parent stopped before saying what to read") from None
    return str(namespace), [str(name) for name in secret_names]

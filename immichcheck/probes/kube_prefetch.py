"""The cluster snapshot read by a forked child process, on another core, while verify probes.

Why: verify is CPU-bound on one core, and its longest path is the snapshot: kr8s alone
takes ~0.13 s to import before the first request can go out, while PostgreSQL, Redis and
the HTTP services need ~0.2 s of imports of their own. A child forked before any of that
(copy-on-write, ~2 ms) imports kr8s and reads the snapshot on a second core; the parent
never imports kr8s at all. It is forked as soon as the credentials are known: while it
imports kr8s, the parent parses manifests/ and sends it the namespace and secret names over
a second pipe; kr8s's imports for features the snapshot never uses are deferred
(`immichcheck.deferred_import`). Measured on 2 cores against the fake cluster: verify's
median went from 0.69 s to 0.56 s with the first version of this, 0.39-0.44 s with
everything since. On one core it costs the fork and nothing else.

Only the first read of a run is prefetched: it forks before any thread exists (forking a
threaded process can copy a lock that is held forever). Later reads (`--wait`), other
platforms than Linux (macOS system frameworks are not fork-safe) and processes that
already run threads read the snapshot in process, as before.

The child sends the snapshot as JSON over a pipe, in memory: its secret values are never
written anywhere. Whatever happens to the child, the parent gets a snapshot or a one-line
error: a child that dies says so with its exit status, and the parent kills and reaps it
when the run ends or is cancelled. Ctrl-C and SIGTERM end the child silently (their
default action; they are blocked across the fork so none can run the parent's handlers in
the child); the parent reports them. A child whose parent dies, even by SIGKILL, is killed
by the kernel (PR_SET_PDEATHSIG). A fork that fails (a pids limit, no memory) leaves no
descriptor open and the snapshot is read in process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from immichcheck.deferred_import import defer
from immichcheck.probes.kube import KubeAccess, KubeError, Snapshot, open_connection, read_snapshot

READ_CHUNK = 1 << 16
SHARED_IMPORTS = ("httpx", "httpcore", "anyio", "certifi")  # httpx imports httpcore lazily
CHILD_SIGNALS = {signal.SIGINT, signal.SIGTERM}
PR_SET_PDEATHSIG = 1  # linux/prctl.h
TARGETS_WAIT = 60.0  # seconds the child waits for the parent to say what to read
# Imported by kr8s for JSONPath on objects, websocket exec/port-forward and client-certificate
# names; loaded on first use in the child (see immichcheck.deferred_import).
KR8S_UNUSED_HERE = ("jsonpath", "httpx_ws", "cryptography.x509")


class SnapshotPrefetch:
    """A forked child reading the snapshot: `start`, then `send_targets` once the parent
    knows the namespace and secrets, then `result()` for the snapshot; `close()` always."""

    def __init__(self, pid: int, answer_fd: int, targets_fd: int) -> None:
        self.pid = pid
        self._answer_fd: int | None = answer_fd
        self._targets_fd: int | None = targets_fd
        self._reaped = False
        self._status: int | None = None

    @classmethod
    def start(cls, access: KubeAccess, timeout: float) -> SnapshotPrefetch | None:
        """Fork the reader, or None where forking is not safe (then read in process).

        The child imports kr8s at once; what to read (namespace, secret names, from
        manifests/) follows over a pipe, so parsing manifests/ is not on its way.
        """
        if not sys.platform.startswith("linux") or threading.active_count() > 1:
            return None
        # Both processes need httpx and what it loads on first use (the child for the API,
        # the parent for the Immich services): imported once before the fork, ~70 ms of CPU
        # is not paid twice.
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
            _child_main(answer_write, targets_read, access, timeout, parent, blocked)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        _close_all(answer_write, targets_read)
        return cls(pid, answer_read, targets_write)

    def send_targets(self, namespace: str, secret_names: Sequence[str]) -> None:
        """Tell the child what to read (once; a few hundred bytes fit the pipe at once)."""
        if self._targets_fd is None:
            return
        # A child that has already ended (killed, out of memory) closed its end: the write
        # fails, and `result()` reports how the child ended.
        with contextlib.suppress(OSError):
            os.write(self._targets_fd, json.dumps([namespace, list(secret_names)]).encode())
        os.close(self._targets_fd)
        self._targets_fd = None

    async def result(self) -> Snapshot:
        """The child's snapshot; KubeError with its one-line reason when it had none."""
        if self._answer_fd is None:
            raise KubeError("the snapshot was already taken from the reader process")
        payload = await _read_until_eof(self._answer_fd)
        self._close_fds()
        self._reap()
        try:
            answer = json.loads(payload)
        except (UnicodeDecodeError, ValueError):
            raise KubeError(self._died_without_answer()) from None
        if not isinstance(answer, dict) or not ("snapshot" in answer or "error" in answer):
            raise KubeError(self._died_without_answer())
        if "error" in answer:
            raise KubeError(str(answer["error"]))
        return Snapshot(**answer["snapshot"])

    def close(self) -> None:
        """Stop the child if it still runs and reap it (safe to call more than once)."""
        self._close_fds()
        if not self._reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap()

    def _close_fds(self) -> None:
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

    def _died_without_answer(self) -> str:
        status = self._status
        if status is not None and os.WIFSIGNALED(status):
            how = f"was killed by signal {os.WTERMSIG(status)}"
        elif status is not None:
            how = f"exited with status {os.WEXITSTATUS(status)}"
        else:
            how = "ended"
        return f"the process reading the cluster {how} without an answer"


async def _read_until_eof(fd: int) -> bytes:
    """Everything written to the pipe until the child closes it, read without a thread."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()
    chunks: list[bytes] = []
    os.set_blocking(fd, False)

    def readable() -> None:
        if done.done():
            return
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            reason = f"cannot read from the process reading the cluster: {exc}"
            done.set_exception(KubeError(reason))
            return
        if chunk:
            chunks.append(chunk)
        else:
            done.set_result(b"".join(chunks))

    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        loop.remove_reader(fd)


def _child_main(
    answer_fd: int,
    targets_fd: int,
    access: KubeAccess,
    timeout: float,
    parent: int,
    signal_mask: set[int | signal.Signals],
) -> None:
    """Read the snapshot, write one JSON answer, exit without the parent's cleanup."""
    code = 0
    try:
        # Ctrl-C and SIGTERM end the child at once, without a traceback; the parent
        # reports them. Should the parent die first, by any signal, the child dies with it.
        for number in CHILD_SIGNALS:
            signal.signal(number, signal.SIG_DFL)
        _die_with_parent(parent)
        signal.pthread_sigmask(signal.SIG_SETMASK, signal_mask)
        answer = _child_answer(targets_fd, access, timeout)
        data = json.dumps(answer).encode()
        view = memoryview(data)
        while view:
            written = os.write(answer_fd, view)
            view = view[written:]
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


def _child_answer(targets_fd: int, access: KubeAccess, timeout: float) -> dict[str, Any]:
    """{"snapshot": ...} or {"error": one line}, as the in-process read would have raised."""
    try:
        # kr8s imports these for features the snapshot never uses: ~85 ms of its ~110 ms.
        defer(*KR8S_UNUSED_HERE)
        importlib.import_module("kr8s.asyncio")  # the long part, while the parent parses
        # The parent sends what to read as soon as manifests/ are parsed (~20 ms after the
        # fork here); however slow the machine, it either sends or closes the pipe.
        namespace, secret_names = _receive_targets(targets_fd, time.monotonic() + TARGETS_WAIT)
    except _NoTargets as exc:
        return {"error": str(exc)}
    except Exception as exc:  # kr8s missing or broken: said as the in-process read says it
        return {"error": f"{type(exc).__name__}: {exc}"}
    limit = 2 * timeout + 1.0  # the bound the parent's probe guard puts on the whole read

    async def read() -> Snapshot:
        connection = await open_connection(access, namespace, timeout)
        return await read_snapshot(connection, namespace, secret_names, timeout)

    try:
        snapshot = asyncio.run(asyncio.wait_for(read(), limit))
    except KubeError as exc:
        return {"error": str(exc)}
    except TimeoutError:
        return {"error": f"no answer within {limit:g} s"}
    except Exception as exc:  # a library error is still only this probe's ERROR
        return {"error": f"{type(exc).__name__}: {exc}"}
    # The fields as they are (asdict would deep-copy every object only to serialise it).
    return {"snapshot": {f.name: getattr(snapshot, f.name) for f in dataclasses.fields(snapshot)}}


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

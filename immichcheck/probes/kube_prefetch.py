"""The cluster snapshot read by a forked child process, on another core, while verify probes.

Why: verify is CPU-bound on one core, and its longest path is the snapshot: kr8s alone
takes ~0.13 s to import before the first request can go out, while PostgreSQL, Redis and
the HTTP services need ~0.2 s of imports of their own. A child forked before any of that
(copy-on-write, ~2 ms) imports kr8s and reads the snapshot on a second core; the parent
never imports kr8s at all. It is forked as soon as the credentials are known: while it
imports kr8s, the parent parses manifests/ and sends it the namespace and secret names over
a second pipe. Measured on 2 cores against the fake cluster: verify's median went from
0.69 s to 0.56 s with the first version of this, 0.39-0.41 s with everything since. On one
core it costs the fork and nothing else.

Only the first read of a run is prefetched: it forks before any thread exists (forking a
threaded process can copy a lock that is held forever). Later reads (`--wait`), other
platforms than Linux (macOS system frameworks are not fork-safe) and processes that
already run threads read the snapshot in process, as before.

The child sends the snapshot as JSON over a pipe, in memory: its secret values are never
written anywhere. Whatever happens to the child, the parent gets a snapshot or a one-line
error: a child that dies says so with its exit status, and the parent kills and reaps it
when the run ends or is cancelled. Ctrl-C ends the child silently (default SIGINT action);
the parent reports the interrupt. A child whose parent died before saying what to read sees
its pipe close and ends without asking the API server anything.
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

from immichcheck.probes.kube import KubeAccess, KubeError, Snapshot, open_connection, read_snapshot

READ_CHUNK = 1 << 16
SHARED_IMPORTS = ("httpx", "httpcore", "anyio", "certifi")  # httpx imports httpcore lazily


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
        answer_read, answer_write = os.pipe()
        targets_read, targets_write = os.pipe()
        # Buffered output would be written twice (once by each process) if left unflushed.
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(answer_read)
            os.close(targets_write)
            _child_main(answer_write, targets_read, access, timeout)
        os.close(answer_write)
        os.close(targets_read)
        return cls(pid, answer_read, targets_write)

    def send_targets(self, namespace: str, secret_names: Sequence[str]) -> None:
        """Tell the child what to read (once; a few hundred bytes fit the pipe at once)."""
        if self._targets_fd is None:
            return
        os.write(self._targets_fd, json.dumps([namespace, list(secret_names)]).encode())
        os.close(self._targets_fd)
        self._targets_fd = None

    async def result(self) -> Snapshot:
        """The child's snapshot; KubeError with its one-line reason when it had none."""
        if self._answer_fd is None:
            raise KubeError("the snapshot was already taken from the reader process")
        payload = await _read_until_eof(self._answer_fd)
        self._close_fds()
        self._reap(block=True)
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
            self._reap(block=True)

    def _close_fds(self) -> None:
        for name in ("_answer_fd", "_targets_fd"):
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)

    def _reap(self, *, block: bool) -> None:
        if self._reaped:
            return
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:  # already reaped elsewhere
            self._reaped = True
            return
        if pid:
            self._reaped = True
            self._status = status

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


def _child_main(answer_fd: int, targets_fd: int, access: KubeAccess, timeout: float) -> None:
    """Read the snapshot, write one JSON answer, exit without the parent's cleanup."""
    code = 0
    try:
        # Ctrl-C reaches the whole process group: the child just ends, without a traceback;
        # the parent reports the interrupt.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
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


def _child_answer(targets_fd: int, access: KubeAccess, timeout: float) -> dict[str, Any]:
    """{"snapshot": ...} or {"error": one line}, as the in-process read would have raised."""
    limit = 2 * timeout + 1.0  # the bound the parent's probe guard puts on the whole read
    deadline = time.monotonic() + limit
    try:
        importlib.import_module("kr8s.asyncio")  # the long part, while the parent parses
        namespace, secret_names = _receive_targets(targets_fd, deadline)
    except _NoTargets as exc:
        return {"error": str(exc)}

    async def read() -> Snapshot:
        connection = await open_connection(access, namespace, timeout)
        return await read_snapshot(connection, namespace, secret_names, timeout)

    try:
        snapshot = asyncio.run(asyncio.wait_for(read(), max(deadline - time.monotonic(), 0.1)))
    except KubeError as exc:
        return {"error": str(exc)}
    except TimeoutError:
        return {"error": f"no answer from the API server within {limit:g} s"}
    except Exception as exc:  # a library error is still only this probe's ERROR
        return {"error": f"{type(exc).__name__}: {exc}"}
    # The fields as they are (asdict would deep-copy every object only to serialise it).
    return {"snapshot": {f.name: getattr(snapshot, f.name) for f in dataclasses.fields(snapshot)}}


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

"""The cluster snapshot read by a forked child process, on another core, while verify probes.

Why: verify is CPU-bound on one core, and its longest path is the snapshot: kr8s alone
takes ~0.13 s to import before the first request can go out, while PostgreSQL, Redis and
the HTTP services need ~0.2 s of imports of their own. A child forked before any of that
(copy-on-write, ~2 ms) imports kr8s and reads the snapshot on a second core; the parent
never imports kr8s at all. Measured on 2 cores against the fake cluster: verify's median
went from 0.69 s to 0.56 s. On one core it costs the fork and nothing else.

Only the first read of a run is prefetched: it forks before any thread exists (forking a
threaded process can copy a lock that is held forever). Later reads (`--wait`), other
platforms than Linux (macOS system frameworks are not fork-safe) and processes that
already run threads read the snapshot in process, as before.

The child sends the snapshot as JSON over a pipe, in memory: its secret values are never
written anywhere. Whatever happens to the child, the parent gets a snapshot or a one-line
error: a child that dies says so with its exit status, and the parent kills and reaps it
when the run ends or is cancelled. Ctrl-C ends the child silently (default SIGINT action);
the parent reports the interrupt.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from immichcheck.probes.kube import KubeAccess, KubeError, Snapshot, open_connection, read_snapshot

READ_CHUNK = 1 << 16
SHARED_IMPORTS = ("httpx", "httpcore", "anyio", "certifi")  # httpx imports httpcore lazily
Where = Callable[[], tuple[str, Sequence[str]]]  # -> (namespace, names of the secrets to read)


class SnapshotPrefetch:
    """A forked child reading the snapshot; `result()` once for it, `close()` always."""

    def __init__(self, pid: int, read_fd: int) -> None:
        self.pid = pid
        self._read_fd: int | None = read_fd
        self._reaped = False
        self._status: int | None = None

    @classmethod
    def start(cls, access: KubeAccess, where: Where, timeout: float) -> SnapshotPrefetch | None:
        """Fork the reader, or None where forking is not safe (then read in process).

        `where` gives the namespace and the secret names; the child calls it, so whatever
        it costs (parsing manifests/) is not on the child's way to the API server.
        """
        if not sys.platform.startswith("linux") or threading.active_count() > 1:
            return None
        # Both processes need httpx and what it loads on first use (the child for the API,
        # the parent for the Immich services): imported once before the fork, ~70 ms of CPU
        # is not paid twice.
        for name in SHARED_IMPORTS:
            importlib.import_module(name)
        read_fd, write_fd = os.pipe()
        # Buffered output would be written twice (once by each process) if left unflushed.
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            os.close(read_fd)
            _child_main(write_fd, access, where, timeout)
        os.close(write_fd)
        return cls(pid, read_fd)

    async def result(self) -> Snapshot:
        """The child's snapshot; KubeError with its one-line reason when it had none."""
        if self._read_fd is None:
            raise KubeError("the snapshot was already taken from the reader process")
        payload = await _read_until_eof(self._read_fd)
        self._close_fd()
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
        self._close_fd()
        if not self._reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._reap(block=True)

    def _close_fd(self) -> None:
        if self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None

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


def _child_main(write_fd: int, access: KubeAccess, where: Where, timeout: float) -> None:
    """Read the snapshot, write one JSON answer, exit without the parent's cleanup."""
    code = 0
    try:
        # Ctrl-C reaches the whole process group: the child just ends, without a traceback;
        # the parent reports the interrupt.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        answer = _child_answer(access, where, timeout)
        data = json.dumps(answer).encode()
        view = memoryview(data)
        while view:
            written = os.write(write_fd, view)
            view = view[written:]
    except BaseException:  # the parent turns a missing answer into a one-line error
        code = 1
    finally:
        # os._exit: none of the parent's atexit handlers, buffers or finalisers run twice.
        os._exit(code)


def _child_answer(access: KubeAccess, where: Where, timeout: float) -> dict[str, Any]:
    """{"snapshot": ...} or {"error": one line}, as the in-process read would have raised."""

    async def read() -> Snapshot:
        namespace, secret_names = where()
        connection = await open_connection(access, namespace, timeout)
        return await read_snapshot(connection, namespace, secret_names, timeout)

    try:
        # The same bound the parent's probe guard puts on connecting and reading.
        snapshot = asyncio.run(asyncio.wait_for(read(), 2 * timeout + 1.0))
    except KubeError as exc:
        return {"error": str(exc)}
    except TimeoutError:
        return {"error": f"no answer from the API server within {2 * timeout + 1.0:g} s"}
    except Exception as exc:  # a library error is still only this probe's ERROR
        return {"error": f"{type(exc).__name__}: {exc}"}
    # The fields as they are (asdict would deep-copy every object only to serialise it).
    return {"snapshot": {f.name: getattr(snapshot, f.name) for f in dataclasses.fields(snapshot)}}

"""Supervising one server program: its own session, a log file, a polite stop then SIGKILL,
and an atexit hook that stops whatever is still running."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path

from immichcheck.bench.local_servers.service_user import ServiceUser, privilege_args

LOCALHOST = "127.0.0.1"
STOP_TIMEOUT = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


_LIVE_SERVERS: set[ServerProcess] = set()
_LIVE_LOCK = threading.Lock()


class ServerProcess:
    """A server program started in its own session; stops with a polite signal, then SIGKILL."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_path: Path,
        user: ServiceUser,
        stop_signal: signal.Signals,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.stop_signal = stop_signal
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C at the terminal must not reach it directly
                env=dict(env) if env is not None else None,
                **privilege_args(user),
            )
        with _LIVE_LOCK:
            _LIVE_SERVERS.add(self)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return int(self.process.pid)

    def running(self) -> bool:
        """True while the server process has not exited."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 5) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the server and its children; escalate to SIGKILL after `timeout` seconds."""
        try:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.process.send_signal(self.stop_signal)
                try:
                    self.process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout=timeout)
            # Backends or forks that outlived the postmaster would keep files open.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        finally:
            with _LIVE_LOCK:
                _LIVE_SERVERS.discard(self)


def _stop_all_live_servers() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE_SERVERS)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop(timeout=5.0)


atexit.register(_stop_all_live_servers)

"""Throwaway PostgreSQL and Redis servers for `bench --local` and for the test suite.

The servers run from the binaries installed on this machine, inside one folder that is
removed afterwards, listen on 127.0.0.1 on free ports only, and are configured like the
deployment's ConfigMaps (`ExpectedState.postgres_settings` / `redis_settings`). They always
stop: `LocalStack` is a context manager, SIGTERM/SIGHUP are turned into KeyboardInterrupt
while it is open, an atexit hook stops anything still running, and the next start sweeps
away stack folders whose owning process died (a SIGKILL leaves no other chance).

Servers start in their own session (process group), so a Ctrl-C typed at the terminal
reaches only immichcheck, which then stops them in order instead of racing them.

PostgreSQL refuses to run as root, so when we are root both servers run as an unprivileged
user: the `postgres` system user when it exists, else `nobody`.

The parts: `binaries` (finding the programs), `service_user` (privilege drop),
`server_process` (supervision), `postgres_server` / `redis_server` (setup),
`server_settings`, `stale_stacks`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from immichcheck.bench.local_servers.postgres_server import LocalPostgres, start_postgres
from immichcheck.bench.local_servers.redis_server import LocalRedis, start_redis
from immichcheck.bench.local_servers.server_settings import ServerSettings, expected_server_settings
from immichcheck.bench.local_servers.service_user import check_data_dir, service_user
from immichcheck.bench.local_servers.stale_stacks import (
    OWNER_FILE,
    STACK_PREFIX,
    sweep_stale_stacks,
)


class _TerminationRequested(KeyboardInterrupt):
    """SIGTERM/SIGHUP turned into the same unwinding as Ctrl-C."""


@contextlib.contextmanager
def termination_as_interrupt() -> Iterator[None]:
    """While open, SIGTERM and SIGHUP raise KeyboardInterrupt so cleanup code runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: types.FrameType | None) -> None:
        raise _TerminationRequested(signal.Signals(signum).name)

    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class LocalStack:
    """One folder holding throwaway servers; everything in it is removed on close.

    `LocalStack(parent)` creates `parent/immichcheck-local-XXXX` (parent defaults to the
    system temporary folder) and sweeps stale stacks from earlier crashed runs there first.
    """

    def __init__(
        self,
        parent: Path | None = None,
        *,
        manifests_dir: str | Path | None = None,
        settings: ServerSettings | None = None,
    ) -> None:
        self.parent = Path(parent) if parent is not None else Path(tempfile.gettempdir())
        self.user = service_user()
        self._manifests_dir = manifests_dir
        self._settings = settings
        self.folder: Path | None = None
        self.postgres: LocalPostgres | None = None
        self.redis: LocalRedis | None = None
        self._extra: list[Callable[[], None]] = []
        self._signals: contextlib.ExitStack | None = None

    @property
    def settings(self) -> ServerSettings:
        """The server settings in use (read from the manifests on first use)."""
        if self._settings is None:
            self._settings = expected_server_settings(self._manifests_dir)
        return self._settings

    def open(self) -> LocalStack:
        """Create the stack folder (after checking the parent is usable)."""
        check_data_dir(self.parent, self.user)
        sweep_stale_stacks(self.parent)
        folder = Path(tempfile.mkdtemp(prefix=STACK_PREFIX, dir=self.parent))
        self.folder = folder
        # The server user must enter the stack folder to reach its own subfolder.
        folder.chmod(0o711)
        (folder / OWNER_FILE).write_text(f"{os.getpid()}\n", encoding="utf-8")
        return self

    def _require_folder(self) -> Path:
        if self.folder is None:
            self.open()
        assert self.folder is not None
        return self.folder

    def start_postgres(self, *, vector: bool = False, **overrides: str) -> LocalPostgres:
        """Start the stack's PostgreSQL (pgvector-enabled with `vector`)."""
        self.postgres = start_postgres(
            self._require_folder(),
            settings=self.settings.postgres,
            database=self.settings.database,
            vector=vector,
            user=self.user,
            overrides=overrides,
        )
        return self.postgres

    def start_redis(self, **overrides: str) -> LocalRedis:
        """Start the stack's Redis; keyword overrides use underscores for dashes."""
        self.redis = start_redis(
            self._require_folder(),
            settings=self.settings.redis,
            overrides=overrides,
            user=self.user,
        )
        return self.redis

    def close(self) -> None:
        """Stop the servers (Redis, then PostgreSQL) and remove the folder. Safe to repeat."""
        errors: list[BaseException] = []
        for server in (self.redis, self.postgres):
            if server is not None:
                try:
                    server.stop()
                except BaseException as exc:  # keep going: the folder must still go
                    errors.append(exc)
        self.redis = None
        self.postgres = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
        if errors:
            raise errors[0]

    def __enter__(self) -> LocalStack:
        self._signals = contextlib.ExitStack()
        self._signals.enter_context(termination_as_interrupt())
        try:
            return self.open()
        except BaseException:
            self._signals.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        try:
            # A second Ctrl-C during cleanup must not leave servers behind: finish first.
            with _interrupts_deferred():
                self.close()
        finally:
            if self._signals is not None:
                self._signals.close()


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then re-raise one KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, frame: types.FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if received:
        raise KeyboardInterrupt

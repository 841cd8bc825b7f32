"""A throwaway Redis: a config file from the expected settings (unknown directives dropped
and reported), started as the service user, answering PING."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from immichcheck.bench.local_servers.binaries import find_redis_server, program_version
from immichcheck.bench.local_servers.errors import LocalStackError
from immichcheck.bench.local_servers.server_process import LOCALHOST, ServerProcess, free_port
from immichcheck.bench.local_servers.server_settings import (
    REDIS_OWN_SETTINGS,
    expected_server_settings,
)
from immichcheck.bench.local_servers.service_user import ServiceUser, give_to, service_user

REDIS_START_TIMEOUT = 30.0


@dataclass
class LocalRedis:
    """A running throwaway Redis."""

    host: str
    port: int
    data_dir: Path
    version: str
    server: ServerProcess
    settings: Mapping[str, str]
    password: str | None = None
    dropped_settings: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """redis:// URL of database 0."""
        return f"redis://{self.host}:{self.port}/0"

    def stop(self) -> None:
        """SIGTERM: Redis flushes the AOF and exits."""
        self.server.stop()


def _redis_conf_line(name: str, value: str) -> str:
    value = value.strip()
    if value == "" or (" " in value and not value.startswith('"')):
        # Multi-word values such as `save 900 1` stay as they are; empty ones need quotes.
        return f'{name} ""' if value == "" else f"{name} {value}"
    return f"{name} {value}"


def redis_ping(host: str, port: int, timeout: float = 1.0) -> str:
    """Send a raw RESP PING and return the first reply line (used to wait for readiness)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        return sock.recv(128).decode("ascii", "replace").strip()


_BAD_DIRECTIVE = re.compile(r">>> '([^\s']+)")


def start_redis(
    stack_dir: Path,
    *,
    settings: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    user: ServiceUser | None = None,
    name: str = "redis",
) -> LocalRedis:
    """Start redis-server under `stack_dir/<name>` on a free 127.0.0.1 port, in the foreground."""
    program = find_redis_server()
    user = user or service_user()
    folder = stack_dir / name
    folder.mkdir(mode=0o700)
    give_to(folder, user, 0o700)
    dropped: dict[str, str] = {}
    wanted: dict[str, str] = {}
    source = settings if settings is not None else expected_server_settings().redis
    for key, value in {
        **source,
        **{k.replace("_", "-"): v for k, v in (overrides or {}).items()},
    }.items():
        if key.lower() in REDIS_OWN_SETTINGS:
            dropped[key] = "set by the local stack"
        else:
            wanted[key.lower()] = str(value)
    version = program_version(program)
    last_error = ""
    for _attempt in range(len(wanted) + 3):
        port = free_port()
        conf = folder / "redis.conf"
        lines = [_redis_conf_line(k, v) for k, v in wanted.items()]
        lines += [
            f"port {port}",
            f"bind {LOCALHOST}",
            f"dir {folder}",
            "daemonize no",
            'logfile ""',
            f"pidfile {folder / 'redis.pid'}",
            "protected-mode yes",
        ]
        conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
        give_to(conf, user, 0o600)
        server = ServerProcess(
            name, [str(program), str(conf)], stack_dir / f"{name}.log", user, signal.SIGTERM
        )
        deadline = time.monotonic() + REDIS_START_TIMEOUT
        while time.monotonic() < deadline and server.running():
            with contextlib.suppress(OSError):
                if redis_ping(LOCALHOST, port) == "+PONG":
                    return LocalRedis(
                        host=LOCALHOST,
                        port=port,
                        data_dir=folder,
                        version=version,
                        server=server,
                        settings=dict(wanted),
                        dropped_settings=dropped,
                    )
            time.sleep(0.05)
        last_error = server.log_tail(8)
        server.stop()
        bad = _BAD_DIRECTIVE.findall(last_error)
        if bad and bad[0].lower() in wanted:
            dropped[bad[0].lower()] = f"not accepted by redis-server {version}"
            wanted.pop(bad[0].lower())
            continue
        if "already in use" not in last_error:
            break
    raise LocalStackError(f"redis-server did not start: {last_error or 'no log output'}")

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
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from immichcheck.common.errors import ImmichcheckError

STACK_PREFIX = "immichcheck-local-"
OWNER_FILE = "owner.pid"
LOCALHOST = "127.0.0.1"
POSTGRES_USER = "immich"
POSTGRES_START_TIMEOUT = 60.0  # seconds; a busy 2-core machine can be slow to run recovery
REDIS_START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

# Used only until immichcheck/deploy/expected_state.py can give the expected state: the same
# values the deployment's immich-postgres-config / immich-redis-config ConfigMaps carry.
BUILTIN_POSTGRES_SETTINGS: dict[str, str] = {
    "shared_buffers": "256MB",
    "effective_cache_size": "768MB",
    "work_mem": "4MB",
    "maintenance_work_mem": "64MB",
    "random_page_cost": "1.1",
    "effective_io_concurrency": "200",
    "wal_buffers": "16MB",
    "checkpoint_completion_target": "0.9",
    "max_wal_size": "1GB",
    "min_wal_size": "80MB",
    "log_min_duration_statement": "1000",
    "autovacuum_vacuum_scale_factor": "0.1",
    "autovacuum_analyze_scale_factor": "0.05",
}
BUILTIN_REDIS_SETTINGS: dict[str, str] = {
    "maxmemory": "400mb",
    "maxmemory-policy": "noeviction",
    "appendonly": "yes",
    "appendfsync": "everysec",
    "lazyfree-lazy-eviction": "yes",
    "lazyfree-lazy-expire": "yes",
    "lazyfree-lazy-server-del": "yes",
}
BUILTIN_DATABASE = "immich"

# Settings the local stack decides itself: where it listens and keeps files.
_POSTGRES_OWN = {
    "listen_addresses",
    "port",
    "unix_socket_directories",
    "data_directory",
    "hba_file",
    "ident_file",
    "config_file",
    "external_pid_file",
    "logging_collector",
    "log_directory",
    "log_filename",
    "ssl",
    "ssl_cert_file",
    "ssl_key_file",
    "ssl_ca_file",
    "archive_command",
    "archive_mode",
    "include",
    "include_dir",
    "include_if_exists",
}
_REDIS_OWN = {
    "port",
    "bind",
    "dir",
    "daemonize",
    "logfile",
    "pidfile",
    "unixsocket",
    "unixsocketperm",
    "supervised",
    "protected-mode",
    "include",
    "tls-port",
    "requirepass",
    "masterauth",
    "replicaof",
    "slaveof",
}

# Debian/Ubuntu keep the server programs here, off PATH, one folder per major version.
POSTGRES_SEARCH_ROOT = Path("/usr/lib/postgresql")


class LocalStackError(ImmichcheckError):
    """The throwaway servers could not be set up (missing binaries, unwritable folder...)."""


@dataclass(frozen=True)
class ServerSettings:
    """The configuration the throwaway servers get, and where it came from."""

    postgres: Mapping[str, str]
    redis: Mapping[str, str]
    database: str
    source: str  # "manifests/" or "built-in defaults"


def expected_server_settings(manifests_dir: str | Path | None = None) -> ServerSettings:
    """PostgreSQL/Redis settings from the manifests' ConfigMaps (built-in equivalents if absent)."""
    try:
        from immichcheck.deploy.expected_state import load_expected_state
    except ImportError:
        return ServerSettings(
            BUILTIN_POSTGRES_SETTINGS,
            BUILTIN_REDIS_SETTINGS,
            BUILTIN_DATABASE,
            "built-in defaults",
        )
    state = load_expected_state(manifests_dir)
    return ServerSettings(
        postgres=dict(state.postgres_settings),
        redis=dict(state.redis_settings),
        database=state.postgres_database or BUILTIN_DATABASE,
        source=str(state.directory),
    )


# --------------------------------------------------------------------------- binaries


@dataclass(frozen=True)
class PostgresBinaries:
    """One PostgreSQL installation: its bin folder, major version and library folder."""

    bin_dir: Path
    version: str  # full version, e.g. "15.14"
    lib_dir: Path
    has_vector: bool

    def tool(self, name: str) -> Path:
        """Path of one program of this installation."""
        return self.bin_dir / name


def _version_of(program: Path) -> str:
    output = subprocess.run(
        [str(program), "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    match = re.search(r"(\d+(?:\.\d+)+|\d+)", output)
    return match.group(1) if match else "unknown"


def _postgres_installation(bin_dir: Path) -> PostgresBinaries | None:
    if not (bin_dir / "postgres").is_file() or not (bin_dir / "initdb").is_file():
        return None
    version = _version_of(bin_dir / "postgres")
    lib_dir = bin_dir.parent / "lib"
    if (lib_dir / "postgresql").is_dir():
        lib_dir = lib_dir / "postgresql"  # pgserver's layout: pginstall/lib/postgresql
    share_candidates = [
        bin_dir.parent / "share" / "postgresql" / "extension",
        Path("/usr/share/postgresql") / version.split(".")[0] / "extension",
    ]
    has_vector = any((folder / "vector.control").is_file() for folder in share_candidates) and (
        (lib_dir / "vector.so").is_file()
    )
    return PostgresBinaries(bin_dir, version, lib_dir, has_vector)


def _major(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:2]) or (0,)


def pgserver_bin_dir() -> Path | None:
    """The bin folder of the PyPI package pgserver (PostgreSQL 16 with pgvector), if installed."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "pginstall" / "bin"
    return folder if folder.is_dir() else None


def find_postgres(*, vector: bool = False) -> PostgresBinaries:
    """The PostgreSQL to run: with `vector`, one that has pgvector; else the newest system one.

    System installations are searched on PATH and in /usr/lib/postgresql/*/bin (Debian keeps
    the server programs off PATH), highest version first.
    """
    candidates: list[Path] = []
    if vector:
        bundled = pgserver_bin_dir()
        if bundled:
            candidates.append(bundled)
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    debian = sorted(
        POSTGRES_SEARCH_ROOT.glob("*/bin"),
        key=lambda p: _major(p.parent.name),
        reverse=True,
    )
    candidates.extend(debian)
    found = [inst for inst in map(_postgres_installation, dict.fromkeys(candidates)) if inst]
    if vector:
        found = [inst for inst in found if inst.has_vector]
        if not found:
            raise LocalStackError(
                "no PostgreSQL with the pgvector extension found "
                "(install the Python package 'pgserver' or the apt package postgresql-15-pgvector)"
            )
        return found[0]
    if not found:
        raise LocalStackError(
            "PostgreSQL server programs (postgres, initdb) not found on PATH or in "
            "/usr/lib/postgresql/*/bin; install them with: apt-get install postgresql"
        )
    return max(found, key=lambda inst: _major(inst.version))


def find_redis_server() -> Path:
    """The redis-server program on PATH."""
    found = shutil.which("redis-server")
    if not found:
        raise LocalStackError(
            "redis-server not found on PATH; install it with: apt-get install redis-server"
        )
    return Path(found)


# --------------------------------------------------------------------------- users, folders


@dataclass(frozen=True)
class ServiceUser:
    """Who the servers run as: ourselves, or an unprivileged user when we are root."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @property
    def is_self(self) -> bool:
        """True when no privilege change is needed."""
        return self.uid == os.geteuid()


def service_user() -> ServiceUser:
    """The unprivileged `postgres` (else `nobody`) user when root; the current user otherwise."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid, tuple(os.getgroups()))
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        groups = tuple(os.getgrouplist(name, entry.pw_gid))
        return ServiceUser(name, entry.pw_uid, entry.pw_gid, groups)
    raise LocalStackError(
        "running as root but neither a 'postgres' nor a 'nobody' user exists to run "
        "PostgreSQL as (PostgreSQL refuses to run as root); create one with: "
        "useradd --system postgres"
    )


def _traversable_by(path: Path, user: ServiceUser) -> bool:
    info = path.stat()
    if user.uid == 0:
        return True
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in user.groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def check_data_dir(data_dir: Path, user: ServiceUser) -> None:
    """Fail with one line when the servers could not create and use files under `data_dir`."""
    if not data_dir.exists():
        raise LocalStackError(f"--data-dir {data_dir} does not exist")
    if not data_dir.is_dir():
        raise LocalStackError(f"--data-dir {data_dir} is not a directory")
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise LocalStackError(f"--data-dir {data_dir} is not writable by this user")
    resolved = data_dir.resolve()
    for folder in [resolved, *resolved.parents]:
        if not _traversable_by(folder, user):
            raise LocalStackError(
                f"--data-dir {data_dir}: the server user '{user.name}' cannot enter {folder} "
                f"(allow it with: chmod o+x {folder}, or choose another folder)"
            )
    probe = resolved / f".immichcheck-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        raise LocalStackError(
            f"--data-dir {data_dir} is not writable: {exc.strerror or exc}"
        ) from exc


def _give_to(path: Path, user: ServiceUser, mode: int) -> None:
    try:
        if not user.is_self:
            os.chown(path, user.uid, user.gid)
        path.chmod(mode)
    except OSError as exc:
        raise LocalStackError(
            f"cannot hand {path} to the server user '{user.name}': {exc.strerror or exc} "
            "(an NFS export with root_squash does this; choose another --data-dir)"
        ) from exc


def _server_pids(stack_dir: Path) -> list[int]:
    """PIDs of servers a stack folder's pid files name (postmaster.pid, redis.pid)."""
    pids = []
    for pid_file in (stack_dir / "postgres" / "postmaster.pid", stack_dir / "redis" / "redis.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pids.append(int(pid_file.read_text().splitlines()[0].strip()))
    return pids


def sweep_stale_stacks(parent: Path) -> list[Path]:
    """Stop the servers and remove stack folders left in `parent` by a process that died.

    Only folders named `immichcheck-local-*` that hold our owner file are touched, and only
    when the owning process is gone.
    """
    import psutil

    removed = []
    with contextlib.suppress(OSError):
        for folder in parent.glob(STACK_PREFIX + "*"):
            owner_file = folder / OWNER_FILE
            try:
                owner = int(owner_file.read_text().strip())
            except (OSError, ValueError):
                continue
            if psutil.pid_exists(owner):
                continue
            for pid in _server_pids(folder):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- processes


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
                **_privilege_args(user),
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


def _privilege_args(user: ServiceUser) -> dict[str, Any]:
    if user.is_self:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": list(user.groups)}


def _stop_all_live_servers() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE_SERVERS)
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop(timeout=5.0)


atexit.register(_stop_all_live_servers)


def _run(argv: list[str], user: ServiceUser, what: str, timeout: float = 120.0) -> str:
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
            **_privilege_args(user),
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalStackError(f"{what} did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise LocalStackError(f"{what} failed: {' | '.join(detail[-3:]) or done.returncode}")
    return done.stdout


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class LocalPostgres:
    """A running throwaway PostgreSQL: what clients need to reach it."""

    host: str
    port: int
    user: str
    password: str
    database: str
    data_dir: Path
    version: str
    binaries: PostgresBinaries
    server: ServerProcess
    dropped_settings: dict[str, str] = field(default_factory=dict)  # name -> why

    @property
    def dsn(self) -> str:
        """postgresql:// URL with the password (never print it)."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    def stop(self) -> None:
        """Fast shutdown (SIGINT: abort transactions, checkpoint, exit)."""
        self.server.stop()


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1].replace("''", "'")
    return value


def _postgres_conf_line(name: str, value: str) -> str:
    return f"{name} = '{_unquote(value).replace(chr(39), chr(39) * 2)}'"


def _filter_postgres_settings(
    settings: Mapping[str, str], binaries: PostgresBinaries
) -> tuple[dict[str, str], dict[str, str]]:
    kept: dict[str, str] = {}
    dropped: dict[str, str] = {}
    for name, value in settings.items():
        key = name.strip().lower()
        if key in _POSTGRES_OWN:
            dropped[key] = "set by the local stack"
            continue
        if key == "shared_preload_libraries":
            libraries = [lib.strip() for lib in _unquote(value).split(",") if lib.strip()]
            present = [
                lib
                for lib in libraries
                if (binaries.lib_dir / (lib if lib.endswith(".so") else f"{lib}.so")).is_file()
            ]
            missing = [lib for lib in libraries if lib not in present]
            if missing:
                dropped[key + ":" + ",".join(missing)] = (
                    f"library not installed in {binaries.lib_dir}"
                )
            if present:
                kept[key] = ",".join(present)
            continue
        kept[key] = value
    return kept, dropped


_UNRECOGNISED = re.compile(r'unrecognized configuration parameter "([^"]+)"')
_INVALID_VALUE = re.compile(r'(?:invalid value for parameter|parameter) "([^"]+)"')


def _write_postgres_config(
    pgdata: Path,
    settings: Mapping[str, str],
    binaries: PostgresBinaries,
    user: ServiceUser,
    dropped: dict[str, str],
) -> None:
    """Write the manifest settings and drop, one by one, those this PostgreSQL rejects."""
    conf = pgdata / "immichcheck.conf"
    remaining = dict(settings)
    for _attempt in range(len(settings) + 1):
        conf.write_text(
            "# Settings from the deployment's immich-postgres-config ConfigMap\n"
            + "".join(_postgres_conf_line(k, v) + "\n" for k, v in remaining.items()),
            encoding="utf-8",
        )
        _give_to(conf, user, 0o600)
        check = subprocess.run(
            [str(binaries.tool("postgres")), "-D", str(pgdata), "-C", "port"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            start_new_session=True,
            **_privilege_args(user),
        )
        if check.returncode == 0:
            return
        names = _UNRECOGNISED.findall(check.stderr) or _INVALID_VALUE.findall(check.stderr)
        rejected = [n for n in names if n in remaining]
        if not rejected:
            detail = " | ".join(check.stderr.strip().splitlines()[-3:])
            raise LocalStackError(f"PostgreSQL rejects its configuration: {detail}")
        for name in rejected:
            dropped[name] = f"not accepted by PostgreSQL {binaries.version}"
            remaining.pop(name)
    raise LocalStackError("PostgreSQL rejects its configuration")


def _postmaster_ready(pgdata: Path) -> bool:
    # Line 8 of postmaster.pid is the postmaster's status; pg_ctl polls the same line.
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[7].strip() == "ready"


def start_postgres(
    stack_dir: Path,
    *,
    settings: Mapping[str, str] | None = None,
    database: str = BUILTIN_DATABASE,
    vector: bool = False,
    binaries: PostgresBinaries | None = None,
    user: ServiceUser | None = None,
    overrides: Mapping[str, str] | None = None,
) -> LocalPostgres:
    """initdb a cluster under `stack_dir/postgres`, start it on a free port and create `database`.

    Auth is scram-sha-256 with a generated password over TCP on 127.0.0.1 only; the unix
    socket lives in the data folder so it never collides with a system PostgreSQL.
    """
    binaries = binaries or find_postgres(vector=vector)
    user = user or service_user()
    password = secrets.token_urlsafe(24)
    pgdata = stack_dir / "postgres"
    pgdata.mkdir(mode=0o700)
    _give_to(pgdata, user, 0o700)
    pwfile = stack_dir / "pg-password"
    pwfile.write_text(password + "\n", encoding="utf-8")
    _give_to(pwfile, user, 0o600)
    try:
        _run(
            [
                str(binaries.tool("initdb")),
                "-D",
                str(pgdata),
                "-U",
                POSTGRES_USER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",  # throwaway cluster: durability of initdb's own files is moot
                "--no-instructions",
            ],
            user,
            "initdb",
        )
    finally:
        pwfile.unlink(missing_ok=True)
    kept, dropped = _filter_postgres_settings(
        settings if settings is not None else expected_server_settings().postgres, binaries
    )
    kept.update(overrides or {})
    with open(pgdata / "postgresql.conf", "a", encoding="utf-8") as conf:
        conf.write("\ninclude 'immichcheck.conf'\n")
    _write_postgres_config(pgdata, kept, binaries, user, dropped)

    last_error = ""
    for _attempt in range(3):  # a port can be taken between choosing and binding it
        port = free_port()
        server = ServerProcess(
            "postgres",
            [
                str(binaries.tool("postgres")),
                "-D",
                str(pgdata),
                "-c",
                f"listen_addresses={LOCALHOST}",
                "-c",
                f"port={port}",
                "-c",
                f"unix_socket_directories={pgdata}",
                "-c",
                "logging_collector=off",
            ],
            stack_dir / "postgres.log",
            user,
            signal.SIGINT,
        )
        deadline = time.monotonic() + POSTGRES_START_TIMEOUT
        while time.monotonic() < deadline and server.running() and not _postmaster_ready(pgdata):
            time.sleep(0.05)
        if _postmaster_ready(pgdata) and server.running():
            break
        last_error = server.log_tail()
        server.stop()
        if "already in use" not in last_error:
            raise LocalStackError(f"PostgreSQL did not start: {last_error or 'no log output'}")
    else:
        raise LocalStackError(f"PostgreSQL did not start: {last_error}")

    instance = LocalPostgres(
        host=LOCALHOST,
        port=port,
        user=POSTGRES_USER,
        password=password,
        database=database,
        data_dir=pgdata,
        version=binaries.version,
        binaries=binaries,
        server=server,
        dropped_settings=dropped,
    )
    try:
        if database != "postgres":
            _create_database(instance, user)
    except BaseException:
        server.stop()
        raise
    return instance


def _create_database(instance: LocalPostgres, user: ServiceUser) -> None:
    env = {
        **os.environ,
        "PGPASSWORD": instance.password,
        "PGCONNECT_TIMEOUT": "10",
    }
    argv = [
        str(instance.binaries.tool("createdb")),
        "-h",
        instance.host,
        "-p",
        str(instance.port),
        "-U",
        instance.user,
        instance.database,
    ]
    # createdb runs as us (it only needs the network); its password comes via the environment.
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise LocalStackError(
            f"creating database {instance.database} failed: {done.stderr.strip()}"
        )


# --------------------------------------------------------------------------- Redis


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
    _give_to(folder, user, 0o700)
    dropped: dict[str, str] = {}
    wanted: dict[str, str] = {}
    source = settings if settings is not None else expected_server_settings().redis
    for key, value in {
        **source,
        **{k.replace("_", "-"): v for k, v in (overrides or {}).items()},
    }.items():
        if key.lower() in _REDIS_OWN:
            dropped[key] = "set by the local stack"
        else:
            wanted[key.lower()] = str(value)
    version = _version_of(program)
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
        _give_to(conf, user, 0o600)
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


# --------------------------------------------------------------------------- the stack


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

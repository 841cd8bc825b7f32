"""A throwaway PostgreSQL: initdb as the service user, configuration from the expected
settings (those this server cannot take are dropped and reported), start, database."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from immichcheck.bench.local_servers.binaries import PostgresBinaries, find_postgres
from immichcheck.bench.local_servers.errors import LocalStackError
from immichcheck.bench.local_servers.server_process import LOCALHOST, ServerProcess, free_port
from immichcheck.bench.local_servers.server_settings import (
    BUILTIN_DATABASE,
    POSTGRES_OWN_SETTINGS,
    expected_server_settings,
)
from immichcheck.bench.local_servers.service_user import (
    ServiceUser,
    give_to,
    privilege_args,
    run_as,
    service_user,
)

POSTGRES_USER = "immich"
POSTGRES_START_TIMEOUT = 60.0  # seconds; a busy 2-core machine can be slow to run recovery


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
        if key in POSTGRES_OWN_SETTINGS:
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
        give_to(conf, user, 0o600)
        check = subprocess.run(
            [str(binaries.tool("postgres")), "-D", str(pgdata), "-C", "port"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            start_new_session=True,
            **privilege_args(user),
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
    give_to(pgdata, user, 0o700)
    pwfile = stack_dir / "pg-password"
    pwfile.write_text(password + "\n", encoding="utf-8")
    give_to(pwfile, user, 0o600)
    try:
        run_as(
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

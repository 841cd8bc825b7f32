"""PostgreSQL probes (asyncpg): one connection, a handful of catalogue queries, plain facts back."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from immichcheck.clients import ProbeError, bounded

# Settings verify compares with the ConfigMap: the issue names random_page_cost, the memory
# settings and slow-query logging. Others in the file depend on the image (preload libraries).
COMPARED_SETTINGS: tuple[str, ...] = (
    "random_page_cost",
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "maintenance_work_mem",
    "log_min_duration_statement",
    "max_connections",
)
VECTOR_INDEXES: tuple[str, ...] = ("clip_index", "face_index")


def dsn_location(dsn: str) -> str:
    """host:port/database of a DSN, without user or password, for messages."""
    try:
        parts = urlsplit(dsn)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
        database = parts.path.lstrip("/") or (parts.username or "")
    except ValueError:
        return "the given DSN"
    return f"{host}:{port}/{database}"


def describe_postgres_exception(exc: BaseException, dsn: str) -> str:
    """One clean line for a connection or query failure (never the password)."""
    import asyncpg

    where = dsn_location(dsn)
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return (
            f"authentication failed at {where}: {exc} "
            "(check the password in the secret or --pg-dsn)"
        )
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"{exc} at {where}"
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return f"too many connections at {where}: {exc}"
    if isinstance(exc, asyncpg.CannotConnectNowError):
        return f"PostgreSQL at {where} is starting up or shutting down: {exc}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused at {where}"
    if isinstance(
        exc, asyncpg.exceptions.ProtocolError | asyncpg.InternalClientError | BufferError
    ) or (isinstance(exc, ConnectionError) and "rejected SSL upgrade" in str(exc)):
        # Answers that are not PostgreSQL messages: some other service listens on that port.
        return f"{where} does not answer in the PostgreSQL protocol (is that the PostgreSQL port?)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host of {where} ({exc.strerror})"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return f"no answer from {where} in time"
    if isinstance(exc, OSError):
        return f"cannot connect to {where}: {exc.strerror or exc}"
    if isinstance(exc, asyncpg.PostgresError):
        return f"PostgreSQL error at {where}: {exc}"
    return f"{type(exc).__name__} talking to {where}: {exc}"


def postgres_error() -> type[Exception]:
    """asyncpg's PostgresError (the server refused a statement), for `except postgres_error():`."""
    import asyncpg

    return asyncpg.PostgresError


async def connect_postgres(
    dsn: str,
    *,
    timeout: float,
    command_timeout: float | None = None,
    server_settings: Mapping[str, str] | None = None,
) -> Any:
    """An asyncpg connection; ProbeError with one line (never the password) when it fails."""
    import asyncpg

    try:
        return await asyncpg.connect(
            dsn,
            timeout=timeout,
            command_timeout=timeout if command_timeout is None else command_timeout,
            server_settings=dict(server_settings) if server_settings else None,
        )
    except Exception as exc:
        raise ProbeError(describe_postgres_exception(exc, dsn)) from exc


async def probe_postgres(dsn: str, timeout: float) -> dict[str, Any]:
    """verify's PostgreSQL probe: `postgres_facts` within `timeout`, with where it was measured."""
    location = dsn_location(dsn)
    facts = await bounded(postgres_facts(dsn, timeout), timeout, location)
    facts["location"] = location
    return facts


async def postgres_facts(
    dsn: str, timeout: float, settings: Sequence[str] = COMPARED_SETTINGS
) -> dict[str, Any]:
    """Version, extensions, settings, connections, size, tables and indexes of one database."""
    connection = await connect_postgres(dsn, timeout=timeout)
    try:
        return await _gather(connection, settings)
    except Exception as exc:
        raise ProbeError(describe_postgres_exception(exc, dsn)) from exc
    finally:
        await connection.close(timeout=timeout)


async def _gather(connection: Any, settings: Sequence[str]) -> dict[str, Any]:
    # One connection runs its queries one after another; on loopback or in-cluster each is
    # well under a millisecond, so a second connection would cost more than it saves.
    facts: dict[str, Any] = {}
    facts["location"] = ""
    facts["version_num"] = int(await connection.fetchval("SHOW server_version_num"))
    facts["version"] = str(await connection.fetchval("SHOW server_version"))
    facts["database"] = str(await connection.fetchval("SELECT current_database()"))
    facts["extensions"] = {
        row["extname"]: row["extversion"]
        for row in await connection.fetch("SELECT extname, extversion FROM pg_extension")
    }
    facts["available_extensions"] = {
        row["name"]: row["default_version"]
        for row in await connection.fetch(
            "SELECT name, default_version FROM pg_available_extensions"
        )
    }
    facts["settings"] = {
        row["name"]: {
            "setting": row["setting"],
            "unit": row["unit"],
            "pending_restart": bool(row["pending_restart"]),
            "source": row["source"],
        }
        for row in await connection.fetch(
            "SELECT name, setting, unit, pending_restart, source FROM pg_settings "
            "WHERE name = ANY($1::text[])",
            [*settings, "shared_preload_libraries", "superuser_reserved_connections"],
        )
    }
    facts["connections"] = int(await connection.fetchval("SELECT count(*) FROM pg_stat_activity"))
    facts["database_size"] = int(
        await connection.fetchval("SELECT pg_database_size(current_database())")
    )
    facts["tables"] = sorted(
        row["table_name"]
        for row in await connection.fetch(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
    )
    facts["indexes"] = {
        row["indexname"]: {"table": row["tablename"], "definition": row["indexdef"]}
        for row in await connection.fetch(
            "SELECT indexname, tablename, indexdef FROM pg_indexes "
            "WHERE schemaname = 'public' AND indexname = ANY($1::text[])",
            list(VECTOR_INDEXES),
        )
    }
    facts["slow_statements"] = await _slow_statements(connection, facts["extensions"])
    return facts


async def _slow_statements(connection: Any, extensions: dict[str, str]) -> dict[str, Any]:
    """Top statements by mean_exec_time (PostgreSQL >= 13; `mean_time` no longer exists)."""
    import asyncpg

    if "pg_stat_statements" not in extensions:
        return {"available": False, "reason": "pg_stat_statements is not installed"}
    try:
        rows = await connection.fetch(
            "SELECT left(query, 200) AS query, calls, mean_exec_time "
            "FROM pg_stat_statements WHERE calls >= 5 ORDER BY mean_exec_time DESC LIMIT 5"
        )
    except asyncpg.PostgresError as exc:  # installed but not preloaded, or no permission
        return {"available": False, "reason": str(exc)}
    return {
        "available": True,
        "top": [
            {
                "query": row["query"],
                "calls": int(row["calls"]),
                # pg_stat_statements reports milliseconds; records keep seconds.
                "mean_seconds": float(row["mean_exec_time"]) / 1000.0,
            }
            for row in rows
        ],
    }

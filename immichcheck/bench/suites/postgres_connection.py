"""Where the PostgreSQL under test is (a postgresql:// DSN) and the asyncpg connections the
suite opens to it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from immichcheck.common.errors import ImmichcheckError

CONNECT_TIMEOUT = 10.0
STATEMENT_TIMEOUT_MS = 10_000


class PostgresBenchError(ImmichcheckError):
    """The PostgreSQL benchmark cannot run (connection, unsafe schema, missing tables)."""


@dataclass(frozen=True)
class PostgresTarget:
    """Where the PostgreSQL under test is: parsed from a postgresql:// DSN."""

    dsn: str
    host: str
    port: int
    user: str
    password: str | None
    database: str
    sslmode: str | None

    @classmethod
    def from_dsn(cls, dsn: str) -> PostgresTarget:
        """Parse a postgresql:// URL (the only form --pg-dsn takes)."""
        try:
            parts = urlsplit(dsn)
            port = parts.port or 5432
        except ValueError as exc:
            raise PostgresBenchError(f"bad --pg-dsn: {exc}") from exc
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            raise PostgresBenchError(
                "bad --pg-dsn: expected postgresql://user:password@host:port/db"
            )
        user = unquote(parts.username or os.environ.get("PGUSER", "postgres"))
        query = parse_qs(parts.query)
        return cls(
            dsn=dsn,
            host=parts.hostname,
            port=port,
            user=user,
            password=unquote(parts.password) if parts.password else None,
            database=unquote(parts.path.lstrip("/")) or user,
            sslmode=query["sslmode"][0] if query.get("sslmode") else None,
        )

    @property
    def location(self) -> str:
        """host:port/database without credentials."""
        return f"{self.host}:{self.port}/{self.database}"


async def connect(
    target: PostgresTarget, *, readonly: bool = False, timeout: float = CONNECT_TIMEOUT
) -> Any:
    """An asyncpg connection; `readonly` makes every transaction READ ONLY with a timeout."""
    from immichcheck.clients import ProbeError
    from immichcheck.clients.postgres import connect_postgres

    server_settings = {
        "application_name": "immichcheck-bench",
        "statement_timeout": str(STATEMENT_TIMEOUT_MS),
    }
    if readonly:
        # Enforced by the server: any write in this session fails.
        server_settings["default_transaction_read_only"] = "on"
    try:
        return await connect_postgres(
            target.dsn,
            timeout=timeout,
            command_timeout=timeout * 6,
            server_settings=server_settings,
        )
    except ProbeError as exc:
        raise PostgresBenchError(str(exc)) from exc

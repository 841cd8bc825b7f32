"""Immich's hot read shapes (timeline buckets, one bucket with exif, the upload duplicate
check, smart search) and the asyncpg clients that measure them and connection setup."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from immichcheck.bench.suites.postgres_connection import PostgresBenchError, PostgresTarget, connect
from immichcheck.bench.suites.postgres_dataset import Tables

VECTOR_SEARCH = "postgres.vector_search"
NO_PGVECTOR = (
    f"{VECTOR_SEARCH} not measured: this PostgreSQL has no pgvector extension "
    "(Immich's own image has it)"
)
NO_EMBEDDINGS_LIVE = f"{VECTOR_SEARCH} not measured: no readable CLIP embeddings in Immich's tables"


def read_queries(tables: Tables) -> dict[str, str]:
    """The SQL of Immich's hot read shapes on the given tables."""
    queries = {
        "postgres.time_buckets": f"""
            SELECT date_trunc('MONTH', "localDateTime" AT TIME ZONE 'UTC') AS bucket,
                   count(*) AS n
            FROM {tables.asset}
            WHERE "ownerId" = $1 AND "deletedAt" IS NULL
            GROUP BY 1 ORDER BY 1 DESC""",
        "postgres.bucket_assets": f"""
            SELECT a.*, e.*
            FROM {tables.asset} a LEFT JOIN {tables.exif} e ON e."assetId" = a.id
            WHERE a."ownerId" = $1 AND a."deletedAt" IS NULL
              AND date_trunc('MONTH', a."localDateTime" AT TIME ZONE 'UTC') = $2
            ORDER BY a."localDateTime" DESC""",
        "postgres.checksum_lookup": f"""
            SELECT id FROM {tables.asset}
            WHERE "ownerId" = $1 AND checksum = $2 AND "libraryId" IS NULL LIMIT 1""",
    }
    if tables.smart_search:
        queries[VECTOR_SEARCH] = f"""
            SELECT "assetId" FROM {tables.smart_search}
            ORDER BY embedding <=> $1::vector LIMIT 100"""
    return queries


async def query_arguments(
    connection: Any, tables: Tables, queries: Mapping[str, str]
) -> dict[str, list[tuple[Any, ...]]]:
    """Parameter sets for each read shape, drawn from the data itself (cycled while measuring)."""
    owner = await connection.fetchval(
        f'SELECT "ownerId" FROM {tables.asset} GROUP BY 1 ORDER BY count(*) DESC LIMIT 1'
    )
    if owner is None:
        raise PostgresBenchError(f"{tables.asset} has no rows to read")
    buckets = [
        row["bucket"] for row in await connection.fetch(queries["postgres.time_buckets"], owner)
    ][:64]
    checksums = [
        row["checksum"]
        for row in await connection.fetch(
            f'SELECT checksum FROM {tables.asset} WHERE "ownerId" = $1 LIMIT 256', owner
        )
    ]
    arguments: dict[str, list[tuple[Any, ...]]] = {
        "postgres.time_buckets": [(owner,)],
        "postgres.bucket_assets": [(owner, bucket) for bucket in buckets],
        "postgres.checksum_lookup": [(owner, checksum) for checksum in checksums],
    }
    if VECTOR_SEARCH in queries:
        from immichcheck.clients.postgres import postgres_error

        try:
            vectors = await connection.fetch(
                f"SELECT embedding::text AS v FROM {tables.smart_search} LIMIT 32"
            )
        except postgres_error():
            vectors = []  # an embedding type we cannot read as text: no vector workload
        arguments[VECTOR_SEARCH] = [(row["v"],) for row in vectors]
    return arguments


class QueryClient:
    """One asyncpg connection running one prepared query with cycling arguments."""

    def __init__(self, connection: Any, statement: Any, arguments: Sequence[tuple[Any, ...]]):
        self._connection = connection
        self._statement = statement
        self._arguments = list(arguments)
        self._index = 0

    @classmethod
    async def open(
        cls,
        target: PostgresTarget,
        query: str,
        arguments: Sequence[tuple[Any, ...]],
        readonly: bool,
    ) -> QueryClient:
        """Connect and prepare."""
        connection = await connect(target, readonly=readonly)
        statement = await connection.prepare(query)
        return cls(connection, statement, arguments)

    async def operation(self) -> None:
        """Run the query once and fetch every row."""
        args = self._arguments[self._index % len(self._arguments)]
        self._index += 1
        await self._statement.fetch(*args)

    async def close(self) -> None:
        """Close the connection."""
        await self._connection.close(timeout=5)


class ConnectClient:
    """Measures connection setup: each operation opens and closes one connection."""

    def __init__(self, target: PostgresTarget) -> None:
        self._target = target

    async def operation(self) -> None:
        """Connect (TCP, auth, startup) and close."""
        connection = await connect(self._target)
        await connection.close(timeout=5)

    async def close(self) -> None:
        """Nothing held between operations."""

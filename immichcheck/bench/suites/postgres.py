"""PostgreSQL benchmarks: round trips, the committed-write (WAL fsync) path, Immich-shaped reads.

Workloads:

- `postgres.connect`: connection setup (TCP + auth + startup) with asyncpg.
- `postgres.select1`: `SELECT 1` round trip with a prepared statement.
- `postgres.insert_commit`: a committed single-row INSERT: the WAL fsync on the disk under
  test, the number NVMe is supposed to improve.
- `postgres.time_buckets`, `postgres.bucket_assets`, `postgres.checksum_lookup`,
  `postgres.vector_search`: the shapes of Immich's hot queries (timeline month buckets, one
  bucket joined to exif, upload duplicate check, smart search) on a synthetic Immich-like
  dataset built with set-based SQL in the schema `immichcheck_bench`, or with
  `--live-readonly` on the real Immich tables (plural or singular names) in read-only
  transactions with a statement timeout (`postgres_dataset.py`, `postgres_reads.py`).

`select1` and `insert_commit` run on `engine.SocketLoadPool` speaking the wire protocol
directly (`bench/load/postgres_wire.py`: pre-encoded Bind/Execute/Sync, counting
ReadyForQuery), so the client costs about what pgbench's libpq loop costs; the other queries
return rows worth decoding and use asyncpg.

Safety: writes happen only in `immichcheck_bench`, a schema this suite creates and marks with
a comment; it is dropped at the end, on Ctrl-C and on failure, and a later run drops a marked
leftover. A schema of that name without our marker is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from immichcheck.bench.base import BenchContext
from immichcheck.bench.load.engine import SocketJob, SocketLoadPool, Timing, run_async_workload
from immichcheck.bench.load.postgres_wire import prepared_statement
from immichcheck.bench.suites.postgres_connection import PostgresBenchError, PostgresTarget, connect
from immichcheck.bench.suites.postgres_dataset import (
    SCHEMA,
    SCHEMA_MARKER,
    Tables,
    build_dataset,
    dataset_bytes,
    drop_bench_schema,
    find_immich_tables,
)
from immichcheck.bench.suites.postgres_reads import (
    NO_EMBEDDINGS_LIVE,
    NO_PGVECTOR,
    VECTOR_SEARCH,
    ConnectClient,
    QueryClient,
    query_arguments,
    read_queries,
)
from immichcheck.common.records import BenchmarkResult
from immichcheck.common.statistics import LatencyRecorder, summarize

DEFAULTS: Mapping[str, Any] = {
    "assets": 10_000,
    "owners": 2,
    "vector_index": "hnsw",
    "insert_payload_bytes": 200,
}


def postgres_settings(ctx: BenchContext) -> dict[str, Any]:
    """The profile's `postgres` section over the defaults."""
    return ctx.profile.suite_settings("postgres", DEFAULTS)


def check_free_disk(ctx: BenchContext, needed: int) -> str | None:
    """Refuse when the data dir cannot hold the dataset; None when unknown (remote server)."""
    if ctx.data_dir is None:
        return None
    import psutil

    free = psutil.disk_usage(str(ctx.data_dir)).free
    if free < needed + 256 * 1024 * 1024:
        raise PostgresBenchError(
            f"not enough free disk in {ctx.data_dir} for the benchmark dataset: "
            f"{free / 2**20:.0f} MiB free, {needed / 2**20:.0f} MiB needed (+256 MiB margin)"
        )
    return f"dataset needs about {needed / 2**20:.0f} MiB; {free / 2**20:.0f} MiB free"


class PostgresSuite:
    """PostgreSQL latency: round trips, committed inserts, Immich-shaped reads."""

    name = "postgres"

    def unavailable_reason(self, ctx: BenchContext) -> str | None:
        """Needs a DSN (the local stack provides one)."""
        if not ctx.pg_dsn:
            return "no PostgreSQL to benchmark (give --pg-dsn or use --local)"
        if ctx.engine == "native":
            from immichcheck.bench.native.tool_process import tool_path

            if tool_path("pgbench") is None:
                return "--engine native needs pgbench on PATH (apt-get install postgresql-client)"
        return None

    async def run(self, ctx: BenchContext) -> Sequence[BenchmarkResult]:
        """Run the workloads; our schema is dropped at the end, on Ctrl-C and on failure."""
        assert ctx.pg_dsn
        target = PostgresTarget.from_dsn(ctx.pg_dsn)
        settings = postgres_settings(ctx)
        live = bool(ctx.options.get("live_readonly"))
        connection = await connect(target, readonly=live)
        created = False
        try:
            version = await connection.fetchval("SHOW server_version")
            ctx.service_versions["postgres"] = str(version).split()[0]
            if not live:
                # A marked leftover from a crashed run is ours to remove.
                await drop_bench_schema(connection)
            if ctx.engine == "native":
                from immichcheck.bench.native.pgbench import run_pgbench

                if not live:
                    created = True
                    await self._create_round_trip_only(connection)
                return await run_pgbench(ctx, target, settings, live=live, schema=SCHEMA)
            results: list[BenchmarkResult] = []
            timing = Timing(float(settings["warmup_seconds"]), float(settings["duration_seconds"]))
            ctx.progress.step("postgres.connect")
            results.append(
                await run_async_workload(
                    "postgres.connect", {}, _async_value(ConnectClient(target)), 1, timing
                )
            )
            if live:
                tables = await find_immich_tables(connection)
            else:
                vector = await self._vector_available(connection, ctx)
                assets = int(settings["assets"])
                note = check_free_disk(ctx, dataset_bytes(assets, vector))
                if note:
                    ctx.progress.step("postgres: " + note)
                created = True
                tables = await build_dataset(
                    connection,
                    ctx,
                    assets,
                    int(settings["owners"]),
                    vector,
                    str(settings["vector_index"]),
                )
            results.extend(await self._round_trips(ctx, target, settings, live))
            results.extend(
                await self._reads(
                    ctx, target, connection, tables, live, timing, settings["concurrency"]
                )
            )
            return results
        finally:
            backend = connection.get_server_pid()
            connection.terminate()  # may be mid-statement (Ctrl-C while building)
            if created:
                await asyncio.shield(_drop_schema_quietly(target, backend))

    async def _create_round_trip_only(self, connection: Any) -> None:
        await connection.execute(f"CREATE SCHEMA {SCHEMA}")
        await connection.execute(f"COMMENT ON SCHEMA {SCHEMA} IS '{SCHEMA_MARKER}'")
        await connection.execute(
            f"CREATE TABLE {SCHEMA}.round_trip (id bigserial PRIMARY KEY, payload text NOT NULL, "
            '"createdAt" timestamptz NOT NULL DEFAULT now())'
        )

    async def _vector_available(self, connection: Any, ctx: BenchContext) -> bool:
        installed = await connection.fetchval(
            "SELECT count(*) FROM pg_extension WHERE extname = 'vector'"
        )
        if installed:
            return True
        available = await connection.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
        )
        if available and ctx.local:
            # Only on our throwaway server: an extension is database-wide, outside our schema.
            await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
            return True
        return False

    async def _round_trips(
        self, ctx: BenchContext, target: PostgresTarget, settings: Mapping[str, Any], live: bool
    ) -> list[BenchmarkResult]:
        statements: list[tuple[str, str, tuple[bytes, ...]]] = [
            ("postgres.select1", "SELECT 1", ())
        ]
        if not live:
            payload = b"x" * int(settings["insert_payload_bytes"])
            statements.append(
                (
                    "postgres.insert_commit",
                    f"INSERT INTO {SCHEMA}.round_trip (payload) VALUES ($1)",
                    (payload,),
                )
            )
        results = []
        async with SocketLoadPool() as pool:
            for workload, query, parameters in statements:
                setup, request = prepared_statement(query, parameters)
                for concurrency in settings["concurrency"]:
                    ctx.progress.step(f"{workload} concurrency={concurrency}")
                    job = SocketJob(
                        host=target.host,
                        port=target.port,
                        connections=concurrency,
                        request=request,
                        replies_per_request=1,
                        protocol="pg",
                        warmup=float(settings["warmup_seconds"]),
                        duration=float(settings["duration_seconds"]),
                        opener="immichcheck.bench.load.postgres_wire:wire_connect",
                        opener_args=(target.user, target.password, target.database),
                        setup=setup,
                        setup_replies=1,
                    )
                    result = await pool.run(workload, {"concurrency": concurrency}, job)
                    if result.count == 0 and any(
                        m.startswith("connect:") for m in result.error_messages
                    ):
                        # The wire client speaks plain TCP only (no TLS, no GSSAPI): measure
                        # with asyncpg instead and say that the client adds overhead.
                        result = await self._round_trip_with_asyncpg(
                            target,
                            workload,
                            query,
                            parameters,
                            concurrency,
                            settings,
                            result.error_messages[0],
                        )
                    if result.count == 0 and result.errors:
                        raise PostgresBenchError(
                            f"{workload} failed at {target.location}: "
                            + "; ".join(result.error_messages)
                        )
                    parameters_out = {
                        k: v
                        for k, v in result.parameters.items()
                        if k not in ("pipeline", "connections")
                    }
                    results.append(replace(result, parameters=parameters_out))
        return results

    async def _round_trip_with_asyncpg(
        self,
        target: PostgresTarget,
        workload: str,
        query: str,
        parameters: tuple[bytes, ...],
        concurrency: int,
        settings: Mapping[str, Any],
        reason: str,
    ) -> BenchmarkResult:
        arguments = [tuple(value.decode() for value in parameters)]

        async def make_client() -> QueryClient:
            return await QueryClient.open(target, query, arguments, readonly=False)

        timing = Timing(float(settings["warmup_seconds"]), float(settings["duration_seconds"]))
        return await run_async_workload(
            workload,
            {},
            make_client,
            concurrency,
            timing,
            notes=(
                f"measured with asyncpg (adds tens of microseconds per query) because the "
                f"raw client could not connect: {reason}",
            ),
        )

    async def _reads(
        self,
        ctx: BenchContext,
        target: PostgresTarget,
        connection: Any,
        tables: Tables,
        live: bool,
        timing: Timing,
        levels: Sequence[int],
    ) -> list[BenchmarkResult]:
        from immichcheck.clients.postgres import postgres_error

        queries = read_queries(tables)
        arguments = await query_arguments(connection, tables, queries)
        results = []
        source = "live" if live else "synthetic"
        for workload, query in queries.items():
            if not arguments.get(workload):
                continue
            try:
                await connection.prepare(query)
            except postgres_error() as exc:
                # e.g. pgvecto.rs' `vectors` type instead of pgvector's: say so in the table.
                recorder = LatencyRecorder()
                recorder.record_error(f"cannot run here: {exc}"[:200])
                results.append(summarize(workload, {"dataset": source}, recorder, 0.0))
                continue
            for concurrency in levels:
                ctx.progress.step(f"{workload} concurrency={concurrency} ({source})")

                async def make_client(query: str = query, workload: str = workload) -> QueryClient:
                    return await QueryClient.open(target, query, arguments[workload], live)

                results.append(
                    await run_async_workload(
                        workload, {"dataset": source}, make_client, concurrency, timing
                    )
                )
        if results and not any(r.workload == VECTOR_SEARCH for r in results):
            # Absent from the table without a word, smart search looks forgotten, not missing.
            why = NO_EMBEDDINGS_LIVE if live else NO_PGVECTOR
            results[0] = replace(results[0], notes=(*results[0].notes, why))
        return results


def _async_value(client: Any) -> Any:
    async def make() -> Any:
        return client

    return make


async def _drop_schema_quietly(target: PostgresTarget, backend: int) -> None:
    # A fresh connection: the suite's own may be mid-statement or broken when this runs. Its
    # backend would hold locks until the statement ends, so end it first (our own session).
    with contextlib.suppress(Exception):
        connection = await connect(target)
        try:
            await connection.execute("SELECT pg_terminate_backend($1)", backend)
            await drop_bench_schema(connection)
        finally:
            await connection.close(timeout=5)


SUITE = PostgresSuite()

"""PostgreSQL benchmark: real numbers, and Immich's tables untouched whatever happens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from immichcheck.bench.load.postgres_wire import wire_connect
from immichcheck.bench.local_servers.stack import LocalPostgres
from immichcheck.bench.suites import postgres as pg_bench
from immichcheck.bench.suites.postgres_connection import PostgresBenchError
from immichcheck.bench.suites.postgres_dataset import SCHEMA
from tests.fixtures.databases import bench_context

FAKE_IMMICH = """
CREATE TABLE public.asset (
    id uuid PRIMARY KEY, "ownerId" uuid NOT NULL, "libraryId" uuid, checksum bytea NOT NULL,
    "localDateTime" timestamptz NOT NULL, "deletedAt" timestamptz, type text NOT NULL
);
CREATE TABLE public.asset_exif ("assetId" uuid PRIMARY KEY REFERENCES public.asset(id), make text);
INSERT INTO public.asset
SELECT md5('a' || i)::uuid, md5('owner')::uuid, NULL, decode(md5('c' || i), 'hex'),
       timestamptz '2020-01-01' + i * interval '3 days', NULL, 'IMAGE'
FROM generate_series(1, 300) i;
INSERT INTO public.asset_exif SELECT id, 'Pi' FROM public.asset;
"""


async def fingerprint(dsn: str) -> tuple[int, str, int]:
    """(rows, checksum over every row) of the fake Immich tables, and our schema count."""
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM public.asset")
        digest = await conn.fetchval(
            "SELECT md5(string_agg(a::text || coalesce(e::text, ''), ',' ORDER BY a.id)) "
            'FROM public.asset a LEFT JOIN public.asset_exif e ON e."assetId" = a.id'
        )
        schemas = await conn.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1", SCHEMA
        )
        return int(rows), str(digest), int(schemas)
    finally:
        await conn.close()


@pytest.fixture
async def immich_tables(postgres_server: LocalPostgres) -> AsyncIterator[str]:
    """Fake Immich tables (singular names) in the public schema."""
    conn = await asyncpg.connect(postgres_server.dsn, timeout=10)
    await conn.execute(FAKE_IMMICH)
    await conn.close()
    yield postgres_server.dsn
    conn = await asyncpg.connect(postgres_server.dsn, timeout=10)
    await conn.execute("DROP TABLE public.asset_exif, public.asset")
    await conn.close()


@pytest.mark.slow
async def test_benchmark_measures_and_keeps_immich_tables(immich_tables: str) -> None:
    before = await fingerprint(immich_tables)
    ctx = bench_context(pg_dsn=immich_tables)
    results = await pg_bench.SUITE.run(ctx)
    by_name = {(r.workload, r.parameters.get("concurrency")) for r in results}
    for workload in (
        "postgres.select1",
        "postgres.insert_commit",
        "postgres.time_buckets",
        "postgres.bucket_assets",
        "postgres.checksum_lookup",
    ):
        assert {(workload, 1), (workload, 2)} <= by_name
    assert ("postgres.connect", 1) in by_name
    for result in results:
        assert result.count > 0 and result.errors == 0, result
        assert 0 < result.p50 <= result.p99 <= result.max
    assert ctx.service_versions["postgres"].startswith("15")
    assert await fingerprint(immich_tables) == before
    assert before[2] == 0


async def test_interrupted_benchmark_drops_its_schema(immich_tables: str) -> None:
    before = await fingerprint(immich_tables)
    task = asyncio.create_task(pg_bench.SUITE.run(bench_context(pg_dsn=immich_tables)))
    await asyncio.sleep(1.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await fingerprint(immich_tables) == before


async def test_failed_benchmark_drops_its_schema(
    immich_tables: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await fingerprint(immich_tables)

    async def broken(*args: object) -> None:
        raise PostgresBenchError("injected failure")

    monkeypatch.setattr(pg_bench, "query_arguments", broken)
    with pytest.raises(PostgresBenchError, match="injected failure"):
        await pg_bench.SUITE.run(bench_context(pg_dsn=immich_tables))
    assert await fingerprint(immich_tables) == before


async def test_foreign_schema_of_our_name_is_never_touched(postgres_server: LocalPostgres) -> None:
    conn = await asyncpg.connect(postgres_server.dsn, timeout=10)
    await conn.execute(f"CREATE SCHEMA {SCHEMA}; CREATE TABLE {SCHEMA}.precious (x int)")
    try:
        with pytest.raises(PostgresBenchError, match="not created by immichcheck"):
            await pg_bench.SUITE.run(bench_context(pg_dsn=postgres_server.dsn))
        assert await conn.fetchval(f"SELECT count(*) FROM {SCHEMA}.precious") == 0
    finally:
        await conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        await conn.close()


@pytest.mark.slow
async def test_live_readonly_reads_immich_tables_and_writes_nothing(immich_tables: str) -> None:
    before = await fingerprint(immich_tables)
    ctx = bench_context(pg_dsn=immich_tables, options={"live_readonly": True}, concurrency=[1])
    results = await pg_bench.SUITE.run(ctx)
    names = {r.workload for r in results}
    assert "postgres.insert_commit" not in names
    assert {"postgres.time_buckets", "postgres.bucket_assets", "postgres.checksum_lookup"} <= names
    assert all(r.parameters.get("dataset", "live") == "live" for r in results)
    assert all(r.errors == 0 for r in results)
    assert await fingerprint(immich_tables) == before


async def test_readonly_session_refuses_writes(postgres_server: LocalPostgres) -> None:
    target = pg_bench.PostgresTarget.from_dsn(postgres_server.dsn)
    conn = await pg_bench.connect(target, readonly=True)
    try:
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await conn.execute("CREATE TABLE public.should_not_exist (x int)")
    finally:
        await conn.close()


@pytest.mark.slow
async def test_vector_search_runs_when_pgvector_is_installed(
    vector_postgres_server: LocalPostgres,
) -> None:
    conn = await asyncpg.connect(vector_postgres_server.dsn, timeout=10)
    await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    await conn.close()
    ctx = bench_context(pg_dsn=vector_postgres_server.dsn, concurrency=[1])
    results = await pg_bench.SUITE.run(ctx)
    vector = [r for r in results if r.workload == "postgres.vector_search"]
    assert len(vector) == 1 and all(r.count > 0 and r.errors == 0 for r in vector)
    assert ctx.service_versions["postgres"].startswith("16")


def test_wire_client_authenticates_with_scram(postgres_server: LocalPostgres) -> None:
    sock = wire_connect(
        postgres_server.host,
        postgres_server.port,
        postgres_server.user,
        postgres_server.password,
        postgres_server.database,
    )
    sock.close()
    with pytest.raises(ConnectionError, match="password authentication failed"):
        wire_connect(
            postgres_server.host,
            postgres_server.port,
            postgres_server.user,
            "wrong",
            postgres_server.database,
        )


@pytest.mark.slow
async def test_native_engine_normalises_pgbench(postgres_server: LocalPostgres) -> None:
    ctx = bench_context(pg_dsn=postgres_server.dsn, engine="native", concurrency=[1])
    results = await pg_bench.SUITE.run(ctx)
    assert {r.workload for r in results} == {"postgres.select1", "postgres.insert_commit"}
    for result in results:
        assert result.engine == "pgbench"
        assert result.count > 0 and result.histogram and 0 < result.p50 <= result.p99


async def test_live_readonly_accepts_plural_table_names(postgres_server: LocalPostgres) -> None:
    conn = await asyncpg.connect(postgres_server.dsn, timeout=10)
    plural = FAKE_IMMICH.replace("public.asset_exif", "public.exif").replace(
        "public.asset", "public.assets"
    )
    await conn.execute(plural)
    try:
        ctx = bench_context(
            pg_dsn=postgres_server.dsn, options={"live_readonly": True}, concurrency=[1]
        )
        results = await pg_bench.SUITE.run(ctx)
        checksum = [r for r in results if r.workload == "postgres.checksum_lookup"]
        assert checksum and checksum[0].count > 0 and checksum[0].errors == 0
    finally:
        await conn.execute("DROP TABLE public.exif, public.assets")
        await conn.close()


async def test_unreadable_embedding_type_is_reported_not_fatal(immich_tables: str) -> None:
    conn = await asyncpg.connect(immich_tables, timeout=10)
    # Stands in for pgvecto.rs' `vectors` type: an embedding column `<=>` cannot order by.
    await conn.execute(
        'CREATE TABLE public.smart_search ("assetId" uuid PRIMARY KEY, embedding real[]);'
        "INSERT INTO public.smart_search SELECT id, ARRAY[1, 0]::real[] FROM public.asset"
    )
    try:
        ctx = bench_context(pg_dsn=immich_tables, options={"live_readonly": True}, concurrency=[1])
        results = await pg_bench.SUITE.run(ctx)
        (vector,) = [r for r in results if r.workload == "postgres.vector_search"]
        assert vector.count == 0 and vector.errors == 1
        assert vector.error_messages[0].startswith("cannot run here:")
        assert all(r.errors == 0 for r in results if r is not vector)
    finally:
        await conn.execute("DROP TABLE public.smart_search")
        await conn.close()


async def test_asyncpg_fallback_for_round_trips_says_why(postgres_server: LocalPostgres) -> None:
    target = pg_bench.PostgresTarget.from_dsn(postgres_server.dsn)
    settings = {"warmup_seconds": 0.02, "duration_seconds": 0.1}
    result = await pg_bench.SUITE._round_trip_with_asyncpg(
        target, "postgres.select1", "SELECT 1", (), 1, settings, "connect: TLS required"
    )
    assert result.count > 0 and result.errors == 0
    assert "measured with asyncpg" in result.notes[0] and "TLS required" in result.notes[0]


async def test_missing_pgvector_is_said_not_left_out(postgres_server: LocalPostgres) -> None:
    # A fresh database with no vector extension, and not our throwaway server to add it to.
    results = await pg_bench.SUITE.run(bench_context(pg_dsn=postgres_server.dsn, concurrency=[1]))
    assert "postgres.vector_search" not in {r.workload for r in results}
    said = [note for r in results for note in r.notes if "postgres.vector_search" in note]
    assert said == [pg_bench.NO_PGVECTOR]

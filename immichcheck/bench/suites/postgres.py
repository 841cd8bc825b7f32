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
  transactions with a statement timeout.

`select1` and `insert_commit` run on `engine.SocketLoadPool` speaking the wire protocol
directly (pre-encoded Bind/Execute/Sync, counting ReadyForQuery), so the client costs about
what pgbench's libpq loop costs; the other queries return rows worth decoding and use asyncpg.

Safety: writes happen only in `immichcheck_bench`, a schema this suite creates and marks with
a comment; it is dropped at the end, on Ctrl-C and on failure, and a later run drops a marked
leftover. A schema of that name without our marker is never touched.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import socket
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from immichcheck.bench.base import BenchContext
from immichcheck.bench.load.engine import SocketJob, SocketLoadPool, Timing, run_async_workload
from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.records import BenchmarkResult
from immichcheck.common.statistics import LatencyRecorder, summarize

SCHEMA = "immichcheck_bench"
SCHEMA_MARKER = "immichcheck benchmark scratch data; safe to drop"
CONNECT_TIMEOUT = 10.0
STATEMENT_TIMEOUT_MS = 10_000
EMBEDDING_DIMENSION = 512
# Bytes per synthetic asset on disk: asset row + exif row + their indexes (measured ~1.1 KB),
# and the 512-d float4 embedding plus its HNSW index entry; doubled for WAL and slack.
BYTES_PER_ASSET = 1_200
BYTES_PER_EMBEDDING = 2 * 2_100

DEFAULTS: Mapping[str, Any] = {
    "assets": 10_000,
    "owners": 2,
    "vector_index": "hnsw",
    "insert_payload_bytes": 200,
}


class PostgresBenchError(ImmichcheckError):
    """The PostgreSQL benchmark cannot run (connection, unsafe schema, missing tables)."""


# --------------------------------------------------------------------------- connection


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


# --------------------------------------------------------------------------- wire protocol


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def _read_message(sock: socket.socket, buffer: bytearray) -> tuple[bytes, bytes]:
    while True:
        if len(buffer) >= 5:
            length = struct.unpack("!I", buffer[1:5])[0]
            if len(buffer) >= 1 + length:
                kind = bytes(buffer[:1])
                body = bytes(buffer[5 : 1 + length])
                del buffer[: 1 + length]
                return kind, body
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("PostgreSQL closed the connection during startup")
        buffer.extend(chunk)


def _error_text(body: bytes) -> str:
    fields = {
        part[:1].decode(): part[1:].decode("utf-8", "replace") for part in body.split(b"\0") if part
    }
    return fields.get("M", "error")


def _scram_client(sock: socket.socket, buffer: bytearray, password: str) -> None:
    """SCRAM-SHA-256 (RFC 5802/7677) as PostgreSQL speaks it: empty username, no binding."""
    nonce = base64.b64encode(secrets.token_bytes(18)).decode()
    first_bare = f"n=,r={nonce}"
    first = ("n,," + first_bare).encode()
    sock.sendall(_message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!i", len(first)) + first))
    kind, body = _read_message(sock, buffer)
    if kind == b"E":
        raise ConnectionError(_error_text(body))
    server_first = body[4:].decode()
    attributes = dict(item.split("=", 1) for item in server_first.split(","))
    if not attributes["r"].startswith(nonce):
        raise ConnectionError("SCRAM: server nonce does not extend ours")
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(attributes["s"]), int(attributes["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = f"c=biws,r={attributes['r']}"
    auth_message = f"{first_bare},{server_first},{without_proof}".encode()
    signature = hmac.digest(stored_key, auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
    sock.sendall(_message(b"p", final))
    kind, body = _read_message(sock, buffer)
    if kind == b"E":
        raise ConnectionError(_error_text(body))
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    expected = base64.b64encode(hmac.digest(server_key, auth_message, "sha256")).decode()
    if body[4:].decode() != f"v={expected}":
        raise ConnectionError("SCRAM: the server's signature does not match")


def wire_connect(
    host: str, port: int, user: str, password: str | None, database: str
) -> socket.socket:
    """A plain-TCP PostgreSQL connection, authenticated and ready for queries.

    Supports trust, cleartext, md5 and SCRAM-SHA-256. TLS is not offered: when a server
    requires it, the suite measures these round trips with asyncpg instead (with a note).
    """
    sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT)
    try:
        params = (
            b"user\0"
            + user.encode()
            + b"\0database\0"
            + database.encode()
            + b"\0application_name\0immichcheck-bench\0\0"
        )
        sock.sendall(struct.pack("!II", len(params) + 8, 196608) + params)
        buffer = bytearray()
        while True:
            kind, body = _read_message(sock, buffer)
            if kind == b"E":
                raise ConnectionError(_error_text(body))
            if kind == b"R":
                code = struct.unpack("!I", body[:4])[0]
                if code == 0:
                    continue
                if password is None:
                    raise ConnectionError("the server wants a password and none was given")
                if code == 3:
                    sock.sendall(_message(b"p", password.encode() + b"\0"))
                elif code == 5:
                    inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + body[4:8]).hexdigest()
                    sock.sendall(_message(b"p", b"md5" + outer.encode() + b"\0"))
                elif code == 10 and b"SCRAM-SHA-256\0" in body[4:]:
                    _scram_client(sock, buffer, password)
                else:
                    raise ConnectionError(f"unsupported authentication method {code}")
            elif kind == b"Z":
                return sock
    except BaseException:
        sock.close()
        raise


def prepared_statement(query: str, parameters: Sequence[bytes] = ()) -> tuple[bytes, bytes]:
    """(setup, request): Parse once + Sync; then Bind/Execute/Sync per request, as pgbench -M
    prepared sends them."""
    setup = _message(b"P", b"s\0" + query.encode() + b"\0" + struct.pack("!h", 0)) + _message(
        b"S", b""
    )
    bind_params = struct.pack("!h", len(parameters)) + b"".join(
        struct.pack("!i", len(value)) + value for value in parameters
    )
    bind = _message(b"B", b"\0s\0" + struct.pack("!h", 0) + bind_params + struct.pack("!h", 0))
    execute = _message(b"E", b"\0" + struct.pack("!i", 0))
    return setup, bind + execute + _message(b"S", b"")


# --------------------------------------------------------------------------- dataset


@dataclass(frozen=True)
class Tables:
    """Names of the tables the read shapes run on (synthetic or Immich's own)."""

    asset: str
    exif: str
    smart_search: str | None


async def schema_state(connection: Any) -> str:
    """'absent', 'ours' (marked by us) or 'foreign' (same name, not ours: never touched)."""
    comment = await connection.fetchval(
        "SELECT obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = $1", SCHEMA
    )
    exists = await connection.fetchval(
        "SELECT count(*) FROM pg_namespace WHERE nspname = $1", SCHEMA
    )
    if not exists:
        return "absent"
    return "ours" if comment == SCHEMA_MARKER else "foreign"


async def drop_bench_schema(connection: Any) -> bool:
    """Drop our schema if it exists and carries our marker; True when something was dropped."""
    state = await schema_state(connection)
    if state == "foreign":
        raise PostgresBenchError(
            f"a schema named {SCHEMA} exists but was not created by immichcheck; "
            "refusing to touch it"
        )
    if state == "ours":
        await connection.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        return True
    return False


def dataset_bytes(assets: int, vector: bool) -> int:
    """Disk the synthetic dataset needs (rows, indexes, WAL)."""
    return assets * (BYTES_PER_ASSET + (BYTES_PER_EMBEDDING if vector else 0)) * 2


async def build_dataset(
    connection: Any, ctx: BenchContext, assets: int, owners: int, vector: bool, index: str
) -> Tables:
    """Create the Immich-like tables in our schema with set-based SQL."""
    progress = ctx.progress
    progress.step(f"postgres: building {assets} synthetic assets in {SCHEMA}")
    await connection.execute(f"CREATE SCHEMA {SCHEMA}")
    await connection.execute(f"COMMENT ON SCHEMA {SCHEMA} IS '{SCHEMA_MARKER}'")
    await connection.execute(
        f"""
        CREATE TABLE {SCHEMA}.asset (
            id uuid PRIMARY KEY,
            "ownerId" uuid NOT NULL,
            "libraryId" uuid,
            checksum bytea NOT NULL,
            type text NOT NULL,
            "originalPath" text NOT NULL,
            "fileCreatedAt" timestamptz NOT NULL,
            "localDateTime" timestamptz NOT NULL,
            "deletedAt" timestamptz,
            "isFavorite" boolean NOT NULL DEFAULT false,
            visibility text NOT NULL DEFAULT 'timeline'
        );
        CREATE TABLE {SCHEMA}.asset_exif (
            "assetId" uuid PRIMARY KEY REFERENCES {SCHEMA}.asset(id) ON DELETE CASCADE,
            make text, model text,
            "exifImageWidth" integer, "exifImageHeight" integer,
            "fileSizeInByte" bigint, "dateTimeOriginal" timestamptz,
            latitude double precision, longitude double precision, city text, country text
        );
        CREATE TABLE {SCHEMA}.round_trip (
            id bigserial PRIMARY KEY,
            payload text NOT NULL,
            "createdAt" timestamptz NOT NULL DEFAULT now()
        );
        """
    )
    # Owners are fixed uuids; times spread deterministically over ten years.
    await connection.execute(
        f"""
        INSERT INTO {SCHEMA}.asset (id, "ownerId", checksum, type, "originalPath",
                                    "fileCreatedAt", "localDateTime", "deletedAt")
        SELECT md5('asset' || i)::uuid,
               md5('owner' || (i % $2))::uuid,
               decode(md5('c' || i) || substr(md5('d' || i), 1, 8), 'hex'),
               CASE WHEN i % 20 = 0 THEN 'VIDEO' ELSE 'IMAGE' END,
               '/data/library/admin/' || i || '.jpg',
               t, t,
               CASE WHEN i % 100 = 0 THEN t + interval '30 days' END
        FROM generate_series(1, $1) AS i,
             LATERAL (SELECT timestamptz '2015-01-01 00:00:00+00'
                             + ((i::bigint * 7919) % (3650 * 86400)) * interval '1 second') AS s(t)
        """,
        assets,
        owners,
    )
    progress.advance(1, 4)
    await connection.execute(
        f"""
        INSERT INTO {SCHEMA}.asset_exif ("assetId", make, model, "exifImageWidth",
            "exifImageHeight", "fileSizeInByte", "dateTimeOriginal", latitude, longitude,
            city, country)
        SELECT id, 'Raspberry', 'Camera ' || (abs(hashtext(id::text)) % 7),
               4032, 3024, 3000000 + abs(hashtext(id::text)) % 2000000, "localDateTime",
               (abs(hashtext(id::text)) % 180) - 90, (abs(hashtext(checksum::text)) % 360) - 180,
               'City ' || (abs(hashtext(id::text)) % 50), 'Country'
        FROM {SCHEMA}.asset
        """
    )
    await connection.execute(
        f"""
        CREATE INDEX asset_month_bucket ON {SCHEMA}.asset
            ((date_trunc('MONTH', "localDateTime" AT TIME ZONE 'UTC')), "ownerId")
            WHERE "deletedAt" IS NULL;
        CREATE UNIQUE INDEX asset_owner_checksum ON {SCHEMA}.asset ("ownerId", checksum)
            WHERE "libraryId" IS NULL;
        CREATE INDEX asset_owner_local_time ON {SCHEMA}.asset ("ownerId", "localDateTime" DESC);
        """
    )
    progress.advance(2, 4)
    smart_search = None
    if vector:
        await connection.execute(
            f"""
            CREATE TABLE {SCHEMA}.smart_search (
                "assetId" uuid PRIMARY KEY REFERENCES {SCHEMA}.asset(id) ON DELETE CASCADE,
                embedding vector({EMBEDDING_DIMENSION}) NOT NULL
            )
            """
        )
        await connection.execute(
            f"""
            INSERT INTO {SCHEMA}.smart_search ("assetId", embedding)
            SELECT a.id, (SELECT array_agg(random()::real)
                          FROM generate_series(1, {EMBEDDING_DIMENSION}) g
                          WHERE g > 0 * length(a."originalPath"))::vector
            FROM {SCHEMA}.asset a
            """
        )
        progress.step(f"postgres: building the {index} vector index")
        if index == "hnsw":
            await connection.execute(
                f"CREATE INDEX clip_index ON {SCHEMA}.smart_search "
                "USING hnsw (embedding vector_cosine_ops)"
            )
        smart_search = f"{SCHEMA}.smart_search"
    progress.advance(3, 4)
    await connection.execute(f"ANALYZE {SCHEMA}.asset, {SCHEMA}.asset_exif")
    progress.advance(4, 4)
    return Tables(f"{SCHEMA}.asset", f"{SCHEMA}.asset_exif", smart_search)


async def find_immich_tables(connection: Any) -> Tables:
    """Immich's own tables: singular names (current releases) or plural (older ones)."""
    rows = await connection.fetch(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    )
    names = {row["table_name"] for row in rows}
    asset = next((n for n in ("asset", "assets") if n in names), None)
    exif = next((n for n in ("asset_exif", "exif") if n in names), None)
    if asset is None or exif is None:
        raise PostgresBenchError(
            "--live-readonly: no Immich tables (asset/assets and asset_exif/exif) in the "
            "public schema of this database"
        )
    smart = "smart_search" if "smart_search" in names else None
    return Tables(f'public."{asset}"', f'public."{exif}"', f'public."{smart}"' if smart else None)


# --------------------------------------------------------------------------- read shapes


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


# --------------------------------------------------------------------------- suite


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
            from immichcheck.bench.native.process import tool_path

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
                        opener="immichcheck.bench.suites.postgres:wire_connect",
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

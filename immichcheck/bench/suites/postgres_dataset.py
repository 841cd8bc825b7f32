"""The tables the PostgreSQL read shapes run on: a synthetic Immich-like dataset in our own
marked schema, or Immich's own tables (`--live-readonly`).

Safety: writes happen only in `immichcheck_bench`, a schema the suite creates and marks with
a comment. A schema of that name without our marker is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from immichcheck.bench.base import BenchContext
from immichcheck.bench.suites.postgres_connection import PostgresBenchError

SCHEMA = "immichcheck_bench"
SCHEMA_MARKER = "immichcheck benchmark scratch data; safe to drop"
EMBEDDING_DIMENSION = 512
# Bytes per synthetic asset on disk: asset row + exif row + their indexes (measured ~1.1 KB),
# and the 512-d float4 embedding plus its HNSW index entry; doubled for WAL and slack.
BYTES_PER_ASSET = 1_200
BYTES_PER_EMBEDDING = 2 * 2_100


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

"""`immichcheck verify` end to end: real PostgreSQL and Redis, fake server and ML over HTTP.

The cluster side comes from a `--from-dump` file built from manifests/ (the fake Kubernetes
API is exercised in test_verify_cluster.py). Servers are session-scoped and each test that
breaks something uses its own database, Redis or knob, so the healthy path stays cheap.

Environment limit, stated once: no PostgreSQL here has both pgvector and the contrib
extensions (the system PostgreSQL 15 has contrib but no pgvector, pgserver's 16 the reverse),
so the healthy run uses the pgvector server and leaves out IC-PG-104 and IC-PG-110, which
`test_postgres_without_vector_extension` covers against the contrib server.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from immichcheck.common.records import RunRecord, Status
from immichcheck.deploy.expected_state import load_expected_state
from immichcheck.verify.checks import load_catalogue
from tests.fixtures.cli import run_cli as run_any_cli
from tests.test_checks_cluster import healthy_cluster_objects, write_dump

MEDIA_FOLDERS = ("library", "upload", "thumbs", "encoded-video", "profile", "backups")
IMMICH_SCHEMA = """
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE "user" (id uuid PRIMARY KEY, email text);
CREATE TABLE asset (
    id uuid PRIMARY KEY, "ownerId" uuid, checksum bytea, "localDateTime" timestamptz
);
CREATE TABLE asset_exif ("assetId" uuid PRIMARY KEY, make text);
CREATE TABLE asset_face (id uuid PRIMARY KEY, "assetId" uuid);
CREATE TABLE smart_search ("assetId" uuid PRIMARY KEY, embedding vector(512));
CREATE TABLE face_search ("faceId" uuid PRIMARY KEY, embedding vector(512));
CREATE INDEX clip_index ON smart_search USING hnsw (embedding vector_cosine_ops);
CREATE INDEX face_index ON face_search USING hnsw (embedding vector_cosine_ops);
"""
CONTRIB = ("cube", "earthdistance", "pg_trgm", "unaccent", "uuid-ossp", "pg_stat_statements")


def _dsn_for(dsn: str, database: str, password: str | None = None) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if password is not None:
        user_info, _, host = netloc.rpartition("@")
        netloc = f"{user_info.split(':')[0]}:{password}@{host}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", parts.query, parts.fragment))


async def _create_database(dsn: str, name: str, statements: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(_dsn_for(dsn, name))
    try:
        await connection.execute(statements)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def immich_database_dsn(vector_postgres_server: Any) -> str:
    """A database on the pgvector server shaped like a migrated Immich (singular names)."""
    asyncio.run(_create_database(vector_postgres_server.dsn, "verify_immich", IMMICH_SCHEMA))
    return _dsn_for(vector_postgres_server.dsn, "verify_immich")


@pytest.fixture(scope="session")
def contrib_database_dsn(postgres_server: Any) -> str:
    """A database on PostgreSQL 15 with every contrib extension Immich needs, no vector one."""
    statements = "".join(f'CREATE EXTENSION IF NOT EXISTS "{name}";' for name in CONTRIB)
    asyncio.run(_create_database(postgres_server.dsn, "verify_contrib", statements))
    return _dsn_for(postgres_server.dsn, "verify_contrib")


def _redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", "", ""))


@pytest.fixture(scope="session")
def media_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A media root as a booted server leaves it: every folder with its .immich marker."""
    root = tmp_path_factory.mktemp("media")
    for folder in MEDIA_FOLDERS:
        (root / folder).mkdir()
        (root / folder / ".immich").write_text("1")
    return root


@pytest.fixture(scope="session")
def cluster_dump(tmp_path_factory: pytest.TempPathFactory, vector_postgres_server: Any) -> Path:
    """The deployment as `kubectl get -o json` shows it, with the real PG password in its secret."""
    expected = load_expected_state()
    objects = healthy_cluster_objects(expected, password=vector_postgres_server.password)
    return write_dump(tmp_path_factory.mktemp("dump") / "cluster.json", objects)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run `immichcheck verify ARGS` in-process; (exit code, stdout, stderr)."""
    return run_any_cli(["verify", *args], capsys)


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, RunRecord]:
    code, out, err = run_cli([*args, "--format", "json"], capsys)
    assert "Traceback" not in err
    return code, RunRecord.from_json(out)


def statuses(record: RunRecord) -> dict[str, Status]:
    """Worst status per code."""
    order = [Status.PASS, Status.SKIP, Status.WARN, Status.ERROR, Status.FAIL]
    result: dict[str, Status] = {}
    for check in record.checks:
        current = result.get(check.code, Status.PASS)
        result[check.code] = max(current, check.status, key=order.index)
    return result


def message(record: RunRecord, code: str) -> str:
    return " | ".join(c.message for c in record.checks if c.code == code)


def assert_verdict(
    outcome: tuple[int, RunRecord], code: str, status: Status, text: str, exit_code: int
) -> RunRecord:
    """One check's worst status and a part of its message, and the run's exit code."""
    exit_status, record = outcome
    assert statuses(record)[code] == status
    assert text in message(record, code)
    assert exit_status == exit_code
    return record


@pytest.fixture
def healthy_args(
    cluster_dump: Path,
    immich_database_dsn: str,
    redis_server: Any,
    fake_immich_server: Any,
    fake_ml_service: Any,
    media_root: Path,
    tmp_path: Path,
) -> list[str]:
    """Flags for a run where everything is as shipped."""
    # As immich-config.json of manifests/ sets it (Immich's own default names another host).
    fake_immich_server.admin.config["machineLearning"]["urls"] = ["http://immich-ml:3003"]
    server_address = urlsplit(fake_immich_server.url).netloc
    return [
        "--from-dump", str(cluster_dump),
        "--pg-dsn", immich_database_dsn,
        "--redis-url", _redis_db(redis_server.url, 3),
        "--server-url", fake_immich_server.url,
        "--ml-url", fake_ml_service.url,
        "--api-key", fake_immich_server.admin_api_key,
        "--node-ip", server_address,
        "--ingress-ip", server_address,
        "--media-path", str(media_root),
        "--data-path", str(tmp_path),
        "--min-free-media", "1MB",
        "--min-free-data", "1MB",
        "--reports-dir", str(tmp_path / "reports"),
    ]  # fmt: skip


def test_healthy_deployment_is_all_pass(
    healthy_args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # access (IC-AC-*) has its own tests with proxies in front (tests/test_access.py).
    code, record = run_json([*healthy_args, "--skip", "IC-PG-104,IC-PG-110,access"], capsys)
    not_passing = [
        (c.code, c.target, c.status, c.message) for c in record.checks if c.status != Status.PASS
    ]
    assert not_passing == []
    assert code == 0
    access = [code for code in load_catalogue() if code.startswith("IC-AC-")]
    assert len({c.code for c in record.checks}) == len(load_catalogue()) - 2 - len(access)
    assert record.service_versions.get("immich") == "v2.7.5", record.service_versions
    assert record.service_versions["vector"]
    assert (record.finished_at - record.started_at).total_seconds() < 5
    saved = list((Path(healthy_args[-1]) / "runs").rglob("*.verify.json"))
    assert len(saved) == 1 and RunRecord.from_json(saved[0].read_text()).run_id == record.run_id


@pytest.mark.parametrize(
    "output_format", ["table", "json", "junit", "nagios", "prometheus", "markdown"]
)
def test_no_secret_in_any_format(
    output_format: str,
    healthy_args: list[str],
    vector_postgres_server: Any,
    fake_immich_server: Any,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from tests.test_checks_cluster import STRONG_JWT

    # A wrong password in a DSN makes the driver's error message the most likely leak.
    bad_dsn = _dsn_for(
        vector_postgres_server.dsn, "verify_immich", password="Wr0ngButSecretPassw0rd"
    )
    args = [
        a if a != healthy_args[healthy_args.index("--pg-dsn") + 1] else bad_dsn
        for a in healthy_args
    ]
    output = tmp_path / f"out.{output_format}"
    code, out, err = run_cli([*args, "--format", output_format, "--output", str(output)], capsys)
    text = output.read_text() + out + err
    saved = "".join(p.read_text() for p in (tmp_path / "reports").rglob("*.json"))
    assert "IC-PG-101" in text or output_format == "prometheus"
    for secret in (
        "Wr0ngButSecretPassw0rd",
        vector_postgres_server.password,
        fake_immich_server.admin_api_key,
        STRONG_JWT,
    ):
        assert secret not in text, output_format
        assert secret not in saved
    assert code == 3  # the PostgreSQL checks could not run


def test_postgres_without_vector_extension(
    contrib_database_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, record = run_json(
        ["--pg-dsn", contrib_database_dsn, "--only", "postgres", "--no-save"], capsys
    )
    result = statuses(record)
    assert result["IC-PG-103"] == Status.FAIL
    assert (
        message(record, "IC-PG-103")
        == "no vector extension (vchord, vector or vectors) is available in this PostgreSQL"
    )
    assert result["IC-PG-104"] == Status.PASS
    assert result["IC-PG-105"] == Status.PASS
    assert result["IC-PG-110"] == Status.PASS
    assert result["IC-PG-108"] == Status.WARN  # a fresh database: no Immich tables yet
    assert code == 2


def test_wrong_postgres_password_is_error_and_skips(
    immich_database_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = _dsn_for(immich_database_dsn, "verify_immich", password="NotThePassword123")
    code, record = run_json(["--pg-dsn", dsn, "--only", "postgres", "--no-save"], capsys)
    first = record.checks[0]
    assert (first.code, first.status) == ("IC-PG-101", Status.ERROR)
    assert first.message.startswith("could not run: authentication failed at 127.0.0.1:")
    assert {c.status for c in record.checks[1:]} == {Status.SKIP}
    assert (
        "prerequisite IC-PG-101 (PostgreSQL accepts connections) is ERROR"
        in record.checks[1].message
    )
    assert code == 3


def test_unreachable_services_are_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    port = closed_port()
    args = [
        "--pg-dsn", f"postgresql://immich:x@127.0.0.1:{port}/immich",
        "--redis-url", f"redis://127.0.0.1:{port}/0",
        "--server-url", f"http://127.0.0.1:{port}",
        "--ml-url", f"http://127.0.0.1:{port}",
        "--media-path", str(tmp_path / "missing"),
        "--only", "IC-PG-101,IC-RD-201,IC-ML-301,IC-SV-401,IC-ST-503",
        "--no-save",
    ]  # fmt: skip
    code, record = run_json(args, capsys)
    by_code = {c.code: c for c in record.checks}
    assert {c.status for c in record.checks} == {Status.ERROR}
    assert (
        by_code["IC-PG-101"].message
        == f"could not run: connection refused at 127.0.0.1:{port}/immich"
    )
    assert (
        by_code["IC-RD-201"].message == f"could not run: connection refused at 127.0.0.1:{port}/0"
    )
    assert (
        by_code["IC-SV-401"].message
        == f"could not run: connection refused at http://127.0.0.1:{port}"
    )
    assert "is not a reachable folder" in by_code["IC-ST-503"].message
    assert code == 3


def test_redis_with_allkeys_lru_fails(
    redis_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    redis = redis_factory(maxmemory_policy="allkeys-lru")
    code, record = run_json(["--redis-url", redis.url, "--only", "redis", "--no-save"], capsys)
    assert statuses(record)["IC-RD-205"] == Status.FAIL
    assert "maxmemory-policy is allkeys-lru" in message(record, "IC-RD-205")
    assert "BullMQ" in message(record, "IC-RD-205")
    assert code == 2


def test_redis_with_aof_off_fails(redis_factory: Any, capsys: pytest.CaptureFixture[str]) -> None:
    redis = redis_factory(appendonly="no")
    code, record = run_json(["--redis-url", redis.url, "--only", "redis", "--no-save"], capsys)
    result = statuses(record)
    assert result["IC-RD-202"] == Status.FAIL
    assert (
        message(record, "IC-RD-202")
        == "appendonly is off: queued jobs are lost when Redis restarts"
    )
    assert result["IC-RD-203"] == Status.SKIP
    assert code == 2


def test_redis_queue_depths_from_real_bullmq_keys(
    redis_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import redis as redis_sync

    url = _redis_db(redis_server.url, 4)
    client = redis_sync.Redis.from_url(url)
    try:
        client.flushdb()
        client.hset("immich_bull:thumbnailGeneration:meta", "opts.maxLenEvents", "10000")
        client.rpush("immich_bull:thumbnailGeneration:wait", "1", "2", "3")
        client.zadd("immich_bull:metadataExtraction:failed", {"7": 1.0, "8": 2.0})
        code, record = run_json(
            ["--redis-url", url, "--only", "IC-RD-207,IC-RD-208", "--no-save"], capsys
        )
    finally:
        client.flushdb()
        client.close()
    assert message(record, "IC-RD-207") == "queued work: thumbnailGeneration wait 3"
    assert statuses(record)["IC-RD-208"] == Status.WARN
    assert message(record, "IC-RD-208") == "2 failed job(s): metadataExtraction 2"
    assert code == 1


def test_old_server_with_only_legacy_ping(
    fake_immich_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_immich_server.legacy_ping_only = True
    code, record = run_json(
        ["--server-url", fake_immich_server.url, "--only", "IC-SV-401,IC-SV-402", "--no-save"],
        capsys,
    )
    assert statuses(record) == {"IC-SV-401": Status.PASS, "IC-SV-402": Status.WARN}
    assert "via /api/server-info/ping" in message(record, "IC-SV-401")
    assert "older than v1.118" in message(record, "IC-SV-402")
    assert record.checks[0].evidence["route"] == "/api/server-info/ping"
    assert code == 1
    strict, _ = run_json(
        ["--server-url", fake_immich_server.url, "--only", "IC-SV-402", "--strict", "--no-save"],
        capsys,
    )
    assert strict == 2  # --strict: warnings fail


@pytest.mark.parametrize(
    ("mode", "status", "text"),
    [
        ("500", Status.FAIL, "/api/server/ping answered HTTP 500"),
        ("garbage", Status.FAIL, 'not {"res":"pong"}'),
        ("hang", Status.ERROR, "within 0.5 s"),
    ],
)
def test_broken_server(
    fake_immich_server: Any,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    status: Status,
    text: str,
) -> None:
    fake_immich_server.fail_mode = mode
    args = [
        "--server-url",
        fake_immich_server.url,
        "--only",
        "server",
        "--timeout",
        "0.5",
        "--no-save",
    ]
    code, record = run_json(args, capsys)
    assert statuses(record)["IC-SV-401"] == status
    assert text in message(record, "IC-SV-401")
    assert statuses(record)["IC-SV-402"] == Status.SKIP
    assert code == (2 if status == Status.FAIL else 3)


@pytest.mark.parametrize(
    ("mode", "text"),
    [("500", "/ping answered HTTP 500"), ("garbage", "not 'pong'")],
)
def test_broken_ml_service(
    fake_ml_service: Any, capsys: pytest.CaptureFixture[str], mode: str, text: str
) -> None:
    fake_ml_service.fail_mode = mode
    code, record = run_json(["--ml-url", fake_ml_service.url, "--only", "ml", "--no-save"], capsys)
    assert statuses(record) == {
        "IC-ML-301": Status.FAIL,
        "IC-ML-302": Status.SKIP,
        "IC-ML-303": Status.SKIP,
        "IC-ML-304": Status.SKIP,  # no --api-key: the server's ML settings are unknown
        "IC-ML-305": Status.SKIP,
    }
    assert text in message(record, "IC-ML-301")
    assert code == 2


def test_ml_garbage_prediction_fails(
    fake_ml_service: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    code, record = run_json(
        [
            "--ml-url",
            fake_ml_service.url,
            "--only",
            "ml",
            "--clip-model",
            "ViT-L-14__openai",
            "--no-save",
        ],
        capsys,
    )
    # The fake answers 512 values whatever the model; a ViT-L model must give 768.
    assert statuses(record)["IC-ML-302"] == Status.FAIL
    assert message(record, "IC-ML-302") == "embedding has 512 values, expected 768"
    assert code == 2


def test_cold_model_warns_and_no_inference_skips(
    fake_ml_service: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_ml_service.cold_start = 0.4
    args = ["--ml-url", fake_ml_service.url, "--only", "ml", "--slow-inference", "0.3", "--no-save"]
    code, record = run_json(args, capsys)
    assert statuses(record)["IC-ML-303"] == Status.WARN
    assert "cold model" in message(record, "IC-ML-303")
    assert code == 1
    code, record = run_json([*args, "--no-inference"], capsys)
    assert statuses(record) == {
        "IC-ML-301": Status.PASS,
        "IC-ML-302": Status.SKIP,
        "IC-ML-303": Status.SKIP,
        "IC-ML-304": Status.SKIP,
        "IC-ML-305": Status.SKIP,
    }
    assert message(record, "IC-ML-302") == "skipped: inference disabled with --no-inference"
    assert code == 0


def test_wait_rechecks_until_the_service_recovers(
    fake_ml_service: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_ml_service.fail_mode = "500"
    timer = threading.Timer(1.0, setattr, (fake_ml_service, "fail_mode", None))
    timer.start()
    try:
        code, record = run_json(
            ["--ml-url", fake_ml_service.url, "--only", "IC-ML-301", "--wait", "10s", "--no-save"],
            capsys,
        )
    finally:
        timer.cancel()
    assert code == 0
    assert record.settings["attempts"] >= 2


def test_wait_gives_up_when_time_is_over(
    fake_ml_service: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_ml_service.fail_mode = "500"
    code, record = run_json(
        ["--ml-url", fake_ml_service.url, "--only", "IC-ML-301", "--wait", "1s", "--no-save"],
        capsys,
    )
    assert code == 2
    assert statuses(record)["IC-ML-301"] == Status.FAIL


def test_storage_without_markers_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for folder in MEDIA_FOLDERS:
        (tmp_path / folder).mkdir()
    (tmp_path / "library" / ".immich").write_text("1")
    _code, record = run_json(
        ["--media-path", str(tmp_path), "--only", "IC-ST-504", "--no-save"], capsys
    )
    assert statuses(record)["IC-ST-504"] == Status.FAIL
    assert (
        message(record, "IC-ST-504")
        == ".immich marker missing in upload, thumbs, encoded-video, profile, backups"
    )
    _code, record = run_json(
        [
            "--media-path",
            str(tmp_path),
            "--only",
            "IC-ST-502",
            "--min-free-media",
            "1000TB",
            "--no-save",
        ],
        capsys,
    )
    assert statuses(record)["IC-ST-502"] == Status.FAIL
    assert "(minimum 1e+06 GB)" in message(record, "IC-ST-502")


@pytest.fixture
def no_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield tmp_path


def test_nothing_to_check_fails_fast_with_one_line(
    no_kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(["--no-save"], capsys)
    assert code == 3
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("immichcheck: error: nothing to check: no kubeconfig found")


def test_malformed_kubeconfig_is_one_line(
    no_kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = no_kubeconfig / "config"
    config.write_text("apiVersion: v1\nclusters: [\n")
    code, _out, err = run_cli(["--kubeconfig", str(config), "--no-save"], capsys)
    assert code == 3
    assert err == f"immichcheck: error: kubeconfig {config} is not valid YAML (line 3)\n"


def test_unreachable_api_server_is_error(
    no_kubeconfig: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = no_kubeconfig / "config"
    config.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": f"http://127.0.0.1:{closed_port()}"}}
                ],
                "users": [{"name": "u", "user": {"token": "SecretTokenValue123"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    code, record = run_json(["--kubeconfig", str(config), "--only", "cluster", "--no-save"], capsys)
    first = record.checks[0]
    assert (first.code, first.status) == ("IC-CL-001", Status.ERROR)
    assert "cannot connect to the Kubernetes API" in first.message
    assert {c.status for c in record.checks[1:]} == {Status.SKIP}
    assert code == 3


def test_bad_dump_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dump = tmp_path / "dump.json"
    dump.write_text("NAME READY STATUS\n")
    code, _out, err = run_cli(["--from-dump", str(dump), "--no-save"], capsys)
    assert code == 3
    assert (
        err
        == f"immichcheck: error: dump {dump} is not JSON (line 1): use `kubectl get ... -o json`\n"
    )


def test_list_prints_the_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run_cli(["--list"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(load_catalogue())
    assert lines[0].split()[:3] == ["IC-CL-001", "cluster", "FAIL"]
    assert any(line.startswith("IC-RD-205  redis") for line in lines)

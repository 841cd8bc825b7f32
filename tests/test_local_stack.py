"""The throwaway servers: configured like the manifests, reachable, and always removed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis

from immichcheck.bench.local_servers import binaries as local_stack
from immichcheck.bench.local_servers.errors import LocalStackError
from immichcheck.bench.local_servers.postgres_server import LocalPostgres
from immichcheck.bench.local_servers.redis_server import LocalRedis
from immichcheck.bench.local_servers.server_settings import ServerSettings
from immichcheck.bench.local_servers.service_user import check_data_dir, service_user
from immichcheck.bench.local_servers.stack import LocalStack
from immichcheck.bench.local_servers.stale_stacks import sweep_stale_stacks
from tests.fixtures.databases import RedisFactory


@pytest.fixture
def open_tmp() -> Iterator[Path]:
    """A temporary folder the unprivileged server user can enter (pytest's own is 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="immichcheck-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def test_postgres_server_takes_password_auth_and_manifest_settings(
    postgres_server: LocalPostgres,
) -> None:
    conn = await asyncpg.connect(postgres_server.dsn, timeout=10)
    try:
        assert await conn.fetchval("SHOW random_page_cost") == "1.1"
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        assert await conn.fetchval("SELECT current_database()") == postgres_server.database
    finally:
        await conn.close()
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            host=postgres_server.host,
            port=postgres_server.port,
            user=postgres_server.user,
            password="wrong",
            database=postgres_server.database,
            timeout=10,
        )
    assert postgres_server.version.startswith("15")


def test_postgres_runs_unprivileged(postgres_server: LocalPostgres) -> None:
    process = psutil.Process(postgres_server.server.pid)
    if os.geteuid() == 0:
        assert process.uids().real != 0
    assert str(postgres_server.data_dir).startswith(str(Path(postgres_server.data_dir).parent))


async def test_vector_postgres_has_pgvector(vector_postgres_server: LocalPostgres) -> None:
    conn = await asyncpg.connect(vector_postgres_server.dsn, timeout=10)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        distance = await conn.fetchval("SELECT '[1,0]'::vector <=> '[0,1]'::vector")
        assert distance == pytest.approx(1.0)
    finally:
        await conn.close()


def test_redis_server_is_configured_like_the_manifests(redis_server: LocalRedis) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5, decode_responses=True)
    try:
        config = client.config_get("*")
        assert config["appendonly"] == "yes"
        assert config["appendfsync"] == "everysec"
        assert config["maxmemory"] == str(400 * 1024 * 1024)
        assert config["maxmemory-policy"] == "noeviction"
        assert Path(config["dir"]) == redis_server.data_dir
        assert config["bind"] == "127.0.0.1"
    finally:
        client.close()


def test_redis_factory_overrides_settings(redis_factory: RedisFactory) -> None:
    server = redis_factory(maxmemory_policy="allkeys-lru", appendonly="no")
    client = redis.Redis.from_url(server.url, socket_timeout=5, decode_responses=True)
    try:
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
        assert client.config_get("appendonly")["appendonly"] == "no"
    finally:
        client.close()


def test_stack_close_stops_servers_and_removes_folder(open_tmp: Path) -> None:
    parent = open_tmp / "data"
    parent.mkdir()
    with LocalStack(parent) as stack:
        server = stack.start_redis()
        pid = server.server.pid
        folder = stack.folder
        assert folder is not None and folder.parent == parent
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not folder.exists()
    assert list(parent.iterdir()) == []


def test_stale_stack_of_a_killed_process_is_swept(open_tmp: Path) -> None:
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from immichcheck.bench.local_servers.stack import LocalStack\n"
        "stack = LocalStack(Path(sys.argv[1])).open()\n"
        "redis = stack.start_redis()\n"
        "print(stack.folder, redis.server.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(open_tmp)], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    folder_text, pid_text = child.stdout.readline().split()
    child.send_signal(signal.SIGKILL)  # no cleanup code can run: the next run must sweep
    child.wait(timeout=10)
    redis_pid = int(pid_text)
    assert psutil.pid_exists(redis_pid)
    removed = sweep_stale_stacks(open_tmp)
    assert removed == [Path(folder_text)]
    assert not Path(folder_text).exists()
    deadline = time.monotonic() + 5
    while psutil.pid_exists(redis_pid) and time.monotonic() < deadline:
        if psutil.Process(redis_pid).status() == psutil.STATUS_ZOMBIE:
            break
        time.sleep(0.05)
    assert not psutil.pid_exists(redis_pid) or (
        psutil.Process(redis_pid).status() == psutil.STATUS_ZOMBIE
    )


def test_data_dir_problems_are_one_clear_line(open_tmp: Path) -> None:
    user = service_user()
    with pytest.raises(LocalStackError, match="does not exist"):
        check_data_dir(open_tmp / "missing", user)
    with pytest.raises(LocalStackError, match="not writable"):
        check_data_dir(Path("/sys"), user)
    if os.geteuid() == 0:
        private = open_tmp / "private"
        inner = private / "inner"
        inner.mkdir(parents=True)
        private.chmod(0o700)
        with pytest.raises(LocalStackError, match="chmod o\\+x"):
            check_data_dir(inner, user)


def test_missing_binaries_name_the_apt_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(local_stack, "POSTGRES_SEARCH_ROOT", tmp_path / "none")
    with pytest.raises(LocalStackError, match="apt-get install redis-server"):
        local_stack.find_redis_server()
    with pytest.raises(LocalStackError, match="apt-get install postgresql"):
        local_stack.find_postgres()


def test_unsupported_settings_are_dropped_and_reported(open_tmp: Path) -> None:
    settings = ServerSettings(
        postgres={
            "random_page_cost": "1.1",
            "shared_preload_libraries": "vchord.so",
            "not_a_real_setting": "1",
            "listen_addresses": "*",
        },
        redis={"maxmemory": "400mb", "not-a-directive": "yes"},
        database="immich",
        source="test",
    )
    with LocalStack(open_tmp, settings=settings) as stack:
        postgres = stack.start_postgres()
        redis_server = stack.start_redis()
        assert "listen_addresses" in postgres.dropped_settings
        assert "not_a_real_setting" in postgres.dropped_settings
        assert any(key.startswith("shared_preload_libraries") for key in postgres.dropped_settings)
        assert "not-a-directive" in redis_server.dropped_settings

"""Redis benchmark: real numbers, and Immich's queues untouched whatever happens."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator

import pytest
import redis

from immichcheck.bench.load.engine import saturation_note
from immichcheck.bench.load.postgres_wire import PgReplyCounter
from immichcheck.bench.load.resp_wire import RespReplyCounter
from immichcheck.bench.local_servers.stack import LocalRedis
from immichcheck.bench.suites import redis as redis_bench
from immichcheck.bench.suites.redis_control import KEY_PREFIX, RedisBenchError, RedisTarget
from immichcheck.bench.suites.redis_memory_headroom import check_memory_headroom
from tests.fixtures.databases import RedisFactory, bench_context


def _client(server: LocalRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=10)


@pytest.fixture
def immich_queues(redis_server: LocalRedis) -> Iterator[redis.Redis]:
    """Fake BullMQ queues the way Immich keeps them (immich_bull:<queue>:...)."""
    client = _client(redis_server)
    for queue in ("thumbnailGeneration", "metadataExtraction"):
        base = f"immich_bull:{queue}:"
        client.hset(base + "meta", mapping={"opts.maxLenEvents": "10000", "version": "bullmq:5"})
        client.set(base + "id", "42")
        for job in range(1, 21):
            client.hset(
                base + str(job),
                mapping={"name": queue, "data": f'{{"id":"asset-{job}"}}', "timestamp": "1"},
            )
            client.lpush(base + "wait", str(job))
        client.lpush(base + "active", "99")
        client.xadd(base + "events", {"event": "added", "jobId": "20"})
        client.zadd(base + "completed", {"7": 1.0})
    yield client
    for key in client.scan_iter("immich_bull:*"):
        client.delete(key)
    client.close()


def queue_fingerprint(client: redis.Redis) -> tuple[int, str]:
    """Number of immich_bull keys and a checksum over their DUMPed values."""
    digest = hashlib.sha256()
    keys = sorted(client.scan_iter("immich_bull:*"))
    for key in keys:
        digest.update(key)
        digest.update(client.dump(key) or b"")
    return len(keys), digest.hexdigest()


def bench_keys(client: redis.Redis) -> list[bytes]:
    """Keys our benchmark would have left behind."""
    return list(client.scan_iter(KEY_PREFIX + "*"))


@pytest.mark.slow
async def test_benchmark_measures_and_keeps_immich_queues(
    redis_server: LocalRedis, immich_queues: redis.Redis
) -> None:
    before = queue_fingerprint(immich_queues)
    # A key under our prefix left by a killed run: the next run removes it.
    immich_queues.rpush(KEY_PREFIX + "list", b"left over by a killed run")
    ctx = bench_context(redis_url=redis_server.url)
    results = await redis_bench.SUITE.run(ctx)
    workloads = {(r.workload, r.parameters.get("pipeline")) for r in results}
    assert {("redis.set", 1), ("redis.set", 4), ("redis.lpush", 4), ("redis.get", 1)} <= workloads
    assert {"redis.bullmq.enqueue", "redis.bullmq.dequeue"} <= {r.workload for r in results}
    assert not any(r.workload == "redis.set.aof" for r in results)  # remote: no CONFIG SET
    for result in results:
        assert result.count > 0 and result.errors == 0, result
        assert result.throughput > 0 and 0 < result.p50 <= result.p99 <= result.max
        assert result.histogram
        assert "aof_delayed_fsync_delta" in result.facts["aof"]
    assert ctx.service_versions["redis"].startswith("7")
    assert queue_fingerprint(immich_queues) == before
    assert bench_keys(immich_queues) == []


async def test_interrupted_benchmark_cleans_up(
    redis_server: LocalRedis, immich_queues: redis.Redis
) -> None:
    before = queue_fingerprint(immich_queues)
    task = asyncio.create_task(redis_bench.SUITE.run(bench_context(redis_url=redis_server.url)))
    await asyncio.sleep(0.8)  # mid-run: workers are writing
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert queue_fingerprint(immich_queues) == before
    assert bench_keys(immich_queues) == []


async def test_failed_benchmark_cleans_up(
    redis_server: LocalRedis, immich_queues: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = queue_fingerprint(immich_queues)
    real_snapshot = redis_bench.aof_snapshot
    calls = {"n": 0}

    def failing_snapshot(control: redis_bench.RedisControl) -> dict[str, object]:
        calls["n"] += 1
        if calls["n"] == 4:  # after SET and LPUSH have written keys
            raise RedisBenchError("injected failure")
        return real_snapshot(control)

    monkeypatch.setattr(redis_bench, "aof_snapshot", failing_snapshot)
    with pytest.raises(RedisBenchError, match="injected failure"):
        await redis_bench.SUITE.run(bench_context(redis_url=redis_server.url))
    assert queue_fingerprint(immich_queues) == before
    assert bench_keys(immich_queues) == []


async def test_refuses_when_footprint_could_cause_oom(redis_factory: RedisFactory) -> None:
    server = redis_factory(maxmemory="3mb")
    client = _client(server)
    client.set("immich_bull:thumbnailGeneration:id", "1")
    with pytest.raises(RedisBenchError, match=r"refusing to write to Redis .* OOM errors"):
        await redis_bench.SUITE.run(bench_context(redis_url=server.url))
    assert client.keys("*") == [b"immich_bull:thumbnailGeneration:id"]
    client.close()


def test_headroom_message_names_numbers_and_policy() -> None:
    memory = {
        "used_memory": str(300 * 2**20),
        "maxmemory": str(400 * 2**20),
        "maxmemory_policy": "allkeys-lru",
    }
    with pytest.raises(RedisBenchError) as info:
        check_memory_headroom(memory, 50 * 2**20, "host:6379/0")
    message = info.value.message
    assert "used 300.0 MiB + benchmark up to 50.0 MiB = 350.0 MiB, 88% of maxmemory 400 MiB" in (
        message
    )
    assert "allkeys-lru would evict keys" in message
    assert check_memory_headroom(memory | {"used_memory": "0"}, 2**20, "x").startswith(
        "memory headroom: used 0.0 MiB + up to 1.0 MiB of maxmemory 400 MiB"
    )


@pytest.mark.slow
async def test_local_mode_measures_aof_modes_and_restores_config(
    redis_factory: RedisFactory,
) -> None:
    server = redis_factory()
    ctx = bench_context(redis_url=server.url, local=True)
    results = await redis_bench.SUITE.run(ctx)
    aof = [r for r in results if r.workload == "redis.set.aof"]
    assert [r.parameters["aof"] for r in aof] == ["no", "everysec", "always"]
    assert [r.facts["aof"]["appendonly"] for r in aof] == ["no", "yes", "yes"]
    assert aof[2].facts["aof"]["appendfsync"] == "always"
    client = _client(server)
    assert client.config_get("appendonly")["appendonly"] == "yes"
    assert client.config_get("appendfsync")["appendfsync"] == "everysec"
    client.close()


def test_resp_counter_handles_split_bulk_and_error_replies() -> None:
    counter = RespReplyCounter()
    assert counter.feed(b"+OK\r\n:12\r\n") == 2
    assert counter.feed(b"$5\r\nhel") == 0
    assert counter.feed(b"lo\r\n$-1\r\n*2\r\n:1\r\n$1\r\n") == 2
    assert counter.feed(b"x\r\n-OOM command not allowed\r\n") == 2
    assert counter.errors == ["OOM command not allowed"]


def test_pg_counter_counts_ready_for_query_and_errors() -> None:
    counter = PgReplyCounter()
    ready = b"Z\x00\x00\x00\x05I"
    body = b"C57014\x00Mboom\x00\x00"
    error = b"E" + (4 + len(body)).to_bytes(4, "big") + body
    stream = b"2\x00\x00\x00\x04" + ready + error + ready
    assert counter.feed(stream[:7]) == 0
    assert counter.feed(stream[7:]) == 2
    assert counter.errors == ["57014 boom"]


def test_redis_url_parsing() -> None:
    target = RedisTarget.from_url("redis://:s3cret@10.0.0.5:6380/2")
    assert (target.host, target.port, target.password, target.db) == ("10.0.0.5", 6380, "s3cret", 2)
    assert "s3cret" not in target.location
    with pytest.raises(RedisBenchError, match="TLS"):
        RedisTarget.from_url("rediss://host")


def test_saturation_note_only_when_a_core_is_nearly_full() -> None:
    assert saturation_note(0.5, 1.0) is None
    note = saturation_note(1.9, 2.0, "a load worker")
    assert note is not None and note.startswith("a load worker used 95% of a core")

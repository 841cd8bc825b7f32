"""Redis probes (redis-py asyncio): PING, INFO, CONFIG and Immich's BullMQ queue keys."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from immichcheck.clients import ProbeError, bounded
from immichcheck.clients.immich_queues import BULL_PREFIX, QUEUE_NAMES

# BullMQ's key types: wait/active/paused are lists, the others sorted sets. Reading each with
# the matching command (LLEN vs ZCARD) is what the README's `LLEN immich:jobs:active` got wrong.
LIST_STATES: tuple[str, ...] = ("wait", "active", "paused")
ZSET_STATES: tuple[str, ...] = ("failed", "completed", "delayed", "prioritized", "waiting-children")


def redis_location(url: str) -> str:
    """host:port/db of a Redis URL, without the password, for messages."""
    try:
        parts = urlsplit(url)
        db = parts.path.lstrip("/") or "0"
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}/{db}"
    except ValueError:
        return "the given Redis URL"


def describe_redis_exception(exc: BaseException, url: str) -> str:
    """One clean line for a Redis failure (never the password)."""
    import redis.exceptions as errors

    where = redis_location(url)
    if isinstance(exc, errors.AuthenticationError | errors.AuthenticationWrongNumberOfArgsError):
        return f"authentication failed at {where}: {exc}"
    if isinstance(exc, errors.ResponseError) and "NOAUTH" in str(exc):
        return f"Redis at {where} needs a password (put it in --redis-url)"
    if isinstance(exc, errors.TimeoutError | TimeoutError | asyncio.TimeoutError):
        return f"no answer from Redis at {where} in time"
    if isinstance(exc, errors.ConnectionError):
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ConnectionRefusedError) or "refused" in str(exc).lower():
            return f"connection refused at {where}"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host of {where}"
        return f"cannot connect to Redis at {where}: {exc}"
    if isinstance(exc, errors.InvalidResponse | UnicodeDecodeError):
        # The exception quotes the raw bytes it choked on: a screenful of noise, not a reason.
        return f"{where} does not answer in the Redis protocol (is that the Redis port?)"
    if isinstance(exc, errors.RedisError):
        return f"Redis error at {where}: {exc}"
    return f"{type(exc).__name__} talking to Redis at {where}: {exc}"


async def probe_redis(url: str, timeout: float) -> dict[str, Any]:
    """verify's Redis probe: `redis_facts` within `timeout`, with where it was measured."""
    location = redis_location(url)
    facts = await bounded(redis_facts(url, timeout), timeout, location)
    facts["location"] = location
    return facts


async def redis_facts(
    url: str, timeout: float, queues: Sequence[str] = QUEUE_NAMES
) -> dict[str, Any]:
    """PING time, persistence and memory INFO, policy CONFIG and per-queue BullMQ counts."""
    import time

    import redis.asyncio as redis_asyncio

    try:
        client = redis_asyncio.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
        )
    except ValueError as exc:
        raise ProbeError(f"invalid Redis URL {redis_location(url)}: {exc}") from exc
    try:
        started = time.perf_counter()
        pong = await client.ping()
        ping_seconds = time.perf_counter() - started
        info = await client.info()
        config = await _config(client)
        queue_counts = await _queue_counts(client, queues)
    except Exception as exc:
        raise ProbeError(describe_redis_exception(exc, url)) from exc
    finally:
        await client.aclose()
    return {
        "ping": bool(pong),
        "ping_seconds": ping_seconds,
        "version": str(info.get("redis_version", "")),
        "server_name": str(info.get("server_name", "redis")),
        "aof_enabled": int(info.get("aof_enabled", 0)) == 1,
        "aof_last_write_status": str(info.get("aof_last_write_status", "")),
        "aof_last_bgrewrite_status": str(info.get("aof_last_bgrewrite_status", "")),
        "aof_rewrite_in_progress": int(info.get("aof_rewrite_in_progress", 0)) == 1,
        "used_memory": int(info.get("used_memory", 0)),
        "maxmemory": int(info.get("maxmemory", 0)),
        "maxmemory_policy": str(info.get("maxmemory_policy", config.get("maxmemory-policy", ""))),
        "evicted_keys": int(info.get("evicted_keys", 0)),
        "config": config,
        "queues": queue_counts,
    }


async def _config(client: Any) -> dict[str, str]:
    """CONFIG GET of the settings verify compares; {} when CONFIG is renamed or forbidden."""
    import redis.exceptions as errors

    result: dict[str, str] = {}
    for name in ("maxmemory", "maxmemory-policy", "appendonly", "appendfsync"):
        try:
            result.update({str(k): str(v) for k, v in (await client.config_get(name)).items()})
        except errors.ResponseError:  # managed Redis often disables CONFIG; INFO still answers
            continue
    return result


async def _queue_counts(client: Any, queues: Sequence[str]) -> dict[str, dict[str, int]]:
    """Jobs per state for each known queue, in one pipeline of direct key reads (never KEYS)."""
    pipe = client.pipeline(transaction=False)
    layout: list[tuple[str, str]] = []
    for queue in queues:
        for state in LIST_STATES:
            pipe.llen(f"{BULL_PREFIX}:{queue}:{state}")
            layout.append((queue, state))
        for state in ZSET_STATES:
            pipe.zcard(f"{BULL_PREFIX}:{queue}:{state}")
            layout.append((queue, state))
        pipe.exists(f"{BULL_PREFIX}:{queue}:meta")
        layout.append((queue, "meta"))
    replies = await pipe.execute(raise_on_error=False)
    counts: dict[str, dict[str, int]] = {}
    for (queue, state), reply in zip(layout, replies, strict=True):
        # WRONGTYPE (a key of an unexpected type) counts as unknown rather than failing all.
        value = int(reply) if isinstance(reply, int) else -1
        counts.setdefault(queue, {})[state] = value
    return counts

"""Where the Redis under test is, and the redis-py connection for the suite's control
commands (INFO, CONFIG, SCRIPT LOAD, key scans, cleanup): the few calls where the client's
speed does not matter. The measured load goes through `bench/load/` instead."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.exceptions

from immichcheck.bench.load.resp_wire import encode_command
from immichcheck.common.errors import ImmichcheckError

KEY_PREFIX = "immichcheck:bench:"
CONTROL_TIMEOUT = 10.0
UNLINK_BATCH = 500


class RedisBenchError(ImmichcheckError):
    """The Redis benchmark cannot run safely (memory, connection, refused config)."""


@dataclass(frozen=True)
class RedisTarget:
    """Where the Redis under test is: parsed from a redis:// URL."""

    host: str
    port: int
    password: str | None
    username: str | None
    db: int

    @classmethod
    def from_url(cls, url: str) -> RedisTarget:
        """Parse redis://[user:password@]host[:port][/db]; rediss:// is not supported."""
        try:
            parts = urlsplit(url)
            port = parts.port or 6379
        except ValueError as exc:
            raise RedisBenchError(f"bad --redis-url: {exc}") from exc
        if parts.scheme != "redis" or not parts.hostname:
            raise RedisBenchError(
                "bad --redis-url: expected redis://[:password@]host[:port][/db]"
                + (" (TLS rediss:// is not supported)" if parts.scheme == "rediss" else "")
            )
        db_text = parts.path.lstrip("/") or "0"
        if not db_text.isdigit():
            raise RedisBenchError(f"bad --redis-url: database {db_text!r} is not a number")
        return cls(
            host=parts.hostname,
            port=port,
            password=unquote(parts.password) if parts.password else None,
            username=unquote(parts.username) if parts.username else None,
            db=int(db_text),
        )

    @property
    def location(self) -> str:
        """host:port/db, without credentials."""
        return f"{self.host}:{self.port}/{self.db}"

    def handshake(self) -> tuple[bytes, int]:
        """AUTH/SELECT commands every load connection sends first, and their reply count."""
        commands = b""
        replies = 0
        if self.password is not None:
            auth = (
                ("AUTH", self.username, self.password) if self.username else ("AUTH", self.password)
            )
            commands += encode_command(*auth)
            replies += 1
        if self.db:
            commands += encode_command("SELECT", self.db)
            replies += 1
        return commands, replies


class RedisControl:
    """One blocking redis-py connection for the suite's control commands."""

    def __init__(self, target: RedisTarget, timeout: float = CONTROL_TIMEOUT) -> None:
        self.target = target
        # A user name without a password sends no AUTH, as the load connections do.
        self.client = redis.Redis(
            host=target.host,
            port=target.port,
            db=target.db,
            username=target.username if target.password is not None else None,
            password=target.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
        )
        try:
            self.client.ping()  # connects, authenticates and selects the database
        except redis.exceptions.ConnectionError as exc:
            self.close()
            # redis-py's AuthenticationError is a ConnectionError: the server answered "no".
            if isinstance(exc, redis.exceptions.AuthenticationError):
                raise RedisBenchError(f"Redis at {target.location} refused us: {exc}") from exc
            raise RedisBenchError(f"cannot connect to Redis at {target.location}: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            self.close()
            raise RedisBenchError(f"Redis at {target.location} refused us: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            self.client.close()

    def __enter__(self) -> RedisControl:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def call(self, *args: str | bytes | int) -> Any:
        """Send one command and return its reply (text decoded)."""
        try:
            return self.client.execute_command(*args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise RedisBenchError(
                f"Redis at {self.target.location} stopped answering: {exc}"
            ) from exc

    def info(self, section: str) -> dict[str, str]:
        """One INFO section, every value as the text INFO printed."""
        return {key: str(value) for key, value in self.call("INFO", section).items()}

    def config_get(self, name: str) -> str | None:
        """One CONFIG GET value (None when the server hides CONFIG, e.g. renamed)."""
        try:
            reply = self.call("CONFIG", "GET", name)
        except redis.exceptions.ResponseError:
            return None
        value = reply.get(name) if isinstance(reply, dict) else None
        return None if value is None else str(value)

    def remove_bench_keys(self) -> int:
        """UNLINK every key under our prefix (SCAN, never KEYS); nothing else is deleted."""
        try:
            keys = [k for k in self.client.scan_iter(match=KEY_PREFIX + "*", count=1000)]
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise RedisBenchError(
                f"Redis at {self.target.location} stopped answering: {exc}"
            ) from exc
        removed = 0
        for start in range(0, len(keys), UNLINK_BATCH):
            batch = [k for k in keys[start : start + UNLINK_BATCH] if k.startswith(KEY_PREFIX)]
            if batch:
                removed += int(self.call("UNLINK", *batch))
        return removed

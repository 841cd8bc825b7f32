"""Probes: all of immichcheck's network and filesystem I/O, each returning plain data.

Only modules in this package import asyncpg, redis, httpx or kr8s, and they import them
inside functions so that `immichcheck --help` stays fast. A probe either returns its facts
(plain JSON-like data), raises `ProbeError` with one clean line when it could not run, or
raises `ProbeSkipped` when it does not apply (nothing to reach it with).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class ProbeError(Exception):
    """The probe could not run (refused, timed out, bad credentials); the message says why."""


class ProbeSkipped(Exception):
    """The probe does not apply to this run (e.g. no URL and not in the cluster)."""


async def bounded(awaitable: Awaitable[T], seconds: float, where: str) -> T:
    """A probe's own timeout, counted once its target is known, as a ProbeError naming `where`."""
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError as exc:
        raise ProbeError(f"no answer from {where} within {seconds:g} s") from exc

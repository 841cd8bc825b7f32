"""Probes: all of immichcheck's network and filesystem I/O, each returning plain data.

Only modules in this package import asyncpg, redis, httpx or kr8s, and they import them
inside functions so that `immichcheck --help` stays fast. A probe either returns its facts
(plain JSON-like data), raises `ProbeError` with one clean line when it could not run, or
raises `ProbeSkipped` when it does not apply (nothing to reach it with).
"""

from __future__ import annotations


class ProbeError(Exception):
    """The probe could not run (refused, timed out, bad credentials); the message says why."""


class ProbeSkipped(Exception):
    """The probe does not apply to this run (e.g. no URL and not in the cluster)."""

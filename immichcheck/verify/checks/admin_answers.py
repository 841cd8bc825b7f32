"""How an admin-API answer that cannot be used becomes a verdict: SKIP on an older server
(404: the endpoint did not exist yet), ERROR when the key is refused or lacks a permission."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from immichcheck.clients.immich_admin import answer_problem
from immichcheck.verify.checks import Verdict, errored, skipped


def unusable(answer: Mapping[str, Any], path: str, target: str) -> Verdict | None:
    """None when the answer is a 200; otherwise the SKIP or ERROR verdict that says why."""
    problem = answer_problem(answer, path)
    if not problem:
        return None
    if answer["status"] == 404:
        return skipped(f"skipped: {problem}", target)
    return errored(f"could not run: {problem}", target)


def config_section(answer: Mapping[str, Any], *keys: str) -> Any:
    """A nested section of a /api/system-config answer (None when absent)."""
    value: Any = answer.get("json")
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    return value

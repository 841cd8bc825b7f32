"""verify as JSON: exactly the run record that is stored (schema_version included)."""

from __future__ import annotations

from immichcheck.common.records import RunRecord


def render_verify_json(run: RunRecord) -> str:
    """The run record as indented JSON text."""
    return run.to_json(indent=2) + "\n"

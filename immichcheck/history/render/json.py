"""The report as JSON: every field of the report data, keys sorted, for tools and diffs."""

from __future__ import annotations

import json

from immichcheck.history.report_model import Report


def render_json(report: Report) -> str:
    """Indented JSON of the whole report, base units, stable key order."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, allow_nan=False) + "\n"

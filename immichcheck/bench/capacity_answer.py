"""The capacity answer at the end of an ML or upload bench run: library facts, one paragraph.

With `--server-url` and an admin `--api-key`, the server's library size and job settings are
read once and stored in the run (`settings.library_facts`), so `report` and `export` can
answer later without the server. A refused or failed read is stored as a sentence instead:
the bench run itself never fails for it.
"""

from __future__ import annotations

import dataclasses

from immichcheck.clients import ProbeError
from immichcheck.clients.immich_library import read_library_facts
from immichcheck.common.records import RunRecord, utc_now
from immichcheck.common.redaction import redact
from immichcheck.history.capacity import (
    FACTS_SETTING,
    capacity_paragraph,
    estimate_capacity,
    inputs_from_runs,
)

FACTS_TIMEOUT_SECONDS = 10.0


def measures_capacity(record: RunRecord) -> bool:
    """Whether the run holds ML or upload results, the pieces a capacity estimate uses."""
    return any(b.workload.startswith(("ml.", "upload.")) for b in record.benchmarks)


def with_library_facts(record: RunRecord, server_url: str | None, api_key: str | None) -> RunRecord:
    """The run with the server's library size and job settings stored, when a key was given."""
    if not (server_url and api_key) or not measures_capacity(record):
        return record
    try:
        facts = read_library_facts(server_url, api_key, FACTS_TIMEOUT_SECONDS)
    except ProbeError as exc:
        facts = {"server": server_url, "statistics_problem": str(exc), "settings_problem": str(exc)}
    facts["read_at"] = utc_now().isoformat(timespec="seconds")
    # A URL may carry a password, and an error text may quote the key: neither is stored.
    facts["server"] = redact(str(facts.get("server", "")), [api_key])
    for key in ("statistics_problem", "settings_problem"):
        if key in facts:
            facts[key] = redact(str(facts[key]), [api_key])
    return dataclasses.replace(record, settings={**record.settings, FACTS_SETTING: facts})


def capacity_answer(
    record: RunRecord,
    *,
    assets: int | None = None,
    library_bytes: int | None = None,
    faces_per_photo: float | None = None,
    width: int = 100,
) -> str:
    """One paragraph: how long this node takes for the library ('' without ML/upload results)."""
    if not measures_capacity(record):
        return ""
    inputs = inputs_from_runs(
        [record], assets=assets, library_bytes=library_bytes, faces_per_photo=faces_per_photo
    )
    return capacity_paragraph(estimate_capacity([record], inputs), record.node, width)

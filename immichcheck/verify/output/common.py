"""Shared helpers for verify's formatters: grouping, counting, the one-line summary."""

from __future__ import annotations

from collections.abc import Sequence

from immichcheck.common.records import CheckResult, RunRecord, Status
from immichcheck.verify.checks import COMPONENTS

COMPONENT_ORDER = COMPONENTS  # the catalogue's order: cluster first, access last
COMPONENT_TITLES = {
    "cluster": "Cluster",
    "nodes": "Nodes that run Immich",
    "postgres": "PostgreSQL",
    "redis": "Redis",
    "ml": "Machine learning",
    "server": "Immich server",
    "storage": "Storage",
    "access": "Ways in (NodePort, ingress, external URL)",
}


def grouped(results: Sequence[CheckResult]) -> list[tuple[str, list[CheckResult]]]:
    """Results by component, components in pipeline order, results in catalogue order."""
    groups: dict[str, list[CheckResult]] = {}
    for result in results:
        groups.setdefault(result.component or "other", []).append(result)
    order = [c for c in COMPONENT_ORDER if c in groups] + sorted(set(groups) - set(COMPONENT_ORDER))
    return [(component, groups[component]) for component in order]


def counts(results: Sequence[CheckResult]) -> dict[Status, int]:
    """How many results have each status (every status present, zero included)."""
    tally = dict.fromkeys(Status, 0)
    for result in results:
        tally[result.status] += 1
    return tally


def summary_line(run: RunRecord) -> str:
    """'41 PASS, 2 WARN, 1 FAIL, 0 ERROR, 3 SKIP in 0.84 s' for the whole run."""
    tally = counts(run.checks)
    seconds = (run.finished_at - run.started_at).total_seconds()
    parts = ", ".join(
        f"{tally[s]} {s.value}"
        for s in (Status.PASS, Status.WARN, Status.FAIL, Status.ERROR, Status.SKIP)
    )
    return f"{parts} in {seconds:.2f} s"


def verdict_word(run: RunRecord) -> str:
    """Nagios state word for the run: OK, WARNING, CRITICAL or UNKNOWN (strict-aware)."""
    statuses = {r.status for r in run.checks}
    if Status.FAIL in statuses:
        return "CRITICAL"
    if Status.ERROR in statuses:
        return "UNKNOWN"
    if Status.WARN in statuses:
        return "CRITICAL" if run.settings.get("strict") else "WARNING"
    return "OK"

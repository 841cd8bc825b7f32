"""verify as a Nagios/Icinga plugin answer: status line, perfdata, then one line per problem."""

from __future__ import annotations

from immichcheck.common.records import RunRecord, Status
from immichcheck.verify.output.common import counts, verdict_word

_SHOWN_IN_STATUS_LINE = 3


def _shortened(text: str, limit: int = 80) -> str:
    """The status line is what pagers and dashboards show: the long output has the rest."""
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def render_verify_nagios(run: RunRecord) -> str:
    """`IMMICH WARNING - ... | perfdata` followed by the long output."""
    tally = counts(run.checks)
    problems = [r for r in run.checks if r.status in (Status.FAIL, Status.ERROR, Status.WARN)]
    order = {Status.FAIL: 0, Status.ERROR: 1, Status.WARN: 2}
    problems.sort(key=lambda r: order[r.status])
    seconds = (run.finished_at - run.started_at).total_seconds()
    if problems:
        head = "; ".join(
            f"{r.code} {_shortened(r.message)}" for r in problems[:_SHOWN_IN_STATUS_LINE]
        )
        more = (
            f" (+{len(problems) - _SHOWN_IN_STATUS_LINE} more)"
            if len(problems) > _SHOWN_IN_STATUS_LINE
            else ""
        )
        summary = (
            f"{tally[Status.FAIL]} FAIL, {tally[Status.ERROR]} ERROR, "
            f"{tally[Status.WARN]} WARN: {head}{more}"
        )
    else:
        summary = f"{tally[Status.PASS]} checks pass ({tally[Status.SKIP]} skipped)"
    # '|' separates perfdata in the plugin protocol, so it must not appear in the text.
    summary = summary.replace("|", "/").replace("\n", " ")
    perfdata = " ".join(
        [
            f"'{s.value.lower()}'={tally[s]};;;0"
            for s in (Status.PASS, Status.WARN, Status.FAIL, Status.ERROR, Status.SKIP)
        ]
        + [f"'duration'={seconds:.3f}s;;;0"]
    )
    lines = [f"IMMICH {verdict_word(run)} - {summary} | {perfdata}"]
    for result in problems:
        line = f"[{result.status.value}] {result.code} {result.title} ({result.target}): "
        lines.append((line + result.message).replace("|", "/"))
        if result.remediation:
            lines.append(f"    fix: {result.remediation}".replace("|", "/"))
    return "\n".join(lines) + "\n"

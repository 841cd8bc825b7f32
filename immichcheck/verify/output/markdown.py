"""verify as Markdown: a summary, then one table per component and the fixes for problems."""

from __future__ import annotations

from immichcheck.common.records import RunRecord, Status
from immichcheck.verify.output.common import (
    COMPONENT_TITLES,
    grouped,
    summary_line,
    verdict_word,
)

_ICONS = {
    Status.PASS: "PASS",
    Status.WARN: "WARN",
    Status.FAIL: "**FAIL**",
    Status.ERROR: "**ERROR**",
    Status.SKIP: "SKIP",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def render_verify_markdown(run: RunRecord) -> str:
    """The run as a Markdown document."""
    lines = [
        f"# immichcheck verify: {verdict_word(run)}",
        "",
        f"Run `{run.run_id}` at {run.started_at.isoformat(timespec='seconds')} "
        f"(immichcheck {run.tool_version}): {summary_line(run)}.",
    ]
    if run.service_versions:
        versions = ", ".join(f"{k} {v}" for k, v in sorted(run.service_versions.items()))
        lines += ["", f"Versions: {_cell(versions)}."]
    for component, results in grouped(run.checks):
        lines += [
            "",
            f"## {COMPONENT_TITLES.get(component, component)}",
            "",
            "| Status | Code | Check | Target | Result |",
            "|---|---|---|---|---|",
        ]
        for r in results:
            lines.append(
                f"| {_ICONS[r.status]} | {r.code} | {_cell(r.title)} | {_cell(r.target)} "
                f"| {_cell(r.message)} |"
            )
        fixes = [r for r in results if r.status not in (Status.PASS, Status.SKIP) and r.remediation]
        if fixes:
            lines.append("")
            seen: set[str] = set()
            for r in fixes:
                if r.code in seen:
                    continue
                seen.add(r.code)
                lines.append(f"- **{r.code}** {_cell(r.remediation)}")
    return "\n".join(lines) + "\n"

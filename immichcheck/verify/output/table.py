"""verify as a terminal table: grouped by component, remediation under each non-PASS.

Written with the standard library, not rich: on the path of every verify run, rich cost
~110 ms for 90 results (40 ms to import, 65-78 ms to lay out), a sixth of the whole run,
for a table whose every column width is known up front. Here it takes ~2 ms. bench and
report keep rich, where tables are small and progress bars need it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from immichcheck.common.records import CheckResult, RunRecord, Status
from immichcheck.common.terminal_width import output_width
from immichcheck.common.text_table import cell_len, wrap_cells
from immichcheck.verify.output.common import (
    COMPONENT_TITLES,
    grouped,
    summary_line,
    verdict_word,
)

# ANSI SGR parameters (bold red is "1;31"), used only when the CLI writes to a terminal.
STATUS_STYLES = {
    Status.PASS: "32",
    Status.WARN: "33",
    Status.FAIL: "1;31",
    Status.ERROR: "1;35",
    Status.SKIP: "2",
}
BOLD, ITALIC = "1", "3"
HEADERS = ("Status", "Code", "Check", "Target", "Result")
GAP = "  "


def render_verify_table(run: RunRecord, *, color: bool = False, width: int | None = None) -> str:
    """The run as text tables; ANSI colours only when `color` (the CLI passes isatty)."""
    if width is None:
        # A terminal gets its own width; files and pipes a fixed one, so output is stable.
        width = output_width(to_terminal=color)

    def styled(text: str, style: str) -> str:
        return f"\x1b[{style}m{text}\x1b[0m" if color and style and text else text

    lines: list[str] = []
    for component, results in grouped(run.checks):
        widths = column_widths(results, width)
        lines.append(styled(COMPONENT_TITLES.get(component, component), BOLD))
        lines.extend(_row(HEADERS, widths, (BOLD,) * len(HEADERS), styled))
        for result in results:
            cells = (result.status.value, result.code, result.title, result.target, result.message)
            status_style = (STATUS_STYLES[result.status], "", "", "", "")
            lines.extend(_row(cells, widths, status_style, styled))
            if result.status not in (Status.PASS, Status.SKIP) and result.remediation:
                fix = ("", "", "", "", f"-> {result.remediation}")
                lines.extend(_row(fix, widths, ("", "", "", "", ITALIC), styled))
        lines.append("")
    lines.append(styled(f"{verdict_word(run)}: {summary_line(run)}", BOLD))
    return "\n".join(lines) + "\n"


def _row(
    cells: Sequence[str],
    widths: Sequence[int],
    styles: Sequence[str],
    styled: Callable[[str, str], str],
) -> list[str]:
    """The screen lines of one table row: each cell wrapped to its column, padded, styled
    (`styles` has one SGR parameter string per column, "" for plain)."""
    wrapped = [wrap_cells(cell, column) for cell, column in zip(cells, widths, strict=True)]
    height = max(len(cell_lines) for cell_lines in wrapped)
    out = []
    for index in range(height):
        parts = []
        for cell_lines, cell_width, style in zip(wrapped, widths, styles, strict=True):
            text = cell_lines[index] if index < len(cell_lines) else ""
            parts.append(styled(text, style) + " " * (cell_width - cell_len(text)))
        out.append(GAP.join(parts).rstrip())
    return out


COLUMN_GAPS = len(GAP) * (len(HEADERS) - 1)
CHECK_CAP, TARGET_CAP = 34, 30


def column_widths(results: list[CheckResult], width: int) -> tuple[int, int, int, int, int]:
    """Status, Code, Check, Target and Result widths for a table `width` columns wide.

    Status and Code are never wrapped; Check and Target take their longest value up to a
    cap; Result gets the rest but at least a quarter of the width, Check and Target giving way
    (down to 10 each) on a narrow terminal.
    """
    status = max(len("Status"), *(len(r.status.value) for r in results))
    code = max(len("Code"), *(cell_len(r.code) for r in results))
    check = min(CHECK_CAP, max(len("Check"), *(cell_len(r.title) for r in results)))
    target = min(TARGET_CAP, max(len("Target"), *(cell_len(r.target) for r in results)))
    room = width - COLUMN_GAPS - status - code - max(20, width // 4)
    if check + target > room:
        scale = max(room, 20) / (check + target)
        check, target = max(10, int(check * scale)), max(10, int(target * scale))
    result = max(10, width - COLUMN_GAPS - status - code - check - target)
    return status, code, check, target, result

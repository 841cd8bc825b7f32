"""verify as a terminal table (rich): grouped by component, remediation under each non-PASS."""

from __future__ import annotations

import io
import shutil

from immichcheck.formatters.verify_common import (
    COMPONENT_TITLES,
    grouped,
    summary_line,
    verdict_word,
)
from immichcheck.records import CheckResult, RunRecord, Status

STATUS_STYLES = {
    Status.PASS: "green",
    Status.WARN: "yellow",
    Status.FAIL: "bold red",
    Status.ERROR: "bold magenta",
    Status.SKIP: "dim",
}


def render_verify_table(run: RunRecord, *, color: bool = False, width: int | None = None) -> str:
    """The run as text tables; ANSI colours only when `color` (the CLI passes isatty)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    if width is None:
        # A terminal gets its own width; files and pipes a fixed one, so output is stable.
        width = shutil.get_terminal_size((120, 24)).columns if color else 120
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        width=width,
        highlight=False,
        emoji=False,
    )
    for component, results in grouped(run.checks):
        table = Table(
            title=COMPONENT_TITLES.get(component, component),
            title_justify="left",
            title_style="bold",
            show_header=True,
            header_style="bold",
            expand=False,
            box=None,
            pad_edge=False,
        )
        # Every width is set, so rich measures no cell: measuring them all was half of the
        # table's cost (~45 ms for 90 results, on the path of every verify run).
        widths = column_widths(results, width)
        table.add_column("Status", no_wrap=True, width=widths[0])
        table.add_column("Code", no_wrap=True, width=widths[1])
        table.add_column("Check", width=widths[2])
        table.add_column("Target", width=widths[3])
        table.add_column("Result", width=widths[4])
        for result in results:
            table.add_row(
                Text(result.status.value, style=STATUS_STYLES[result.status]),
                result.code,
                result.title,
                result.target,
                Text(result.message),
            )
            if result.status not in (Status.PASS, Status.SKIP) and result.remediation:
                table.add_row("", "", "", "", Text(f"-> {result.remediation}", style="italic"))
        console.print(table)
        console.print()
    console.print(Text(f"{verdict_word(run)}: {summary_line(run)}", style="bold"))
    return buffer.getvalue()


COLUMN_GAPS = 4 * 2  # one space either side of each inner column edge (box=None, no outer pad)
CHECK_CAP, TARGET_CAP = 34, 30


def column_widths(results: list[CheckResult], width: int) -> tuple[int, int, int, int, int]:
    """Status, Code, Check, Target and Result widths for a table `width` columns wide.

    Status and Code are never wrapped; Check and Target take their longest value up to a
    cap; Result gets the rest but at least a quarter of the width, Check and Target giving way
    (down to 10 each) on a narrow terminal. Codes, titles and targets are ASCII, so a string's
    length is its width on screen; rich still wraps every cell by its display width.
    """
    status = max(len("Status"), *(len(r.status.value) for r in results))
    code = max(len("Code"), *(len(r.code) for r in results))
    check = min(CHECK_CAP, max(len("Check"), *(len(r.title) for r in results)))
    target = min(TARGET_CAP, max(len("Target"), *(len(r.target) for r in results)))
    room = width - COLUMN_GAPS - status - code - max(20, width // 4)
    if check + target > room:
        scale = max(room, 20) / (check + target)
        check, target = max(10, int(check * scale)), max(10, int(target * scale))
    result = max(10, width - COLUMN_GAPS - status - code - check - target)
    return status, code, check, target, result

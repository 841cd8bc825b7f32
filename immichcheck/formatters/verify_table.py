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
from immichcheck.records import RunRecord, Status

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
        table.add_column("Status", no_wrap=True)
        table.add_column("Code", no_wrap=True)
        table.add_column("Check", no_wrap=False, max_width=34)
        table.add_column("Target", no_wrap=False, max_width=30)
        table.add_column("Result", no_wrap=False)
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

"""How wide text output is drawn: the terminal's width on a terminal, a fixed width otherwise."""

from __future__ import annotations

import shutil

# Piped, redirected or written with --output, tables are drawn this wide whatever terminal
# launched the command, so cron mail and files read the same every night. 100 columns fit a
# laptop terminal and a mail client's plain-text view; README "Output width" documents it.
PIPED_WIDTH = 100
# A terminal that reports a tiny or zero width (a serial console, some CI runners) still
# gets a table; each renderer has its own floor above this where numbers stay whole.
NARROWEST = 40


def terminal_columns() -> int:
    """Columns of the terminal on standard output ($COLUMNS first, as shells and rich do)."""
    return max(NARROWEST, shutil.get_terminal_size((PIPED_WIDTH, 24)).columns)


def output_width(to_terminal: bool) -> int:
    """The width to draw for: the terminal's when writing to one, else PIPED_WIDTH."""
    return terminal_columns() if to_terminal else PIPED_WIDTH

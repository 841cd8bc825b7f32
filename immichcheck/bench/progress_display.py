"""Where a benchmark run's progress goes: one status line on a terminal's stderr, else nowhere.

Every step passes through `InWords` first, so a suite's parameters read as
`redis.lpush pipeline=16, 300-byte values` on the terminal and in a node Job's log alike.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from immichcheck.bench.base import Progress, SilentProgress
from immichcheck.bench.parameter_words import step_in_words


class InWords:
    """Progress that rewrites each step in words before handing it to another Progress."""

    def __init__(self, shown: Progress) -> None:
        self._shown = shown

    def step(self, message: str) -> None:
        """Pass the step on, its parameters in words."""
        self._shown.step(step_in_words(message))

    def advance(self, done: int, total: int | None = None) -> None:
        """Pass the count on unchanged."""
        self._shown.advance(done, total)


class ConsoleProgress:
    """A rich status line on stderr, kept to one line: a folded status line redraws badly."""

    def __init__(self) -> None:
        from rich.console import Console

        self._console = Console(stderr=True)
        self._message = "starting"
        self._status = self._console.status(self._message)

    def __enter__(self) -> ConsoleProgress:
        self._status.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._status.stop()

    def _show(self, text: str) -> None:
        from rich.text import Text

        room = self._console.width - 3  # the spinner and its space, and the cursor's column
        shown = text if len(text) <= room else text[: max(room - 1, 1)] + "…"
        self._status.update(Text(shown))  # Text: a "[...]" in a message is not rich markup

    def step(self, message: str) -> None:
        """Show the current step."""
        self._message = message
        self._show(message)

    def advance(self, done: int, total: int | None = None) -> None:
        """Show progress within the step, e.g. 'building the dataset (2/4)'."""
        suffix = f" ({done}/{total})" if total else f" ({done})"
        self._show(self._message + suffix)


@contextlib.contextmanager
def terminal_progress(enabled: bool) -> Iterator[Progress]:
    """A ConsoleProgress when enabled and stderr is a terminal, else SilentProgress."""
    if enabled and sys.stderr.isatty():
        with ConsoleProgress() as progress:
            yield progress
    else:
        yield SilentProgress()

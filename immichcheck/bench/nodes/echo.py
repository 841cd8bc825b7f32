"""Where status lines go: a function of one line, stderr by default."""

from __future__ import annotations

import sys
from collections.abc import Callable

Echo = Callable[[str], None]


def echo_to_stderr(line: str) -> None:
    """Print one status line on stderr at once (it is the pod log inside a Job)."""
    print(line, file=sys.stderr, flush=True)

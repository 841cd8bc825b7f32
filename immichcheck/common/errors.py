"""Exit codes and the one exception type that the CLI turns into a one-line error."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes, following the Nagios plugin convention so monitoring can use them."""

    OK = 0
    WARNING = 1  # verify found warnings (or a report found a regression with --fail-on warn)
    FAILURE = 2  # verify found failures; report found a regression or a missed target
    UNKNOWN = 3  # could not run: bad flags, bad config, unreachable cluster, missing binaries
    INTERRUPTED = 130  # Ctrl-C, after cleanup finished


class ImmichcheckError(Exception):
    """An expected failure with a message fit for one line of output and an exit code."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.UNKNOWN) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

"""Shared fixtures: real PostgreSQL/Redis servers and faithful fakes, each in its own module."""

import signal

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.fakes",
]

# A shell without job control starts background commands (`make test &`) with SIGINT
# ignored, and an ignored signal stays ignored across exec: every process a Ctrl-C test
# starts would then never see its Ctrl-C. Tests start from the default, as a terminal gives.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

"""The side inside the Job: `bench --in-job` runs the suites with progress as plain lines and
prints the run record as the last line of the pod log."""

from __future__ import annotations

import sys
from typing import Any

from immichcheck.bench.nodes.echo import Echo, echo_to_stderr
from immichcheck.bench.nodes.node_job import NODE_NAME_ENV, record_line
from immichcheck.common.errors import ExitCode


class LineProgress:
    """Progress as plain lines on stderr: inside a Job they become the streamed pod log."""

    def __init__(self, echo: Echo = echo_to_stderr) -> None:
        self._echo = echo
        self._last = ""

    def step(self, message: str) -> None:
        """Print the step once."""
        if message != self._last:
            self._last = message
            self._echo(message)

    def advance(self, done: int, total: int | None = None) -> None:
        """Counts are left out: one line per step keeps the log readable."""


def in_job_node() -> str | None:
    """The node this Job runs on (Downward API), if known."""
    import os

    return os.environ.get(NODE_NAME_ENV) or None


def cluster_dns_defaults(
    ml_url: str | None, server_url: str | None, manifests_dir: str | None
) -> tuple[str | None, str | None]:
    """Inside a pod, the ML service and server are reached by their cluster DNS names."""
    from immichcheck.clients.kubernetes import in_cluster
    from immichcheck.deploy.expected_state import load_expected_state

    if not in_cluster() or (ml_url and server_url):
        return ml_url, server_url
    state = load_expected_state(manifests_dir)
    return ml_url or state.service_url("ml"), server_url or state.service_url("server")


def run_in_job(request: Any, echo: Echo = echo_to_stderr) -> int:
    """`bench --in-job`: run the benchmarks, progress as lines, the record as the last line.

    Problems a suite reports are part of the record (settings.suite_errors) and shown by
    the side that saves it, so the pod succeeds whenever a record was printed.
    """
    from immichcheck.bench.runner import run_bench

    request.node = in_job_node() or request.node
    outcome = run_bench(request, progress=LineProgress(echo))
    for name, reason in outcome.skipped.items():
        echo(f"skipped {name}: {reason}")
    for name, message in outcome.suite_errors.items():
        echo(f"suite {name} failed: {message}")
    sys.stdout.write(record_line(outcome.record) + "\n")
    sys.stdout.flush()
    return int(ExitCode.OK)

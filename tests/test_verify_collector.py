"""verify pauses Python's cyclic garbage collector for its first pass, and only for that.

The pause saves ~20-30 ms of a ~0.4 s run; what must hold is that the collector is on again
for `--wait`'s later attempts (a long wait must not pile up garbage) and, for a caller in
the same process, exactly as it was before.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

import immichcheck.runner as runner
from immichcheck.errors import ExitCode
from immichcheck.local_stack import LocalRedis, free_port
from tests.fixtures.cli import run_cli


@pytest.fixture
def collector_seen(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Whether the collector was on at the start of each verify attempt, in order."""
    seen: list[bool] = []
    original = runner.verify_once

    async def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return await original(*args, **kwargs)

    monkeypatch.setattr(runner, "verify_once", recording)
    yield seen


def test_the_collector_is_off_for_the_pass_and_on_again_after_it(
    redis_server: LocalRedis, collector_seen: list[bool], capsys: pytest.CaptureFixture[str]
) -> None:
    assert gc.isenabled()
    code, _out, _err = run_cli(
        ["verify", "--redis-url", redis_server.url, "--only", "redis", "--no-save"], capsys
    )
    assert code in (ExitCode.OK, ExitCode.WARNING)
    assert collector_seen == [False]
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0  # nothing left frozen by the way it was turned back on


def test_a_caller_that_had_the_collector_off_gets_it_back_off(
    redis_server: LocalRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    gc.disable()
    try:
        run_cli(["verify", "--redis-url", redis_server.url, "--only", "redis", "--no-save"], capsys)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_later_wait_attempts_run_with_the_collector_on(
    collector_seen: list[bool], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    freezes: list[int] = []
    real_freeze = gc.freeze
    monkeypatch.setattr(gc, "freeze", lambda: freezes.append(1) or real_freeze())
    refused = f"redis://127.0.0.1:{free_port()}/0"  # ERROR every time: --wait tries again
    code, _out, _err = run_cli(
        ["verify", "--redis-url", refused, "--only", "IC-RD-201", "--wait", "4.5s", "--no-save"],
        capsys,
    )
    assert code == ExitCode.UNKNOWN
    assert collector_seen[0] is False
    assert len(collector_seen) >= 3 and all(collector_seen[1:])
    # Turned on once: freezing again at every attempt would hide each attempt's garbage
    # from the collector's bookkeeping (it would go to the oldest generation uncounted).
    assert len(freezes) == 1
    assert gc.isenabled() and gc.get_freeze_count() == 0

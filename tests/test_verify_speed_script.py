"""The arithmetic of benchmarks/verify_speed.py: the latency list and where 5x is reached."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "verify_speed.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_speed", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["verify_speed"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_latencies_always_start_with_the_stack_as_it_is(script: ModuleType) -> None:
    assert script.latencies_ms("20,10") == [0.0, 10.0, 20.0]
    assert script.latencies_ms("0") == [0.0]
    with pytest.raises(argparse.ArgumentTypeError):
        script.latencies_ms("10,ten")
    with pytest.raises(argparse.ArgumentTypeError):
        script.latencies_ms("-5")


def test_latency_for_speedup_interpolates_between_measured_points(script: ModuleType) -> None:
    measured = script.Measured
    rows = [measured(0.0, verify=0.5, readme=2.5), measured(20.0, verify=0.54, readme=3.7)]
    assert script.latency_for_speedup(rows, 5.0) == pytest.approx(0.0)  # 2.5/0.5 is 5x already
    # 4.0x at 0 ms, 5.0x at 10 ms: 4.5x halfway
    rows = [
        measured(0.0, verify=0.6, readme=2.4),
        measured(10.0, verify=0.6, readme=3.0),
        measured(20.0, verify=0.6, readme=3.6),
    ]
    assert script.latency_for_speedup(rows, 4.5) == pytest.approx(5.0)
    assert script.latency_for_speedup(rows, 5.5) == pytest.approx(15.0)
    assert script.latency_for_speedup(rows, 7.0) is None  # beyond 20 ms: not extrapolated
    # The paired ratio decides, as in the verdict: under 5x at 0 ms is never "at 0 ms".
    rows = [
        measured(0.0, verify=0.4, readme=2.1, pair_ratios=(4.8, 4.9, 5.3)),
        measured(10.0, verify=0.43, readme=2.6, pair_ratios=(5.9, 6.1, 6.0)),
    ]
    assert script.latency_for_speedup(rows, 5.0) == pytest.approx(10 * 0.1 / 1.1)  # 4.9x -> 6.0x
    rows = [measured(0.0, verify=0.6, readme=2.4), measured(20.0, verify=1.6, readme=3.4)]
    assert script.latency_for_speedup(rows, 5.0) is None  # verify slowing as fast
    assert script.latency_for_speedup(rows[:1], 5.0) is None  # one point below the target


def test_the_ratio_is_the_median_of_the_paired_runs(script: ModuleType) -> None:
    # Pairs timed seconds apart: one slow minute moves both sides, not the ratio.
    row = script.Measured(0.0, verify=0.5, readme=2.4, pair_ratios=(4.0, 5.2, 5.0))
    assert row.speedup == pytest.approx(5.0)
    assert script.Measured(0.0, verify=0.5, readme=2.4).speedup == pytest.approx(4.8)

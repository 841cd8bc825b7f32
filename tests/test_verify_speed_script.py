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


def test_latency_for_speedup_follows_the_measured_lines(script: ModuleType) -> None:
    measured = script.Measured
    # README grows 60 ms per ms of latency, verify 2 ms: 5x when 2.5 + 0.06 L = 5 (0.5 + 0.002 L).
    rows = [measured(0.0, verify=0.5, readme=2.5), measured(20.0, verify=0.54, readme=3.7)]
    assert script.latency_for_speedup(rows, 5.0) == pytest.approx(0.0)  # 2.5/0.5 is 5x already
    rows = [measured(0.0, verify=0.6, readme=2.4), measured(20.0, verify=0.64, readme=3.6)]
    # 2.4 + 0.06 L = 5 (0.6 + 0.002 L)  ->  L = 0.6 / 0.05 = 12 ms
    assert script.latency_for_speedup(rows, 5.0) == pytest.approx(12.0)
    # verify slowing as fast as the README side never gets there
    rows = [measured(0.0, verify=0.6, readme=2.4), measured(20.0, verify=1.6, readme=3.4)]
    assert script.latency_for_speedup(rows, 5.0) is None
    assert script.latency_for_speedup(rows[:1], 5.0) is None  # one point draws no line


def test_the_ratio_is_the_median_of_the_paired_runs(script: ModuleType) -> None:
    # Pairs timed seconds apart: one slow minute moves both sides, not the ratio.
    row = script.Measured(0.0, verify=0.5, readme=2.4, pair_ratios=(4.0, 5.2, 5.0))
    assert row.speedup == pytest.approx(5.0)
    assert script.Measured(0.0, verify=0.5, readme=2.4).speedup == pytest.approx(4.8)

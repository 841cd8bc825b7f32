"""The judging of benchmarks/verify_speed.py: which latencies run, and which target is met."""

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


def test_the_judged_latency_always_runs(script: ModuleType) -> None:
    assert script.JUDGED_LATENCY_MS == 20.0
    assert script.latencies_ms("0,10,20") == [0.0, 10.0, 20.0]
    assert script.latencies_ms("10,0") == [0.0, 10.0, 20.0]
    assert script.latencies_ms("50") == [20.0, 50.0]
    with pytest.raises(argparse.ArgumentTypeError):
        script.latencies_ms("10,ten")
    with pytest.raises(argparse.ArgumentTypeError):
        script.latencies_ms("-5")


def test_targets_are_under_a_second_three_times_faster_and_help_under_0_3_s(
    script: ModuleType,
) -> None:
    judged = script.Measured(20.0, verify=0.46, readme=2.5, pair_ratios=(5.2, 5.4, 5.6))
    assert script.verdicts(judged, 0.21) == [
        ("verify under 1 s: 0.460 s", True),
        (
            "verify at least 3x faster than the README's commands: 5.4x "
            "(median of the pairs' ratios, 5.2-5.6x)",
            True,
        ),
        ("--help under 0.3 s: 0.210 s", True),
    ]
    slow = script.Measured(20.0, verify=1.0, readme=2.9, pair_ratios=(2.8, 2.9, 3.1))
    assert [met for _, met in script.verdicts(slow, 0.3)] == [False, False, False]
    just = script.Measured(20.0, verify=0.99, readme=2.97, pair_ratios=(3.0,))
    assert [met for _, met in script.verdicts(just, 0.299)] == [True, True, True]


def test_the_ratio_is_the_median_of_the_paired_runs(script: ModuleType) -> None:
    # Pairs timed seconds apart: one slow minute moves both sides, not the ratio.
    row = script.Measured(0.0, verify=0.5, readme=2.4, pair_ratios=(4.0, 5.2, 5.0))
    assert row.speedup == pytest.approx(5.0)
    assert script.Measured(0.0, verify=0.5, readme=2.4).speedup == pytest.approx(4.8)

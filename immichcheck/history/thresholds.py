"""Published performance targets (benchmarks/targets.yaml) judged against the latest runs.

A target names a workload pattern, an optional parameter filter, a metric and a bound
(`below`, `at_most`, `above`, `at_least`, in base units), and says where the figure comes
from. A `ratio` target compares two storage paths measured in the same run (the README's
"10-100x faster than NFS"): the value is how many times faster the fast path is.
"""

from __future__ import annotations

import fnmatch
import json
import operator
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.project_files import load_yaml_file, project_folder
from immichcheck.common.records import BenchmarkResult, RunRecord
from immichcheck.history.report_model import (
    HIGHER_IS_BETTER,
    LATENCY_METRICS,
    TARGET_MET,
    TARGET_MISSED,
    TARGET_NOT_MEASURED,
    TargetVerdict,
)

TARGETS_FILE = "targets.yaml"
PATH_KEYS = ("path_label", "path")  # storage benchmarks name their path with one of these
BOUNDS: Mapping[str, tuple[str, Callable[[float, float], bool]]] = {
    "below": ("<", operator.lt),
    "at_most": ("<=", operator.le),
    "above": (">", operator.gt),
    "at_least": (">=", operator.ge),
}
_METRICS = (*LATENCY_METRICS, "throughput", "bytes_per_second", "errors")


@dataclass(frozen=True)
class Target:
    """One published figure a deployment should meet."""

    id: str
    title: str
    workload: str  # fnmatch pattern
    metric: str
    bound: str  # key of BOUNDS
    value: float
    source: str
    parameters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # key -> patterns
    except_parameters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ratio: tuple[str, str] | None = None  # (slow path pattern, fast path pattern)

    @property
    def op(self) -> str:
        """The comparison as a symbol (`<`, `>=`...)."""
        return BOUNDS[self.bound][0]

    def holds(self, value: float) -> bool:
        """Whether a measured value meets the target."""
        return BOUNDS[self.bound][1](value, self.value)


def path_label(parameters: Mapping[str, Any]) -> str | None:
    """The storage path label of a benchmark's parameters, if it has one."""
    for key in PATH_KEYS:
        if key in parameters:
            return str(parameters[key])
    return None


def _patterns(value: Any, where: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not all(isinstance(v, str | int | float | bool) for v in values):
        raise ImmichcheckError(f"{where}: parameter values must be scalars or lists of them")
    return tuple(json.dumps(v) if isinstance(v, bool) else str(v) for v in values)


def _parameter_filter(value: Any, where: str) -> dict[str, tuple[str, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ImmichcheckError(f"{where}: expected a mapping of parameter -> value(s)")
    return {str(k): _patterns(v, f"{where}.{k}") for k, v in value.items()}


def parse_target(data: Any, where: str) -> Target:
    """One target from its YAML mapping; every mistake is one clear line."""
    if not isinstance(data, dict):
        raise ImmichcheckError(f"{where}: each target must be a mapping")
    missing = [k for k in ("id", "title", "workload", "metric", "source") if not data.get(k)]
    if missing:
        raise ImmichcheckError(f"{where}: missing {', '.join(missing)}")
    where = f"{where} ({data['id']})"
    if data["metric"] not in _METRICS:
        raise ImmichcheckError(f"{where}: unknown metric {data['metric']!r}")
    bounds = [b for b in BOUNDS if b in data]
    if len(bounds) != 1:
        raise ImmichcheckError(f"{where}: give exactly one of {', '.join(BOUNDS)}")
    try:
        value = float(data[bounds[0]])
    except (TypeError, ValueError) as exc:
        raise ImmichcheckError(f"{where}: {bounds[0]} must be a number") from exc
    ratio = None
    if "ratio" in data:
        spec = data["ratio"]
        if not isinstance(spec, dict) or not {"slow", "fast"} <= set(spec):
            raise ImmichcheckError(f"{where}: ratio needs 'slow' and 'fast' path label patterns")
        ratio = (str(spec["slow"]), str(spec["fast"]))
    return Target(
        id=str(data["id"]),
        title=str(data["title"]),
        workload=str(data["workload"]),
        metric=str(data["metric"]),
        bound=bounds[0],
        value=value,
        source=" ".join(str(data["source"]).split()),
        parameters=_parameter_filter(data.get("parameters"), f"{where}: parameters"),
        except_parameters=_parameter_filter(
            data.get("except_parameters"), f"{where}: except_parameters"
        ),
        ratio=ratio,
    )


def load_targets(path: str | os.PathLike[str] | None = None) -> tuple[Target, ...]:
    """Targets from a YAML file (default: benchmarks/targets.yaml)."""
    file = Path(path) if path else project_folder("benchmarks") / TARGETS_FILE
    data = load_yaml_file(file, "targets file")
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list):
        raise ImmichcheckError(f"targets file {file}: expected a top-level 'targets' list")
    targets = tuple(
        parse_target(t, f"{file}: target {i + 1}") for i, t in enumerate(data["targets"])
    )
    ids = [t.id for t in targets]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ImmichcheckError(f"targets file {file}: duplicate id(s) {', '.join(duplicates)}")
    return targets


def _matches(value: Any, patterns: Sequence[str]) -> bool:
    text = json.dumps(value) if isinstance(value, bool) else str(value)
    return any(fnmatch.fnmatchcase(text, p) for p in patterns)


def _selected(target: Target, bench: BenchmarkResult) -> bool:
    if not fnmatch.fnmatchcase(bench.workload, target.workload):
        return False
    for key, patterns in target.parameters.items():
        if key not in bench.parameters or not _matches(bench.parameters[key], patterns):
            return False
    return not any(
        key in bench.parameters and _matches(bench.parameters[key], patterns)
        for key, patterns in target.except_parameters.items()
    )


def _canonical(parameters: Mapping[str, Any]) -> str:
    return json.dumps(dict(parameters), sort_keys=True, separators=(",", ":"))


def _verdict(
    target: Target, run: RunRecord, workload: str, parameters: str, value: float | None
) -> TargetVerdict:
    if value is None:
        status = TARGET_NOT_MEASURED
    else:
        status = TARGET_MET if target.holds(value) else TARGET_MISSED
    return TargetVerdict(
        target=target.id,
        title=target.title,
        node=run.node,
        workload=workload,
        parameters=parameters,
        metric=f"{target.metric}_ratio" if target.ratio else target.metric,
        op=target.op,
        threshold=target.value,
        value=value,
        status=status,
        source=target.source,
        run_id=run.run_id,
    )


def _ratio_verdicts(target: Target, run: RunRecord) -> list[TargetVerdict]:
    assert target.ratio is not None
    slow_pattern, fast_pattern = target.ratio
    groups: dict[tuple[str, str], dict[str, BenchmarkResult]] = {}
    for bench in run.benchmarks:
        label = path_label(bench.parameters)
        if label is None or not _selected(target, bench):
            continue
        common = {k: v for k, v in bench.parameters.items() if k not in PATH_KEYS}
        groups.setdefault((bench.workload, _canonical(common)), {})[label] = bench
    verdicts = []
    for (workload, shared), by_label in sorted(groups.items()):
        slow = sorted(label for label in by_label if fnmatch.fnmatchcase(label, slow_pattern))
        fast = sorted(
            label
            for label in by_label
            if fnmatch.fnmatchcase(label, fast_pattern) and label not in slow
        )
        for slow_label in slow:
            for fast_label in fast:
                slow_value = _measured(by_label[slow_label], target.metric)
                fast_value = _measured(by_label[fast_label], target.metric)
                value: float | None = None
                if slow_value and fast_value:
                    faster_is_higher = target.metric in HIGHER_IS_BETTER
                    value = fast_value / slow_value if faster_is_higher else slow_value / fast_value
                described = _canonical(
                    {**json.loads(shared), "fast": fast_label, "slow": slow_label}
                )
                verdicts.append(_verdict(target, run, workload, described, value))
    return verdicts


def _measured(bench: BenchmarkResult, metric: str) -> float | None:
    value = getattr(bench, metric)
    if value is None or (metric in LATENCY_METRICS and not bench.count):
        return None  # no successful sample: a latency of 0 would wrongly pass
    return float(value)


def evaluate_targets(targets: Sequence[Target], runs: Sequence[RunRecord]) -> list[TargetVerdict]:
    """Judge every target against each node's latest run; unmeasured ones say so."""
    verdicts: list[TargetVerdict] = []
    for target in targets:
        for run in sorted(runs, key=lambda r: r.node):
            if target.ratio:
                found = _ratio_verdicts(target, run)
            else:
                found = [
                    _verdict(
                        target,
                        run,
                        bench.workload,
                        _canonical(bench.parameters),
                        _measured(bench, target.metric),
                    )
                    for bench in sorted(
                        run.benchmarks, key=lambda b: (b.workload, _canonical(b.parameters))
                    )
                    if _selected(target, bench)
                ]
            verdicts += found or [_verdict(target, run, target.workload, "", None)]
    return verdicts

"""The report as plain frozen data: what compare.py finds and every renderer reads.

Nothing here imports pandas or numpy, so renderers stay pure and cheap to import. Values are in
base units (seconds, operations per second, bytes per second); relative changes are fractions
(0.3 means +30%).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from immichcheck.history.capacity_model import CapacitySection

REGRESSION = "regression"
IMPROVEMENT = "improvement"
WITHIN_NOISE = "within noise"
WITHIN_THRESHOLD = "ok"
TARGET_MET = "met"
TARGET_MISSED = "missed"
TARGET_NOT_MEASURED = "not measured"

LATENCY_METRICS = ("p50", "p90", "p95", "p99", "p999", "mean", "max", "min")
HIGHER_IS_BETTER = frozenset({"throughput", "bytes_per_second"})


def metric_unit(metric: str) -> str:
    """The base unit of a metric name: seconds, ops/s, bytes/s, ratio or count."""
    if metric in LATENCY_METRICS:
        return "seconds"
    if metric == "throughput":
        return "ops/s"
    if metric == "bytes_per_second":
        return "bytes/s"
    if metric.endswith("_ratio"):
        return "ratio"
    return "count"


@dataclass(frozen=True)
class RunInfo:
    """Which run a section is about."""

    run_id: str
    node: str
    kind: str
    started_at: str  # ISO 8601
    tags: tuple[str, ...] = ()
    tool_version: str = ""
    benchmarks: int = 0
    check_counts: Mapping[str, int] = field(default_factory=dict)  # status -> count


@dataclass(frozen=True)
class CheckLine:
    """A check of the latest verify run that did not pass."""

    node: str
    code: str
    status: str
    component: str
    message: str


@dataclass(frozen=True)
class Change:
    """One metric of one series: the latest run against its baseline, with a verdict."""

    node: str
    workload: str
    parameters: str  # canonical JSON of the parameters
    metric: str
    rule: str  # e.g. "p95:+10%"
    baseline_run: str
    current_run: str
    baseline: float
    current: float
    change: float  # current / baseline - 1
    verdict: str  # REGRESSION, IMPROVEMENT, WITHIN_NOISE, WITHIN_THRESHOLD
    noise: float | None  # half width of the ~95% band of the relative change; None if unknown
    noise_method: str
    interval: tuple[float, float] | None = None  # bootstrap interval of the relative change


@dataclass(frozen=True)
class PairComparison:
    """One metric of one series measured on two nodes or two storage paths."""

    kind: str  # "node" or "path"
    node: str  # for paths: the node; for nodes: "left vs right"
    workload: str
    parameters: str  # canonical JSON without the node/path-specific keys
    metric: str
    left_label: str
    right_label: str
    left_run: str
    right_run: str
    left: float
    right: float
    ratio: float  # right / left
    better: str  # label of the better side, or "" when the difference is within noise
    noise: float | None
    noise_method: str


@dataclass(frozen=True)
class Trend:
    """The last N values of one series on one node, oldest first."""

    node: str
    workload: str
    parameters: str
    run_ids: tuple[str, ...]
    started_at: tuple[str, ...]
    values: Mapping[str, tuple[float, ...]]  # metric -> values
    change: Mapping[str, float]  # metric -> last / first - 1


@dataclass(frozen=True)
class Distribution:
    """Percentiles of one series in a node's latest run, for the latency chart."""

    node: str
    workload: str
    parameters: str
    run_id: str
    count: int
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float
    max: float
    throughput: float
    bytes_per_second: float | None
    errors: int


@dataclass(frozen=True)
class TargetVerdict:
    """A published target judged against a node's latest run."""

    target: str
    title: str
    node: str
    workload: str
    parameters: str
    metric: str
    op: str
    threshold: float
    value: float | None
    status: str  # TARGET_MET, TARGET_MISSED, TARGET_NOT_MEASURED
    source: str
    run_id: str = ""


@dataclass(frozen=True)
class Report:
    """Everything `immichcheck report` found, ready to render."""

    as_of: str  # finish time of the newest run considered (ISO 8601); no wall clock
    baseline: str
    runs_considered: int
    warnings: tuple[str, ...] = ()
    latest: tuple[RunInfo, ...] = ()
    baselines: tuple[RunInfo, ...] = ()
    changes: tuple[Change, ...] = ()
    node_pairs: tuple[PairComparison, ...] = ()
    path_pairs: tuple[PairComparison, ...] = ()
    trends: tuple[Trend, ...] = ()
    targets: tuple[TargetVerdict, ...] = ()
    distributions: tuple[Distribution, ...] = ()
    failing_checks: tuple[CheckLine, ...] = ()
    notes: tuple[str, ...] = ()
    capacity: CapacitySection | None = None  # filled by history.capacity.with_capacity

    @property
    def regressions(self) -> list[Change]:
        """Changes judged to be regressions."""
        return [c for c in self.changes if c.verdict == REGRESSION]

    @property
    def missed_targets(self) -> list[TargetVerdict]:
        """Targets the latest runs miss."""
        return [t for t in self.targets if t.status == TARGET_MISSED]

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (tuples become lists)."""
        return dataclasses.asdict(self)

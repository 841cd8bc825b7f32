"""The run history as a pandas frame, one row per run x workload x metric; a series is
(workload, canonical JSON of its parameters)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from immichcheck.common.records import RunRecord

if TYPE_CHECKING:
    import pandas as pd


METRICS = (
    "p50",
    "p90",
    "p95",
    "p99",
    "p999",
    "mean",
    "max",
    "throughput",
    "bytes_per_second",
    "errors",
)


def canonical_parameters(parameters: Mapping[str, Any]) -> str:
    """The parameters as canonical JSON: the second half of a series key."""
    return json.dumps(dict(parameters), sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- the frame


def runs_frame(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per run x workload x metric: run_id, order, node, kind, started_at, workload,
    parameters, metric, value. `order` is the run's position in `runs` (oldest first)."""
    import pandas as pd

    keys = ("run_id", "order", "node", "kind", "started_at", "workload", "parameters")
    # Built wide (one row per benchmark) and melted: ten times fewer Python appends than
    # appending long rows one by one, which matters for a year of nightly runs.
    columns: dict[str, list[Any]] = {name: [] for name in (*keys, *METRICS)}
    for order, run in enumerate(runs):
        started = run.started_at.isoformat()
        for bench in run.benchmarks:
            columns["run_id"].append(run.run_id)
            columns["order"].append(order)
            columns["node"].append(run.node)
            columns["kind"].append(run.kind)
            columns["started_at"].append(started)
            columns["workload"].append(bench.workload)
            columns["parameters"].append(canonical_parameters(bench.parameters))
            for metric in METRICS:
                value = getattr(bench, metric)
                columns[metric].append(math.nan if value is None else float(value))
    wide = pd.DataFrame(columns)
    frame = wide.melt(id_vars=list(keys), value_vars=list(METRICS), var_name="metric")
    frame = frame.dropna(subset=["value"]).reset_index(drop=True)
    frame["value"] = frame["value"].astype("float64")
    return frame

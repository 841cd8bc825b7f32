"""Comparisons over the run history: latest vs baseline, node vs node, path vs path, trends.

The history is loaded into a pandas frame with one row per run x workload x metric; a series is
(workload, canonical JSON of its parameters). A change only counts as a regression or an
improvement when it (1) exceeds its rule (`p95:+10%`, from benchmarks/regression-rules.yaml)
and (2) is significant:

* when both runs stored HDR histograms, a bootstrap resamples each histogram (multinomial over
  its buckets) and the ~95% interval of the relative change must exclude zero;
* when at least `MIN_REPEATS` earlier runs of the series exist, the change must also exceed
  twice their relative standard deviation (run-to-run noise, which a single run's histogram
  cannot see);
* with neither, nothing can be called, and the change is reported as within noise of unknown
  size.

Histograms are decoded only for the pairs being compared, so loading a year of runs stays fast.
The frame is `runs_frame.py`, the rules `regression_rules.py`, the bootstrap and noise
`significance.py`; this module builds the report from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from immichcheck.common.errors import ExitCode, ImmichcheckError
from immichcheck.common.records import BenchmarkResult, RunRecord, Status
from immichcheck.history.report_model import (
    HIGHER_IS_BETTER,
    IMPROVEMENT,
    REGRESSION,
    WITHIN_NOISE,
    WITHIN_THRESHOLD,
    Change,
    CheckLine,
    Distribution,
    PairComparison,
    Report,
    RunInfo,
    Trend,
)
from immichcheck.history.thresholds import PATH_KEYS, Target, evaluate_targets, path_label

if TYPE_CHECKING:
    import pandas as pd
from immichcheck.history.regression_rules import RuleSet
from immichcheck.history.runs_frame import canonical_parameters, runs_frame
from immichcheck.history.significance import MIN_REPEATS, Noise, bootstrap_intervals, judge_noise

PAIR_METRICS = ("p50", "p95", "p99", "throughput", "bytes_per_second")
TREND_METRICS = ("p50", "p95", "p99", "throughput")
REPEAT_WINDOW = 10  # how many earlier runs the run-to-run spread looks at


@dataclass(frozen=True)
class ReportOptions:
    """What `immichcheck report` was asked for."""

    baseline: str = "previous"
    node: str | None = None
    nodes: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    trend: int = 14
    rules: RuleSet = field(default_factory=RuleSet)
    # Earlier runs of a series needed before a change over time is called (0: trust the
    # histogram bootstrap alone, which ignores run-to-run noise).
    min_history: int = MIN_REPEATS
    targets: tuple[Target, ...] = ()


def _run_info(run: RunRecord) -> RunInfo:
    counts: dict[str, int] = {}
    for check in run.checks:
        counts[check.status.value] = counts.get(check.status.value, 0) + 1
    return RunInfo(
        run_id=run.run_id,
        node=run.node,
        kind=run.kind,
        started_at=run.started_at.isoformat(),
        tags=run.tags,
        tool_version=run.tool_version,
        benchmarks=len(run.benchmarks),
        check_counts=counts,
    )


def _bench_index(run: RunRecord) -> dict[tuple[str, str], BenchmarkResult]:
    return {(b.workload, canonical_parameters(b.parameters)): b for b in run.benchmarks}


def resolve_baseline(
    spec: str, current: RunRecord, candidates: Sequence[RunRecord]
) -> RunRecord | None:
    """The run to compare `current` with: previous on its node, a run id, or a tag.

    `candidates` are the benchmark runs, oldest first. A tag picks the latest other run of the
    same node carrying it; a run id (or a unique prefix) may name any node's run. Returns None
    when there is no such run for this node; raises when the name matches nothing at all.
    """
    if spec == "previous":
        earlier = [r for r in candidates if r.node == current.node and r is not current]
        earlier = [
            r for r in earlier if (r.started_at, r.run_id) < (current.started_at, current.run_id)
        ]
        return earlier[-1] if earlier else None
    exact = [r for r in candidates if r.run_id == spec]
    if exact:
        return exact[0]
    if any(spec in r.tags for r in candidates):
        # A tag is a per-node baseline: another node's run would compare hardware, not time.
        tagged = [r for r in candidates if spec in r.tags and r.node == current.node]
        tagged = [r for r in tagged if r is not current]
        return tagged[-1] if tagged else None
    prefixed = [r for r in candidates if r.run_id.startswith(spec)]
    if len(prefixed) == 1:
        return prefixed[0]
    raise ImmichcheckError(
        f"unknown baseline {spec!r}: not 'previous', a stored benchmark run id or a tag",
        ExitCode.UNKNOWN,
    )


def _earlier_values(
    frame: pd.DataFrame, node: str, before_order: int
) -> dict[tuple[str, str, str], list[float]]:
    """Metric values of the last REPEAT_WINDOW runs of a node before a run, per series."""
    rows = frame[(frame["node"] == node) & (frame["order"] < before_order)]
    if rows.empty:
        return {}
    orders = sorted(rows["order"].unique())[-REPEAT_WINDOW:]
    rows = rows[rows["order"].isin(orders)]
    grouped = rows.groupby(["workload", "parameters", "metric"], sort=False)["value"]
    return {
        (str(workload), str(parameters), str(metric)): list(values)
        for (workload, parameters, metric), values in grouped
    }


def compare_runs(
    current: RunRecord,
    baseline: RunRecord,
    rules: RuleSet,
    earlier: Mapping[tuple[str, str, str], Sequence[float]] | None = None,
    min_history: int = 0,
) -> list[Change]:
    """Every rule-covered metric of `current` against `baseline`, with verdicts."""
    before = _bench_index(baseline)
    changes: list[Change] = []
    for key, after in sorted(_bench_index(current).items()):
        base = before.get(key)
        if base is None:
            continue
        rules_here = rules.rules_for(after.workload)
        if not rules_here:
            continue
        measured = []
        for rule in rules_here:
            old = getattr(base, rule.metric)
            new = getattr(after, rule.metric)
            if old is None or new is None or old == 0:
                continue
            change = float(new) / float(old) - 1.0
            worse = change > rule.threshold if rule.worse_when_higher else change < -rule.threshold
            better = change < -rule.threshold if rule.worse_when_higher else change > rule.threshold
            measured.append((rule, float(old), float(new), change, worse, better))
        intervals: dict[str, tuple[float, float]] = {}
        # Significance only matters for a change beyond its rule; skipping the bootstrap for
        # the rest keeps a report over a quiet night cheap.
        if base.histogram and after.histogram and any(m[4] or m[5] for m in measured):
            # "mean" always: throughput's noise is derived from the mean latency's.
            intervals = bootstrap_intervals(
                base.histogram, after.histogram, [*(m[0].metric for m in measured), "mean"]
            )
        for rule, old, new, change, worse, better in measured:
            interval = intervals.get(rule.metric)
            if rule.metric in HIGHER_IS_BETTER and "mean" in intervals and interval is None:
                # Closed-loop throughput = concurrency / mean latency: same noise as the mean.
                low, high = intervals["mean"]
                interval = (1.0 / (1.0 + high) - 1.0, 1.0 / (1.0 + low) - 1.0)
            earlier_values = (earlier or {}).get((key[0], key[1], rule.metric), ())
            if not (worse or better):
                verdict = WITHIN_THRESHOLD
                noise = judge_noise(change, None, earlier_values, None)
                if noise.size is None:
                    noise = Noise(None, "not tested: the change is within its rule", None, False)
            else:
                noise = judge_noise(
                    change,
                    interval,
                    earlier_values,
                    (base.count, after.count) if interval is not None else None,
                    min_history,
                )
                if not noise.significant:
                    verdict = WITHIN_NOISE
                else:
                    verdict = REGRESSION if worse else IMPROVEMENT
            changes.append(
                Change(
                    node=current.node,
                    workload=key[0],
                    parameters=key[1],
                    metric=rule.metric,
                    rule=rule.text,
                    baseline_run=baseline.run_id,
                    current_run=current.run_id,
                    baseline=old,
                    current=new,
                    change=change,
                    verdict=verdict,
                    noise=noise.size,
                    noise_method=noise.method,
                    interval=noise.interval,
                )
            )
    return changes


def _pair(
    kind: str,
    node: str,
    workload: str,
    parameters: str,
    left: tuple[str, RunRecord, BenchmarkResult],
    right: tuple[str, RunRecord, BenchmarkResult],
) -> list[PairComparison]:
    left_label, left_run, left_bench = left
    right_label, right_run, right_bench = right
    intervals: dict[str, tuple[float, float]] = {}
    if left_bench.histogram and right_bench.histogram:
        intervals = bootstrap_intervals(
            left_bench.histogram, right_bench.histogram, [*PAIR_METRICS, "mean"]
        )
    rows = []
    for metric in PAIR_METRICS:
        a = getattr(left_bench, metric)
        b = getattr(right_bench, metric)
        if a is None or b is None or a == 0:
            continue
        ratio = float(b) / float(a)
        interval = intervals.get(metric)
        if metric in HIGHER_IS_BETTER and "mean" in intervals:
            low, high = intervals["mean"]
            interval = (1.0 / (1.0 + high) - 1.0, 1.0 / (1.0 + low) - 1.0)
        noise = judge_noise(
            ratio - 1.0,
            interval,
            (),
            (left_bench.count, right_bench.count) if interval is not None else None,
        )
        right_better = ratio > 1.0 if metric in HIGHER_IS_BETTER else ratio < 1.0
        better = (right_label if right_better else left_label) if noise.significant else ""
        # Noise as a share of the ratio itself: "15x ±3%" reads better than "15x ±0.45".
        size = noise.size / ratio if noise.size is not None else None
        rows.append(
            PairComparison(
                kind=kind,
                node=node,
                workload=workload,
                parameters=parameters,
                metric=metric,
                left_label=left_label,
                right_label=right_label,
                left_run=left_run.run_id,
                right_run=right_run.run_id,
                left=float(a),
                right=float(b),
                ratio=ratio,
                better=better,
                noise=size,
                noise_method=noise.method,
            )
        )
    return rows


def compare_nodes(latest: Mapping[str, RunRecord], nodes: Sequence[str]) -> list[PairComparison]:
    """The first node's latest run against each other node's, series by series."""
    missing = [n for n in nodes if n not in latest]
    if missing:
        known = ", ".join(sorted(latest)) or "none"
        raise ImmichcheckError(
            f"no benchmark runs for node(s) {', '.join(missing)} (nodes with runs: {known})"
        )
    reference = nodes[0]
    left_index = _bench_index(latest[reference])
    rows: list[PairComparison] = []
    for other in nodes[1:]:
        right_index = _bench_index(latest[other])
        for key in sorted(set(left_index) & set(right_index)):
            rows += _pair(
                "node",
                f"{reference} vs {other}",
                key[0],
                key[1],
                (reference, latest[reference], left_index[key]),
                (other, latest[other], right_index[key]),
            )
    return rows


def path_labels(run: RunRecord) -> list[str]:
    """The storage path labels a run measured, sorted."""
    return sorted({label for b in run.benchmarks if (label := path_label(b.parameters))})


def compare_paths(run: RunRecord, labels: Sequence[str]) -> list[PairComparison]:
    """Storage series measured on path `labels[0]` against the same series on the others."""
    grouped: dict[tuple[str, str], dict[str, BenchmarkResult]] = {}
    for bench in run.benchmarks:
        label = path_label(bench.parameters)
        if label is None:
            continue
        shared = {k: v for k, v in bench.parameters.items() if k not in PATH_KEYS}
        grouped.setdefault((bench.workload, canonical_parameters(shared)), {})[str(label)] = bench
    rows: list[PairComparison] = []
    reference = labels[0]
    for (workload, parameters), by_label in sorted(grouped.items()):
        if reference not in by_label:
            continue
        for other in labels[1:]:
            if other in by_label:
                rows += _pair(
                    "path",
                    run.node,
                    workload,
                    parameters,
                    (reference, run, by_label[reference]),
                    (other, run, by_label[other]),
                )
    return rows


def trends(
    frame: pd.DataFrame, current: RunRecord, runs: Sequence[RunRecord], count: int
) -> list[Trend]:
    """The last `count` runs of `current`'s node, per series of `current`, oldest first."""
    if count < 2:
        return []
    node_orders = sorted(frame.loc[frame["node"] == current.node, "order"].unique())[-count:]
    if len(node_orders) < 2:
        return []
    rows = frame[frame["order"].isin(node_orders) & frame["metric"].isin(TREND_METRICS)]
    wanted = set(_bench_index(current))
    result = []
    table = rows.pivot_table(
        index=["workload", "parameters", "order"], columns="metric", values="value", aggfunc="last"
    )
    for (workload, parameters), block in table.groupby(level=[0, 1], sort=True):
        if (workload, parameters) not in wanted:
            continue
        block = block.dropna(axis=1, how="all").dropna(axis=0, how="any")
        if len(block) < 2:
            continue
        orders = [int(o) for o in block.index.get_level_values("order")]
        values = {m: tuple(float(v) for v in block[m]) for m in TREND_METRICS if m in block}
        result.append(
            Trend(
                node=current.node,
                workload=str(workload),
                parameters=str(parameters),
                run_ids=tuple(runs[o].run_id for o in orders),
                started_at=tuple(runs[o].started_at.isoformat() for o in orders),
                values=values,
                change={m: (v[-1] / v[0] - 1.0) if v[0] else 0.0 for m, v in values.items()},
            )
        )
    return result


def _distributions(run: RunRecord) -> list[Distribution]:
    return [
        Distribution(
            node=run.node,
            workload=b.workload,
            parameters=canonical_parameters(b.parameters),
            run_id=run.run_id,
            count=b.count,
            min=b.min,
            p50=b.p50,
            p90=b.p90,
            p95=b.p95,
            p99=b.p99,
            p999=b.p999,
            max=b.max,
            throughput=b.throughput,
            bytes_per_second=b.bytes_per_second,
            errors=b.errors,
        )
        for b in sorted(
            run.benchmarks, key=lambda b: (b.workload, canonical_parameters(b.parameters))
        )
    ]


def _latest_by_node(runs: Sequence[RunRecord]) -> dict[str, RunRecord]:
    latest: dict[str, RunRecord] = {}
    for run in runs:  # oldest first, so the last one wins
        latest[run.node] = run
    return latest


def build_report(
    runs: Sequence[RunRecord], warnings: Sequence[str], options: ReportOptions
) -> Report:
    """Compare the stored runs as `options` asks and return the report data."""
    if options.node is not None:
        runs = [r for r in runs if r.node == options.node]
    runs = sorted(runs, key=lambda r: (r.started_at, r.run_id))
    if not runs:
        where = f" for node {options.node}" if options.node else ""
        raise ImmichcheckError(f"no runs to report{where}", ExitCode.UNKNOWN)
    bench_runs = [r for r in runs if r.benchmarks]
    frame = runs_frame(bench_runs)
    latest = _latest_by_node(bench_runs)
    notes: list[str] = []
    if not bench_runs:
        notes.append("no benchmark runs stored: nothing to compare and no targets judged")

    baselines: list[RunRecord] = []
    changes: list[Change] = []
    path_pairs: list[PairComparison] = []
    trend_rows: list[Trend] = []
    distributions: list[Distribution] = []
    for node in sorted(latest):
        current = latest[node]
        order = bench_runs.index(current)
        distributions += _distributions(current)
        baseline = resolve_baseline(options.baseline, current, bench_runs)
        if baseline is None:
            notes.append(
                f"{node}: no baseline run for {options.baseline!r} on this node; "
                "only targets judged"
            )
        else:
            baselines.append(baseline)
            changes += compare_runs(
                current,
                baseline,
                options.rules,
                _earlier_values(frame, node, order),
                options.min_history,
            )
        measured_labels = path_labels(current)
        labels = list(options.paths) or measured_labels
        missing = [label for label in options.paths if label not in measured_labels]
        if missing:
            notes.append(
                f"{node}: storage path(s) {', '.join(missing)} not measured in the latest run "
                f"(measured: {', '.join(measured_labels) or 'none'})"
            )
        if len(labels) >= 2:
            path_pairs += compare_paths(current, labels)
        trend_rows += trends(frame, current, bench_runs, options.trend)

    node_pairs: list[PairComparison] = []
    if options.nodes:
        if len(options.nodes) < 2:
            raise ImmichcheckError("--nodes needs at least two nodes, e.g. node01,node05")
        node_pairs = compare_nodes(latest, options.nodes)

    failing: list[CheckLine] = []
    verify_latest = _latest_by_node([r for r in runs if r.checks])
    for node in sorted(verify_latest):
        for check in verify_latest[node].checks:
            if check.status not in (Status.PASS, Status.SKIP):
                failing.append(
                    CheckLine(node, check.code, check.status.value, check.component, check.message)
                )

    latest_runs = [latest[n] for n in sorted(latest)]
    shown_latest = latest_runs + [
        verify_latest[n] for n in sorted(verify_latest) if verify_latest[n] not in latest_runs
    ]
    return Report(
        as_of=max(r.finished_at for r in runs).isoformat(),
        baseline=options.baseline,
        runs_considered=len(runs),
        warnings=tuple(warnings),
        latest=tuple(_run_info(r) for r in shown_latest),
        baselines=tuple(_run_info(r) for r in baselines),
        changes=tuple(changes),
        node_pairs=tuple(node_pairs),
        path_pairs=tuple(path_pairs),
        trends=tuple(trend_rows),
        targets=tuple(evaluate_targets(options.targets, latest_runs)),
        distributions=tuple(distributions),
        failing_checks=tuple(failing),
        notes=tuple(notes),
    )

"""The report whose verdicts `immichcheck export` writes next to the metrics.

Regressions compare each node's latest run with its baseline, as `immichcheck report` does.
Targets are judged on every series' latest figure instead of the latest run alone, because
the exported series keep their latest figure too: after `bench --suite upload`, the PostgreSQL
target keeps its verdict instead of turning "not measured" and dropping out of the metrics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from immichcheck.common.records import RunRecord
from immichcheck.history.compare import ReportOptions, build_report
from immichcheck.history.latest_series import latest_series_runs
from immichcheck.history.report_model import Report
from immichcheck.history.thresholds import evaluate_targets


def export_report(
    runs: Sequence[RunRecord], warnings: Sequence[str], options: ReportOptions
) -> Report:
    """`build_report` with target verdicts on the latest figure of every benchmark series."""
    report = build_report(runs, warnings, options)
    targets = evaluate_targets(options.targets, latest_series_runs(runs))
    return dataclasses.replace(report, targets=tuple(targets))

"""Regression rules (`p95:+10%`): parsing them, and the global and per-workload rule sets of
benchmarks/regression-rules.yaml."""

from __future__ import annotations

import fnmatch
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.project_files import load_yaml_file, project_folder
from immichcheck.history.report_model import (
    HIGHER_IS_BETTER,
)

if TYPE_CHECKING:
    pass
from immichcheck.history.runs_frame import METRICS

RULES_FILE = "regression-rules.yaml"


@dataclass(frozen=True)
class RegressionRule:
    """`p95:+10%`: a rise of p95 by more than 10% is a regression (a fall, an improvement)."""

    metric: str
    threshold: float  # fraction
    worse_when_higher: bool
    text: str


def parse_rule(text: str) -> RegressionRule:
    """Parse `metric:+N%` / `metric:-N%` (the sign says which direction is worse)."""
    metric, sep, amount = text.replace(" ", "").partition(":")
    if not sep or not amount.endswith("%") or metric not in METRICS:
        raise ImmichcheckError(
            f"bad regression rule {text!r}: write METRIC:+N% or METRIC:-N% with METRIC one of "
            f"{', '.join(METRICS)}"
        )
    number = amount[:-1]
    if number[:1] in "+-" and number:
        worse_when_higher = number[0] == "+"
        number = number[1:]
    else:
        worse_when_higher = metric not in HIGHER_IS_BETTER
    try:
        threshold = float(number) / 100.0
    except ValueError as exc:
        raise ImmichcheckError(f"bad regression rule {text!r}: {number!r} is not a number") from exc
    if not threshold > 0 or math.isinf(threshold):
        raise ImmichcheckError(f"bad regression rule {text!r}: the percentage must be positive")
    sign = "+" if worse_when_higher else "-"
    return RegressionRule(metric, threshold, worse_when_higher, f"{metric}:{sign}{number}%")


@dataclass(frozen=True)
class RuleSet:
    """Global rules plus per-workload rules (fnmatch patterns, first match wins per metric)."""

    global_rules: tuple[RegressionRule, ...] = ()
    workload_rules: tuple[tuple[str, tuple[RegressionRule, ...]], ...] = ()

    def rules_for(self, workload: str) -> list[RegressionRule]:
        """The rules that apply to a workload: its own first, then the global ones."""
        chosen: dict[str, RegressionRule] = {}
        for pattern, rules in self.workload_rules:
            if fnmatch.fnmatchcase(workload, pattern):
                for rule in rules:
                    chosen.setdefault(rule.metric, rule)
        for rule in self.global_rules:
            chosen.setdefault(rule.metric, rule)
        return [chosen[m] for m in METRICS if m in chosen]


def _rule_list(value: Any, where: str) -> tuple[RegressionRule, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ImmichcheckError(f"{where}: expected a list of rules such as 'p95:+10%'")
    return tuple(parse_rule(v) for v in value)


def parse_rules(data: Any, source: str) -> RuleSet:
    """A RuleSet from the parsed YAML (`global: [...]`, `workloads: {pattern: [...]}`)."""
    if not isinstance(data, dict):
        raise ImmichcheckError(f"{source}: expected a mapping with 'global' and 'workloads'")
    unknown = sorted(set(data) - {"global", "workloads"})
    if unknown:
        raise ImmichcheckError(f"{source}: unknown key(s) {', '.join(unknown)}")
    workloads = data.get("workloads") or {}
    if not isinstance(workloads, dict):
        raise ImmichcheckError(f"{source}: 'workloads' must map workload patterns to rules")
    return RuleSet(
        global_rules=_rule_list(data.get("global") or [], f"{source}: global"),
        workload_rules=tuple(
            (str(pattern), _rule_list(rules, f"{source}: workloads.{pattern}"))
            for pattern, rules in workloads.items()
        ),
    )


def load_rules(path: str | os.PathLike[str] | None = None) -> RuleSet:
    """Rules from a YAML file (default: benchmarks/regression-rules.yaml)."""
    file = Path(path) if path else project_folder("benchmarks") / RULES_FILE
    data = load_yaml_file(file, "rules file")
    return parse_rules(data, str(file))

"""The Prometheus text exposition format: metric families declared once, rendered as bytes.

Kept apart from what immichcheck exports (history/prometheus.py) so that adding a metric is one
row in that module's table plus the code that sets its samples.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

MetricType = Literal["gauge", "summary"]
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class MetricSpec:
    """One metric family: its name, Prometheus type, label names and HELP text."""

    name: str
    type: MetricType
    labels: tuple[str, ...]
    help: str


def escape_label_value(value: str) -> str:
    """Escape a label value as the exposition format requires (backslash, quote, newline)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: shortest exact repr, with Prometheus spellings for the specials."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass
class _Samples:
    spec: MetricSpec
    # (labels, quantile or "", suffix) -> value; a summary's quantile rows and its _sum/_count
    # share the family's labels, so they are keyed together and rendered side by side.
    values: dict[tuple[Labels, str, str], float] = field(default_factory=dict)


class Exposition:
    """Samples for a fixed table of families, rendered in the table's order."""

    def __init__(self, specs: Iterable[MetricSpec]) -> None:
        self._families = {spec.name: _Samples(spec) for spec in specs}

    def set(self, name: str, labels: Mapping[str, str], value: float) -> None:
        """Set a gauge sample; the label names must be exactly the family's."""
        self._family(name, labels, "gauge").values[(_labels(labels), "", "")] = value

    def get(self, name: str, labels: Mapping[str, str]) -> float | None:
        """A gauge sample set earlier, or None."""
        return self._families[name].values.get((_labels(labels), "", ""))

    def set_summary(
        self,
        name: str,
        labels: Mapping[str, str],
        quantiles: Mapping[str, float],
        total: float,
        count: int,
    ) -> None:
        """Set one summary: its quantile samples plus _sum and _count."""
        family = self._family(name, labels, "summary")
        key = _labels(labels)
        for quantile, value in quantiles.items():
            family.values[(key, quantile, "")] = value
        family.values[(key, "", "_sum")] = total
        family.values[(key, "", "_count")] = count

    def render(self) -> str:
        """The exposition text (families without samples are left out)."""
        lines: list[str] = []
        for family in self._families.values():
            if not family.values:
                continue
            spec = family.spec
            lines += [f"# HELP {spec.name} {spec.help}", f"# TYPE {spec.name} {spec.type}"]
            for labels, quantile, suffix in sorted(family.values, key=_render_order):
                pairs = list(labels) + ([("quantile", quantile)] if quantile else [])
                rendered = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in pairs)
                selector = f"{{{rendered}}}" if rendered else ""
                value = family.values[(labels, quantile, suffix)]
                lines.append(f"{spec.name}{suffix}{selector} {format_value(value)}")
        return "\n".join(lines) + "\n"

    def _family(self, name: str, labels: Mapping[str, str], kind: MetricType) -> _Samples:
        family = self._families[name]
        if family.spec.type != kind or set(labels) != set(family.spec.labels):
            raise ValueError(f"{name} is a {family.spec.type} with labels {family.spec.labels}")
        return family


def _labels(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted(labels.items()))


_SUFFIX_ORDER = {"": 0, "_sum": 1, "_count": 2}


def _render_order(key: tuple[Labels, str, str]) -> tuple[Labels, int, float]:
    labels, quantile, suffix = key
    # Quantiles in numeric order, then _sum and _count, as client libraries write them.
    return (labels, _SUFFIX_ORDER[suffix], float(quantile) if quantile else 0.0)

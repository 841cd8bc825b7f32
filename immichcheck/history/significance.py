"""Whether a change beats the noise: a bootstrap over two stored HDR histograms, and the
run-to-run spread of earlier runs, combined into one verdict."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


QUANTILES: Mapping[str, float] = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999}
BOOTSTRAP_METRICS = frozenset({*QUANTILES, "mean"})
MIN_REPEATS = 5  # earlier runs needed before run-to-run spread is trusted
BOOTSTRAP_ITERATIONS = 400
BOOTSTRAP_SEED = 20261128  # fixed: the same history always gives the same report
_REBIN_RATIO = 1.01  # merge histogram buckets within 1%: far below any rule threshold


@lru_cache(maxsize=256)
def histogram_bins(encoded: str) -> tuple[np.ndarray, np.ndarray]:
    """Bucket values (seconds, mid-bucket) and counts of a stored HDR histogram, merged to 1%."""
    import numpy as np

    from immichcheck.common.statistics import decode_histogram

    histogram = decode_histogram(encoded)
    counts = np.ctypeslib.as_array(histogram.counts)[: histogram.counts_len].astype(np.int64)
    index = np.nonzero(counts)[0]
    # Vectorised HdrHistogram.get_value_from_index: iterating buckets in Python is ~100x slower.
    bucket = (index >> histogram.sub_bucket_half_count_magnitude) - 1
    sub_bucket = (index & (histogram.sub_bucket_half_count - 1)) + histogram.sub_bucket_half_count
    below = bucket < 0
    sub_bucket = np.where(below, sub_bucket - histogram.sub_bucket_half_count, sub_bucket)
    bucket = np.where(below, 0, bucket)
    width = np.exp2(bucket + histogram.unit_magnitude)
    values_ns = sub_bucket * width + width / 2.0
    weights = counts[index].astype(np.float64)
    groups = np.floor(np.log(values_ns) / math.log(_REBIN_RATIO)).astype(np.int64)
    _, inverse = np.unique(groups, return_inverse=True)
    merged_counts = np.bincount(inverse, weights=weights)
    merged_values = np.bincount(inverse, weights=weights * values_ns) / merged_counts
    return merged_values / 1e9, merged_counts.astype(np.int64)


def _bootstrap_statistics(
    bins: tuple[np.ndarray, np.ndarray], metrics: Iterable[str], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    import numpy as np

    values, counts = bins
    total = int(counts.sum())
    draws = rng.multinomial(total, counts / total, size=BOOTSTRAP_ITERATIONS)
    cumulative = np.cumsum(draws, axis=1)
    result: dict[str, np.ndarray] = {}
    for metric in metrics:
        if metric == "mean":
            result[metric] = draws @ values / total
        else:
            rank = max(1, math.ceil(QUANTILES[metric] * total))
            result[metric] = values[(cumulative < rank).sum(axis=1)]
    return result


def bootstrap_intervals(
    baseline: str, current: str, metrics: Iterable[str]
) -> dict[str, tuple[float, float]]:
    """~95% bootstrap intervals of current/baseline - 1 for latency metrics of two histograms."""
    import numpy as np

    wanted = sorted(set(metrics) & BOOTSTRAP_METRICS)
    if not wanted:
        return {}
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    before = _bootstrap_statistics(histogram_bins(baseline), wanted, rng)
    after = _bootstrap_statistics(histogram_bins(current), wanted, rng)
    intervals = {}
    for metric in wanted:
        with np.errstate(divide="ignore", invalid="ignore"):
            relative = after[metric] / before[metric] - 1.0
        relative = relative[np.isfinite(relative)]
        if relative.size:
            low, high = np.percentile(relative, [2.5, 97.5])
            intervals[metric] = (float(low), float(high))
    return intervals


@dataclass(frozen=True)
class Noise:
    """How big the noise around a relative change is, and whether the change beats it."""

    size: float | None
    method: str
    interval: tuple[float, float] | None
    significant: bool


def judge_noise(
    change: float,
    interval: tuple[float, float] | None,
    earlier: Sequence[float],
    samples: tuple[int, int] | None,
    min_history: int = 0,
) -> Noise:
    """Combine the histogram bootstrap and the run-to-run spread into one noise verdict.

    `min_history`: earlier runs needed before a change over time may be called at all.
    """
    sizes: list[float] = []
    methods: list[str] = []
    significant = True
    if interval is not None:
        low, high = interval
        sizes.append((high - low) / 2.0)
        n_before, n_after = samples or (0, 0)
        methods.append(f"bootstrap of histograms ({n_before} vs {n_after} samples)")
        significant = significant and (low > 0.0 or high < 0.0)
    if len(earlier) >= MIN_REPEATS:
        mean = sum(earlier) / len(earlier)
        variance = sum((v - mean) ** 2 for v in earlier) / (len(earlier) - 1)
        spread = 2.0 * math.sqrt(variance) / mean if mean else 0.0
        sizes.append(spread)
        methods.append(f"run-to-run spread of {len(earlier)} earlier runs")
        significant = significant and abs(change) > spread
    if not sizes:
        return Noise(
            None,
            f"unknown: no histograms and fewer than {MIN_REPEATS} earlier runs",
            None,
            False,
        )
    if len(earlier) < min_history:
        # A histogram only sees the noise inside one run; two runs on one machine differ by
        # more (other load, caches, CPU frequency). Measured: two back-to-back `bench --local`
        # runs gave 38 bootstrap-"significant" changes of 10-40%. Until enough earlier runs
        # size that run-to-run noise, a change over time is not called.
        methods.append(
            f"run-to-run noise unknown: {len(earlier)} earlier run(s), {min_history} needed"
        )
        # The band is unknown, not the histogram's (much narrower) one.
        return Noise(None, "; ".join(methods), interval, False)
    return Noise(max(sizes), "; ".join(methods), interval, significant)

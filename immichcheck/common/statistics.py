"""One place that turns raw latency samples into every derived number (HDR histogram)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from immichcheck.common.records import BenchmarkResult

# Nanosecond resolution, up to one hour, three significant digits: 0.1% error at any magnitude.
_LOWEST_NS = 1
_HIGHEST_NS = 3600 * 1_000_000_000
_SIGNIFICANT_DIGITS = 3
_NS_PER_SECOND = 1_000_000_000


def new_histogram() -> HdrHistogram:
    """An empty histogram with the project's range and precision."""
    return HdrHistogram(_LOWEST_NS, _HIGHEST_NS, _SIGNIFICANT_DIGITS)


class LatencyRecorder:
    """Collects latencies (seconds or nanoseconds) and error counts for one workload."""

    def __init__(self) -> None:
        self.histogram = new_histogram()
        self.errors = 0
        self.error_messages: list[str] = []

    def record_seconds(self, seconds: float) -> None:
        """Record one latency given in seconds."""
        self.record_ns(int(seconds * _NS_PER_SECOND))

    def record_ns(self, nanoseconds: int) -> None:
        """Record one latency given in nanoseconds, clamped into the histogram's range."""
        value = min(max(nanoseconds, _LOWEST_NS), _HIGHEST_NS)
        self.histogram.record_value(value)

    def record_error(self, message: str) -> None:
        """Count one failed operation, keeping the first few distinct messages."""
        self.errors += 1
        if message not in self.error_messages and len(self.error_messages) < 5:
            self.error_messages.append(message)

    def merge(self, other: LatencyRecorder) -> None:
        """Add another recorder's samples and errors (e.g. from another worker)."""
        self.histogram.add(other.histogram)
        self.errors += other.errors
        for message in other.error_messages:
            if message not in self.error_messages and len(self.error_messages) < 5:
                self.error_messages.append(message)

    @property
    def count(self) -> int:
        """Number of successful samples."""
        return int(self.histogram.get_total_count())


def encode_histogram(histogram: HdrHistogram) -> str:
    """Compressed base64 text of a histogram, for storing in a run record."""
    return histogram.encode().decode("ascii")


def decode_histogram(text: str) -> HdrHistogram:
    """Inverse of `encode_histogram`."""
    return HdrHistogram.decode(text.encode("ascii"))


_PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


@dataclass(frozen=True)
class HistogramFigures:
    """Percentiles (by percent), mean and standard deviation of a histogram, in nanoseconds."""

    percentiles: Mapping[float, float]
    mean: float
    stddev: float


def histogram_figures(histogram: HdrHistogram) -> HistogramFigures:
    """Percentiles, mean and stddev with HdrHistogram's own semantics, computed with numpy.

    hdrh walks its ~34k buckets in pure Python once per percentile and twice more for the mean
    and stddev (about 0.25 s per workload); one vectorised pass gives the same numbers.
    """
    import numpy as np

    counts = np.ctypeslib.as_array(histogram.counts)[: histogram.counts_len].astype(np.int64)
    index = np.nonzero(counts)[0]
    weights = counts[index]
    # Vectorised HdrHistogram.get_value_from_index: the lowest value of each bucket and its width.
    bucket = (index >> histogram.sub_bucket_half_count_magnitude) - 1
    sub_bucket = (index & (histogram.sub_bucket_half_count - 1)) + histogram.sub_bucket_half_count
    below = bucket < 0
    sub_bucket = np.where(below, sub_bucket - histogram.sub_bucket_half_count, sub_bucket)
    bucket = np.where(below, 0, bucket)
    shift = bucket + histogram.unit_magnitude
    lowest = sub_bucket.astype(np.int64) << shift
    width = np.left_shift(np.int64(1), shift)
    highest_equivalent = lowest + width - 1
    median_equivalent = lowest + (width >> 1)
    total = int(weights.sum())
    cumulative = np.cumsum(weights)
    percentiles = {}
    for percent in _PERCENTILES:
        wanted = max(int(percent / 100.0 * total + 0.5), 1)
        position = int(np.searchsorted(cumulative, wanted, side="left"))
        percentiles[percent] = float(highest_equivalent[min(position, len(index) - 1)])
    mean = float((median_equivalent * weights).sum() / total)
    variance = float((((median_equivalent - mean) ** 2) * weights).sum() / total)
    return HistogramFigures(percentiles, mean, variance**0.5)


def summarize(
    workload: str,
    parameters: Mapping[str, Any],
    recorder: LatencyRecorder,
    wall_seconds: float,
    *,
    operations: int | None = None,
    bytes_moved: int | None = None,
    engine: str = "immichcheck",
    notes: Iterable[str] = (),
) -> BenchmarkResult:
    """Derive a `BenchmarkResult` from a recorder and the measured wall time.

    `operations` overrides the sample count for throughput when one sample covers several
    operations (a pipeline of 16 commands timed as one round trip).
    """
    histogram = recorder.histogram
    count = recorder.count
    ops = operations if operations is not None else count
    figures = histogram_figures(histogram) if count else None

    def seconds(ns: float) -> float:
        return float(ns) / _NS_PER_SECOND

    def percentile(p: float) -> float:
        return seconds(figures.percentiles[p]) if figures else 0.0

    throughput = ops / wall_seconds if wall_seconds > 0 else 0.0
    return BenchmarkResult(
        workload=workload,
        parameters=dict(parameters),
        count=count,
        min=seconds(histogram.get_min_value()) if count else 0.0,
        p50=percentile(50.0),
        p90=percentile(90.0),
        p95=percentile(95.0),
        p99=percentile(99.0),
        p999=percentile(99.9),
        max=seconds(histogram.get_max_value()) if count else 0.0,
        mean=seconds(figures.mean) if figures else 0.0,
        stddev=seconds(figures.stddev) if figures else 0.0,
        throughput=throughput,
        errors=recorder.errors,
        duration=wall_seconds,
        bytes_per_second=(bytes_moved / wall_seconds)
        if bytes_moved is not None and wall_seconds > 0
        else None,
        histogram=encode_histogram(histogram) if count else None,
        engine=engine,
        notes=tuple(notes),
        error_messages=tuple(recorder.error_messages),
    )

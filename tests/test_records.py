"""Run records survive a JSON round trip unchanged."""

import dataclasses

from immichcheck.common.host_facts import host_facts
from immichcheck.common.records import (
    SCHEMA_VERSION,
    CheckResult,
    RunRecord,
    Status,
    new_run_id,
    utc_now,
)
from immichcheck.common.statistics import LatencyRecorder, decode_histogram, summarize


def _sample_run(tmp_path) -> RunRecord:
    recorder = LatencyRecorder()
    for micros in (100, 200, 300, 400, 5000):
        recorder.record_seconds(micros / 1e6)
    recorder.record_error("connection reset")
    bench = summarize("redis.set", {"pipeline": 16, "clients": 50}, recorder, 0.5)
    bench = dataclasses.replace(bench, facts={"aof": {"aof_delayed_fsync_delta": 0}})
    check = CheckResult(
        code="IC-RD-101",
        target="redis",
        status=Status.FAIL,
        message="eviction policy is allkeys-lru",
        remediation="set maxmemory-policy noeviction",
        duration=0.012,
        evidence={"policy": "allkeys-lru"},
        component="redis",
    )
    start = utc_now()
    return RunRecord(
        run_id=new_run_id(start),
        kind="bench",
        started_at=start,
        finished_at=utc_now(),
        node="local",
        host=host_facts([tmp_path]),
        tool_version="0.1.0",
        service_versions={"redis": "7.0.15"},
        checks=(check,),
        benchmarks=(bench,),
        tags=("baseline",),
        settings={"profile": "quick"},
    )


def test_run_record_json_round_trip(tmp_path):
    run = _sample_run(tmp_path)
    again = RunRecord.from_json(run.to_json())
    assert again == run
    assert again.schema_version == SCHEMA_VERSION
    assert again.checks[0].status is Status.FAIL


def test_summary_is_in_seconds_and_keeps_the_histogram(tmp_path):
    bench = _sample_run(tmp_path).benchmarks[0]
    assert bench.count == 5 and bench.errors == 1
    assert 0.0001 <= bench.p50 <= 0.00031  # 300 us within HDR precision
    assert 0.0049 <= bench.max <= 0.0051
    assert bench.throughput == 10.0  # 5 samples in 0.5 s
    assert bench.histogram is not None
    assert decode_histogram(bench.histogram).get_total_count() == 5


def test_host_facts_name_the_filesystem_of_measured_paths(tmp_path):
    facts = host_facts([tmp_path])
    assert facts.cpu_count >= 1 and facts.memory_bytes > 0
    assert facts.filesystems[0].path == str(tmp_path.resolve())
    assert facts.filesystems[0].fstype


def test_vectorised_figures_match_hdrhistogram_exactly():
    import random

    from immichcheck.common.statistics import histogram_figures

    rng = random.Random(7)
    recorder = LatencyRecorder()
    for _ in range(20_000):
        recorder.record_seconds(rng.lognormvariate(-7.5, 1.2))
    histogram = recorder.histogram
    figures = histogram_figures(histogram)
    for percent in (50.0, 90.0, 95.0, 99.0, 99.9):
        assert figures.percentiles[percent] == histogram.get_value_at_percentile(percent)
    assert abs(figures.mean - histogram.get_mean_value()) <= 1e-6 * histogram.get_mean_value()
    assert abs(figures.stddev - histogram.get_stddev()) <= 1e-6 * histogram.get_stddev()

"""The shared Prometheus rendering: exact bytes, valid exposition, latest run per node/kind."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from immichcheck.common.records import Status
from immichcheck.history.prometheus import escape_label_value, render_prometheus
from tests.test_store_factories import bench, check, run


def _families(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    parsed: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        expected = "summary" if family.name == "immichcheck_benchmark_latency_seconds" else "gauge"
        assert family.type == expected, family.name
        for sample in family.samples:
            parsed.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return parsed


def test_exact_bytes_for_one_verify_and_one_bench_run() -> None:
    bench_run = run(
        0,
        benchmarks=[
            bench("redis.set", {"pipeline": 16, "clients": 50}, [0.001, 0.002, 0.003, 0.004])
        ],
    )
    verify_run = run(
        0,
        kind="verify",
        checks=[
            check("IC-RD-101", Status.FAIL, "redis"),
            check("IC-PG-101", Status.PASS, "postgres"),
            check("IC-PG-101", Status.WARN, "postgres", target="replica"),
            check("IC-ML-101", Status.SKIP, "ml"),
        ],
    )
    text = render_prometheus([bench_run, verify_run], now=1_800_000_000.5)
    latency = (
        'immichcheck_benchmark_latency_seconds{node="node05",params="clients=50,pipeline=16",'
        'workload="redis.set",quantile="%s"} %s'
    )
    labels = 'node="node05",params="clients=50,pipeline=16",workload="redis.set"'
    expected = "\n".join(
        [
            "# HELP immichcheck_check_status Worst status of a check code: "
            "-1 SKIP, 0 PASS, 1 WARN, 2 FAIL, 3 ERROR.",
            "# TYPE immichcheck_check_status gauge",
            'immichcheck_check_status{code="IC-ML-101",component="ml",node="node05"} -1',
            'immichcheck_check_status{code="IC-PG-101",component="postgres",node="node05"} 1',
            'immichcheck_check_status{code="IC-RD-101",component="redis",node="node05"} 2',
            "# HELP immichcheck_checks Number of check results per status in the latest run.",
            "# TYPE immichcheck_checks gauge",
            'immichcheck_checks{kind="verify",node="node05",status="ERROR"} 0',
            'immichcheck_checks{kind="verify",node="node05",status="FAIL"} 1',
            'immichcheck_checks{kind="verify",node="node05",status="PASS"} 1',
            'immichcheck_checks{kind="verify",node="node05",status="SKIP"} 1',
            'immichcheck_checks{kind="verify",node="node05",status="WARN"} 1',
            "# HELP immichcheck_benchmark_latency_seconds "
            "Latency of one benchmark's operations in seconds (quantiles, sum and count).",
            "# TYPE immichcheck_benchmark_latency_seconds summary",
            latency % ("0.5", "0.002000895"),
            latency % ("0.9", "0.004001791"),
            latency % ("0.95", "0.004001791"),
            latency % ("0.99", "0.004001791"),
            latency % ("0.999", "0.004001791"),
            f"immichcheck_benchmark_latency_seconds_sum{{{labels}}} 0.01000064",
            f"immichcheck_benchmark_latency_seconds_count{{{labels}}} 4",
            "# HELP immichcheck_benchmark_throughput_ops_per_second "
            "Benchmark throughput in operations per second.",
            "# TYPE immichcheck_benchmark_throughput_ops_per_second gauge",
            f"immichcheck_benchmark_throughput_ops_per_second{{{labels}}} 400",
            "# HELP immichcheck_benchmark_errors Failed operations during the benchmark.",
            "# TYPE immichcheck_benchmark_errors gauge",
            f"immichcheck_benchmark_errors{{{labels}}} 0",
            "# HELP immichcheck_benchmark_timestamp_seconds "
            "Unix time the run that measured this benchmark series finished.",
            "# TYPE immichcheck_benchmark_timestamp_seconds gauge",
            f"immichcheck_benchmark_timestamp_seconds{{{labels}}} 1793498490",
            "# HELP immichcheck_last_run_timestamp_seconds Unix time the latest run finished.",
            "# TYPE immichcheck_last_run_timestamp_seconds gauge",
            'immichcheck_last_run_timestamp_seconds{kind="bench",node="node05"} 1793498490',
            'immichcheck_last_run_timestamp_seconds{kind="verify",node="node05"} 1793498490',
            "# HELP immichcheck_last_success_timestamp_seconds "
            "Unix time the latest run without failures or errors finished.",
            "# TYPE immichcheck_last_success_timestamp_seconds gauge",
            'immichcheck_last_success_timestamp_seconds{kind="bench",node="node05"} 1793498490',
            "# HELP immichcheck_exposition_generated_timestamp_seconds "
            "Unix time this exposition was written.",
            "# TYPE immichcheck_exposition_generated_timestamp_seconds gauge",
            "immichcheck_exposition_generated_timestamp_seconds 1800000000.5",
            "",
        ]
    )
    assert text == expected
    # The verify run failed (IC-RD-101), so it has a last-run time but no last-success time.
    parsed = _families(text)
    assert parsed["immichcheck_last_success_timestamp_seconds"] == [
        ({"kind": "bench", "node": "node05"}, 1793498490.0)
    ]


def test_exposition_parses_and_uses_only_the_latest_run_per_node_and_kind() -> None:
    old = run(0, benchmarks=[bench("postgres.select1", {"concurrency": 4}, [0.5] * 10)])
    new = run(
        1,
        benchmarks=[
            bench("postgres.select1", {"concurrency": 4}, [0.0004] * 10),
            bench(
                "storage.fdatasync_8k",
                {"path_label": 'nfs "slow"\\share', "path": "/mnt/nfs\nline"},
                [0.002] * 10,
                bytes_per_op=8192,
                errors=2,
            ),
        ],
    )
    other_node = run(
        0,
        node="node01",
        kind="verify",
        checks=[check("IC-PG-103", Status.ERROR, "postgres", message='said "no"\n')],
    )
    failed_later = run(2, kind="verify", checks=[check("IC-RD-101", Status.FAIL, "redis")])
    passed_earlier = run(1, kind="verify", checks=[check("IC-RD-101", Status.PASS, "redis")])
    text = render_prometheus([new, other_node, old, failed_later, passed_earlier], now=0.0)
    parsed = _families(text)

    p50 = {
        (s["node"], s["workload"], s["params"]): v
        for s, v in parsed["immichcheck_benchmark_latency_seconds"]
        if s["quantile"] == "0.5"
    }
    assert p50[("node05", "postgres.select1", "concurrency=4")] < 0.001  # not the old 0.5 s
    storage_params = 'path=/mnt/nfs\nline,path_label=nfs "slow"\\share'
    assert ("node05", "storage.fdatasync_8k", storage_params) in p50
    assert (
        {"node": "node05", "params": storage_params, "workload": "storage.fdatasync_8k"},
        2.0,
    ) in parsed["immichcheck_benchmark_errors"]
    assert abs(parsed["immichcheck_benchmark_bytes_per_second"][0][1] - 8192 * 500) < 1e-3

    statuses = {(s["node"], s["code"]): v for s, v in parsed["immichcheck_check_status"]}
    assert statuses == {("node01", "IC-PG-103"): 3.0, ("node05", "IC-RD-101"): 2.0}
    # The last success of node05 verify is the earlier passing run, not the failing latest one.
    success = {
        (s["node"], s["kind"]): v for s, v in parsed["immichcheck_last_success_timestamp_seconds"]
    }
    assert success[("node05", "verify")] == passed_earlier.finished_at.timestamp()
    assert ("node01", "verify") not in success
    last = {(s["node"], s["kind"]): v for s, v in parsed["immichcheck_last_run_timestamp_seconds"]}
    assert last[("node05", "verify")] == failed_later.finished_at.timestamp()
    assert "_total" not in text


def test_a_partial_bench_run_keeps_the_other_workloads_with_their_own_time() -> None:
    full = run(
        0,
        benchmarks=[
            bench("postgres.select1", {"concurrency": 4}, [0.0004] * 10),
            bench("redis.get", {"clients": 50}, [0.0002] * 10),
            bench("upload.asset", {"size": 1024}, [0.2] * 10),
        ],
    )
    upload_only = run(1, benchmarks=[bench("upload.asset", {"size": 1024}, [0.4] * 10)])
    parsed = _families(render_prometheus([upload_only, full], now=0.0))

    measured_at = {s["workload"]: v for s, v in parsed["immichcheck_benchmark_timestamp_seconds"]}
    assert measured_at == {
        "postgres.select1": full.finished_at.timestamp(),
        "redis.get": full.finished_at.timestamp(),
        "upload.asset": upload_only.finished_at.timestamp(),
    }
    p50 = {
        s["workload"]: v
        for s, v in parsed["immichcheck_benchmark_latency_seconds"]
        if s["quantile"] == "0.5"
    }
    assert set(p50) == {"postgres.select1", "redis.get", "upload.asset"}
    assert 0.39 < p50["upload.asset"] < 0.41  # the upload-only run's figure, not the full run's
    counts = {s["workload"]: v for s, v in parsed["immichcheck_benchmark_latency_seconds_count"]}
    assert counts == {"postgres.select1": 10, "redis.get": 10, "upload.asset": 10}
    last = {(s["node"], s["kind"]): v for s, v in parsed["immichcheck_last_run_timestamp_seconds"]}
    assert last == {("node05", "bench"): upload_only.finished_at.timestamp()}


def test_a_benchmark_without_successful_operations_has_count_zero_and_no_quantiles() -> None:
    failed = run(0, benchmarks=[bench("redis.get", {"clients": 1}, [], errors=3)])
    parsed = _families(render_prometheus([failed], now=0.0))
    assert parsed["immichcheck_benchmark_latency_seconds_count"] == [
        ({"node": "node05", "params": "clients=1", "workload": "redis.get"}, 0.0)
    ]
    assert "immichcheck_benchmark_latency_seconds" not in parsed
    assert parsed["immichcheck_benchmark_errors"][0][1] == 3.0


@pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian: prometheus) is not installed"
)
def test_promtool_accepts_the_exposition() -> None:
    text = render_prometheus(
        [
            run(0, benchmarks=[bench("redis.set", {"clients": 50}, [0.001, 0.002])]),
            run(0, kind="verify", checks=[check("IC-RD-101", Status.FAIL, "redis")]),
        ],
        now=1_800_000_000.5,
    )
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_label_escaping() -> None:
    assert escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'

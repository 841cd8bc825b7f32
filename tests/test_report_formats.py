"""The exact bytes of every report format for a small, fixed history."""

# Golden outputs keep the lines as long as the formats make them.
# ruff: noqa: E501

from __future__ import annotations

import json

from immichcheck.common.records import Status
from immichcheck.history.compare import ReportOptions, build_report
from immichcheck.history.regression_rules import parse_rules
from immichcheck.history.render import render_report
from immichcheck.history.report_model import Report
from immichcheck.history.thresholds import parse_target
from tests.test_store_factories import check, generated, run

RULES = parse_rules({"global": ["p95:+10%", "throughput:-10%"]}, "test rules")
TARGET = parse_target(
    {
        "id": "postgres-sub-millisecond",
        "title": "Simple queries under 1 ms",
        "workload": "postgres.select1",
        "metric": "p50",
        "below": 0.001,
        "source": "Deployment README: sub-millisecond queries",
    },
    "test target",
)


def small_report() -> Report:
    """Two nights on node05 (redis.set 30% slower on the second) plus a failing verify run."""
    runs = [
        run(
            night,
            benchmarks=[
                generated("postgres.select1", {"concurrency": 1}, 0.0004, count=200, seed=21),
                generated(
                    "redis.set",
                    {"clients": 50},
                    0.001 * (1.3 if night else 1.0),
                    count=200,
                    seed=22 + night,
                ),
            ],
        )
        for night in (0, 1)
    ]
    runs.append(
        run(
            1,
            kind="verify",
            checks=[check("IC-RD-101", Status.FAIL, "redis", "maxmemory-policy is allkeys-lru")],
        )
    )
    # Two nights only: min_history=0 lets the histogram bootstrap alone call the change.
    options = ReportOptions(rules=RULES, targets=(TARGET,), trend=5, min_history=0)
    return build_report(runs, [], options)


EXPECTED_MARKDOWN = r"""# immichcheck report

As of 2026-11-02T02:01:30+00:00 · 3 run(s) · baseline: previous

## Summary

- 2 regression(s): node05 redis.set clients=50
- 1 target(s) met
- 1 check(s) not passing: node05 IC-RD-101 FAIL

## Latest runs

| Node | Kind | Run | Started | Benchmarks | Checks | Tags |
|---|---|---|---|---|---|---|
| node05 | bench | 20261102T020000Z-node05-bench | 2026-11-02T02:00:00+00:00 | 2 | - | - |
| node05 | verify | 20261102T020000Z-node05-verify | 2026-11-02T02:00:00+00:00 | 0 | FAIL 1 | - |

## Checks not passing

| Node | Code | Status | Component | Message |
|---|---|---|---|---|
| node05 | IC-RD-101 | FAIL | redis | maxmemory-policy is allkeys-lru |

## Targets

| Target | Node | Series | Value | Needed | Verdict | Source |
|---|---|---|---|---|---|---|
| Simple queries under 1 ms | node05 | postgres.select1 concurrency=1 | p50 405 µs | < 1.00 ms | ✅ met | Deployment README: sub-millisecond queries |

## Changes against the baseline (previous)

| Node | Series | Metric | Baseline | Latest | Change | Rule | Verdict | Noise |
|---|---|---|---|---|---|---|---|---|
| node05 | redis.set clients=50 | p95 | 1.49 ms | 2.07 ms | +38.7% | p95:+10% | ❌ regression | ±10.8% |
| node05 | redis.set clients=50 | throughput | 979 ops/s | 716 ops/s | -26.9% | throughput:-10% | ❌ regression | ±3.7% |

2 more metric(s) changed less than their rule.

- node05: 20261102T020000Z-node05-bench against 20261101T020000Z-node05-bench

## Trends (last 2 runs)

| Node | Series | Runs | p50 | p95 | p99 | Throughput |
|---|---|---|---|---|---|---|
| node05 | postgres.select1 concurrency=1 | 2 | ▄▄ +0.0% | ▄▄ +0.0% | ▄▄ +0.0% | ▄▄ +0.0% |
| node05 | redis.set clients=50 | 2 | ▁█ +38.4% | ▁█ +38.7% | ▁█ +46.2% | █▁ -26.9% |

## Latest latency distributions

| Node | Series | Samples | p50 | p90 | p95 | p99 | p99.9 | max | Throughput | Errors |
|---|---|---|---|---|---|---|---|---|---|---|
| node05 | postgres.select1 concurrency=1 | 200 | 405 µs | 566 µs | 608 µs | 702 µs | 820 µs | 820 µs | 2,390 ops/s | 0 |
| node05 | redis.set clients=50 | 200 | 1.37 ms | 1.87 ms | 2.07 ms | 2.34 ms | 2.70 ms | 2.70 ms | 716 ops/s | 0 |
"""

EXPECTED_CSV = r"""section,node,workload,parameters,metric,reference,reference_value,value,change,verdict,noise,detail
change,node05,postgres.select1,"{""concurrency"":1}",p95,20261101T020000Z-node05-bench,0.000608255,0.000608255,0.0,ok,,rule p95:+10%; run 20261102T020000Z-node05-bench; noise: not tested: the change is within its rule
change,node05,postgres.select1,"{""concurrency"":1}",throughput,20261101T020000Z-node05-bench,2390.1476794903333,2390.1476794903333,0.0,ok,,rule throughput:-10%; run 20261102T020000Z-node05-bench; noise: not tested: the change is within its rule
change,node05,redis.set,"{""clients"":50}",p95,20261101T020000Z-node05-bench,0.001488895,0.002065407,0.3872079629523908,regression,0.10811716378937625,rule p95:+10%; run 20261102T020000Z-node05-bench; noise: bootstrap of histograms (200 vs 200 samples)
change,node05,redis.set,"{""clients"":50}",throughput,20261101T020000Z-node05-bench,978.7691885035257,715.8928964606532,-0.2685784300635712,regression,0.03741170520044357,rule throughput:-10%; run 20261102T020000Z-node05-bench; noise: bootstrap of histograms (200 vs 200 samples)
target,node05,postgres.select1,"{""concurrency"":1}",p50,<,0.001,0.000404991,,met,,postgres-sub-millisecond: Simple queries under 1 ms. Source: Deployment README: sub-millisecond queries
trend,node05,postgres.select1,"{""concurrency"":1}",p50,20261101T020000Z-node05-bench,,0.000404991,,,,
trend,node05,postgres.select1,"{""concurrency"":1}",p50,20261102T020000Z-node05-bench,,0.000404991,,,,
trend,node05,postgres.select1,"{""concurrency"":1}",p95,20261101T020000Z-node05-bench,,0.000608255,,,,
trend,node05,postgres.select1,"{""concurrency"":1}",p95,20261102T020000Z-node05-bench,,0.000608255,,,,
trend,node05,postgres.select1,"{""concurrency"":1}",p99,20261101T020000Z-node05-bench,,0.000701951,,,,
trend,node05,postgres.select1,"{""concurrency"":1}",p99,20261102T020000Z-node05-bench,,0.000701951,,,,
trend,node05,postgres.select1,"{""concurrency"":1}",throughput,20261101T020000Z-node05-bench,,2390.1476794903333,,,,
trend,node05,postgres.select1,"{""concurrency"":1}",throughput,20261102T020000Z-node05-bench,,2390.1476794903333,,,,
trend,node05,redis.set,"{""clients"":50}",p50,20261101T020000Z-node05-bench,,0.000988159,,,,
trend,node05,redis.set,"{""clients"":50}",p50,20261102T020000Z-node05-bench,,0.001368063,,,,
trend,node05,redis.set,"{""clients"":50}",p95,20261101T020000Z-node05-bench,,0.001488895,,,,
trend,node05,redis.set,"{""clients"":50}",p95,20261102T020000Z-node05-bench,,0.002065407,,,,
trend,node05,redis.set,"{""clients"":50}",p99,20261101T020000Z-node05-bench,,0.001603583,,,,
trend,node05,redis.set,"{""clients"":50}",p99,20261102T020000Z-node05-bench,,0.002344959,,,,
trend,node05,redis.set,"{""clients"":50}",throughput,20261101T020000Z-node05-bench,,978.7691885035257,,,,
trend,node05,redis.set,"{""clients"":50}",throughput,20261102T020000Z-node05-bench,,715.8928964606532,,,,
latest,node05,postgres.select1,"{""concurrency"":1}",p50,20261102T020000Z-node05-bench,,0.000404991,,,,200 samples
latest,node05,postgres.select1,"{""concurrency"":1}",p90,20261102T020000Z-node05-bench,,0.000565759,,,,200 samples
latest,node05,postgres.select1,"{""concurrency"":1}",p95,20261102T020000Z-node05-bench,,0.000608255,,,,200 samples
latest,node05,postgres.select1,"{""concurrency"":1}",p99,20261102T020000Z-node05-bench,,0.000701951,,,,200 samples
latest,node05,postgres.select1,"{""concurrency"":1}",p999,20261102T020000Z-node05-bench,,0.000819711,,,,200 samples
latest,node05,postgres.select1,"{""concurrency"":1}",max,20261102T020000Z-node05-bench,,0.000819711,,,,200 samples
latest,node05,postgres.select1,"{""concurrency"":1}",throughput,20261102T020000Z-node05-bench,,2390.1476794903333,,,,200 samples
latest,node05,postgres.select1,"{""concurrency"":1}",errors,20261102T020000Z-node05-bench,,0.0,,,,200 samples
latest,node05,redis.set,"{""clients"":50}",p50,20261102T020000Z-node05-bench,,0.001368063,,,,200 samples
latest,node05,redis.set,"{""clients"":50}",p90,20261102T020000Z-node05-bench,,0.001866751,,,,200 samples
latest,node05,redis.set,"{""clients"":50}",p95,20261102T020000Z-node05-bench,,0.002065407,,,,200 samples
latest,node05,redis.set,"{""clients"":50}",p99,20261102T020000Z-node05-bench,,0.002344959,,,,200 samples
latest,node05,redis.set,"{""clients"":50}",p999,20261102T020000Z-node05-bench,,0.002695167,,,,200 samples
latest,node05,redis.set,"{""clients"":50}",max,20261102T020000Z-node05-bench,,0.002695167,,,,200 samples
latest,node05,redis.set,"{""clients"":50}",throughput,20261102T020000Z-node05-bench,,715.8928964606532,,,,200 samples
latest,node05,redis.set,"{""clients"":50}",errors,20261102T020000Z-node05-bench,,0.0,,,,200 samples
"""

EXPECTED_JSON = r"""{
  "as_of": "2026-11-02T02:01:30+00:00",
  "baseline": "previous",
  "baselines": [
    {
      "benchmarks": 2,
      "check_counts": {},
      "kind": "bench",
      "node": "node05",
      "run_id": "20261101T020000Z-node05-bench",
      "started_at": "2026-11-01T02:00:00+00:00",
      "tags": [],
      "tool_version": "0.1.0"
    }
  ],
  "capacity": null,
  "changes": [
    {
      "baseline": 0.000608255,
      "baseline_run": "20261101T020000Z-node05-bench",
      "change": 0.0,
      "current": 0.000608255,
      "current_run": "20261102T020000Z-node05-bench",
      "interval": null,
      "metric": "p95",
      "node": "node05",
      "noise": null,
      "noise_method": "not tested: the change is within its rule",
      "parameters": "{\"concurrency\":1}",
      "rule": "p95:+10%",
      "verdict": "ok",
      "workload": "postgres.select1"
    },
    {
      "baseline": 2390.1476794903333,
      "baseline_run": "20261101T020000Z-node05-bench",
      "change": 0.0,
      "current": 2390.1476794903333,
      "current_run": "20261102T020000Z-node05-bench",
      "interval": null,
      "metric": "throughput",
      "node": "node05",
      "noise": null,
      "noise_method": "not tested: the change is within its rule",
      "parameters": "{\"concurrency\":1}",
      "rule": "throughput:-10%",
      "verdict": "ok",
      "workload": "postgres.select1"
    },
    {
      "baseline": 0.001488895,
      "baseline_run": "20261101T020000Z-node05-bench",
      "change": 0.3872079629523908,
      "current": 0.002065407,
      "current_run": "20261102T020000Z-node05-bench",
      "interval": [
        0.29817931982136714,
        0.5144136474001196
      ],
      "metric": "p95",
      "node": "node05",
      "noise": 0.10811716378937625,
      "noise_method": "bootstrap of histograms (200 vs 200 samples)",
      "parameters": "{\"clients\":50}",
      "rule": "p95:+10%",
      "verdict": "regression",
      "workload": "redis.set"
    },
    {
      "baseline": 978.7691885035257,
      "baseline_run": "20261101T020000Z-node05-bench",
      "change": -0.2685784300635712,
      "current": 715.8928964606532,
      "current_run": "20261102T020000Z-node05-bench",
      "interval": [
        -0.3066497775409506,
        -0.23182636714006344
      ],
      "metric": "throughput",
      "node": "node05",
      "noise": 0.03741170520044357,
      "noise_method": "bootstrap of histograms (200 vs 200 samples)",
      "parameters": "{\"clients\":50}",
      "rule": "throughput:-10%",
      "verdict": "regression",
      "workload": "redis.set"
    }
  ],
  "distributions": [
    {
      "bytes_per_second": null,
      "count": 200,
      "errors": 0,
      "max": 0.000819711,
      "min": 0.00020224,
      "node": "node05",
      "p50": 0.000404991,
      "p90": 0.000565759,
      "p95": 0.000608255,
      "p99": 0.000701951,
      "p999": 0.000819711,
      "parameters": "{\"concurrency\":1}",
      "run_id": "20261102T020000Z-node05-bench",
      "throughput": 2390.1476794903333,
      "workload": "postgres.select1"
    },
    {
      "bytes_per_second": null,
      "count": 200,
      "errors": 0,
      "max": 0.002695167,
      "min": 0.000638464,
      "node": "node05",
      "p50": 0.001368063,
      "p90": 0.001866751,
      "p95": 0.002065407,
      "p99": 0.002344959,
      "p999": 0.002695167,
      "parameters": "{\"clients\":50}",
      "run_id": "20261102T020000Z-node05-bench",
      "throughput": 715.8928964606532,
      "workload": "redis.set"
    }
  ],
  "failing_checks": [
    {
      "code": "IC-RD-101",
      "component": "redis",
      "message": "maxmemory-policy is allkeys-lru",
      "node": "node05",
      "status": "FAIL"
    }
  ],
  "latest": [
    {
      "benchmarks": 2,
      "check_counts": {},
      "kind": "bench",
      "node": "node05",
      "run_id": "20261102T020000Z-node05-bench",
      "started_at": "2026-11-02T02:00:00+00:00",
      "tags": [],
      "tool_version": "0.1.0"
    },
    {
      "benchmarks": 0,
      "check_counts": {
        "FAIL": 1
      },
      "kind": "verify",
      "node": "node05",
      "run_id": "20261102T020000Z-node05-verify",
      "started_at": "2026-11-02T02:00:00+00:00",
      "tags": [],
      "tool_version": "0.1.0"
    }
  ],
  "node_pairs": [],
  "notes": [],
  "path_pairs": [],
  "runs_considered": 3,
  "targets": [
    {
      "metric": "p50",
      "node": "node05",
      "op": "<",
      "parameters": "{\"concurrency\":1}",
      "run_id": "20261102T020000Z-node05-bench",
      "source": "Deployment README: sub-millisecond queries",
      "status": "met",
      "target": "postgres-sub-millisecond",
      "threshold": 0.001,
      "title": "Simple queries under 1 ms",
      "value": 0.000404991,
      "workload": "postgres.select1"
    }
  ],
  "trends": [
    {
      "change": {
        "p50": 0.0,
        "p95": 0.0,
        "p99": 0.0,
        "throughput": 0.0
      },
      "node": "node05",
      "parameters": "{\"concurrency\":1}",
      "run_ids": [
        "20261101T020000Z-node05-bench",
        "20261102T020000Z-node05-bench"
      ],
      "started_at": [
        "2026-11-01T02:00:00+00:00",
        "2026-11-02T02:00:00+00:00"
      ],
      "values": {
        "p50": [
          0.000404991,
          0.000404991
        ],
        "p95": [
          0.000608255,
          0.000608255
        ],
        "p99": [
          0.000701951,
          0.000701951
        ],
        "throughput": [
          2390.1476794903333,
          2390.1476794903333
        ]
      },
      "workload": "postgres.select1"
    },
    {
      "change": {
        "p50": 0.3844563476120748,
        "p95": 0.3872079629523908,
        "p99": 0.4623246816659943,
        "throughput": -0.2685784300635712
      },
      "node": "node05",
      "parameters": "{\"clients\":50}",
      "run_ids": [
        "20261101T020000Z-node05-bench",
        "20261102T020000Z-node05-bench"
      ],
      "started_at": [
        "2026-11-01T02:00:00+00:00",
        "2026-11-02T02:00:00+00:00"
      ],
      "values": {
        "p50": [
          0.000988159,
          0.001368063
        ],
        "p95": [
          0.001488895,
          0.002065407
        ],
        "p99": [
          0.001603583,
          0.002344959
        ],
        "throughput": [
          978.7691885035257,
          715.8928964606532
        ]
      },
      "workload": "redis.set"
    }
  ],
  "warnings": []
}
"""


def test_markdown_bytes() -> None:
    assert render_report(small_report(), "markdown") == EXPECTED_MARKDOWN


def test_csv_bytes() -> None:
    assert render_report(small_report(), "csv") == EXPECTED_CSV


def test_json_bytes_and_round_trip() -> None:
    text = render_report(small_report(), "json")
    assert text == EXPECTED_JSON
    data = json.loads(text)
    assert [c["verdict"] for c in data["changes"]] == ["ok", "ok", "regression", "regression"]

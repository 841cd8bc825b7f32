"""What a user sees fits their terminal: bench, verify and report at 80, 100 and 160 columns.

Every line stays within the width, and every row's p50, p99 and throughput read whole on the
row's own line. Piped output is PIPED_WIDTH wide whatever $COLUMNS says; a terminal (a real
pseudo-terminal here) gets its own width and the progress line in words.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from immichcheck.bench.local_servers.stack import LocalRedis
from immichcheck.bench.parameter_words import describe_workload, size_words, step_in_words
from immichcheck.bench.table import BENCH_COLUMNS, format_rate, format_seconds, render_bench_table
from immichcheck.common.records import BenchmarkResult, CheckResult, HostFacts, RunRecord, Status
from immichcheck.common.terminal_width import PIPED_WIDTH
from immichcheck.common.text_table import cell_len, fit_table
from immichcheck.history.render import render_report
from immichcheck.history.render.text import format_value
from immichcheck.verify.output.table import column_widths, render_verify_table
from tests.fixtures.databases import write_tiny_home
from tests.test_report_formats import small_report

WIDTHS = (80, 100, 160)
HOST = HostFacts("host", "cpu", 2, 2**30, "6.1", "linux", "3.11")
NOW = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)

# The parameter sets of a real `bench --local --profile quick` run, latencies across units.
PARAMETER_SETS = [
    ("postgres.connect", {"concurrency": 1}, 0.029, 0.0795, 26.5),
    ("postgres.checksum_lookup", {"dataset": "synthetic", "concurrency": 4}, 2e-4, 2.6e-3, 12_500),
    (
        "redis.lpush",
        {"connections": 50, "pipeline": 16, "value_bytes": 300, "workers": 1},
        2.06e-3,
        0.0145,
        333_500,
    ),
    (
        "redis.bullmq.dequeue",
        {
            "connections": 8,
            "pipeline": 1,
            "queue": "thumbnailGeneration",
            "data_bytes": 150,
            "jobs": 31810,
            "workers": 1,
        },
        2.8e-4,
        1.09e-3,
        25_600,
    ),
    (
        "storage.seq_read",
        {"path": "data", "file_bytes": 4194304, "files": 16},
        2.74e-3,
        5.8e-3,
        327,
    ),
    ("storage.fdatasync", {"path": "data", "block_bytes": 8192}, 2.9e-4, 9.09e-3, 750),
    ("ml.clip.textual", {"model": "ViT-B-32__openai", "concurrency": 4}, 1.25, 2.5, 3.2),
]


def _bench_result(
    workload: str,
    parameters: dict[str, object],
    p50: float,
    p99: float,
    rate: float,
    **extra: object,
) -> BenchmarkResult:
    values: dict[str, object] = dict(
        workload=workload,
        parameters=parameters,
        count=1000,
        min=p50 / 2,
        p50=p50,
        p90=p50 * 1.5,
        p95=p50 * 2,
        p99=p99,
        p999=p99 * 1.5,
        max=p99 * 2,
        mean=p50,
        stddev=p50 / 10,
        throughput=rate,
        errors=0,
    )
    values.update(extra)
    return BenchmarkResult(**values)  # type: ignore[arg-type]


def bench_record(*, with_errors: bool = False) -> RunRecord:
    results = [_bench_result(*row) for row in PARAMETER_SETS]
    results[2] = _bench_result(*PARAMETER_SETS[2], bytes_per_second=100e6)
    results[4] = _bench_result(
        *PARAMETER_SETS[4],
        bytes_per_second=1371.6e6,
        notes=("reads use O_DIRECT: the page cache is bypassed, so this is the disk itself " * 2,),
    )
    results.append(
        _bench_result(
            "redis.get",
            {"pipeline": 1},
            2.1e-5,
            1.41e-4,
            32_300,
            engine="redis-benchmark",
            facts={"missing_percentiles": ["p999"]},
        )
    )
    if with_errors:
        results[0] = _bench_result(
            *PARAMETER_SETS[0], errors=3, error_messages=("connection refused",)
        )
    return RunRecord(
        run_id="20261204T020000Z-abcdef",
        kind="bench",
        started_at=NOW,
        finished_at=NOW,
        node="node05",
        host=HOST,
        tool_version="0.1.0",
        service_versions={"postgres": "15.18", "redis": "7.0.15"},
        benchmarks=tuple(results),
    )


def _row_first_lines(text: str) -> list[str]:
    """The first screen line of each table row (a workload name starts it)."""
    return [line for line in text.splitlines() if re.match(r"│ [a-z]+\.", line)]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("with_errors", [False, True])
def test_bench_table_fits_and_keeps_p50_p99_throughput_whole(width: int, with_errors: bool) -> None:
    record = bench_record(with_errors=with_errors)
    text = render_bench_table(record, width=width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width, text
    assert "…" not in text  # nothing cut short
    rows = _row_first_lines(text)
    assert len(rows) == len(record.benchmarks)
    for line, result in zip(rows, record.benchmarks, strict=True):
        assert line.startswith(f"│ {result.workload}")
        for cell in (
            format_seconds(result.p50),
            format_seconds(result.p99),
            format_rate(result.throughput),
        ):
            assert f" {cell} │" in line, (cell, line)
    header = next(line for line in lines if line.startswith("┃"))
    assert [h in header for h in ("p50", "p99", "throughput")] == [True, True, True]
    # A run with errors always shows how many, whatever the width.
    assert ("errors" in header) is with_errors
    if with_errors:
        assert " 3 │" in rows[0]


def test_bench_table_adds_columns_as_width_allows() -> None:
    record = bench_record()

    def headers(width: int) -> list[str]:
        text = render_bench_table(record, width=width)
        header = next(line for line in text.splitlines() if line.startswith("┃"))
        return [cell.strip() for cell in header.strip("┃").split("┃")]

    assert headers(80) == ["workload", "p50", "p95", "p99", "throughput"]
    assert headers(100) == ["workload", "p50", "p95", "p99", "p99.9", "throughput", "MB/s"]
    assert headers(160) == [
        "workload",
        "engine",
        "p50",
        "p95",
        "p99",
        "p99.9",
        "max",
        "throughput",
        "MB/s",
    ]
    # Without the engine column a row measured by another tool says so.
    narrow = render_bench_table(record, width=80)
    cells = "".join(line.split("│")[1] for line in narrow.splitlines() if line.startswith("│"))
    assert "redis.get pipeline=1 (by redis-benchmark)" in " ".join(cells.split())
    assert ", engine immichcheck" not in narrow
    single = RunRecord.from_dict(
        record.to_dict() | {"benchmarks": [record.benchmarks[0].to_dict()]}
    )
    assert "on node05, engine immichcheck\n" in render_bench_table(single, width=80)


def test_wide_draws_every_column_and_leaves_notes_unwrapped() -> None:
    text = render_bench_table(bench_record(), width=80, wide=True)
    header = next(line for line in text.splitlines() if line.startswith("┃"))
    assert [c.header in header for c in BENCH_COLUMNS] == [True] * len(BENCH_COLUMNS)
    assert (
        "- storage.seq_read path=data, 16 files of 4 MiB: reads use O_DIRECT: the page cache"
        " is bypassed, so this is the disk itself reads use O_DIRECT" in text
    )


def test_bench_notes_wrap_under_their_bullet() -> None:
    lines = render_bench_table(bench_record(), width=80).splitlines()
    start = lines.index("Notes:") + 1
    assert lines[start].startswith("- storage.seq_read path=data, 16 files of 4 MiB: reads use")
    assert lines[start + 1].startswith("  ") and len(lines[start + 1]) <= 80


def test_parameters_and_progress_in_words() -> None:
    assert describe_workload("redis.lpush", {"pipeline": 16, "value_bytes": 300}) == (
        "redis.lpush pipeline=16, 300-byte values"
    )
    assert (
        step_in_words("redis.lpush {'pipeline': 16, 'value_bytes': 300, 'workers': 1}")
        == "redis.lpush pipeline=16, 300-byte values"
    )
    assert step_in_words("ml.clip {} concurrency=2") == "ml.clip concurrency=2"
    assert step_in_words("starting a throwaway Redis") == "starting a throwaway Redis"
    assert describe_workload("storage.fdatasync", {"path": "nvme", "block_bytes": 8192}) == (
        "storage.fdatasync path=nvme, 8 KiB blocks"
    )
    assert [size_words(n) for n in (300, 4096, 1536, 4194304, 1000)] == [
        "300-byte",
        "4 KiB",
        "1.5 KiB",
        "4 MiB",
        "1000-byte",
    ]


def _check(code: str, component: str, status: Status, message: str, fix: str = "") -> CheckResult:
    return CheckResult(
        code=code,
        target=f"deployment/immich-{component} in namespace immich",
        status=status,
        message=message,
        remediation=fix,
        duration=0.01,
        component=component,
        title=f"{component} check with a descriptive title {code}",
    )


def verify_record() -> RunRecord:
    checks = (
        _check("IC-CL-001", "cluster", Status.PASS, "namespace immich exists"),
        _check(
            "IC-CL-013",
            "cluster",
            Status.WARN,
            "image ghcr.io/immich-app/immich-machine-learning:v2.7.5@sha256:"
            + "ab" * 32
            + " differs from the manifests",
            "Pin the image digest in manifests/ml.yaml and apply it.",
        ),
        _check(
            "IC-RD-205", "redis", Status.FAIL, "maxmemory-policy is allkeys-lru", "Set noeviction."
        ),
        _check("IC-PG-101", "postgres", Status.ERROR, "could not run: connection refused " * 3),
    )
    return RunRecord(
        run_id="20261204T020000Z-verify",
        kind="verify",
        started_at=NOW,
        finished_at=NOW,
        node="node05",
        host=HOST,
        tool_version="0.1.0",
        service_versions={},
        checks=checks,
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_verify_table_fits_and_keeps_status_and_code_whole(width: int) -> None:
    record = verify_record()
    text = render_verify_table(record, width=width)
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= width
    for check in record.checks:
        line = next(line for line in lines if check.code in line)
        assert line.startswith(f"{check.status.value} ")
    for check in record.checks:
        # The Result column of the check's row, its screen lines joined: wrapped, never cut.
        group = [c for c in record.checks if c.component == check.component]
        start = sum(column_widths(group, width)[:4]) + 2 * 4
        first = next(i for i, line in enumerate(lines) if check.code in line)
        row = [lines[first][start:]]
        for line in lines[first + 1 :]:
            if not line.startswith(" ") or line[start:].startswith("->"):
                break
            row.append(line[start:])
        assert "".join("".join(row).split()) == "".join(check.message.split())


def test_verify_piped_width_is_fixed() -> None:
    text = render_verify_table(verify_record())  # the CLI's default when not on a terminal
    assert max(cell_len(line) for line in text.splitlines()) <= PIPED_WIDTH
    assert text == render_verify_table(verify_record(), width=PIPED_WIDTH)


@pytest.mark.parametrize("width", WIDTHS)
def test_report_on_a_terminal_fits_and_keeps_values_whole(width: int) -> None:
    report = small_report()
    text = render_report(report, "markdown", width)
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= width, text
    assert not any(line.startswith("|") for line in lines)  # aligned text, not pipe tables
    start = lines.index("## Latest latency distributions")
    table = lines[start + 2 :]
    for item in report.distributions:
        row = next(
            line for line in table if line.startswith(item.node) and item.workload[:8] in line
        )
        for metric, value in (
            ("p50", item.p50),
            ("p99", item.p99),
            ("throughput", item.throughput),
        ):
            assert f"  {format_value(metric, value)}  " in row + "  ", (metric, row)


def test_report_piped_stays_markdown() -> None:
    text = render_report(small_report(), "markdown")
    assert "| Node | Series | Samples | p50 |" in text


def test_fit_table_leaves_out_named_columns_first() -> None:
    header = ["Series", "p50", "p95", "p99", "Throughput", "Noise"]
    row = ["postgres.select1 concurrency=1", "405 µs", "608 µs", "702 µs", "2,390 ops/s", "±3%"]
    assert fit_table(header, [row], 200)[0].split() == header
    narrow = fit_table(header, [row], 50, droppable=("Noise", "p95"))
    assert narrow[0].split() == ["Series", "p50", "p99", "Throughput"]
    assert max(len(line) for line in narrow) <= 50
    assert "405 µs" in narrow[2] and "2,390 ops/s" in narrow[2]


# The real command on a pseudo-terminal, as a user sees it --------------------------------


def _run_on_terminal(args: list[str], env: dict[str, str], columns: int) -> str:
    """Run the CLI with stdout and stderr on a pseudo-terminal `columns` wide; all it wrote."""
    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "immichcheck", *args],
        stdin=subprocess.DEVNULL,
        stdout=child,
        stderr=child,
        env={**env, "COLUMNS": str(columns), "LINES": "50", "TERM": "xterm"},
    )
    os.close(child)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    process.wait(timeout=30)
    os.close(main)
    assert process.returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def _screen_lines(raw: str) -> list[str]:
    """Lines as left on screen: escapes removed, a carriage return starts the line over."""
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", raw)
    return [segment.split("\r")[-1] for segment in plain.replace("\r\n", "\n").split("\n")]


@pytest.fixture
def tiny_home(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "IMMICHCHECK_HOME": str(write_tiny_home(tmp_path / "home"))}


@pytest.mark.slow
def test_bench_on_an_80_column_terminal(
    redis_server: LocalRedis, tiny_home: dict[str, str], tmp_path: Path
) -> None:
    args = ["bench", "--redis-url", redis_server.url, "--suite", "redis", "--profile", "quick"]
    raw = _run_on_terminal([*args, "--reports-dir", str(tmp_path / "r")], tiny_home, 80)
    # The progress line, in words (the tiny profile stores 120-byte values).
    assert "redis.lpush 120-byte values, pipeline=1" in raw, raw
    assert "{'" not in raw
    table = [line for line in _screen_lines(raw) if line[:1] in "┏┃┡│└"]
    assert table and max(len(line) for line in table) <= 80
    header = next(line for line in table if line.startswith("┃"))
    assert "p50" in header and "p99" in header and "throughput" in header


@pytest.mark.slow
def test_bench_piped_is_100_columns_without_progress_and_wide_on_request(
    redis_server: LocalRedis, tiny_home: dict[str, str], tmp_path: Path
) -> None:
    base = ["bench", "--redis-url", redis_server.url, "--suite", "redis", "--profile", "quick"]
    env = {**tiny_home, "COLUMNS": "200"}  # a pipe ignores the terminal that started it
    for extra, widest in (([], PIPED_WIDTH), (["--wide"], None)):
        done = subprocess.run(
            [sys.executable, "-m", "immichcheck", *base, *extra, "--reports-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""  # no progress when not on a terminal
        header = next(line for line in done.stdout.splitlines() if line.startswith("┃"))
        if widest is not None:
            # Every line but the saved file's path, kept whole so it can be copied.
            lines = [line for line in done.stdout.splitlines() if not line.startswith("saved: ")]
            assert max(len(line) for line in lines) <= widest, done.stdout
            assert "engine" not in header
        else:
            assert [c.header in header for c in BENCH_COLUMNS] == [True] * len(BENCH_COLUMNS)


def test_report_on_an_80_column_terminal_and_piped(tmp_path: Path) -> None:
    from immichcheck.history.store import save_run
    from tests.test_store_factories import generated, run

    for night in (0, 1):
        record = run(
            night,
            benchmarks=[
                generated(
                    "redis.set",
                    {"connections": 50, "pipeline": 16, "value_bytes": 300},
                    0.001,
                    count=200,
                    seed=night,
                ),
            ],
        )
        save_run(record, tmp_path)
    args = ["report", "--reports-dir", str(tmp_path), "--fail-on", "none", "--min-history", "0"]
    raw = _run_on_terminal(args, dict(os.environ), 80)
    lines = [line for line in _screen_lines(raw) if line]
    assert "## Latest latency distributions" in lines
    assert max(cell_len(line) for line in lines) <= 80
    assert not any(line.startswith("| ") for line in lines)
    piped = subprocess.run(
        [sys.executable, "-m", "immichcheck", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert "| Node | Series | Samples | p50 |" in piped.stdout

"""A run's benchmark results as a table that fits a width, with units (µs/ms/s, ops/s, MB/s).

Pure functions: the CLI decides the width (the terminal's, or PIPED_WIDTH when piped).
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence

from immichcheck.bench.parameter_words import describe_workload
from immichcheck.bench.table_columns import (
    BenchColumn,
    choose_columns,
    table_width,
    workload_cell,
)
from immichcheck.common.records import BenchmarkResult, RunRecord
from immichcheck.common.terminal_width import PIPED_WIDTH


def format_seconds(value: float) -> str:
    """A latency in the unit that keeps three significant figures readable."""
    if value <= 0:
        return "0"
    if value < 1e-3:
        return f"{value * 1e6:.0f} µs" if value >= 1e-5 else f"{value * 1e6:.1f} µs"
    if value < 1:
        return f"{value * 1e3:.2f} ms" if value < 0.01 else f"{value * 1e3:.1f} ms"
    return f"{value:.2f} s"


def format_rate(value: float, unit: str = "ops/s") -> str:
    """Operations per second with k/M scaling."""
    if value >= 1e6:
        return f"{value / 1e6:.2f} M{unit}"
    if value >= 1e4:
        return f"{value / 1e3:.1f} k{unit}"
    if value >= 100:
        return f"{value:.0f} {unit}"
    return f"{value:.1f} {unit}"


def format_bytes_rate(value: float | None) -> str:
    """Bytes per second as MB/s (decimal, as disks are sold)."""
    if value is None:
        return ""
    return f"{value / 1e6:.1f} MB/s"


def _percentile(result: BenchmarkResult, name: str) -> str:
    missing = result.facts.get("missing_percentiles") or ()
    if name in missing or result.count == 0:
        return "–"
    return format_seconds(float(getattr(result, name)))


BENCH_COLUMNS = (
    BenchColumn("engine", lambda r: r.engine, numeric=False),
    BenchColumn("p50", lambda r: _percentile(r, "p50")),
    BenchColumn("p95", lambda r: _percentile(r, "p95")),
    BenchColumn("p99", lambda r: _percentile(r, "p99")),
    BenchColumn("p99.9", lambda r: _percentile(r, "p999")),
    BenchColumn("max", lambda r: _percentile(r, "max")),
    BenchColumn("throughput", lambda r: format_rate(r.throughput)),
    BenchColumn("MB/s", lambda r: format_bytes_rate(r.bytes_per_second)),
    BenchColumn("errors", lambda r: str(r.errors)),
)
DEFAULT_ENGINE = "immichcheck"
HEADERS = ["workload", *(column.header for column in BENCH_COLUMNS)]
ALWAYS_SHOWN = ("p50", "p99", "throughput")
# What a narrower table gives up first comes last here.
AS_WIDTH_ALLOWS = ("p95", "MB/s", "p99.9", "max", "engine")


def bench_rows(results: Sequence[BenchmarkResult]) -> list[list[str]]:
    """Every column's cells in HEADERS order (what --wide draws), one row per result."""
    return [[workload_cell(r), *(column.cell(r) for column in BENCH_COLUMNS)] for r in results]


def render_bench_table(
    record: RunRecord, *, width: int = PIPED_WIDTH, wide: bool = False, color: bool = False
) -> str:
    """The run's benchmark results as a table `width` columns wide, then its notes and facts.

    `wide` draws every column however wide that makes the table (and leaves notes unwrapped).
    """
    results = record.benchmarks
    failed = any(r.errors or r.error_messages for r in results)
    required = [*ALWAYS_SHOWN, "errors"] if failed else list(ALWAYS_SHOWN)
    if wide:
        columns = list(BENCH_COLUMNS)
        workload_width = max([len("workload"), *(len(workload_cell(r)) for r in results)])
    else:
        columns, workload_width = choose_columns(
            BENCH_COLUMNS, results, width, required=required, optional=AS_WIDTH_ALLOWS
        )
    drawn = table_width(columns, results, workload_width)
    lines = [_draw_table(record, columns, workload_width, max(drawn, width), color)]
    wrap_width = None if wide else width
    lines += [line for section in _sections(record) for line in _wrapped(section, wrap_width)]
    return "\n".join(lines) + "\n"


def _draw_table(
    record: RunRecord,
    columns: list[BenchColumn],
    workload_width: int,
    width: int,
    color: bool,
) -> str:
    from rich.console import Console
    from rich.table import Table

    title = f"immichcheck bench {record.run_id} on {record.node}"
    engines = {r.engine for r in record.benchmarks}
    # Without the engine column, the title names a run's one engine; in a mixed run each
    # row measured by another tool says so in its workload cell.
    engine_hidden = not any(column.header == "engine" for column in columns)
    if engine_hidden and len(engines) == 1:
        title += f", engine {engines.pop()}"
    mixed = engine_hidden and len(engines) > 1
    # The title above the table, not in it: rich wraps a title to the table's own width.
    table = Table()
    table.add_column("workload", width=workload_width, overflow="fold")
    for column in columns:
        table.add_column(column.header, justify="right" if column.numeric else "left", no_wrap=True)
    for result in record.benchmarks:
        workload = workload_cell(result)
        if mixed and result.engine != DEFAULT_ENGINE:
            workload += f" (by {result.engine})"
        table.add_row(workload, *(column.cell(result) for column in columns))
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=width, force_terminal=color, color_system="auto" if color else None
    )
    console.print(table)
    drawn = [line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines()]
    return "\n".join([*textwrap.wrap(title, width, break_on_hyphens=False), *drawn])


def _wrapped(lines: list[str], width: int | None) -> list[str]:
    """Lines wrapped to `width`, continuation lines indented (under a list item's text)."""
    if width is None:
        return lines
    out: list[str] = []
    for line in lines:
        out += textwrap.wrap(line, width, subsequent_indent="  ", break_on_hyphens=False) or [""]
    return out


def _sections(record: RunRecord) -> list[list[str]]:
    """The text below the table: notes, errors, settings not applied, versions and mounts."""
    results = record.benchmarks
    sections: list[list[str]] = []
    notes = [
        f"- {describe_workload(r.workload, r.parameters)}: {note}"
        for r in results
        for note in r.notes
    ]
    errors = [f"- {r.workload}: {message}" for r in results for message in r.error_messages]
    if notes:
        sections.append(["", "Notes:", *notes])
    if errors:
        sections.append(["", "Errors:", *errors])
    dropped = [
        f"- {server}: {name} not applied ({why})"
        for server, key in (
            ("PostgreSQL", "postgres_settings_dropped"),
            ("Redis", "redis_settings_dropped"),
        )
        for name, why in dict(record.settings.get(key) or {}).items()
        if why != "set by the local stack"  # port, bind, dir...: ours by design
    ]
    if dropped:
        source = record.settings.get("server_settings_source", "manifests")
        sections.append(["", f"Throwaway servers configured from {source}, except:", *dropped])
    versions = ", ".join(f"{k} {v}" for k, v in record.service_versions.items())
    facts = [f"versions: {versions}"] if versions else []
    for fs in record.host.filesystems:
        facts.append(f"filesystem: {fs.path} on {fs.device} ({fs.fstype}, {fs.options})")
    if facts:
        sections.append(["", *facts])
    return sections

"""A run's benchmark results as a table with units (µs/ms/s, ops/s, MB/s). Pure functions."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from immichcheck.common.records import BenchmarkResult, RunRecord

# Parameters that are facts about the run rather than what distinguishes one row.
_HIDDEN_PARAMETERS = {"workers"}


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


def format_parameters(parameters: Mapping[str, Any]) -> str:
    """Compact `key=value` list of the parameters that tell rows apart."""
    return " ".join(
        f"{key}={value}"
        for key, value in parameters.items()
        if key not in _HIDDEN_PARAMETERS and not isinstance(value, (dict, list))
    )


def _percentile(result: BenchmarkResult, name: str) -> str:
    missing = result.facts.get("missing_percentiles") or ()
    if name in missing or result.count == 0:
        return "–"
    return format_seconds(float(getattr(result, name)))


def bench_rows(results: Sequence[BenchmarkResult]) -> list[list[str]]:
    """The table's cells, one row per result (used by the table and by tests)."""
    rows = []
    for result in results:
        rows.append(
            [
                result.workload,
                format_parameters(result.parameters),
                result.engine,
                _percentile(result, "p50"),
                _percentile(result, "p95"),
                _percentile(result, "p99"),
                _percentile(result, "p999"),
                _percentile(result, "max"),
                format_rate(result.throughput),
                format_bytes_rate(result.bytes_per_second),
                str(result.errors),
            ]
        )
    return rows


HEADERS = [
    "workload",
    "parameters",
    "engine",
    "p50",
    "p95",
    "p99",
    "p99.9",
    "max",
    "throughput",
    "MB/s",
    "errors",
]


def render_bench_table(record: RunRecord, *, width: int = 160, color: bool = False) -> str:
    """The run's benchmark results as a text table, then its notes and run facts."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"immichcheck bench {record.run_id} on {record.node}", title_justify="left")
    for header in HEADERS:
        numeric = header not in ("workload", "parameters", "engine")
        table.add_column(header, justify="right" if numeric else "left", no_wrap=numeric)
    for row in bench_rows(record.benchmarks):
        table.add_row(*row)
    buffer = io.StringIO()
    console = Console(
        file=buffer, width=width, force_terminal=color, color_system="auto" if color else None
    )
    console.print(table)
    lines = [buffer.getvalue().rstrip("\n")]
    notes = [
        f"- {result.workload} {format_parameters(result.parameters)}: {note}".replace("  ", " ")
        for result in record.benchmarks
        for note in result.notes
    ]
    errors = [
        f"- {result.workload}: {message}"
        for result in record.benchmarks
        for message in result.error_messages
    ]
    if notes:
        lines += ["", "Notes:", *notes]
    if errors:
        lines += ["", "Errors:", *errors]
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
        lines += ["", f"Throwaway servers configured from {source}, except:", *dropped]
    versions = ", ".join(f"{k} {v}" for k, v in record.service_versions.items())
    facts = [f"versions: {versions}"] if versions else []
    for fs in record.host.filesystems:
        facts.append(f"filesystem: {fs.path} on {fs.device} ({fs.fstype}, {fs.options})")
    if facts:
        lines += ["", *facts]
    return "\n".join(lines) + "\n"

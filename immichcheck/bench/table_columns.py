"""Which bench table columns fit a width: p50, p99 and throughput always, the rest as room allows.

The table is drawn by rich with a box around it: every column costs its widest cell plus three
(two spaces of padding and one rule), and the box one more. The workload cell (the workload and
its parameters in words) wraps; every number stays on one line, whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from immichcheck.bench.parameter_words import describe_workload
from immichcheck.common.records import BenchmarkResult


@dataclass(frozen=True)
class BenchColumn:
    """One column: its header, how a result fills it, and whether it may be left out."""

    header: str
    cell: Callable[[BenchmarkResult], str]
    numeric: bool = True


# Narrowest the workload cell gets: the longest workload name (postgres.checksum_lookup)
# stays on one line, parameters wrap below it.
WORKLOAD_MIN = 24
COLUMN_COST = 3  # padding either side and the rule after the cell
BOX_COST = 1  # the rule before the first column


def workload_cell(result: BenchmarkResult) -> str:
    """The workload with its parameters in words: `redis.lpush pipeline=16, 300-byte values`."""
    return describe_workload(result.workload, result.parameters)


def choose_columns(
    columns: Sequence[BenchColumn],
    results: Sequence[BenchmarkResult],
    width: int,
    *,
    required: Sequence[str],
    optional: Sequence[str],
) -> tuple[list[BenchColumn], int]:
    """The columns to draw (in `columns` order) and the workload cell's width, for `width`.

    `required` are always drawn, `optional` are added in that order while the workload cell
    keeps at least WORKLOAD_MIN columns. A column with no value in any row is left out.
    """
    by_header = {column.header: column for column in columns}
    cells = {c.header: [c.cell(r) for r in results] for c in columns}

    def cost(header: str) -> int:
        return max([len(header), *(len(cell) for cell in cells[header])]) + COLUMN_COST

    def has_values(header: str) -> bool:
        return any(cell.strip() for cell in cells[header])

    chosen = [h for h in required if h in by_header]
    room = width - BOX_COST - sum(cost(h) for h in chosen)
    for header in optional:
        fits = room - cost(header) - COLUMN_COST >= WORKLOAD_MIN
        if header in by_header and has_values(header) and fits:
            chosen.append(header)
            room -= cost(header)
    workload_width = max(WORKLOAD_MIN, room - COLUMN_COST)
    natural = max([len("workload"), *(len(workload_cell(r)) for r in results)])
    ordered = [c for c in columns if c.header in chosen]
    return ordered, min(natural, workload_width)


def table_width(
    columns: Sequence[BenchColumn], results: Sequence[BenchmarkResult], workload_width: int
) -> int:
    """Columns the drawn table takes, box included (for the console it is drawn on)."""
    numbers = sum(
        max([len(c.header), *(len(c.cell(r)) for r in results)]) + COLUMN_COST for c in columns
    )
    return BOX_COST + workload_width + COLUMN_COST + numbers

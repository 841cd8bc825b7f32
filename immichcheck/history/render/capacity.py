"""The report's Capacity section in Markdown, HTML and CSV rows (pure, shared by renderers)."""

from __future__ import annotations

from html import escape

from immichcheck.common.text_table import fit_table
from immichcheck.history.capacity import format_estimate
from immichcheck.history.capacity_model import CapacitySection

COLUMNS = ("Node", "Job", "Time for the library", "Built from")


def _rows(section: CapacitySection) -> list[list[str]]:
    return [[e.node, e.title, format_estimate(e), e.basis or "-"] for e in section.estimates]


def _lead(section: CapacitySection) -> list[str]:
    return [f"Library: {section.library}.", f"Settings: {section.settings}."]


def capacity_markdown(section: CapacitySection | None, width: int | None = None) -> list[str]:
    """Markdown lines of the Capacity section (none when the report has no section); with
    `width` (a terminal), its table is aligned text that fits it."""
    if section is None:
        return []
    lines = ["## Capacity", "", *_lead(section), ""]
    if width is not None:
        lines += fit_table(COLUMNS, _rows(section), width)
    else:
        lines += ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
        lines += [
            "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |"
            for row in _rows(section)
        ]
    lines.append("")
    if section.comparisons:
        lines += ["Nodes compared:", ""] + [f"- {c}" for c in section.comparisons] + [""]
    lines += ["Limits:", ""] + [f"- {limit}" for limit in section.limits] + [""]
    return lines


def capacity_html(section: CapacitySection | None) -> list[str]:
    """HTML of the Capacity section (none when the report has no section)."""
    if section is None:
        return []
    head = "".join(f"<th>{escape(h)}</th>" for h in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>"
        for row in _rows(section)
    )
    out = ['<section id="capacity"><h2>Capacity</h2>']
    out += [f"<p>{escape(line)}</p>" for line in _lead(section)]
    out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    if section.comparisons:
        out.append("<ul>" + "".join(f"<li>{escape(c)}</li>" for c in section.comparisons) + "</ul>")
    out.append(
        '<ul class="muted">' + "".join(f"<li>{escape(x)}</li>" for x in section.limits) + "</ul>"
    )
    out.append("</section>")
    return out


def capacity_csv_rows(section: CapacitySection | None) -> list[list[str]]:
    """CSV rows (report COLUMNS order): section `capacity`, metric `seconds`, p50 and p90."""
    if section is None:
        return []
    rows = []
    for e in section.estimates:
        value = "" if e.seconds_p50 is None else repr(float(e.seconds_p50))
        high = "" if e.seconds_p90 is None else repr(float(e.seconds_p90))
        detail = e.basis or e.missing
        rows.append(
            ["capacity", e.node, e.job, "", "seconds", "p90", high, value, "", "", "", detail]
        )
    return rows

"""Report renderers: pure functions from a `Report` to the bytes of one format."""

from __future__ import annotations

from collections.abc import Callable

from immichcheck.history.report_model import Report


def render_report(report: Report, output_format: str, width: int | None = None) -> str:
    """The report in `output_format` (markdown, html, csv or json); `width`: for a terminal."""
    from immichcheck.history.render.csv import render_csv
    from immichcheck.history.render.html import render_html
    from immichcheck.history.render.json import render_json
    from immichcheck.history.render.markdown import render_markdown

    renderers: dict[str, Callable[[Report], str]] = {
        "markdown": render_markdown,
        "html": render_html,
        "csv": render_csv,
        "json": render_json,
    }
    if output_format == "markdown" and width is not None:
        return render_markdown(report, width)
    return renderers[output_format](report)

"""Choosing verify's formatter: every format is a pure function of one run record."""

from __future__ import annotations

from immichcheck.common.records import RunRecord

VERIFY_FORMATS: tuple[str, ...] = ("table", "json", "junit", "nagios", "prometheus", "markdown")


def render_verify(run: RunRecord, output_format: str, *, color: bool = False) -> str:
    """The run in `output_format` (one of VERIFY_FORMATS)."""
    if output_format == "table":
        from immichcheck.verify.output.table import render_verify_table

        return render_verify_table(run, color=color)
    if output_format == "json":
        from immichcheck.verify.output.json import render_verify_json

        return render_verify_json(run)
    if output_format == "junit":
        from immichcheck.verify.output.junit import render_verify_junit

        return render_verify_junit(run)
    if output_format == "nagios":
        from immichcheck.verify.output.nagios import render_verify_nagios

        return render_verify_nagios(run)
    if output_format == "markdown":
        from immichcheck.verify.output.markdown import render_verify_markdown

        return render_verify_markdown(run)
    if output_format == "prometheus":
        from immichcheck.history.prometheus import render_prometheus

        return render_prometheus([run])
    raise ValueError(
        f"unknown verify format {output_format!r}; choose from {', '.join(VERIFY_FORMATS)}"
    )

"""`immichcheck report`: compare stored runs, judge targets, render markdown/html/csv/json."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from immichcheck.cli.capacity_options import capacity_options
from immichcheck.cli.options import (
    option,
    output_options,
    store_options,
    verdict_files_options,
    write_output,
)
from immichcheck.common.errors import ExitCode, ImmichcheckError
from immichcheck.common.terminal_width import output_width

if TYPE_CHECKING:
    from immichcheck.common.records import RunRecord

REPORT_FORMATS = ("markdown", "html", "csv", "json")
FAIL_ON = ("regression", "target", "any", "none")


def _names(value: str | None, flag: str) -> tuple[str, ...]:
    if not value:
        return ()
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    if len(names) < 2 or len(set(names)) != len(names):
        raise ImmichcheckError(f"{flag} needs two or more different names, e.g. {flag} a,b")
    return names


@click.command()
@store_options
@option(
    "--baseline",
    default="previous",
    show_default=True,
    help="What the latest run is compared with: 'previous' (the run before it on the same "
    "node), a run id, or a tag set with --tag.",
)
@option("--node", scope="report", help="Report on this node only (default: every node with runs).")
@option("--nodes", help="Compare the latest runs of these nodes, e.g. node01,node05.")
@option(
    "--paths",
    help="Compare these storage path labels, e.g. nvme,nfs (default: every pair measured).",
)
@option(
    "--trend",
    type=click.IntRange(min=0),
    default=14,
    show_default=True,
    help="Show the trend over the last N runs per node (0: no trends).",
)
@option(
    "--min-history",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Earlier runs of a series needed before a change over time is called a regression "
    "or improvement (their spread sizes the run-to-run noise; 0 trusts the histograms alone).",
)
@verdict_files_options
@capacity_options
@output_options(REPORT_FORMATS, "markdown")
@option(
    "--fail-on",
    type=click.Choice(FAIL_ON),
    default="any",
    show_default=True,
    help="Exit 2 when the report finds a regression, a missed target, either, or never.",
)
@option(
    "--tag",
    scope="report",
    help="Mark the latest benchmark run of each node (or of --node) with this tag before "
    "reporting; later reports can use it as --baseline.",
)
@option("--prune", is_flag=True, help="Delete stored runs older than --keep-days first.")
@option("--keep-days", type=click.IntRange(min=1), help="Retention for --prune, in days.")
def report(**params: Any) -> int:
    """Compare stored runs: latest vs baseline, node vs node, path vs path, trends, targets.

    \b
    A change counts as a regression only when it exceeds its rule (benchmarks/
    regression-rules.yaml, e.g. p95:+10%) and is significant (bootstrap on the stored
    histograms, and the run-to-run spread once 5+ earlier runs exist); otherwise the report
    says "within noise" and how big the noise is.

    \b
    Exit codes: 0 nothing to flag (or --fail-on none), 2 a regression or a missed target
    (per --fail-on), 3 nothing to report or bad input.
    """
    from immichcheck.history.capacity import inputs_from_runs, with_capacity
    from immichcheck.history.compare import ReportOptions, build_report
    from immichcheck.history.regression_rules import load_rules
    from immichcheck.history.render import render_report
    from immichcheck.history.store import load_runs, prune, tag_run
    from immichcheck.history.thresholds import load_targets

    reports_dir = params["reports_dir"]
    if params["prune"]:
        if params["keep_days"] is None:
            raise ImmichcheckError("--prune needs --keep-days N")
        deleted = prune(reports_dir, params["keep_days"])
        click.echo(
            f"pruned {len(deleted)} run(s) older than {params['keep_days']} day(s)", err=True
        )
    elif params["keep_days"] is not None:
        raise ImmichcheckError("--keep-days only applies with --prune")

    options = ReportOptions(
        baseline=params["baseline"],
        node=params["node"],
        nodes=_names(params["nodes"], "--nodes"),
        paths=_names(params["paths"], "--paths"),
        trend=params["trend"],
        min_history=params["min_history"],
        rules=load_rules(params["rules"]),
        targets=load_targets(params["targets_file"]),
    )
    loaded = load_runs(reports_dir)
    if params["tag"]:
        # One run per node: a tag is a per-node baseline, so each node gets its own latest.
        latest: dict[str, RunRecord] = {}
        for run in loaded.runs:  # oldest first: the last one seen per node wins
            if params["node"] in (None, run.node) and run.benchmarks:
                latest[run.node] = run
        if not latest:
            raise ImmichcheckError(f"no stored benchmark run to tag under {reports_dir}")
        for node in sorted(latest):
            tag_run(reports_dir, latest[node].run_id, params["tag"])
            click.echo(f"tagged run {latest[node].run_id} as {params['tag']!r}", err=True)
        loaded = load_runs(reports_dir)
    for warning in loaded.warnings:
        click.echo(f"immichcheck: warning: {warning}", err=True)
    if not loaded.runs:
        raise ImmichcheckError(f"no runs to report under {reports_dir}")

    result = with_capacity(
        build_report(loaded.runs, loaded.warnings, options),
        loaded.runs,
        inputs_from_runs(
            loaded.runs,
            assets=params["assets"],
            library_bytes=params["library_bytes"],
            faces_per_photo=params["faces_per_photo"],
        ),
    )
    # On a terminal the Markdown report's tables are drawn to fit it; piped or to a file it
    # stays plain Markdown, the same bytes every time.
    to_terminal = params["output"] == "-" and sys.stdout.isatty()
    width = output_width(to_terminal) if to_terminal else None
    text = render_report(result, params["output_format"], width)
    write_output(text, params["output"])

    fail_on = params["fail_on"]
    regression = bool(result.regressions) and fail_on in ("regression", "any")
    missed = bool(result.missed_targets) and fail_on in ("target", "any")
    return int(ExitCode.FAILURE if regression or missed else ExitCode.OK)

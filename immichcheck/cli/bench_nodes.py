"""`bench --node/--nodes/--all-nodes`: options in, the node Jobs run, text and exit code out."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from immichcheck.bench.nodes.echo import Echo, echo_to_stderr
from immichcheck.bench.nodes.node_job import DEFAULT_TIMEOUT
from immichcheck.bench.nodes.node_selection import parse_node_list
from immichcheck.bench.nodes.remote import (
    DEFAULT_POLL_INTERVAL,
    NodeBenchRequest,
    NodeBenchResult,
    run_on_nodes,
)
from immichcheck.cli.options import write_output
from immichcheck.common.errors import ExitCode, ImmichcheckError
from immichcheck.common.records import RunRecord
from immichcheck.common.terminal_width import PIPED_WIDTH, output_width


def forwarded_arguments(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The `bench` options that mean the same inside the Job, as command-line arguments."""
    args: list[str] = ["--profile", str(params.get("profile") or "standard")]
    for suite in params.get("suites") or ():
        args += ["--suite", str(suite)]
    if params.get("engine"):
        args += ["--engine", str(params["engine"])]
    models = ("clip_model", "face_model", "ocr_model")
    for name in (*models, "upload_count", "video_size", "ml_url", "server_url"):
        value = params.get(name)
        if value is not None:
            args += ["--" + name.replace("_", "-"), str(value)]
    # The record comes back through the log; inside the Job nothing is kept but /tmp.
    args += ["--reports-dir", "/tmp/immichcheck-reports"]
    return tuple(args)


def refuse_local_options(params: Mapping[str, Any]) -> None:
    """Options that describe this machine or carry secrets have no meaning in a node's Job."""
    given = [
        flag
        for flag, name in (
            ("--local", "local"),
            ("--data-dir", "data_dir"),
            ("--path", "paths"),
            ("--pg-dsn", "pg_dsn"),
            ("--redis-url", "redis_url"),
            ("--api-key", "api_key"),
            ("--live-readonly", "live_readonly"),
        )
        if params.get(name)
    ]
    if given:
        raise ImmichcheckError(
            f"{', '.join(given)} cannot be used with --node/--nodes/--all-nodes: the Job "
            "measures the node's own folders (the template's --path mounts) and never receives "
            "secrets in its arguments"
        )


def node_request(params: Mapping[str, Any], reports_dir: Path) -> NodeBenchRequest:
    """A NodeBenchRequest from the bench command's parameters."""
    if params.get("parallel") and not (params.get("nodes") or params.get("all_nodes")):
        raise ImmichcheckError("--parallel applies to --nodes or --all-nodes")
    if params.get("node") and params.get("nodes"):
        raise ImmichcheckError("--node and --nodes exclude each other")
    refuse_local_options(params)
    names = (params["node"],) if params.get("node") else parse_node_list(params.get("nodes"))
    return NodeBenchRequest(
        nodes=names,
        all_nodes=bool(params.get("all_nodes")),
        parallel=bool(params.get("parallel")),
        bench_args=forwarded_arguments(params),
        tags=tuple(params.get("tags") or ()),
        reports_dir=reports_dir,
        kubeconfig=params.get("kubeconfig"),
        context=params.get("context"),
        namespace=params.get("namespace"),
        manifests_dir=params.get("manifests_dir"),
        timeout=float(params.get("timeout") or DEFAULT_TIMEOUT),
        poll_interval=float(params.get("poll_interval") or DEFAULT_POLL_INTERVAL),
    )


def render_node_result(
    result: NodeBenchResult,
    output_format: str,
    *,
    single: bool,
    width: int = PIPED_WIDTH,
    wide: bool = False,
) -> str:
    """Tables per node and, for 2+ nodes, their comparison; or JSON.

    JSON is the run record for `--node` (as `bench --local` prints it) and a list of records
    for `--nodes`/`--all-nodes`.
    """
    import json

    records = [run.record for run in result.runs if run.record is not None]
    if output_format == "json":
        if single:
            return "".join(record.to_json() + "\n" for record in records)
        return json.dumps([record.to_dict() for record in records], indent=2) + "\n"
    from immichcheck.bench.table import render_bench_table

    parts: list[str] = []
    for run in result.runs:
        if run.record is None:
            continue
        parts.append(f"== node {run.node} (Job {run.job}) ==\n")
        parts.append(render_bench_table(run.record, width=width, wide=wide))
        for name, reason in (run.record.settings.get("skipped") or {}).items():
            parts.append(f"skipped {name}: {reason}\n")
        parts.append(f"saved: {run.saved}\n\n")
    if len(records) > 1:
        parts.append(node_comparison(records))
    return "".join(parts)


def node_comparison(records: Sequence[RunRecord]) -> str:
    """The node-vs-node section of `immichcheck report --nodes a,b` for these runs."""
    from immichcheck.history.compare import ReportOptions, build_report
    from immichcheck.history.regression_rules import load_rules
    from immichcheck.history.render import render_report
    from immichcheck.history.thresholds import load_targets

    nodes = tuple(dict.fromkeys(record.node for record in records))
    options = ReportOptions(nodes=nodes, rules=load_rules(None), targets=load_targets(None))
    report = build_report(list(records), [], options)
    return render_report(report, "markdown")


def run_node_command(
    params: Mapping[str, Any], reports_dir: Path, echo: Echo = echo_to_stderr
) -> int:
    """`bench --node/--nodes/--all-nodes`: run, write the output, return the exit code."""
    request = node_request(params, reports_dir)
    result = run_on_nodes(request, echo)
    destination = str(params.get("output") or "-")
    text = render_node_result(
        result,
        str(params.get("output_format") or "table"),
        single=bool(params.get("node")),
        width=output_width(destination == "-" and sys.stdout.isatty()),
        wide=bool(params.get("wide")),
    )
    write_output(text, destination)
    suite_errors = [
        f"node {run.node}: suite {name}: {message}"
        for run in result.runs
        if run.record is not None
        for name, message in (run.record.settings.get("suite_errors") or {}).items()
    ]
    for line in suite_errors:
        echo(f"immichcheck: error: {line}")
    failed = result.failed
    if len(result.runs) == 1 and failed:
        raise ImmichcheckError(str(failed[0].error))
    if failed:
        names = ", ".join(run.node for run in failed)
        raise ImmichcheckError(f"{len(failed)} of {len(result.runs)} node(s) failed: {names}")
    return int(ExitCode.UNKNOWN) if suite_errors else int(ExitCode.OK)

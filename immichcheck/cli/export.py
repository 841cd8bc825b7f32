"""`immichcheck export`: the latest runs as Prometheus metrics (textfile or Pushgateway)."""

from __future__ import annotations

from typing import Any

import click

from immichcheck.cli.capacity_options import capacity_options
from immichcheck.cli.options import (
    HTTP_URL,
    Seconds,
    option,
    store_options,
    verdict_files_options,
    write_text_file,
)
from immichcheck.common.errors import ExitCode, ImmichcheckError


@click.command()
@store_options
@option(
    "--prometheus",
    "prometheus_file",
    type=click.Path(dir_okay=False),
    help="Write node_exporter textfile-collector metrics to this file (atomically), e.g. "
    "/var/lib/node_exporter/textfile/immichcheck.prom.",
)
@option(
    "--pushgateway",
    type=HTTP_URL,
    help="Push the metrics to this Prometheus Pushgateway, e.g. http://pushgateway:9091 "
    "(one group per node: job=immichcheck, instance=<node>).",
)
@option("--node", scope="export", help="Export this node's runs only (default: every node).")
@option(
    "--verdicts/--no-verdicts",
    default=True,
    show_default=True,
    help="Also export the report's verdicts: targets met and regressions against the "
    "previous run (uses --rules and --targets).",
)
@verdict_files_options
@capacity_options
@option("--job", default="immichcheck", show_default=True, help="Pushgateway job name.")
@option(
    "--timeout",
    scope="export",
    type=Seconds(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the Pushgateway.",
)
def export(**params: Any) -> int:
    """Export the latest verify and bench results per node as Prometheus metrics.

    \b
    Metrics (base units; gauges except the latency summary):
      immichcheck_check_status{code,component,node}   -1 SKIP, 0 PASS, 1 WARN, 2 FAIL, 3 ERROR
      immichcheck_checks{kind,node,status}             check results per status
      immichcheck_benchmark_latency_seconds{node,workload,params,quantile}  summary,
          with _sum and _count (mean = _sum / _count)
      immichcheck_benchmark_throughput_ops_per_second{node,workload,params}
      immichcheck_benchmark_bytes_per_second{node,workload,params}
      immichcheck_benchmark_errors{node,workload,params}
      immichcheck_benchmark_timestamp_seconds{node,workload,params}  when it was measured
      immichcheck_last_run_timestamp_seconds{node,kind}
      immichcheck_last_success_timestamp_seconds{node,kind}
      immichcheck_target_met{node,target,workload,params}   1 met, 0 missed
      immichcheck_report_regressions{node}    vs the previous run, significant only
      immichcheck_capacity_seconds{node,job,estimate}   time for the whole library per job
    Checks come from the latest verify run per node; each benchmark series from the latest
    run that measured it, so a partial bench run does not blank the others.
    """
    from immichcheck.history.prometheus import render_prometheus
    from immichcheck.history.store import load_runs

    if not params["prometheus_file"] and not params["pushgateway"]:
        raise ImmichcheckError("nothing to do: give --prometheus FILE and/or --pushgateway URL")
    nodes = {params["node"]} if params["node"] else None
    loaded = load_runs(params["reports_dir"], nodes=nodes)
    for warning in loaded.warnings:
        click.echo(f"immichcheck: warning: {warning}", err=True)
    if not loaded.runs:
        where = f" for node {params['node']}" if params["node"] else ""
        raise ImmichcheckError(f"no runs to export{where} under {params['reports_dir']}")

    report = None
    if params["verdicts"]:
        from immichcheck.history.compare import ReportOptions
        from immichcheck.history.export_report import export_report
        from immichcheck.history.regression_rules import load_rules
        from immichcheck.history.thresholds import load_targets

        options = ReportOptions(
            rules=load_rules(params["rules"]),
            targets=load_targets(params["targets_file"]),
            trend=0,
        )
        from immichcheck.history.capacity import inputs_from_runs, with_capacity

        inputs = inputs_from_runs(
            loaded.runs,
            assets=params["assets"],
            library_bytes=params["library_bytes"],
            faces_per_photo=params["faces_per_photo"],
        )
        report = with_capacity(
            export_report(loaded.runs, loaded.warnings, options), loaded.runs, inputs
        )

    if params["prometheus_file"]:
        write_text_file(params["prometheus_file"], render_prometheus(loaded.runs, report=report))

    if params["pushgateway"]:
        from immichcheck.clients import ProbeError
        from immichcheck.clients.pushgateway import push_metrics

        for node in sorted({run.node for run in loaded.runs}):
            text = render_prometheus(
                [run for run in loaded.runs if run.node == node], report=report
            )
            try:
                push_metrics(
                    params["pushgateway"], params["job"], node, text, timeout=params["timeout"]
                )
            except ProbeError as exc:
                raise ImmichcheckError(f"cannot push metrics: {exc}") from exc
    return int(ExitCode.OK)

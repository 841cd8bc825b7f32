"""`immichcheck verify`: check a deployed Immich against manifests/ in about a second.

Thin on purpose: parse options, call the runner, save the run, render it, pick the exit code.
Heavy imports (asyncio clients, rich, yaml) happen inside the function so `--help` is fast.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from immichcheck.cli.options import (
    HOST_PORT,
    HOST_PORT_OR_HTTP_BASE,
    HTTP_URL,
    Duration,
    Seconds,
    Size,
    option,
    output_options,
    store_options,
    target_options,
    write_output,
)

VERIFY_FORMATS = ("table", "json", "junit", "nagios", "prometheus", "markdown")


def _print_catalogue(output_format: str) -> None:
    from immichcheck.verify.checks import load_catalogue

    catalogue = load_catalogue()
    if output_format == "json":
        import json

        entries = [
            {
                "code": e.code,
                "component": e.component,
                "severity": e.severity.value,
                "title": e.title,
                "remediation": e.remediation,
            }
            for e in catalogue.values()
        ]
        click.echo(json.dumps(entries, indent=2))
        return
    for entry in catalogue.values():
        click.echo(f"{entry.code}  {entry.component:<9} {entry.severity.value:<5} {entry.title}")


@click.command()
@target_options
@option(
    "--port-forward",
    is_flag=True,
    help="Reach PostgreSQL, Redis, server and ML through "
    "port-forwards via the Kubernetes API (no kubectl needed).",
)
@option(
    "--from-dump",
    type=click.Path(dir_okay=False),
    help="Run the cluster checks offline on `kubectl get ... -o json` output (the README's "
    "commands), a support bundle, or its cluster/dump.json, instead of a live API.",
)
@option(
    "--node-ip",
    type=HOST_PORT,
    help="A node's IP (HOST[:PORT], port defaults to the shipped NodePort): also "
    "check the server through the NodePort.",
)
@option(
    "--ingress-ip",
    type=HOST_PORT_OR_HTTP_BASE,
    help="The ingress controller's [https://]HOST[:PORT] (port 80, or 443 with https://): "
    "also check each ingress host, sent as the Host header (and TLS server name).",
)
@option(
    "--external-url",
    type=HTTP_URL,
    help="The URL the phones use from outside (tunnel or reverse proxy), e.g. "
    "https://photos.example.com: checked like the NodePort and ingress hosts.",
)
@option(
    "--ca-file",
    type=click.Path(dir_okay=False, exists=True),
    help="Trust only this CA bundle (PEM) for https ways in (a private CA on the phones).",
)
@option(
    "--body-limit-size",
    type=Size(),
    default="100MB",
    show_default=True,
    help="Request body size the upload-limit check streams through each way in "
    "(a phone video); nothing is stored.",
)
@option(
    "--body-limit-budget",
    type=Duration(),
    default="60s",
    show_default=True,
    help="Time the upload-limit check may spend per way in narrowing down a limit.",
)
@option(
    "--media-path",
    type=click.Path(file_okay=False),
    help="Media root (NFS) to check: mount, free space, write/read/delete, .immich markers.",
)
@option(
    "--data-path",
    type=click.Path(file_okay=False),
    help="NVMe data path (/opt/immich) to check: mount, free space, write/read/delete.",
)
@option(
    "--min-free-media",
    type=Size(),
    default="100GB",
    show_default=True,
    help="Minimum free space on the media path (README: 100 GB).",
)
@option(
    "--min-free-data",
    type=Size(),
    default="10GB",
    show_default=True,
    help="Minimum free space on the data path (README: 10 GB).",
)
@option(
    "--storage-warn-percent",
    type=click.FloatRange(0, 100),
    default=80.0,
    show_default=True,
    help="Warn when the server reports its media disk at least this full (IC-ST-505).",
)
@option(
    "--storage-fail-percent",
    type=click.FloatRange(0, 100),
    default=95.0,
    show_default=True,
    help="Fail when the server reports its media disk at least this full (IC-ST-505).",
)
@option(
    "--failed-jobs-warn",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="Warn when a job queue holds more failed jobs than this (IC-SV-426).",
)
@option("--no-inference", is_flag=True, help="Skip the CLIP text inference on the ML service.")
@option(
    "--clip-model",
    default="ViT-B-32__openai",
    show_default=True,
    help="CLIP model for the inference check when the server's config cannot be read "
    "(with --api-key the server's configured model is used).",
)
@option(
    "--timeout",
    scope="verify",
    type=Seconds(min=0.05),
    default=3.0,
    show_default=True,
    help="Seconds each probe may take (after its target is known).",
)
@option(
    "--inference-timeout",
    type=Seconds(min=0.05),
    default=10.0,
    show_default=True,
    help="Seconds the inference may take (a cold model loads first).",
)
@option(
    "--slow-inference",
    type=Seconds(min=0.0),
    default=1.0,
    show_default=True,
    help="Warn when the inference takes longer than this many seconds.",
)
@option(
    "--wait",
    "wait",
    type=Duration(),
    default=0.0,
    help="Re-check every 2 s until everything passes or DURATION (e.g. 5m) is up.",
)
@option(
    "--only",
    multiple=True,
    help="Run only these checks: codes, globs (IC-PG-*) or "
    "components (redis); repeat or comma-separate.",
)
@option("--skip", multiple=True, help="Leave out these checks (same patterns as --only).")
@option("--list", "list_catalogue", is_flag=True, help="Print the check catalogue and exit.")
@option("--strict", is_flag=True, help="Treat warnings as failures (exit 2).")
@output_options(VERIFY_FORMATS, "table")
@store_options
@option("--no-save", is_flag=True, help="Do not save the run record under --reports-dir.")
@option("--tag", "tags", multiple=True, help="Label stored with the run (repeatable).")
def verify(**params: Any) -> int:
    """Check the deployment against manifests/ and say what to fix.

    \b
    Exit codes (Nagios): 0 all pass, 1 warnings, 2 failures (or warnings with
    --strict), 3 could not run: a check ERROR, or bad input / nothing to reach.
    """
    if params["list_catalogue"]:
        _print_catalogue(params["output_format"])
        return 0
    return run_verify_command(params)


def run_verify_command(params: dict[str, Any]) -> int:
    """Everything `verify` does after parsing: run, save, render, exit code."""
    import asyncio

    from immichcheck.deploy.expected_state import load_expected_state
    from immichcheck.history.store import save_run
    from immichcheck.verify.checks import load_catalogue, select_codes
    from immichcheck.verify.endpoints import TargetOptions, resolve_kube_access
    from immichcheck.verify.engine import (
        RunSettings,
        VerifyRequest,
        exit_code_for,
        print_progress,
        run_verify,
    )
    from immichcheck.verify.output.formats import render_verify

    if params["storage_warn_percent"] > params["storage_fail_percent"]:
        from immichcheck.common.errors import ImmichcheckError

        raise ImmichcheckError("--storage-warn-percent must not be above --storage-fail-percent")
    options = TargetOptions.from_params(params)
    codes = select_codes(load_catalogue(), params["only"], params["skip"])
    expected = load_expected_state(params.get("manifests_dir"))
    snapshot = None
    if options.from_dump:
        from immichcheck.clients.kubernetes_dump import snapshot_from_dump

        # Read and validated before anything runs: a bad file is one line, not 14 ERRORs.
        snapshot = snapshot_from_dump(
            options.from_dump,
            options.namespace or expected.namespace,
            list(expected.secrets),
            declared_kinds={str(obj.get("kind")) for obj in expected.objects},
        )
    settings = RunSettings(
        timeout=params["timeout"],
        inference_timeout=params["inference_timeout"],
        inference=not params["no_inference"],
        slow_inference_seconds=params["slow_inference"],
        clip_model=params["clip_model"],
        min_free_bytes={"media": params["min_free_media"], "data": params["min_free_data"]},
        body_limit_size=params["body_limit_size"],
        body_limit_budget=params["body_limit_budget"],
        storage_warn_percent=params["storage_warn_percent"],
        storage_fail_percent=params["storage_fail_percent"],
        failed_jobs_warn=params["failed_jobs_warn"],
    )
    request = VerifyRequest(
        options=options,
        expected=expected,
        codes=codes,
        settings=settings,
        kube_access=resolve_kube_access(options),
        snapshot=snapshot,
        wait=params["wait"],
        strict=params["strict"],
        tags=params["tags"],
        record_settings={
            "only": list(params["only"]),
            "skip": list(params["skip"]),
            "strict": params["strict"],
            "timeout": settings.timeout,
            "inference": settings.inference,
        },
        progress=print_progress,
    )
    run = asyncio.run(run_verify(request))
    if not params["no_save"]:
        path = save_run(run.record, params["reports_dir"])
        if sys.stderr.isatty():
            click.echo(f"saved {path}", err=True)
    destination = params["output"]
    color = destination == "-" and sys.stdout.isatty()
    text = request.redactor.values(render_verify(run.record, params["output_format"], color=color))
    write_output(text, destination)
    return int(exit_code_for(run.outcome.results, params["strict"]))

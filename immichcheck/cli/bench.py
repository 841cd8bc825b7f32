"""`immichcheck bench`: measure PostgreSQL, Redis, storage, ML and uploads; save the run."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import click

from immichcheck.cli.capacity_options import capacity_options
from immichcheck.cli.options import (
    Seconds,
    option,
    output_options,
    store_options,
    target_options,
    write_output,
)
from immichcheck.common.errors import ExitCode, ImmichcheckError
from immichcheck.common.terminal_width import output_width

PROFILES = ("quick", "standard", "full")


def _parse_paths(values: tuple[str, ...]) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for value in values:
        label, sep, folder = value.partition("=")
        if not sep or not label or not folder:
            raise ImmichcheckError(f"--path {value!r}: expected LABEL=DIR, e.g. nvme=/opt/immich")
        if label in paths:
            raise ImmichcheckError(f"--path label {label!r} given twice")
        paths[label] = Path(folder)
    return paths


@click.command("bench")
@option(
    "--local",
    is_flag=True,
    help="Start throwaway PostgreSQL and Redis on this machine "
    "(configured like manifests/) and benchmark this host as an Immich node.",
)
@option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="With --local: where the throwaway servers keep their data (default: a temporary "
    "folder). Compare disks with --data-dir /mnt/nvme vs --data-dir /mnt/nfs.",
)
@option(
    "--suite",
    "suites",
    multiple=True,
    metavar="NAME",
    help="Run only this suite (repeatable): postgres, redis, storage, ml, upload.",
)
@option(
    "--profile",
    type=click.Choice(PROFILES),
    default="standard",
    show_default=True,
    help="How long and how big (benchmarks/workloads.yaml).",
)
@option(
    "--engine",
    type=click.Choice(("immichcheck", "native")),
    default="immichcheck",
    show_default=True,
    help="native: run pgbench / redis-benchmark / fio instead and normalise their output.",
)
@option(
    "--path",
    "paths",
    multiple=True,
    metavar="LABEL=DIR",
    help="A folder to measure with the storage suite (repeatable).",
)
@option(
    "--live-readonly",
    is_flag=True,
    help="Run the PostgreSQL read shapes on the real "
    "Immich tables (read-only transactions, statement timeout) instead of a synthetic "
    "dataset; nothing is written.",
)
@option("--tag", "tags", multiple=True, help="Label stored with the run (repeatable).")
@option("--clip-model", help="CLIP model for the ml suite (default ViT-B-32__openai).")
@option("--face-model", help="Face model for the ml suite (default buffalo_l).")
@option("--ocr-model", help="OCR model for the ml suite (default PP-OCRv5_mobile).")
@option("--upload-count", type=click.IntRange(min=1), help="Assets to upload in the upload suite.")
@option(
    "--video-size",
    type=click.IntRange(min=1),
    metavar="BYTES",
    help="Size of the synthetic video in the upload suite.",
)
@option("--node", scope="bench", help="Benchmark on this cluster node (a pinned Job).")
@option("--nodes", help="Comma-separated cluster nodes to benchmark.")
@option("--all-nodes", is_flag=True, help="Benchmark every cluster node.")
@option("--parallel", is_flag=True, help="With --nodes/--all-nodes: run the nodes at once.")
@option(
    "--timeout",
    scope="bench",
    type=Seconds(min=1),
    default=3600,
    show_default=True,
    help="With --node/--nodes/--all-nodes: seconds to wait for each node's Job.",
)
@option("--poll-interval", type=Seconds(min=0.01), default=1.0, hidden=True)
@option("--in-job", is_flag=True, hidden=True, help="Run as the node benchmark Job's process.")
@capacity_options
@output_options(("table", "json"), "table")
@option(
    "--wide",
    is_flag=True,
    help="Table: draw every column (engine, p95, p99.9, max, MB/s, errors) however wide. "
    "Otherwise the table fits the terminal, or 100 columns when piped or written to a file.",
)
@store_options
@target_options
@click.pass_context
def bench(
    ctx: click.Context,
    local: bool,
    data_dir: Path | None,
    suites: tuple[str, ...],
    profile: str,
    engine: str,
    paths: tuple[str, ...],
    live_readonly: bool,
    tags: tuple[str, ...],
    clip_model: str | None,
    face_model: str | None,
    ocr_model: str | None,
    upload_count: int | None,
    video_size: int | None,
    node: str | None,
    nodes: str | None,
    all_nodes: bool,
    parallel: bool,
    timeout: float,
    poll_interval: float,
    in_job: bool,
    assets: int | None,
    library_bytes: int | None,
    faces_per_photo: float | None,
    output_format: str,
    output: str,
    wide: bool,
    reports_dir: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    server_url: str | None,
    ml_url: str | None,
    pg_dsn: str | None,
    redis_url: str | None,
    api_key: str | None,
    manifests_dir: str | None,
) -> int:
    """Benchmark this host (--local) or the given services, print a table, save the run.

    \b
    immichcheck bench --local --profile quick
    immichcheck bench --local --data-dir /mnt/nvme --tag nvme
    immichcheck bench --pg-dsn postgresql://immich:PW@host/immich --redis-url redis://host:6379
    immichcheck bench --engine native --local      # pgbench / redis-benchmark instead
    immichcheck bench --node node05                # in a Job pinned to that node
    immichcheck bench --all-nodes --suite storage  # one node after another, then compared

    Exit codes: 0 done, 3 could not run (bad flags, missing binaries, unwritable
    folder, a suite failed), 130 interrupted (servers and data removed).
    """
    from immichcheck.bench.capacity_answer import capacity_answer, with_library_facts
    from immichcheck.bench.runner import BenchRequest, run_bench, writable_reports_dir
    from immichcheck.bench.table import render_bench_table
    from immichcheck.history.store import save_run

    if (node or nodes or all_nodes or parallel) and not in_job:
        from immichcheck.cli.bench_nodes import run_node_command

        return run_node_command(ctx.params, writable_reports_dir(reports_dir))
    if not local:
        from immichcheck.bench.nodes.in_job import cluster_dns_defaults

        ml_url, server_url = cluster_dns_defaults(ml_url, server_url, manifests_dir)
    if data_dir is not None and not local:
        raise ImmichcheckError("--data-dir only applies with --local")
    if local and (pg_dsn or redis_url):
        raise ImmichcheckError(
            "--local starts its own PostgreSQL and Redis; drop --pg-dsn/--redis-url or --local"
        )
    if live_readonly and local:
        raise ImmichcheckError("--live-readonly reads a real Immich database; it needs --pg-dsn")
    folder = writable_reports_dir(reports_dir)
    options = {
        "clip_model": clip_model,
        "face_model": face_model,
        "ocr_model": ocr_model,
        "upload_count": upload_count,
        "video_size": video_size,
        "reports_dir": str(folder),  # the upload suite keeps its ledger of uploaded ids there
        "kubeconfig": kubeconfig,
        "context": context,
        "namespace": namespace,
    }
    request = BenchRequest(
        local=local,
        data_dir=data_dir,
        suites=tuple(suites),
        profile=profile,
        engine=engine,
        paths=_parse_paths(paths),
        live_readonly=live_readonly,
        tags=tags,
        options={k: v for k, v in options.items() if v is not None},
        pg_dsn=pg_dsn,
        redis_url=redis_url,
        server_url=server_url,
        ml_url=ml_url,
        api_key=api_key,
        manifests_dir=manifests_dir,
    )
    if in_job:
        from immichcheck.bench.nodes.in_job import run_in_job

        return run_in_job(request)
    outcome = run_bench(request)
    record = with_library_facts(outcome.record, server_url, api_key)
    saved = save_run(record, folder)
    if output_format == "json":
        text = record.to_json() + "\n"
    else:
        width = output_width(output == "-" and sys.stdout.isatty())
        text = render_bench_table(record, width=width, wide=wide)
        for name, reason in outcome.skipped.items():
            text += textwrap.fill(f"skipped {name}: {reason}", width, subsequent_indent="  ")
            text += "\n"
        answer = capacity_answer(
            record,
            assets=assets,
            library_bytes=library_bytes,
            faces_per_photo=faces_per_photo,
            width=width,
        )
        text += f"\n{answer}\n" if answer else ""
        text += f"saved: {saved}\n"
    write_output(text, output)
    for name, message in outcome.suite_errors.items():
        click.echo(f"immichcheck: error: suite {name}: {message}", err=True)
    return int(ExitCode.UNKNOWN) if outcome.suite_errors else int(ExitCode.OK)

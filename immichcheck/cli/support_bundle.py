"""`immichcheck support-bundle`: one archive with everything a support question needs.

Thin on purpose: parse options, call `immichcheck.verify.support_bundle.build_support_bundle`, print
what is in the archive. Heavy imports happen inside the function so `--help` stays fast.
"""

from __future__ import annotations

from typing import Any

import click

from immichcheck.cli.options import (
    Seconds,
    option,
    parse_duration,
    store_options,
    target_options,
)


def _since_seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    seconds = parse_duration(value)
    if seconds <= 0:
        raise click.BadParameter("must be more than zero (e.g. 30m, 2h)")
    return max(1, int(seconds))


@click.command("support-bundle")
@target_options
@option(
    "--since",
    callback=_since_seconds,
    help="Only log lines newer than this (e.g. 30m, 2h, 1d as 24h); default: no limit.",
)
@option(
    "--tail",
    type=click.IntRange(min=0),
    default=1000,
    show_default=True,
    help="Last N log lines of each container (server, ML, PostgreSQL, Redis).",
)
@option(
    "--output",
    "-o",
    default=".",
    show_default=True,
    help="Folder for immichcheck-bundle-<timestamp>.tar.gz, or the archive's file name.",
)
@option(
    "--timeout",
    scope="support-bundle",
    type=Seconds(min=0.05),
    default=5.0,
    show_default=True,
    help="Seconds each read of the cluster or a service may take.",
)
@option("--no-inference", is_flag=True, help="Skip verify's CLIP inference check.")
@store_options
def support_bundle(**params: Any) -> int:
    """Write one archive to attach to a question: verify, pods, events, logs, drift.

    \b
    Contents: the verify run (JSON and table), pod list and events, the last
    --tail log lines of every Immich pod (server, ML, PostgreSQL, Redis; the
    previous container too after a restart), ConfigMaps, the live objects as
    YAML with a diff against manifests/, versions, node facts and the latest
    benchmark run. Secret values (the values of immich-postgres-secret and
    immich-server-secret except the username, secret-named env values,
    passwords in URLs and DSNs, tokens, the API key) become ***.

    Exit codes: 0 written, 3 could not write it.
    """
    from immichcheck.deploy.expected_state import load_expected_state
    from immichcheck.verify.endpoints import TargetOptions
    from immichcheck.verify.support_bundle import BundleSettings, build_support_bundle

    expected = load_expected_state(params.get("manifests_dir"))
    options = TargetOptions.from_params(params)
    settings = BundleSettings(
        tail=params["tail"],
        since_seconds=params["since"],
        timeout=params["timeout"],
        reports_dir=params["reports_dir"],
        inference=not params["no_inference"],
    )
    result = build_support_bundle(options, expected, settings, params["output"])
    total = result.path.stat().st_size
    click.echo(f"wrote {result.path} ({total / 1024:.1f} KiB, {len(result.members)} files):")
    for member in result.members:
        name = member.name.split("/", 1)[1]
        click.echo(f"  {name:<58} {len(member.data):>9} B  {member.description}")
    if result.missing:
        click.echo("not collected:")
        for what, why in result.missing.items():
            click.echo(f"  {what}: {why}")
    return 0

"""The `immichcheck` command line: a thin click group whose commands live beside it in cli/.

The command modules are light: each imports its heavy libraries (asyncpg, kr8s, redis, rich)
inside its function, so registering all six here costs nothing measurable and
`immichcheck --help` starts fast (README, Design: "Process start and end").
"""

from __future__ import annotations

import sys
from typing import Any

import click
from click.core import ParameterSource

from immichcheck import __version__
from immichcheck.cli.bench import bench
from immichcheck.cli.config import (
    default_map_from_config,
    read_config_file,
    unknown_config_keys,
)
from immichcheck.cli.export import export
from immichcheck.cli.manifests import manifests
from immichcheck.cli.options import option
from immichcheck.cli.report import report
from immichcheck.cli.support_bundle import support_bundle
from immichcheck.cli.verify import verify
from immichcheck.common.errors import ExitCode, ImmichcheckError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="immichcheck")
@option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    help="TOML file with option defaults (top-level keys for every command, [verify] etc. "
    "for one). Flags and IMMICHCHECK_* variables override it.",
)
@option("--debug", is_flag=True, help="Show Python tracebacks for unexpected errors.")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, debug: bool) -> None:
    """Verify and benchmark a self-hosted Immich deployment on Kubernetes.

    \b
    immichcheck bench --local          benchmark this machine as an Immich node (no cluster)
    immichcheck verify                 check a deployed cluster against manifests/
    immichcheck bench --node node05    benchmark on a cluster node (a pinned Job)
    immichcheck report                 compare runs: baseline vs now, node vs node
    immichcheck export --prometheus F  write metrics for node_exporter's textfile collector

    Exit codes: 0 OK, 1 warnings, 2 failures, 3 could not run (bad input,
    unreachable, missing tools), 130 interrupted.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if config_file:
        config = read_config_file(config_file)
        loaded = dict(cli.commands)
        groups = {
            name: command.commands
            for name, command in loaded.items()
            if isinstance(command, click.Group)
        }
        ctx.default_map = default_map_from_config(
            config, loaded, {name: list(subs) for name, subs in groups.items()}
        )
        problems = unknown_config_keys(
            config,
            {name: _param_names(command) for name, command in loaded.items()},
            {
                name: {sub: _param_names(c) for sub, c in subs.items()}
                for name, subs in groups.items()
            },
        )
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise ImmichcheckError(f"config file {config_file}: {problems[0]}{more}")
        for name, command in loaded.items():
            _listify_repeatable(command, ctx.default_map.get(name, {}))


for _command in (bench, export, manifests, report, support_bundle, verify):
    cli.add_command(_command)


def _listify_repeatable(command: click.Command, defaults: dict[str, Any]) -> None:
    """`only = "postgres"` in TOML means one value of a repeatable option (click wants a list)."""
    for param in command.params:
        value = defaults.get(param.name or "")
        if getattr(param, "multiple", False) and isinstance(value, str | int | float):
            defaults[param.name or ""] = [value]
    if isinstance(command, click.Group):
        for sub_name, sub in command.commands.items():
            sub_defaults = defaults.get(sub_name)
            if isinstance(sub_defaults, dict):
                _listify_repeatable(sub, sub_defaults)


def _param_names(command: click.Command) -> set[str]:
    """The parameter names a config key may set for this command."""
    return {param.name for param in command.params if param.name}


def usage_message(exc: click.ClickException) -> str:
    """click's message, naming where a bad value came from: flag, variable or config file.

    click always hints at the environment variable ("(env var: 'IMMICHCHECK_TIMEOUT')"), which
    sends someone with a typo in their TOML file looking in the wrong place.
    """
    if (
        not isinstance(exc, click.BadParameter)
        or isinstance(exc, click.MissingParameter)  # no value at all: click says it well
        or not isinstance(exc.param, click.Option)
        or exc.ctx is None
    ):
        return exc.format_message()
    param, name = exc.param, exc.param.name
    flag = max(param.opts, key=len)
    source = exc.ctx.get_parameter_source(name) if name else None
    envvar = getattr(param, "envvar", None)
    if source == ParameterSource.ENVIRONMENT and isinstance(envvar, str):
        where = f" (from ${envvar})"
    elif source == ParameterSource.DEFAULT_MAP:
        where = " (from the --config file)"
    else:
        where = ""
    return f"Invalid value for '{flag}'{where}: {exc.message}"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `immichcheck` script: run the CLI, then end the process quickly.

    With `argv` (tests, embedding) it ends with SystemExit like any click program instead.
    """
    # httpx's __init__ imports its own command-line client (click, rich.syntax, pygments)
    # whenever those are installed: ~70 ms of every command that uses httpx, for a tool
    # immichcheck never runs.
    # A None entry makes that one import raise ImportError, which httpx handles itself (its
    # fallback when the CLI extras are not installed); the HTTP client is unaffected.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    code = run_cli(sys.argv[1:] if argv is None else argv)
    if argv is None:
        from immichcheck.cli.process_exit import exit_process

        exit_process(code)
    sys.exit(code)


def run_cli(args: list[str]) -> int:
    """Run one command line; every expected failure becomes one line and an exit code."""
    debug = "--debug" in args
    try:
        result: Any = cli.main(args=args, prog_name="immichcheck", standalone_mode=False)
    except ImmichcheckError as exc:
        click.echo(f"immichcheck: error: {exc.message}", err=True)
        return int(exc.exit_code)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.NoArgsIsHelpError as exc:
        # `immichcheck` or `immichcheck manifests` alone: the help, not an "error: Usage: ..."
        # wall of text; still exit 3 (nothing ran) and nothing on stdout for a pipe to take.
        click.echo(exc.format_message(), err=True)
        return int(ExitCode.UNKNOWN)
    except click.ClickException as exc:
        # Usage errors exit 3 (could not run), keeping 2 unambiguous for verify's FAIL.
        click.echo(f"immichcheck: error: {usage_message(exc)}", err=True)
        return int(ExitCode.UNKNOWN)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("immichcheck: interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # the last line of defence: never a traceback without --debug
        if debug:
            raise
        click.echo(
            f"immichcheck: internal error: {type(exc).__name__}: {exc} (rerun with --debug)",
            err=True,
        )
        return int(ExitCode.UNKNOWN)
    return int(result) if isinstance(result, int) else 0

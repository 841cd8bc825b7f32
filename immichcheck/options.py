"""Shared click option groups, defined once and reused by every command.

Every option also reads `IMMICHCHECK_<NAME>` from the environment. Precedence is
flag > environment > config file (`--config`, TOML) > built-in or manifest-derived default;
click gives the first three in that order (command line, envvar, `default_map`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def envvar_for(long_name: str) -> str:
    """`--pg-dsn` -> `IMMICHCHECK_PG_DSN`."""
    return "IMMICHCHECK_" + long_name.lstrip("-").replace("-", "_").upper()


def option(*param_decls: str, **attrs: Any) -> Callable[[F], F]:
    """A click option whose environment variable is derived from its long name."""
    long_names = [d for d in param_decls if d.startswith("--")]
    if long_names and "envvar" not in attrs:
        attrs["envvar"] = envvar_for(long_names[0].split("/")[0])
    attrs.setdefault("show_envvar", True)
    return click.option(*param_decls, **attrs)


def _stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    def apply(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return apply


kube_options = _stack(
    option(
        "--kubeconfig",
        type=click.Path(dir_okay=False),
        help="Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config; "
        "in-cluster service account when running in a pod).",
    ),
    option("--context", help="kubeconfig context to use (default: the current context)."),
    option(
        "-n",
        "--namespace",
        help="Namespace of the Immich deployment (default: the one in manifests/, 'immich').",
    ),
)

service_options = _stack(
    option("--server-url", help="Immich server base URL, e.g. http://10.0.0.5:2283."),
    option("--ml-url", help="Immich machine-learning service base URL, e.g. http://10.0.0.5:3003."),
    option(
        "--pg-dsn",
        help="PostgreSQL DSN, e.g. postgresql://immich:PASSWORD@host:5432/immich "
        "(default: credentials from the immich-postgres-secret).",
    ),
    option("--redis-url", help="Redis URL, e.g. redis://host:6379/0."),
    option(
        "--api-key",
        help="Immich API key for authenticated checks and uploads (never printed).",
    ),
)

manifests_option = option(
    "--manifests-dir",
    type=click.Path(file_okay=False),
    help="Folder holding the expected deployment "
    "(default: the manifests/ shipped with immichcheck).",
)

store_options = option(
    "--reports-dir",
    type=click.Path(file_okay=False),
    default="reports",
    show_default=True,
    help="Where run records and reports are kept.",
)


def output_options(formats: tuple[str, ...], default: str) -> Callable[[F], F]:
    """`--format` (from `formats`) and `--output FILE|-`, shared by every command that renders."""
    return _stack(
        option(
            "--format",
            "output_format",
            type=click.Choice(formats),
            default=default,
            show_default=True,
            help="Output format.",
        ),
        option(
            "--output",
            "-o",
            default="-",
            show_default=True,
            help="Write the output to this file ('-' for standard output).",
        ),
    )


def target_options(func: F) -> F:
    """Everything needed to reach a deployment: kube options, service overrides, manifests."""
    return kube_options(service_options(manifests_option(func)))

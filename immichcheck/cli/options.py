"""Shared click option groups, defined once and reused by every command, and where output goes.

Every option also reads `IMMICHCHECK_<NAME>` from the environment. Precedence is
flag > environment > config file (`--config`, TOML) > built-in or manifest-derived default;
click gives the first three in that order (command line, envvar, `default_map`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import click

from immichcheck.common.redaction import redact

F = TypeVar("F", bound=Callable[..., Any])


def envvar_for(long_name: str) -> str:
    """`--pg-dsn` -> `IMMICHCHECK_PG_DSN`."""
    return "IMMICHCHECK_" + long_name.lstrip("-").replace("-", "_").upper()


def option(*param_decls: str, scope: str | None = None, **attrs: Any) -> Callable[[F], F]:
    """A click option whose environment variable is derived from its long name.

    `scope` (a command name) gives `IMMICHCHECK_<SCOPE>_<NAME>` instead, for options whose
    meaning differs between commands: `IMMICHCHECK_NODE` must not turn a report filter into
    a cluster Job, nor `IMMICHCHECK_TAG` (a label for new runs) into tagging stored ones.
    """
    long_names = [d for d in param_decls if d.startswith("--")]
    if long_names and "envvar" not in attrs:
        name = long_names[0].split("/")[0]
        attrs["envvar"] = envvar_for(f"{scope}-{name.lstrip('-')}" if scope else name)
    attrs.setdefault("show_envvar", True)
    return click.option(*param_decls, **attrs)


class ServiceURL(click.ParamType):
    """A URL with one of the allowed schemes and a usable port; the value stays a string.

    Checked while the command line is parsed, so a typo is one line and exit 3 before anything
    connects (not an ERROR row per check with a library's exception text). The message never
    repeats a password the URL carries.
    """

    name = "URL"

    def __init__(
        self, what: str, schemes: tuple[str, ...], example: str, *, host_required: bool = True
    ) -> None:
        self.what = what
        self.schemes = schemes
        self.example = example
        self.host_required = host_required

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        problem = self._problem(text)
        if problem:
            self.fail(
                f"{redact(text)!r} is not {self.what}: {problem} (e.g. {self.example})",
                param,
                ctx,
            )
        return text

    def _problem(self, text: str) -> str:
        try:
            parts = urlsplit(text)
            # A multi-host DSN (h1:5432,h2:5432) is valid for libpq but not one port.
            if "," not in parts.netloc:
                _ = parts.port  # ValueError when not a number or out of range
        except ValueError as exc:
            return str(exc)
        if parts.scheme.lower() not in self.schemes:
            return "the scheme must be " + " or ".join(f"{s}://" for s in self.schemes)
        if self.host_required and parts.scheme.lower() != "unix" and not parts.hostname:
            return "it names no host"
        return ""


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """ "90s", "5m", "1h30m", "250ms" or plain seconds -> seconds."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):  # "inf" or "nan": a wait that never ends
            raise click.BadParameter(f"{text!r} is not a finite duration (e.g. 90s, 5m)")
        return seconds
    factors = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    position, total = 0, 0.0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * factors[match.group(2)]
        position = match.end()
    if position != len(value) or not value:
        raise click.BadParameter(f"{text!r} is not a duration (e.g. 90s, 5m, 1h30m)")
    return total


def parse_size(text: str) -> int:
    """ "100GB", "10G", "512MiB" or plain bytes -> bytes (GB = 10^9, GiB = 2^30)."""
    match = _SIZE.match(text)
    if not match:
        raise click.BadParameter(f"{text!r} is not a size (e.g. 100GB, 10GiB)")
    number, unit = float(match.group(1)), (match.group(2) or "b").lower()
    powers = {"k": 1, "m": 2, "g": 3, "t": 4}
    if unit == "b":
        return int(number)
    base = 1024 if "i" in unit else 1000
    return int(number * base ** powers[unit[0]])


class Duration(click.ParamType):
    """A duration option: 90s, 5m, 1h30m, 250ms or plain seconds."""

    name = "DURATION"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        return parse_duration(str(value))


class Size(click.ParamType):
    """A size option: 100GB, 10G, 512MiB or plain bytes."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        return parse_size(str(value))


class Seconds(click.FloatRange):
    """A number of seconds in a range; `nan` and `inf` are refused (click's FloatRange takes them).

    An infinite timeout is no timeout, and `nan` compares false with everything, so a wait
    loop bounded by it never ends.
    """

    name = "SECONDS"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if not isinstance(value, int | float):
            try:
                float(str(value))
            except ValueError:
                self.fail(f"{value!r} is not a number of seconds", param, ctx)
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return float(number)


class HostPort(click.ParamType):
    """`HOST` or `HOST:PORT` (IPv6 in brackets); checked while parsing, the value stays a string.

    With `schemes`, a `scheme://` prefix is allowed too (an https ingress controller).
    """

    name = "HOST[:PORT]"

    def __init__(self, schemes: tuple[str, ...] = ()) -> None:
        self.schemes = schemes
        if schemes:
            self.name = "[SCHEME://]HOST[:PORT]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        scheme, separator, address = text.rpartition("://")
        if separator and scheme.lower() not in self.schemes:
            allowed = " or ".join(f"{s}://" for s in self.schemes) or "no scheme"
            self.fail(f"{text!r}: {scheme}:// is not accepted here ({allowed})", param, ctx)
        try:
            parts = urlsplit(f"//{address}")
            _ = parts.port  # ValueError when not a number or out of range
            problem = "" if parts.hostname else "no host"
        except ValueError as exc:
            problem = str(exc)
        if not problem and (
            parts.path not in ("", "/") or parts.query or parts.fragment or "@" in text
        ):
            problem = "only a host and an optional port belong here, not a URL"
        if problem:
            self.fail(f"{text!r} is not HOST[:PORT]: {problem} (e.g. 10.0.0.5 or 10.0.0.5:31283)")
        return text


HOST_PORT = HostPort()
HOST_PORT_OR_HTTP_BASE = HostPort(schemes=("http", "https"))
HTTP_URL = ServiceURL("an http(s) URL", ("http", "https"), "http://10.0.0.5:2283")


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
        help="Path to the kubeconfig file (default: $KUBECONFIG, several files separated by "
        "':' merged as kubectl merges them, or ~/.kube/config; in-cluster service account "
        "when running in a pod).",
    ),
    option("--context", help="kubeconfig context to use (default: the current context)."),
    option(
        "-n",
        "--namespace",
        help="Namespace of the Immich deployment (default: the one in manifests/, 'immich').",
    ),
)

service_options = _stack(
    option(
        "--server-url", type=HTTP_URL, help="Immich server base URL, e.g. http://10.0.0.5:2283."
    ),
    option(
        "--ml-url",
        type=HTTP_URL,
        help="Immich machine-learning service base URL, e.g. http://10.0.0.5:3003.",
    ),
    option(
        "--pg-dsn",
        type=ServiceURL(
            "a PostgreSQL DSN",
            ("postgresql", "postgres"),
            "postgresql://immich:PASSWORD@host:5432/immich",
            host_required=False,  # libpq's defaults (local socket, ?host=) still apply
        ),
        help="PostgreSQL DSN, e.g. postgresql://immich:PASSWORD@host:5432/immich "
        "(default: credentials from the immich-postgres-secret).",
    ),
    option(
        "--redis-url",
        type=ServiceURL("a Redis URL", ("redis", "rediss", "unix"), "redis://host:6379/0"),
        help="Redis URL, e.g. redis://host:6379/0.",
    ),
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


verdict_files_options = _stack(
    option(
        "--rules",
        type=click.Path(dir_okay=False),
        help="Regression rules file (default: benchmarks/regression-rules.yaml).",
    ),
    option(
        "--targets",
        "targets_file",
        type=click.Path(dir_okay=False),
        help="Targets file (default: benchmarks/targets.yaml).",
    ),
)


def write_text_file(path: str, text: str) -> None:
    """Write `text` to `path` atomically; one line (not a traceback) when that fails."""
    from pathlib import Path

    from immichcheck.common.errors import ImmichcheckError
    from immichcheck.history.store import atomic_write_text

    try:
        atomic_write_text(Path(path), text)
    except OSError as exc:
        raise ImmichcheckError(f"cannot write {path}: {exc.strerror or exc}") from exc


def write_output(text: str, destination: str) -> None:
    """A command's rendered output to standard output ('-') or to the `--output` file."""
    if destination == "-":
        click.echo(text, nl=False)
    else:
        write_text_file(destination, text)


def target_options(func: F) -> F:
    """Everything needed to reach a deployment: kube options, service overrides, manifests."""
    return kube_options(service_options(manifests_option(func)))

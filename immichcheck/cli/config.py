"""Settings from a TOML config file, turned into click's `default_map`.

Top-level keys apply to every command; a table named after a command (`[verify]`, `[bench]`)
applies to that command only and wins over the top level. Keys use the option's long name with
dashes or underscores (`pg-dsn` or `pg_dsn`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from immichcheck.common.errors import ImmichcheckError

# Option names whose click parameter name differs from the long option name.
_PARAM_RENAMES = {"format": "output_format"}


def _param_name(key: str) -> str:
    name = key.replace("-", "_")
    return _PARAM_RENAMES.get(name, name)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, turning every problem into one clear line."""
    import tomllib  # ~4 ms that a run without a config file (the usual one) does not pay

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ImmichcheckError(f"cannot read config file {file}: {exc.strerror or exc}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ImmichcheckError(f"config file {file} is not valid TOML: {exc}") from exc


def default_map_from_config(
    config: Mapping[str, Any],
    command_names: Iterable[str],
    subcommands: Mapping[str, Iterable[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per-command default maps: shared top-level keys overlaid by the command's own table.

    For a command group (`subcommands`, e.g. manifests -> list, show), each subcommand gets
    the shared keys, the group's table and its own sub-table, in that order: click reads a
    subcommand's defaults only from its own entry.
    """
    names = set(command_names)
    shared = {_param_name(k): v for k, v in config.items() if not isinstance(v, dict)}
    unknown_tables = [k for k, v in config.items() if isinstance(v, dict) and k not in names]
    if unknown_tables:
        raise ImmichcheckError(
            f"config file has a section for unknown command(s): {', '.join(sorted(unknown_tables))}"
        )
    result: dict[str, dict[str, Any]] = {}
    for name in names:
        own = config.get(name, {})
        merged = dict(shared)
        merged.update({_param_name(k): v for k, v in own.items() if not isinstance(v, dict)})
        flat = dict(merged)
        for sub in (subcommands or {}).get(name, ()):
            merged[sub] = dict(flat)
        # Nested groups (e.g. `manifests validate`) get their own sub-tables.
        for key, value in own.items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update({_param_name(k): v for k, v in value.items()})
        result[name] = merged
    return result


def unknown_config_keys(
    config: Mapping[str, Any],
    options: Mapping[str, Iterable[str]],
    subcommand_options: Mapping[str, Mapping[str, Iterable[str]]] | None = None,
) -> list[str]:
    """Keys no command reads (a typo would otherwise be ignored without a word).

    `options` maps each command to its parameter names; `subcommand_options` maps a group to
    its subcommands' parameter names. A top-level key must be an option of some command.
    """
    groups = subcommand_options or {}
    known_by = {name: set(values) for name, values in options.items()}
    for name, subs in groups.items():
        for values in subs.values():
            known_by.setdefault(name, set()).update(values)
    everything = set().union(*known_by.values()) if known_by else set()
    problems: list[str] = []
    for key, value in config.items():
        if not isinstance(value, dict):
            if _param_name(key) not in everything:
                problems.append(f"unknown key {key!r} (no command has an option by that name)")
            continue
        for sub_key, sub_value in value.items():
            if isinstance(sub_value, dict):
                sub_known = groups.get(key, {}).get(sub_key)
                if sub_known is None:
                    problems.append(f"unknown section [{key}.{sub_key}]")
                    continue
                problems.extend(
                    f"unknown key {inner!r} in [{key}.{sub_key}]"
                    for inner in sub_value
                    if _param_name(inner) not in set(sub_known)
                )
            elif _param_name(sub_key) not in known_by.get(key, set()):
                problems.append(f"unknown key {sub_key!r} in [{key}] (not an option of {key})")
    return problems

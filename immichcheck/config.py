"""Settings from a TOML config file, turned into click's `default_map`.

Top-level keys apply to every command; a table named after a command (`[verify]`, `[bench]`)
applies to that command only and wins over the top level. Keys use the option's long name with
dashes or underscores (`pg-dsn` or `pg_dsn`).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from immichcheck.errors import ImmichcheckError

# Option names whose click parameter name differs from the long option name.
_PARAM_RENAMES = {"format": "output_format"}


def _param_name(key: str) -> str:
    name = key.replace("-", "_")
    return _PARAM_RENAMES.get(name, name)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, turning every problem into one clear line."""
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
    config: Mapping[str, Any], command_names: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """Per-command default maps: shared top-level keys overlaid by the command's own table."""
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
        # Nested groups (e.g. `manifests validate`) get their own sub-tables.
        for key, value in own.items():
            if isinstance(value, dict):
                merged[key] = {_param_name(k): v for k, v in value.items()}
        result[name] = merged
    return result

"""A workload's parameters in words a reader takes in at a glance: `pipeline=16, 300-byte values`.

Run records keep the parameters as a mapping in base units (bytes); only what people read
(progress lines, the bench table, its notes) goes through here.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Any

# Parameters that are facts about the run rather than what distinguishes one row.
HIDDEN_PARAMETERS = frozenset({"workers"})

# Sizes in bytes, and the noun the size describes: value_bytes=300 -> "300-byte values".
_SIZE_NOUNS = {
    "value_bytes": "values",
    "data_bytes": "job data",
    "block_bytes": "blocks",
    "small_file_bytes": "small files",
}


def size_words(size: int) -> str:
    """A byte count as people say it: 300 -> `300-byte`, 8192 -> `8 KiB`, 4194304 -> `4 MiB`."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale and size % (scale // 16) == 0:
            return f"{size / scale:g} {unit}"
    return f"{size}-byte"


def describe_parameters(parameters: Mapping[str, Any]) -> str:
    """The parameters that tell rows apart, comma-separated; sizes in words, the rest key=value."""
    shown = {
        key: value
        for key, value in parameters.items()
        if key not in HIDDEN_PARAMETERS and not isinstance(value, (dict, list))
    }
    words: list[str] = []
    for key, value in shown.items():
        if key == "files" and "file_bytes" in shown:
            continue  # said together with file_bytes: "16 files of 4 MiB"
        if key == "file_bytes" and _is_count(value):
            count = shown.get("files")
            size = size_words(int(value))
            words.append(f"{count} files of {size}" if _is_count(count) else f"{size} files")
        elif key in _SIZE_NOUNS and _is_count(value):
            words.append(f"{size_words(int(value))} {_SIZE_NOUNS[key]}")
        else:
            words.append(f"{key}={value}")
    return ", ".join(words)


def describe_workload(workload: str, parameters: Mapping[str, Any]) -> str:
    """`redis.lpush connections=50, pipeline=16, 300-byte values`."""
    described = describe_parameters(parameters)
    return f"{workload} {described}" if described else workload


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# A Python dict literal inside a progress message (the suites format their steps as
# f"{workload} {parameters}"): the only place a mapping's repr can reach a reader.
_DICT_LITERAL = re.compile(r"\{(?:'[^{}]*)?\}")


def step_in_words(message: str) -> str:
    """A progress message with any parameters mapping in it said in words, the rest unchanged."""

    def replace(match: re.Match[str]) -> str:
        try:
            value = ast.literal_eval(match.group(0))
        except (ValueError, SyntaxError):
            return match.group(0)
        return describe_parameters(value) if isinstance(value, dict) else match.group(0)

    return " ".join(_DICT_LITERAL.sub(replace, message).split())

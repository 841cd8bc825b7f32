"""PostgreSQL settings as values: parsed into base units, compared, and said in one unit.

`pg_settings` reports a setting as a number in its own unit (`effective_cache_size` 524288
with unit `8kB`), while a postgresql.conf in a ConfigMap says `640MB`. Comparing needs both
in base units (bytes, seconds); telling the user needs both in the same human unit, spelled
as postgresql.conf spells it (PostgreSQL's kB/MB/GB/TB are powers of 1024), so the figure
can be pasted back into the file.
"""

from __future__ import annotations

import re

BYTE_UNITS: dict[str, float] = {
    "B": 1,
    "kB": 1024,
    "MB": 1024**2,
    "GB": 1024**3,
    "TB": 1024**4,
    "8kB": 8192,
    "16MB": 16 * 1024**2,
}
TIME_UNITS: dict[str, float] = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "min": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
# The units a message may use, largest first (the odd pg_settings units 8kB/16MB are not).
_SAID_BYTE_UNITS = ("TB", "GB", "MB", "kB", "B")
_SAID_TIME_UNITS = ("d", "h", "min", "s", "ms", "us")


def setting_value(text: str, unit: str | None) -> float | str:
    """A PostgreSQL setting in base units (bytes or seconds); bare numbers are in `unit`."""
    cleaned = str(text).strip().strip("'\"")
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)", cleaned)
    if not match:
        return cleaned.lower()
    number, suffix = float(match.group(1)), match.group(2) or (unit or "")
    if suffix in BYTE_UNITS:
        return number * BYTE_UNITS[suffix]
    if suffix in TIME_UNITS:
        return number * TIME_UNITS[suffix]
    if not match.group(2):
        return number
    return cleaned.lower()


def same_setting(want: float | str, have: float | str) -> bool:
    """Equal values (numbers within rounding, text exactly)."""
    if isinstance(want, float) and isinstance(have, float):
        return abs(want - have) <= 1e-9 * max(1.0, abs(want))
    return want == have


def _unit_kind(unit: str | None, *texts: str) -> dict[str, float] | None:
    """The unit table the setting is measured in: bytes, seconds, or None (unitless)."""
    suffixes = [unit or ""] + [re.sub(r"^[-\d.\s'\"]+", "", t).strip("'\" ") for t in texts]
    if any(s in BYTE_UNITS for s in suffixes):
        return BYTE_UNITS
    if any(s in TIME_UNITS for s in suffixes):
        return TIME_UNITS
    return None


def _whole(number: float) -> bool:
    return abs(number - round(number)) < 1e-6


def said_in_one_unit(live: str, shipped: str, unit: str | None) -> tuple[str, str]:
    """The live and the shipped value of a setting, both in the largest unit that keeps both
    whole (`4096MB` and `640MB`), or as written when the setting has no unit."""
    kind = _unit_kind(unit, live, shipped)
    have, want = setting_value(live, unit), setting_value(shipped, unit)
    if kind is None or not isinstance(have, float) or not isinstance(want, float):
        return str(live).strip(), str(shipped).strip()
    names = _SAID_BYTE_UNITS if kind is BYTE_UNITS else _SAID_TIME_UNITS
    for name in names:
        size = kind[name]
        if _whole(have / size) and _whole(want / size):
            return f"{round(have / size)}{name}", f"{round(want / size)}{name}"
    smallest = names[-1]
    return f"{have / kind[smallest]:g}{smallest}", f"{want / kind[smallest]:g}{smallest}"

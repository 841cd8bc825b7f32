"""Values written in the manifests' own formats: storage quantities, redis.conf, postgresql.conf."""

from __future__ import annotations

import re

from immichcheck.deploy.manifest_files import ManifestsError

_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGTPE]i?|[kmu]|)\s*$")
_QUANTITY_FACTORS = {
    "": 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def parse_quantity(text: str) -> int:
    """A Kubernetes storage quantity ('20Gi', '500M', '1024') in bytes."""
    match = _QUANTITY.match(text)
    if not match or match.group(2) not in _QUANTITY_FACTORS:
        raise ManifestsError(f"not a storage quantity: {text!r}")
    return int(float(match.group(1)) * _QUANTITY_FACTORS[match.group(2)])


def parse_redis_conf(text: str) -> dict[str, str]:
    """`directive value...` lines of a redis.conf; keys lower-cased, quotes removed.

    A directive given several times (`save`) keeps all values joined by spaces, the form
    `CONFIG GET` returns.
    """
    settings: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        directive, _, rest = line.partition(" ")
        values = [_unquote(part) for part in _split_redis_args(rest.strip())]
        key = directive.lower()
        value = " ".join(values)
        settings[key] = f"{settings[key]} {value}" if key in settings and value else value
    return settings


def _split_redis_args(text: str) -> list[str]:
    parts: list[str] = []
    current = ""
    quote: str | None = None
    for char in text:
        if quote:
            current += char
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
            current += char
        elif char.isspace():
            if current:
                parts.append(current)
                current = ""
        else:
            current += char
    if current:
        parts.append(current)
    return parts


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_postgresql_conf(text: str) -> dict[str, str]:
    """`name = value` lines of a postgresql.conf; quotes and trailing comments removed.

    `include*` directives are skipped (they name other files, not settings).
    """
    settings: dict[str, str] = {}
    for raw_line in text.splitlines():
        line = _strip_pg_comment(raw_line).strip()
        if not line:
            continue
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_.]*)\s*(?:=\s*|\s+)(.*)$", line)
        if not match:
            raise ManifestsError(f"postgresql.conf: cannot parse line: {raw_line.strip()!r}")
        name, value = match.group(1).lower(), match.group(2).strip()
        if name in ("include", "include_if_exists", "include_dir"):
            continue
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1].replace("''", "'").replace("\\'", "'")
        settings[name] = value
    return settings


def _strip_pg_comment(line: str) -> str:
    in_quote = False
    for position, char in enumerate(line):
        if char == "'":
            in_quote = not in_quote
        elif char == "#" and not in_quote:
            return line[:position]
    return line

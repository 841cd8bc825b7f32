"""PostgreSQL checks over the facts one connection gathered (see probes/postgres.py)."""

from __future__ import annotations

import re
from typing import Any

from immichcheck.verify.checks import Facts, Verdict, check, failed, passed, skipped, warned
from immichcheck.verify.checks.postgres_settings import (
    said_in_one_unit,
    same_setting,
    setting_value,
)

CONNECTS = "IC-PG-101"
TABLES = "IC-PG-108"
_PROBES = ("postgres",)
_AFTER_CONNECT = (CONNECTS,)

MIN_MAJOR = 14
# name -> (lowest supported, first unsupported) as (major, minor); REFERENCE.md ranges, with
# the upper bound at the next major release nobody has tested Immich against.
VECTOR_EXTENSIONS: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "vchord": ((0, 3), (1, 0)),
    "vector": ((0, 5), (1, 0)),
    "vectors": ((0, 2), (0, 3)),
}
REQUIRED_EXTENSIONS: tuple[str, ...] = ("cube", "earthdistance", "pg_trgm", "unaccent", "uuid-ossp")
# The tables that identify a migrated Immich schema, in both naming generations.
CORE_TABLES_SINGULAR: tuple[str, ...] = (
    "asset",
    "asset_exif",
    "asset_face",
    "user",
    "smart_search",
    "face_search",
)
CORE_TABLES_PLURAL: tuple[str, ...] = (
    "assets",
    "exif",
    "asset_faces",
    "users",
    "smart_search",
    "face_search",
)
CONNECTIONS_WARN = 0.8
CONNECTIONS_FAIL = 0.95
SLOW_MEAN_SECONDS = 0.5


def _target(facts: Facts) -> str:
    return str(facts["postgres"].get("location") or "postgres")


def version_tuple(text: str) -> tuple[int, ...]:
    """ "0.4.3" -> (0, 4, 3); trailing non-digits ignored."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


@check(CONNECTS, probes=_PROBES)
def accepts_connections(facts: Facts) -> Verdict:
    """PostgreSQL accepted a connection with the deployment's credentials."""
    pg = facts["postgres"]
    return passed(f"connected to database {pg['database']}", _target(facts))


@check("IC-PG-102", probes=_PROBES, requires=_AFTER_CONNECT)
def version_supported(facts: Facts) -> Verdict:
    """The server is PostgreSQL 14 or newer."""
    pg = facts["postgres"]
    major = pg["version_num"] // 10000
    if major < MIN_MAJOR:
        return failed(f"PostgreSQL {pg['version']} is older than {MIN_MAJOR}", _target(facts))
    return passed(f"PostgreSQL {pg['version']}", _target(facts), version=pg["version"])


@check("IC-PG-103", probes=_PROBES, requires=_AFTER_CONNECT)
def vector_extension(facts: Facts) -> Verdict:
    """A vector extension Immich accepts is installed, in its supported version range."""
    pg = facts["postgres"]
    target = _target(facts)
    installed = {
        name: pg["extensions"][name] for name in VECTOR_EXTENSIONS if name in pg["extensions"]
    }
    if not installed:
        available = [name for name in VECTOR_EXTENSIONS if name in pg["available_extensions"]]
        if available:
            # Immich runs CREATE EXTENSION itself at its first start, so a fresh database that
            # merely has the extension available is fine for now.
            return warned(
                f"{', '.join(available)} available but not created yet "
                "(Immich creates it at its first start)",
                target,
            )
        return failed(
            "no vector extension (vchord, vector or vectors) is available in this PostgreSQL",
            target,
        )
    preload = str(pg["settings"].get("shared_preload_libraries", {}).get("setting", ""))
    problems, good, newer = [], [], []
    for name, version in installed.items():
        low, high = VECTOR_EXTENSIONS[name]
        current = version_tuple(version)[:2]
        if name == "vchord" and "vchord" not in preload:
            # VectorChord without its preloaded library cannot build or use its indexes.
            problems.append("vchord is installed but not in shared_preload_libraries")
        elif current < low:
            problems.append(f"{name} {version} is older than {'.'.join(map(str, low))}")
        elif current >= high:
            newer.append(f"{name} {version}")
        else:
            good.append(f"{name} {version}")
    if problems and not good:
        return failed("; ".join(problems), target, extensions=installed)
    if newer and not good:
        return warned(
            f"{', '.join(newer)} is newer than the tested range", target, extensions=installed
        )
    message = ", ".join(good) + (
        f" (also: {'; '.join(problems + newer)})" if problems or newer else ""
    )
    return passed(message, target, extensions=installed)


@check("IC-PG-104", probes=_PROBES, requires=_AFTER_CONNECT)
def required_extensions(facts: Facts) -> Verdict:
    """cube, earthdistance, pg_trgm, unaccent and uuid-ossp are installed or at least available."""
    pg = facts["postgres"]
    target = _target(facts)
    missing = [name for name in REQUIRED_EXTENSIONS if name not in pg["extensions"]]
    unavailable = [name for name in missing if name not in pg["available_extensions"]]
    if unavailable:
        return failed(
            f"not available in this PostgreSQL: {', '.join(unavailable)} "
            "(Immich cannot create them)",
            target,
        )
    if missing:
        migrated = _naming(pg["tables"]) is not None
        message = f"available but not created: {', '.join(missing)}"
        if migrated:  # Immich's migrations create them: a migrated schema without them is broken
            return failed(message + " although Immich's tables exist", target)
        return warned(message + " (fresh database: Immich creates them at its first start)", target)
    return passed(f"installed: {', '.join(REQUIRED_EXTENSIONS)}", target)


@check("IC-PG-105", probes=_PROBES, requires=_AFTER_CONNECT)
def settings_in_effect(facts: Facts) -> Verdict:
    """The ConfigMap's memory, planner and slow-query settings are the ones the server runs with."""
    pg = facts["postgres"]
    target = _target(facts)
    shipped = facts.expected.postgres_settings
    differences, pending, compared = [], [], []
    for name, live in pg["settings"].items():
        if name not in shipped or name in (
            "shared_preload_libraries",
            "superuser_reserved_connections",
        ):
            continue
        compared.append(name)
        want = setting_value(shipped[name], live["unit"])
        have = setting_value(live["setting"], live["unit"])
        if not same_setting(want, have):
            # Both in one unit: "524288 8kB" against "640MB" hides that it is 4096MB.
            said_live, said_shipped = said_in_one_unit(live["setting"], shipped[name], live["unit"])
            differences.append(f"{name} is {said_live}, ConfigMap says {said_shipped}")
        if live["pending_restart"]:
            pending.append(name)
    if differences:
        return warned("; ".join(differences), target, compared=compared)
    if pending:
        return warned(f"changed but waiting for a restart: {', '.join(pending)}", target)
    if not compared:
        return skipped("none of the compared settings are in the ConfigMap", target)
    return passed(
        f"{len(compared)} setting(s) as in the ConfigMap: {', '.join(sorted(compared))}", target
    )


@check("IC-PG-106", probes=_PROBES, requires=_AFTER_CONNECT)
def connection_headroom(facts: Facts) -> Verdict:
    """Open connections stay well below max_connections."""
    pg = facts["postgres"]
    target = _target(facts)
    maximum = int(float(pg["settings"].get("max_connections", {}).get("setting", 0) or 0))
    reserved = int(
        float(pg["settings"].get("superuser_reserved_connections", {}).get("setting", 0) or 0)
    )
    usable = max(1, maximum - reserved)
    used = int(pg["connections"])
    share = used / usable
    message = f"{used} of {usable} usable connections ({share:.0%}; max_connections {maximum})"
    evidence = {"connections": used, "max_connections": maximum}
    if share >= CONNECTIONS_FAIL:
        return failed(message, target, **evidence)
    if share >= CONNECTIONS_WARN:
        return warned(message, target, **evidence)
    return passed(message, target, **evidence)


@check("IC-PG-107", probes=_PROBES, requires=_AFTER_CONNECT)
def database_size(facts: Facts) -> Verdict:
    """The database's size (reported in bytes; judged against the data volume by IC-ST-502)."""
    pg = facts["postgres"]
    size = int(pg["database_size"])
    return passed(
        f"database {pg['database']} is {size / 1024**2:.1f} MiB", _target(facts), size_bytes=size
    )


def _naming(tables: list[str]) -> str | None:
    """'singular' or 'plural' when a core Immich table of that generation exists."""
    present = set(tables)
    singular = len(present & set(CORE_TABLES_SINGULAR) - {"smart_search", "face_search"})
    plural = len(present & set(CORE_TABLES_PLURAL) - {"smart_search", "face_search"})
    if not singular and not plural:
        return None
    return "singular" if singular >= plural else "plural"


@check(TABLES, probes=_PROBES, requires=_AFTER_CONNECT)
def immich_tables(facts: Facts) -> Verdict:
    """Immich's core tables exist (singular names in current releases, plural in older ones)."""
    pg = facts["postgres"]
    target = _target(facts)
    naming = _naming(pg["tables"])
    if naming is None:
        return warned(
            f"no Immich tables yet ({len(pg['tables'])} table(s) in public): "
            "a fresh database; the server creates them at its first start",
            target,
        )
    core = CORE_TABLES_SINGULAR if naming == "singular" else CORE_TABLES_PLURAL
    missing = [name for name in core if name not in pg["tables"]]
    if missing:
        return failed(f"{naming}-named schema lacks {', '.join(missing)}", target)
    return passed(f"{len(pg['tables'])} tables, {naming} names (core tables present)", target)


@check("IC-PG-109", probes=_PROBES, requires=(TABLES,))
def vector_indexes(facts: Facts) -> Verdict:
    """clip_index on smart_search and face_index on face_search exist."""
    pg = facts["postgres"]
    target = _target(facts)
    if _naming(pg["tables"]) is None:
        return skipped("no Immich tables yet, so no vector indexes to look for", target)
    missing = [name for name in ("clip_index", "face_index") if name not in pg["indexes"]]
    if missing:
        return warned(f"missing vector index(es): {', '.join(missing)}", target)
    methods = sorted(
        {
            match.group(1)
            for index in pg["indexes"].values()
            if (match := re.search(r"USING (\w+)", str(index["definition"])))
        }
    )
    return passed(f"clip_index and face_index present ({', '.join(methods)})", target)


@check("IC-PG-110", probes=_PROBES, requires=_AFTER_CONNECT)
def slow_statements(facts: Facts) -> Verdict:
    """No frequent statement averages over half a second (pg_stat_statements.mean_exec_time)."""
    target = _target(facts)
    stats: dict[str, Any] = facts["postgres"]["slow_statements"]
    if not stats.get("available"):
        return skipped(f"cannot look at statements: {stats.get('reason', 'unavailable')}", target)
    slow = [s for s in stats["top"] if s["mean_seconds"] > SLOW_MEAN_SECONDS]
    if slow:
        worst = slow[0]
        return warned(
            f"{len(slow)} statement(s) average more than {SLOW_MEAN_SECONDS:g} s; worst "
            f"{worst['mean_seconds'] * 1000:.0f} ms over {worst['calls']} calls: "
            f"{worst['query'][:80]}",
            target,
            slow=slow,
        )
    top = stats["top"][0]["mean_seconds"] * 1000 if stats["top"] else 0.0
    return passed(f"slowest frequent statement averages {top:.1f} ms", target)

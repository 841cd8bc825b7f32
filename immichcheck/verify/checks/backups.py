"""Database backup checks: Immich's own nightly dumps, read from the admin API or the files.

The same rules apply to both sources (GET /api/admin/database-backups on v2.5+, or
`<media>/backups/` with --media-path): backups enabled, the newest one recent enough for the
configured schedule, not empty nor sharply smaller than the one before, and as many kept as
`keepLastAmount` allows. Without the server's config, Immich's defaults are assumed and said.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from immichcheck.clients.immich_admin import DATABASE_BACKUPS, SYSTEM_CONFIG
from immichcheck.verify.checks import (
    Facts,
    Verdict,
    check,
    failed,
    passed,
    skipped,
    warned,
)
from immichcheck.verify.checks.admin_answers import config_section, unusable

_PROBES = ("immich.backups",)
# Immich's defaults (server/src/config.ts): nightly at 02:00, the last 14 kept.
DEFAULT_CRON = "0 02 * * *"
DEFAULT_KEEP = 14
SHRINK_WARN = 0.5  # the newest dump under half the previous one's size
SETTING = "backup.database.enabled (Administration > Settings > Backup Settings)"
NEW_STYLE = re.compile(r"^immich-db-backup-(\d{8}T\d{6})-v(.+)-pg(.+)\.sql\.gz$")
OLD_STYLE = re.compile(r"^immich-db-backup-(\d{10,})\.sql\.gz$")  # epoch milliseconds


def backup_time(filename: str, timezone: str = "UTC") -> datetime | None:
    """When a routine dump was taken, from its name (written in the server's local time)."""
    match = NEW_STYLE.match(filename)
    if match:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            zone: Any = ZoneInfo(timezone or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            zone = UTC
        local = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=zone)
        return local.astimezone(UTC)
    match = OLD_STYLE.match(filename)
    if match:
        return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
    return None


def cron_period(expression: str) -> timedelta | None:
    """The longest gap a cron expression allows between runs (None when not understood).

    Enough for the schedules Immich's settings offer (daily, every N hours, weekly, monthly);
    NestJS also accepts a leading seconds field, which is dropped.
    """
    fields = expression.split()
    if len(fields) == 6:
        fields = fields[1:]
    if len(fields) != 5:
        return None
    minute, hour, day, month, weekday = fields

    def step(field: str) -> int | None:
        match = re.fullmatch(r"\*/(\d+)", field)
        return int(match.group(1)) if match else None

    def count(field: str) -> int | None:
        if re.fullmatch(r"\d+(,\d+)*", field):
            return len(field.split(","))
        return None

    if month != "*":
        return timedelta(days=366)
    if day != "*":
        every = step(day)
        return timedelta(days=every) if every else timedelta(days=31)
    if weekday != "*":
        days = count(weekday)
        return timedelta(days=7 / days) if days else timedelta(days=7)
    if hour == "*":
        return timedelta(hours=1)
    if step(hour):
        return timedelta(hours=step(hour) or 1)
    hours = count(hour)
    if hours is None or not re.fullmatch(r"\d+(,\d+)*|\*(/\d+)?", minute):
        return None
    return timedelta(hours=24 / hours)


def _settings(data: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str]:
    """The server's backup.database settings, or None and why they are unknown."""
    config = data.get("config")
    if config is None:
        return None, "the server's settings need --api-key; Immich's defaults assumed"
    if config["status"] != 200:
        return None, f"GET {SYSTEM_CONFIG} answered HTTP {config['status']}; defaults assumed"
    section = config_section(config, "backup", "database")
    if not isinstance(section, dict):
        return None, "the config has no backup.database section; defaults assumed"
    return section, ""


def _routine(data: Mapping[str, Any]) -> list[tuple[datetime, Mapping[str, Any]]]:
    """The nightly dumps (not uploaded or restore-point files), newest first, with their time."""
    dated = []
    for item in data["backups"]:
        when = backup_time(str(item.get("filename", "")), str(item.get("timezone") or "UTC"))
        if when is not None:
            dated.append((when, item))
    return sorted(dated, key=lambda pair: pair[0], reverse=True)


def _target(data: Mapping[str, Any]) -> str:
    return str(data["where"])


def _listing_unusable(data: Mapping[str, Any]) -> Verdict | None:
    if data["source"] == "api":
        return unusable(data["answer"], DATABASE_BACKUPS, _target(data))
    return None


@check("IC-SV-421", probes=_PROBES)
def backups_enabled(facts: Facts) -> Verdict:
    """The server's own database backup job is enabled."""
    data = facts["immich.backups"]
    config = data.get("config")
    if config is None:
        return skipped("skipped: the backup settings need --api-key (GET /api/system-config)")
    problem = unusable(config, SYSTEM_CONFIG, _target(data))
    if problem:
        return problem
    section, why = _settings(data)
    if section is None:
        return warned(why, _target(data))
    if not section.get("enabled"):
        return warned(f"database backups are disabled: {SETTING} is false", _target(data))
    return passed(
        f"enabled: cron {section.get('cronExpression')!r}, "
        f"keep the last {section.get('keepLastAmount')}",
        _target(data),
    )


@check("IC-SV-422", probes=_PROBES)
def newest_backup_recent(facts: Facts) -> Verdict:
    """The newest backup is younger than about two periods of the configured schedule."""
    data = facts["immich.backups"]
    problem = _listing_unusable(data)
    if problem:
        return problem
    section, assumed = _settings(data)
    cron = str((section or {}).get("cronExpression") or DEFAULT_CRON)
    period = cron_period(cron)
    note = f" ({assumed})" if assumed else ""
    if period is None:
        period, note = timedelta(days=1), f" (cron {cron!r} not understood; daily assumed)"
    disabled = " and backups are disabled" if section and not section.get("enabled") else ""
    dumps = _routine(data)
    if not dumps:
        return failed(f"no database backup in {_target(data)}{disabled}{note}", _target(data))
    when, newest = dumps[0]
    age = datetime.now(UTC) - when
    limit = 2 * period
    described = (
        f"newest backup {newest['filename']} from {when:%Y-%m-%d %H:%M} UTC is "
        f"{_duration(age)} old; cron {cron!r} runs every {_duration(period)}"
    )
    evidence = {"newest": newest["filename"], "age_seconds": round(age.total_seconds())}
    if age > limit:
        message = f"{described} (limit {_duration(limit)}){disabled}{note}"
        return failed(message, _target(data), **evidence)
    return passed(f"{described}{note}", _target(data), **evidence)


@check("IC-SV-423", probes=_PROBES)
def newest_backup_size(facts: Facts) -> Verdict:
    """The newest backup is not empty nor sharply smaller than the one before it."""
    data = facts["immich.backups"]
    problem = _listing_unusable(data)
    if problem:
        return problem
    dumps = _routine(data)
    if not dumps:
        return skipped("skipped: no backup to measure", _target(data))
    newest = dumps[0][1]
    size = int(newest.get("filesize") or 0)
    name = newest["filename"]
    if size == 0:
        return failed(f"{name} is 0 bytes: the dump wrote nothing", _target(data), size=0)
    if len(dumps) > 1:
        previous = int(dumps[1][1].get("filesize") or 0)
        if previous and size < SHRINK_WARN * previous:
            return warned(
                f"{name} is {_size(size)}, under half the previous one's {_size(previous)} "
                f"({dumps[1][1]['filename']})",
                _target(data),
                size=size,
                previous=previous,
            )
        return passed(
            f"{name} is {_size(size)} (previous {_size(previous)})",
            _target(data),
            size=size,
            previous=previous,
        )
    return passed(f"{name} is {_size(size)}", _target(data), size=size)


@check("IC-SV-424", probes=_PROBES)
def backup_count(facts: Facts) -> Verdict:
    """No more backups are kept than keepLastAmount, and no dump was left unfinished."""
    data = facts["immich.backups"]
    problem = _listing_unusable(data)
    if problem:
        return problem
    section, assumed = _settings(data)
    keep = int((section or {}).get("keepLastAmount") or DEFAULT_KEEP)
    note = f" ({assumed})" if assumed else ""
    count = len(_routine(data))
    unfinished = list(data.get("unfinished") or [])
    message = f"{count} backup(s) kept, keepLastAmount {keep}{note}"
    if unfinished:
        return warned(
            f"{message}; {len(unfinished)} unfinished dump(s) left as .tmp (a backup that "
            f"failed): {', '.join(unfinished[:3])}",
            _target(data),
            count=count,
        )
    if count > keep:
        return warned(f"{message}: old backups are not being removed", _target(data), count=count)
    return passed(message, _target(data), count=count)


def _duration(value: timedelta) -> str:
    hours = value.total_seconds() / 3600
    if hours >= 24:
        return f"{hours / 24:.1f} days"
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{max(hours * 60, 0):.0f} min"


def _size(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.1f} {unit}"
    return f"{size} bytes"

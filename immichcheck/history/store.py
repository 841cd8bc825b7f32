"""Run history on disk: one JSON file per run, laid out by node and day, written atomically.

Layout: `<reports>/runs/<node>/<YYYY-MM-DD>/<run id>.<kind>.json`. A write goes to a temporary
file in the same folder, is fsynced, then renamed over the final name, under an exclusive
lock on `<reports>/.lock`, so two runs at once never leave a half-written or mixed file.

Loading is tolerant: a corrupt, foreign or unsupported file is named in a warning and skipped,
so one bad file never hides a year of history. Files written by an older schema are migrated
in memory (`MIGRATIONS`); files from a newer immichcheck are rejected with a clear message.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.records import SCHEMA_VERSION, RunRecord, utc_now

RUNS_FOLDER = "runs"
_SAFE_PART = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(part: str) -> str:
    """A path component that cannot escape the reports folder."""
    cleaned = _SAFE_PART.sub("_", part).strip("._")
    return cleaned or "unknown"


@contextlib.contextmanager
def reports_lock(reports_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the reports folder for the duration of the block."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    with open(reports_dir / ".lock", "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so readers see either the old file or the whole new one."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write `data` atomically (temp file, fsync, rename); `mode` sets the permissions first."""
    if path.exists() and not path.is_file():
        # /dev/null, /dev/stdout or a FIFO: renaming over it would replace the device node
        # with a regular file (for every process on the machine), so write through it.
        with open(path, "wb") as handle:
            handle.write(data)
        return
    for folder in (path.parent, *path.parent.parents):
        if folder.exists():
            if not folder.is_dir():
                # mkdir would say "File exists", which reads as if the target were the problem.
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None:
            os.fchmod(fd, mode)  # before any byte is written: a private file is never readable
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


def run_path(reports_dir: Path, record: RunRecord) -> Path:
    """Where a run is stored."""
    day = record.started_at.strftime("%Y-%m-%d")
    name = f"{_safe(record.run_id)}.{_safe(record.kind)}.json"
    return reports_dir / RUNS_FOLDER / _safe(record.node) / day / name


def save_run(record: RunRecord, reports_dir: str | os.PathLike[str]) -> Path:
    """Store one run record atomically and return its path."""
    folder = Path(reports_dir)
    path = run_path(folder, record)
    try:
        with reports_lock(folder):
            atomic_write_text(path, record.to_json() + "\n")
    except OSError as exc:
        raise ImmichcheckError(
            f"cannot save the run under {folder}: {exc.strerror or exc}"
        ) from exc
    return path


# Upgrades of a stored run's JSON: MIGRATIONS[n] turns schema n into schema n + 1. Schema 1 is
# the first released one, so nothing older exists yet; a file claiming an unknown older
# version is rejected rather than guessed at.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}

_REQUIRED_KEYS = ("run_id", "kind", "started_at", "finished_at", "node", "host")


class RunFileError(ValueError):
    """A stored file that is not a usable run record; the message says why in one line."""


def migrate_run_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """Bring a stored run's JSON to the current schema, or explain why it cannot be."""
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise RunFileError("no integer schema_version: not an immichcheck run record")
    if version > SCHEMA_VERSION:
        raise RunFileError(
            f"schema version {version} is newer than this immichcheck supports "
            f"({SCHEMA_VERSION}); upgrade immichcheck to read it"
        )
    upgraded = dict(data)
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise RunFileError(
                f"schema version {version} is too old to migrate "
                f"(supported: {min([*MIGRATIONS, SCHEMA_VERSION])}..{SCHEMA_VERSION})"
            )
        upgraded = step(upgraded)
        version += 1
        upgraded["schema_version"] = version
    return upgraded


def parse_run_file(text: str) -> RunRecord:
    """Parse one stored run, migrating older schemas; raises RunFileError with the reason."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise RunFileError(f"not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise RunFileError("not a JSON object: not an immichcheck run record")
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if "schema_version" not in data and missing:
        raise RunFileError("not an immichcheck run record (no schema_version, run_id, kind)")
    data = migrate_run_data(data)
    if missing:
        raise RunFileError(f"missing field(s): {', '.join(missing)}")
    try:
        return RunRecord.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RunFileError(f"malformed run record ({type(exc).__name__}: {exc})") from exc


@dataclass
class LoadedRuns:
    """Every readable run, oldest first, and one warning per file that was skipped."""

    runs: list[RunRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)  # run id -> file

    def by_id(self, run_id: str) -> RunRecord | None:
        """The run with this id, or None."""
        for run in self.runs:
            if run.run_id == run_id:
                return run
        return None


def run_files(reports_dir: str | os.PathLike[str]) -> list[Path]:
    """Every non-hidden file under `<reports>/runs`, sorted by path."""
    root = Path(reports_dir) / RUNS_FOLDER
    if not root.is_dir():
        return []
    # Hidden names are temporary files of a write in progress (atomic_write_text).
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.parts[-3:])
    )


def load_runs(
    reports_dir: str | os.PathLike[str],
    *,
    nodes: set[str] | frozenset[str] | None = None,
    kinds: set[str] | frozenset[str] | None = None,
) -> LoadedRuns:
    """Load the stored runs (optionally of some nodes/kinds); bad files become warnings."""
    folder = Path(reports_dir)
    loaded = LoadedRuns()
    for path in run_files(folder):
        shown = path.relative_to(folder)
        if path.suffix != ".json":
            loaded.warnings.append(f"{shown}: skipped foreign file (not a .json run record)")
            continue
        if nodes is not None and path.parent.parent.name not in {_safe(n) for n in nodes}:
            continue  # the layout puts the node in the path: skip without parsing
        try:
            run = parse_run_file(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            loaded.warnings.append(f"{shown}: unreadable ({exc})")
            continue
        except RunFileError as exc:
            loaded.warnings.append(f"{shown}: skipped: {exc}")
            continue
        if nodes is not None and run.node not in nodes:
            continue
        if kinds is not None and run.kind not in kinds:
            continue
        if run.run_id in loaded.paths:
            first = loaded.paths[run.run_id].relative_to(folder)
            loaded.warnings.append(f"{shown}: skipped duplicate of run {run.run_id} ({first})")
            continue
        loaded.runs.append(run)
        loaded.paths[run.run_id] = path
    loaded.runs.sort(key=lambda r: (r.started_at, r.run_id))
    return loaded


def tag_run(reports_dir: str | os.PathLike[str], run_id: str, tag: str) -> Path:
    """Add `tag` to a stored run (rewriting its file atomically); returns the file."""
    if not tag or tag != tag.strip() or "," in tag:
        raise ImmichcheckError(f"invalid tag {tag!r}: use a non-empty word without commas")
    folder = Path(reports_dir)
    with reports_lock(folder):
        loaded = load_runs(folder)
        path = loaded.paths.get(run_id)
        if path is None:
            raise ImmichcheckError(f"no stored run with id {run_id!r} under {folder}")
        # Edit the raw JSON so fields this version does not know survive the rewrite.
        data = json.loads(path.read_text(encoding="utf-8"))
        tags = list(data.get("tags", []))
        if tag not in tags:
            tags.append(tag)
        data["tags"] = tags
        atomic_write_text(path, json.dumps(data, indent=2) + "\n")
    return path


def prune(
    reports_dir: str | os.PathLike[str], keep_days: int, *, now: datetime | None = None
) -> list[Path]:
    """Delete runs that started more than `keep_days` days ago; returns the deleted files.

    Unreadable files are left alone (they are reported by `load_runs`), and folders emptied by
    the deletion are removed.
    """
    if keep_days < 1:
        raise ImmichcheckError("--keep-days must be at least 1")
    folder = Path(reports_dir)
    cutoff = (now or utc_now()) - timedelta(days=keep_days)
    deleted: list[Path] = []
    with reports_lock(folder):
        loaded = load_runs(folder)
        for run in loaded.runs:
            started = run.started_at
            if started.tzinfo is None:  # written without a zone: the records are UTC
                started = started.replace(tzinfo=UTC)
            if started < cutoff:
                path = loaded.paths[run.run_id]
                path.unlink()
                deleted.append(path)
        for parent in sorted({p.parent for p in deleted}, key=lambda p: len(p.parts), reverse=True):
            for candidate in (parent, parent.parent):
                with contextlib.suppress(OSError):
                    candidate.rmdir()  # only succeeds when empty
    return deleted

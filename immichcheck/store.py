"""Run history on disk: one JSON file per run, laid out by node and day, written atomically.

Layout: `<reports>/runs/<node>/<YYYY-MM-DD>/<run id>.<kind>.json`. A write goes to a temporary
file in the same folder, is fsynced, then renamed over the final name, under an exclusive
lock on `<reports>/.lock`, so two runs at once never leave a half-written or mixed file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from immichcheck.errors import ImmichcheckError
from immichcheck.records import RunRecord

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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
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

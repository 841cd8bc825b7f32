"""Storage probes: mount facts, free space, a write/read/delete round trip, `.immich` markers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from pathlib import Path
from typing import Any

from immichcheck.clients import ProbeError

# The folders Immich keeps under its media root; at boot it writes and reads `.immich` in each.
MEDIA_FOLDERS: tuple[str, ...] = (
    "library",
    "upload",
    "thumbs",
    "encoded-video",
    "profile",
    "backups",
)
MARKER = ".immich"
_PROBE_BYTES = 64 * 1024


def _round_trip(folder: Path) -> dict[str, Any]:
    """Write, fsync, read back and delete a small file; say which step failed."""
    payload = secrets.token_bytes(_PROBE_BYTES)
    path = folder / f".immichcheck-probe-{secrets.token_hex(4)}"
    started = time.perf_counter()
    step = "write"
    try:
        with open(path, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        step = "read"
        if path.read_bytes() != payload:
            return {"ok": False, "step": "read", "error": "read back different bytes"}
        step = "delete"
        path.unlink()
    except OSError as exc:
        if step != "write":
            # The failed step is already the finding; cleaning up is best effort.
            with contextlib.suppress(OSError):
                path.unlink()
        return {"ok": False, "step": step, "error": exc.strerror or str(exc)}
    return {"ok": True, "step": "", "error": "", "seconds": time.perf_counter() - started}


def _markers(root: Path) -> dict[str, dict[str, bool]]:
    result: dict[str, dict[str, bool]] = {}
    for name in MEDIA_FOLDERS:
        folder = root / name
        marker = folder / MARKER
        readable = False
        if marker.is_file():
            try:
                marker.read_bytes()
                readable = True
            except OSError:
                readable = False
        result[name] = {
            "folder": folder.is_dir(),
            "marker": marker.is_file(),
            "readable": readable,
        }
    return result


def _collect(path: str, role: str) -> dict[str, Any]:
    from immichcheck.common.host_facts import filesystem_facts

    root = Path(path)
    if not root.is_dir():
        raise ProbeError(f"{path} is not a reachable folder")
    fs = filesystem_facts(root)
    facts: dict[str, Any] = {
        "path": str(root),
        "role": role,
        "fstype": fs.fstype,
        "mountpoint": fs.mountpoint,
        "device": fs.device,
        "total_bytes": fs.total_bytes,
        "free_bytes": fs.free_bytes,
        "round_trip": _round_trip(root),
    }
    if role == "media":
        facts["markers"] = _markers(root)
    return facts


async def storage_facts(path: str, role: str, timeout: float) -> dict[str, Any]:
    """Facts about one storage path; `role` is "media" (NFS) or "data" (NVMe)."""
    try:
        # A hung NFS mount blocks the calling thread, so the I/O runs in a worker thread and
        # the run gives up on it after the timeout instead of hanging with it.
        return await asyncio.wait_for(asyncio.to_thread(_collect, path, role), timeout)
    except TimeoutError as exc:
        raise ProbeError(f"{path} did not answer within {timeout:g} s (hung mount?)") from exc
    except OSError as exc:
        raise ProbeError(f"{path}: {exc.strerror or exc}") from exc

"""Stack folders left behind by a process that died (SIGKILL leaves no other chance): found
by their owner file, their servers stopped, the folders removed."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from pathlib import Path

STACK_PREFIX = "immichcheck-local-"
OWNER_FILE = "owner.pid"


def _server_pids(stack_dir: Path) -> list[int]:
    """PIDs of servers a stack folder's pid files name (postmaster.pid, redis.pid)."""
    pids = []
    for pid_file in (stack_dir / "postgres" / "postmaster.pid", stack_dir / "redis" / "redis.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            pids.append(int(pid_file.read_text().splitlines()[0].strip()))
    return pids


def sweep_stale_stacks(parent: Path) -> list[Path]:
    """Stop the servers and remove stack folders left in `parent` by a process that died.

    Only folders named `immichcheck-local-*` that hold our owner file are touched, and only
    when the owning process is gone.
    """
    import psutil

    removed = []
    with contextlib.suppress(OSError):
        for folder in parent.glob(STACK_PREFIX + "*"):
            owner_file = folder / OWNER_FILE
            try:
                owner = int(owner_file.read_text().strip())
            except (OSError, ValueError):
                continue
            if psutil.pid_exists(owner):
                continue
            for pid in _server_pids(folder):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed

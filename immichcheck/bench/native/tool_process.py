"""Finding a native benchmark tool and running it to completion under a timeout."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from immichcheck.common.errors import ImmichcheckError

NATIVE_TIMEOUT_MARGIN = 60.0


def tool_path(name: str) -> str | None:
    """The program on PATH (pgbench is also looked for beside the PostgreSQL server)."""
    found = shutil.which(name)
    if found or name != "pgbench":
        return found
    from immichcheck.bench.local_servers.binaries import find_postgres
    from immichcheck.bench.local_servers.errors import LocalStackError

    try:
        candidate = find_postgres().tool("pgbench")
    except LocalStackError:
        return None
    return str(candidate) if candidate.is_file() else None


async def run_tool(argv: Sequence[str], env: Mapping[str, str], cwd: str, timeout: float) -> str:
    """Run a native tool to the end; its stdout, or a one-line error with its last words."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,  # Ctrl-C is ours to handle: we kill it below
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        detail = (stderr or stdout).decode("utf-8", "replace").strip().splitlines()
        raise ImmichcheckError(f"{Path(argv[0]).name} failed: {' | '.join(detail[-2:])}")
    return stdout.decode("utf-8", "replace")

"""Facts about the machine a run executes on, read with psutil and /proc."""

from __future__ import annotations

import os
import platform
import socket
from collections.abc import Iterable
from pathlib import Path

import psutil

from immichcheck.common.records import FilesystemFacts, HostFacts


def _cpu_model() -> str:
    """The CPU model name; /proc/cpuinfo on Linux (x86 'model name', Arm 'Model')."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or platform.machine()
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def filesystem_facts(path: str | os.PathLike[str]) -> FilesystemFacts:
    """Device, filesystem type and mount options of the mount holding `path`."""
    resolved = Path(path).resolve()
    probe = resolved
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    best = None
    for partition in psutil.disk_partitions(all=True):
        mount = Path(partition.mountpoint)
        if (probe == mount or mount in probe.parents) and (
            best is None or len(partition.mountpoint) > len(best.mountpoint)
        ):
            best = partition
    usage = psutil.disk_usage(str(probe))
    return FilesystemFacts(
        path=str(resolved),
        mountpoint=best.mountpoint if best else "/",
        device=best.device if best else "",
        fstype=best.fstype if best else "",
        options=best.opts if best else "",
        total_bytes=int(usage.total),
        free_bytes=int(usage.free),
    )


def host_facts(measured_paths: Iterable[str | os.PathLike[str]] = ()) -> HostFacts:
    """Facts about this host, plus the filesystem of every path that was measured."""
    uname = platform.uname()
    return HostFacts(
        hostname=socket.gethostname(),
        cpu_model=_cpu_model(),
        cpu_count=psutil.cpu_count(logical=True) or 1,
        memory_bytes=int(psutil.virtual_memory().total),
        kernel=uname.release,
        platform=f"{uname.system} {uname.machine}",
        python=platform.python_version(),
        filesystems=tuple(filesystem_facts(p) for p in measured_paths),
    )

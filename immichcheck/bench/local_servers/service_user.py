"""Who the throwaway servers run as (PostgreSQL refuses root) and whether that user can use
the data folder; running a program as that user."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from immichcheck.bench.local_servers.errors import LocalStackError


@dataclass(frozen=True)
class ServiceUser:
    """Who the servers run as: ourselves, or an unprivileged user when we are root."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @property
    def is_self(self) -> bool:
        """True when no privilege change is needed."""
        return self.uid == os.geteuid()


def service_user() -> ServiceUser:
    """The unprivileged `postgres` (else `nobody`) user when root; the current user otherwise."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid, tuple(os.getgroups()))
    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        groups = tuple(os.getgrouplist(name, entry.pw_gid))
        return ServiceUser(name, entry.pw_uid, entry.pw_gid, groups)
    raise LocalStackError(
        "running as root but neither a 'postgres' nor a 'nobody' user exists to run "
        "PostgreSQL as (PostgreSQL refuses to run as root); create one with: "
        "useradd --system postgres"
    )


def _traversable_by(path: Path, user: ServiceUser) -> bool:
    info = path.stat()
    if user.uid == 0:
        return True
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid in user.groups:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def check_data_dir(data_dir: Path, user: ServiceUser) -> None:
    """Fail with one line when the servers could not create and use files under `data_dir`."""
    if not data_dir.exists():
        raise LocalStackError(f"--data-dir {data_dir} does not exist")
    if not data_dir.is_dir():
        raise LocalStackError(f"--data-dir {data_dir} is not a directory")
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise LocalStackError(f"--data-dir {data_dir} is not writable by this user")
    resolved = data_dir.resolve()
    for folder in [resolved, *resolved.parents]:
        if not _traversable_by(folder, user):
            raise LocalStackError(
                f"--data-dir {data_dir}: the server user '{user.name}' cannot enter {folder} "
                f"(allow it with: chmod o+x {folder}, or choose another folder)"
            )
    probe = resolved / f".immichcheck-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as exc:
        raise LocalStackError(
            f"--data-dir {data_dir} is not writable: {exc.strerror or exc}"
        ) from exc


def give_to(path: Path, user: ServiceUser, mode: int) -> None:
    """Make `path` the server user's with `mode` (one clear line when the filesystem refuses)."""
    try:
        if not user.is_self:
            os.chown(path, user.uid, user.gid)
        path.chmod(mode)
    except OSError as exc:
        raise LocalStackError(
            f"cannot hand {path} to the server user '{user.name}': {exc.strerror or exc} "
            "(an NFS export with root_squash does this; choose another --data-dir)"
        ) from exc


def privilege_args(user: ServiceUser) -> dict[str, Any]:
    """subprocess keyword arguments that start a program as `user` (none when it is us)."""
    if user.is_self:
        return {}
    return {"user": user.uid, "group": user.gid, "extra_groups": list(user.groups)}


def run_as(argv: list[str], user: ServiceUser, what: str, timeout: float = 120.0) -> str:
    """Run a setup program (initdb, psql) as `user` to the end; its stdout, or a one-line error."""
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            start_new_session=True,
            **privilege_args(user),
        )
    except subprocess.TimeoutExpired as exc:
        raise LocalStackError(f"{what} did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise LocalStackError(f"{what} failed: {' | '.join(detail[-3:]) or done.returncode}")
    return done.stdout

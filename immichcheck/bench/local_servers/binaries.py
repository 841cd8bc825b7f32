"""Finding the PostgreSQL and Redis server programs installed on this machine."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from immichcheck.bench.local_servers.errors import LocalStackError

# Debian/Ubuntu keep the server programs here, off PATH, one folder per major version.
POSTGRES_SEARCH_ROOT = Path("/usr/lib/postgresql")


@dataclass(frozen=True)
class PostgresBinaries:
    """One PostgreSQL installation: its bin folder, major version and library folder."""

    bin_dir: Path
    version: str  # full version, e.g. "15.14"
    lib_dir: Path
    has_vector: bool

    def tool(self, name: str) -> Path:
        """Path of one program of this installation."""
        return self.bin_dir / name


def program_version(program: Path) -> str:
    """The version a server program prints with --version ("unknown" when it prints none)."""
    output = subprocess.run(
        [str(program), "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    match = re.search(r"(\d+(?:\.\d+)+|\d+)", output)
    return match.group(1) if match else "unknown"


def _postgres_installation(bin_dir: Path) -> PostgresBinaries | None:
    if not (bin_dir / "postgres").is_file() or not (bin_dir / "initdb").is_file():
        return None
    version = program_version(bin_dir / "postgres")
    lib_dir = bin_dir.parent / "lib"
    if (lib_dir / "postgresql").is_dir():
        lib_dir = lib_dir / "postgresql"  # pgserver's layout: pginstall/lib/postgresql
    share_candidates = [
        bin_dir.parent / "share" / "postgresql" / "extension",
        Path("/usr/share/postgresql") / version.split(".")[0] / "extension",
    ]
    has_vector = any((folder / "vector.control").is_file() for folder in share_candidates) and (
        (lib_dir / "vector.so").is_file()
    )
    return PostgresBinaries(bin_dir, version, lib_dir, has_vector)


def _major(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:2]) or (0,)


def pgserver_bin_dir() -> Path | None:
    """The bin folder of the PyPI package pgserver (PostgreSQL 16 with pgvector), if installed."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "pginstall" / "bin"
    return folder if folder.is_dir() else None


def find_postgres(*, vector: bool = False) -> PostgresBinaries:
    """The PostgreSQL to run: with `vector`, one that has pgvector; else the newest system one.

    System installations are searched on PATH and in /usr/lib/postgresql/*/bin (Debian keeps
    the server programs off PATH), highest version first.
    """
    candidates: list[Path] = []
    if vector:
        bundled = pgserver_bin_dir()
        if bundled:
            candidates.append(bundled)
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    debian = sorted(
        POSTGRES_SEARCH_ROOT.glob("*/bin"),
        key=lambda p: _major(p.parent.name),
        reverse=True,
    )
    candidates.extend(debian)
    found = [inst for inst in map(_postgres_installation, dict.fromkeys(candidates)) if inst]
    if vector:
        found = [inst for inst in found if inst.has_vector]
        if not found:
            raise LocalStackError(
                "no PostgreSQL with the pgvector extension found "
                "(install the Python package 'pgserver' or the apt package postgresql-15-pgvector)"
            )
        return found[0]
    if not found:
        raise LocalStackError(
            "PostgreSQL server programs (postgres, initdb) not found on PATH or in "
            "/usr/lib/postgresql/*/bin; install them with: apt-get install postgresql"
        )
    return max(found, key=lambda inst: _major(inst.version))


def find_redis_server() -> Path:
    """The redis-server program on PATH."""
    found = shutil.which("redis-server")
    if not found:
        raise LocalStackError(
            "redis-server not found on PATH; install it with: apt-get install redis-server"
        )
    return Path(found)

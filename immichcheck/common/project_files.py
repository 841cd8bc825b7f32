"""Finding the project folders that ship beside the package: manifests/ and benchmarks/.

In a checkout (the Quickstart installs the package editable) they sit next to `immichcheck/`;
in the container image they are copied to /opt/immichcheck; `IMMICHCHECK_HOME` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from immichcheck.common.errors import ImmichcheckError

_PACKAGE_PARENT = Path(__file__).resolve().parents[2]  # immichcheck/common/ -> the checkout
_IMAGE_HOME = Path("/opt/immichcheck")


def project_home() -> Path:
    """The folder holding manifests/ and benchmarks/."""
    explicit = os.environ.get("IMMICHCHECK_HOME")
    if explicit:
        return Path(explicit)
    for candidate in (_PACKAGE_PARENT, _IMAGE_HOME):
        if (candidate / "manifests").is_dir() or (candidate / "benchmarks").is_dir():
            return candidate
    return _PACKAGE_PARENT


def project_folder(name: str, explicit: str | os.PathLike[str] | None = None) -> Path:
    """`manifests` or `benchmarks`, or an explicit override; fails clearly when absent."""
    folder = Path(explicit) if explicit else project_home() / name
    if not folder.is_dir():
        hint = " (set IMMICHCHECK_HOME or pass the folder explicitly)" if not explicit else ""
        raise ImmichcheckError(f"the {name} folder was not found at {folder}{hint}")
    return folder


def load_yaml_file(path: Path, what: str = "") -> Any:
    """The parsed YAML in `path`; one line naming `what` (e.g. "rules file") when it cannot be."""
    import yaml

    from immichcheck.common import yaml_text

    name = f"{what} {path}" if what else str(path)
    try:
        return yaml_text.load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ImmichcheckError(f"cannot read {name}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ImmichcheckError(f"{name} is not valid YAML: {exc}") from exc

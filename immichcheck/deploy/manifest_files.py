"""Reading manifests/: the folder, its files in apply order and their YAML documents."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from immichcheck.common import yaml_text
from immichcheck.common.errors import ExitCode, ImmichcheckError
from immichcheck.common.project_files import project_folder

_SKIPPED_FILES = {"kustomization.yaml", "kustomization.yml"}


class ManifestsError(ImmichcheckError):
    """The manifests folder is missing or holds something that cannot be read."""

    def __init__(self, message: str) -> None:
        super().__init__(message, ExitCode.UNKNOWN)


@dataclass(frozen=True)
class ManifestDocument:
    """One YAML document of one manifest file."""

    file: Path
    index: int  # position of the document in its file, from 0
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        """The object's kind, '' when absent."""
        return str(self.body.get("kind") or "")

    @property
    def name(self) -> str:
        """metadata.name, '' when absent."""
        metadata = self.body.get("metadata") or {}
        return str(metadata.get("name") or "") if isinstance(metadata, dict) else ""

    @property
    def label(self) -> str:
        """`Kind/name`, how problems and listings name an object."""
        return f"{self.kind or '?'}/{self.name or '?'}"


def manifest_files(directory: Path) -> list[Path]:
    """The manifest files of a folder in apply order (file name order), without kustomization."""
    files = [
        path
        for path in directory.iterdir()
        if path.suffix in (".yaml", ".yml") and path.name not in _SKIPPED_FILES and path.is_file()
    ]
    return sorted(files, key=lambda path: path.name)


def parse_manifest_file(path: Path) -> list[ManifestDocument]:
    """Every non-empty YAML document of one file; ManifestsError names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestsError(f"{path.name}: cannot read: {exc}") from None
    documents: list[ManifestDocument] = []
    try:
        for index, body in enumerate(yaml_text.load_all(text)):
            if body is None:
                continue
            if not isinstance(body, dict):
                raise ManifestsError(
                    f"{path.name}: document {index + 1} is a {type(body).__name__}, "
                    "not a Kubernetes object"
                )
            documents.append(ManifestDocument(file=path, index=index, body=body))
    except yaml.YAMLError as exc:
        raise ManifestsError(f"{path.name}: bad YAML: {yaml_error_text(exc)}") from None
    return documents


def yaml_error_text(exc: yaml.YAMLError) -> str:
    """One line from a PyYAML error: the problem and where it is."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def resolve_directory(directory: str | os.PathLike[str] | None = None) -> Path:
    """The manifests folder: an explicit one, or the shipped manifests/."""
    try:
        return project_folder("manifests", directory).resolve()
    except ImmichcheckError as exc:
        raise ManifestsError(exc.message) from None


def load_manifest_documents(
    directory: str | os.PathLike[str] | None = None,
) -> list[ManifestDocument]:
    """Every YAML document in manifests/*.yaml (kustomization.yaml excluded), in apply order."""
    folder = resolve_directory(directory)
    files = manifest_files(folder)
    if not files:
        raise ManifestsError(f"no manifest files (*.yaml) in {folder}")
    documents: list[ManifestDocument] = []
    for path in files:
        documents.extend(parse_manifest_file(path))
    return documents

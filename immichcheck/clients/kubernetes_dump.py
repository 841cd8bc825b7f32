"""`verify --from-dump`: a Snapshot from `kubectl get ... -o json` output or a support bundle.

The README gives the commands for a complete dump (`dump_commands`): the namespace, every
kind verify lists, and the two manual secrets by name, appended into one file. kubectl
writes a List per command, so the file is a stream of JSON documents. A kind with no object
in the dump is recorded as absent with what to add: kubectl cannot tell "not asked for"
from "none exist", and a check that reads an absent kind is SKIP naming it, never FAIL
(a dump without Endpoints once reported every Service as having none).

`support-bundle` writes `cluster/dump.json` in the same form (`dump_document`), with the
secrets' keys but masked values; `--from-dump` reads that file or the bundle archive itself.
"""

from __future__ import annotations

import copy
import json
import tarfile
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any

from immichcheck.clients.kubernetes import (
    CLUSTER_LISTED_KINDS,
    LISTED_KINDS,
    SECRET_VALUES,
    Snapshot,
)
from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.redaction import MASK

BUNDLE_DUMP = "cluster/dump.json"
# Events expire after an hour: a healthy namespace often has none, so their absence says
# nothing about the dump and no check is skipped for it.
_OPTIONAL_KINDS = frozenset({"Event"})
# Kinds the cluster makes from others the manifests declare.
_DERIVED_FROM = {"Pod": ("Deployment", "StatefulSet"), "Endpoints": ("Service",)}
_SERVER_NOISE = ("managedFields",)
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def dump_commands(namespace: str, secret_names: Sequence[str]) -> list[str]:
    """The kubectl commands whose appended output is a complete dump for verify."""
    kinds = ",".join(plural for _version, plural in LISTED_KINDS.values())
    commands = [
        f"kubectl get namespace {namespace} -o json",
        f"kubectl get {kinds} -n {namespace} -o json",
    ]
    if secret_names:
        commands.append(f"kubectl get secret {' '.join(secret_names)} -n {namespace} -o json")
    # Nodes are cluster-scoped: a command of their own, without -n.
    cluster_kinds = ",".join(plural for _version, plural in CLUSTER_LISTED_KINDS.values())
    commands.append(f"kubectl get {cluster_kinds} -o json")
    return commands


def _documents(text: str, source: str) -> list[Any]:
    """Every JSON document in `text` (one, or several appended as `>>` writes them)."""
    decoder = json.JSONDecoder()
    documents: list[Any] = []
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return documents
        try:
            document, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise ImmichcheckError(
                f"dump {source} is not JSON (line {exc.lineno}): use `kubectl get ... -o json`"
            ) from exc
        documents.append(document)


def _read_dump_text(file: Path) -> tuple[str, str]:
    """The dump's text and how to name it: the file, or cluster/dump.json in a bundle."""
    try:
        if tarfile.is_tarfile(file):
            return _bundle_dump(file), f"{file} ({BUNDLE_DUMP})"
        return file.read_text(encoding="utf-8"), str(file)
    except OSError as exc:
        raise ImmichcheckError(f"cannot read dump {file}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ImmichcheckError(f"dump {file} is not text: use `kubectl get ... -o json`") from exc


def _bundle_dump(file: Path) -> str:
    """cluster/dump.json from a support bundle archive."""
    try:
        with tarfile.open(file) as archive:
            for member in archive.getmembers():
                if member.isfile() and member.name.endswith("/" + BUNDLE_DUMP):
                    extracted = archive.extractfile(member)
                    if extracted is not None:
                        return extracted.read().decode("utf-8")
    except (tarfile.TarError, EOFError) as exc:
        raise ImmichcheckError(f"cannot read archive {file}: {exc}") from exc
    raise ImmichcheckError(
        f"archive {file} holds no {BUNDLE_DUMP}: it is not a support bundle, or one whose "
        "run could not read the cluster"
    )


def snapshot_from_dump(
    path: str | Path,
    namespace: str,
    secret_names: Sequence[str] = (),
    declared_kinds: Collection[str] | None = None,
) -> Snapshot:
    """A snapshot from a dump file or a support bundle; kinds it lacks are noted as absent.

    `declared_kinds` are the kinds the manifests declare: a kind none of them produces (no
    StatefulSet in a deployment of Deployments) is empty in a complete dump too, so only
    those are taken as left out when the dump holds none. None: every empty kind is.
    """
    file = Path(path)
    text, source = _read_dump_text(file)
    items = [item for document in _documents(text, source) for item in _flatten(document)]
    if not items:
        raise ImmichcheckError(f"dump {source} holds no Kubernetes objects")
    snapshot = Snapshot(namespace=namespace, source=f"dump {source}")
    for kind in (*LISTED_KINDS, *CLUSTER_LISTED_KINDS, "Secret"):
        snapshot.objects[kind] = []
    namespaces_seen = False
    for index, item in enumerate(items, 1):
        kind = str(item.get("kind", ""))
        metadata = item.get("metadata") or {}
        if not isinstance(metadata, dict):
            # kubectl never writes this: a hand-edited or damaged file, named before it runs.
            raise ImmichcheckError(
                f"dump {source}: object {index} ({kind or 'no kind'}) has metadata that is "
                "not a mapping"
            )
        if kind == "Namespace":
            namespaces_seen = True
            if metadata.get("name") == namespace:
                snapshot.namespace_found = True
            continue
        if metadata.get("namespace") not in (None, namespace):
            continue
        snapshot.objects.setdefault(kind, []).append(item)
    if namespaces_seen and snapshot.namespace_found is None:
        snapshot.namespace_found = False
    snapshot.absent = _absent_kinds(snapshot.objects, namespace, secret_names, declared_kinds)
    return snapshot


def _absent_kinds(
    objects: dict[str, list[dict[str, Any]]],
    namespace: str,
    secret_names: Sequence[str],
    declared_kinds: Collection[str] | None,
) -> dict[str, str]:
    """Kind -> what to add to the dump, for every kind verify reads that it lacks."""
    absent: dict[str, str] = {}
    for kind, (_version, plural) in LISTED_KINDS.items():
        if kind in _OPTIONAL_KINDS or objects.get(kind):
            continue
        sources = (kind, *_DERIVED_FROM.get(kind, ()))
        if declared_kinds is None or any(source in declared_kinds for source in sources):
            absent[kind] = f"not in the dump: add `{plural}` to the kubectl command"
    for kind, (_version, plural) in CLUSTER_LISTED_KINDS.items():
        if not objects.get(kind):
            absent[kind] = f"not in the dump: add `kubectl get {plural} -o json` to the dump"
    secrets = objects.get("Secret") or []
    if not secrets:
        names = " ".join(secret_names) or "<names>"
        absent["Secret"] = (
            f"not in the dump: add the secrets (`kubectl get secret {names} -n {namespace} "
            "-o json`)"
        )
    elif all(_masked(secret) for secret in secrets):
        absent[SECRET_VALUES] = (
            "the dump holds the secrets' keys but not their values (a support bundle masks "
            "them): run verify against the cluster to judge the values"
        )
    return absent


def _masked(secret: dict[str, Any]) -> bool:
    values = [*(secret.get("data") or {}).values(), *(secret.get("stringData") or {}).values()]
    return bool(values) and all(value == MASK for value in values)


def _flatten(data: Any) -> list[dict[str, Any]]:
    if isinstance(data, dict) and "items" in data:
        # A List whose items are not a list is a damaged file, not one object of kind List.
        items = data["items"]
        return [i for item in items for i in _flatten(item)] if isinstance(items, list) else []
    if isinstance(data, dict) and data.get("kind"):
        return [data]
    if isinstance(data, list):
        return [i for item in data for i in _flatten(item)]
    return []


def dump_document(snapshot: Snapshot) -> dict[str, Any]:
    """The snapshot as one kubectl-style List, secret values masked (for the support bundle)."""
    items: list[dict[str, Any]] = []
    if snapshot.namespace_found:
        items.append(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": snapshot.namespace}}
        )
    for kind, (version, _plural) in (*LISTED_KINDS.items(), *CLUSTER_LISTED_KINDS.items()):
        items.extend(_listed(snapshot.objects.get(kind) or [], kind, version))
    for secret in snapshot.objects.get("Secret") or []:
        metadata = secret.get("metadata") or {}
        masked: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                key: metadata[key]
                for key in ("name", "namespace", "labels", "creationTimestamp")
                if key in metadata
            },
            "type": secret.get("type", "Opaque"),
            # The keys say what exists (IC-CL-002); the values never leave the cluster.
            "data": {key: MASK for key in (secret.get("data") or {})},
        }
        if secret.get("stringData"):
            masked["stringData"] = {key: MASK for key in secret["stringData"]}
        items.append(masked)
    return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": items}


def _listed(objects: Iterable[dict[str, Any]], kind: str, version: str) -> list[dict[str, Any]]:
    """Objects as `kubectl get -o json` prints them, without the server's field bookkeeping."""
    result = []
    for obj in objects:
        item = copy.deepcopy(obj)
        item.setdefault("apiVersion", version)
        item["kind"] = kind
        metadata = item.get("metadata") or {}
        for key in _SERVER_NOISE:
            metadata.pop(key, None)
        (metadata.get("annotations") or {}).pop(_LAST_APPLIED, None)
        result.append(item)
    return result

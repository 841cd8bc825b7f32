"""`immichcheck support-bundle`: one archive to attach to a question, with no secret in it.

It reads the cluster once (verify's snapshot, with verify's client), runs verify on that
snapshot, reads the Immich pods' logs and the nodes, and packs everything as text into
`immichcheck-bundle-<timestamp>.tar.gz`. Every member passes through one `Redactor` that
knows the values of the Secrets read (the two manual ones; the username stays readable),
the literal secret-named env values and URL passwords of the pod specs, the API key and the
passwords of --pg-dsn and --redis-url, and masks secret-shaped text (DSN passwords, bearer
tokens, JWTs) on top.
Structured members are scrubbed field by field before they are serialised, so YAML and JSON
stay valid.
"""

from __future__ import annotations

import asyncio
import difflib
import io
import json
import os
import tarfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.redaction import MASK, Redactor, secret_env_values
from immichcheck.history.store import atomic_write_bytes

LOG_COMPONENTS = ("server", "ml", "postgres", "redis")
# Kinds verify's snapshot reads and manifests/ declares: their live objects are diffed.
COMPARED_KINDS = (
    "Deployment",
    "StatefulSet",
    "Service",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Ingress",
)
# Fields the API server adds to every object: noise in a bundle and in a diff.
_SERVER_METADATA = ("managedFields", "resourceVersion", "uid", "generation", "selfLink")
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Maps whose extra live keys are drift worth seeing (the rest of a live object carries the
# API server's defaults, which only the keys set in manifests/ are compared against).
_SHOWN_WHOLE = ("labels", "annotations", "data", "env", "args", "command")


@dataclass(frozen=True)
class BundleSettings:
    """What to collect: log lines per container, how far back, per-call timeout, run store."""

    tail: int | None = 1000
    since_seconds: int | None = None
    timeout: float = 5.0
    reports_dir: str = "reports"
    inference: bool = True


@dataclass(frozen=True)
class Member:
    """One file in the archive."""

    name: str
    data: bytes
    description: str


@dataclass
class BundleResult:
    """The archive written, what is in it, and what could not be collected (and why)."""

    path: Path
    members: list[Member]
    missing: dict[str, str] = field(default_factory=dict)


# Scrubbing ----------------------------------------------------------------------------------


def clean_object(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A live object without server bookkeeping; a Secret keeps only its keys' sizes."""
    result = json.loads(json.dumps(obj))  # a deep copy that is plain JSON
    metadata = result.get("metadata") or {}
    for key in _SERVER_METADATA:
        metadata.pop(key, None)
    annotations = metadata.get("annotations") or {}
    # kubectl apply keeps a full copy of the object here, Secret data included.
    annotations.pop(_LAST_APPLIED, None)
    if not annotations:
        metadata.pop("annotations", None)
    if result.get("kind") == "Secret":
        for section in ("data", "stringData"):
            if isinstance(result.get(section), dict):
                result[section] = {
                    key: f"{MASK} ({len(str(value))} characters)"
                    for key, value in result[section].items()
                }
    return result


def _yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100)


class _Collector:
    """Members in the order they are added, each scrubbed on the way in."""

    def __init__(self, redactor: Redactor, root: str) -> None:
        self.redactor = redactor
        self.root = root
        self.members: list[Member] = []
        self.missing: dict[str, str] = {}

    def text(self, name: str, text: str, description: str) -> None:
        """Free text (logs, tables): known values and secret-shaped text masked."""
        self._add(name, self.redactor.text(text), description)

    def structured(self, name: str, data: Any, description: str, fmt: str = "yaml") -> None:
        """YAML or JSON: every string scrubbed first, then known values in the whole text."""
        scrubbed = self.redactor.data(data)
        rendered = _yaml(scrubbed) if fmt == "yaml" else json.dumps(scrubbed, indent=2) + "\n"
        self._add(name, self.redactor.values(rendered), description)

    def _add(self, name: str, text: str, description: str) -> None:
        if not text.strip():
            self.missing[name] = "nothing to write (empty)"
            return
        self.members.append(Member(f"{self.root}/{name}", text.encode("utf-8"), description))


# Cluster text -------------------------------------------------------------------------------


def _age(timestamp: str | None, now: datetime) -> str:
    if not timestamp:
        return "?"
    try:
        seconds = (now - datetime.fromisoformat(timestamp.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(max(seconds, 0))}s"


def pods_table(pods: Sequence[Mapping[str, Any]], now: datetime) -> str:
    """`kubectl get pods -o wide`-like text."""
    rows = [("NAME", "READY", "STATUS", "RESTARTS", "AGE", "NODE", "IMAGES")]
    for pod in pods:
        metadata, status = pod.get("metadata") or {}, pod.get("status") or {}
        containers = status.get("containerStatuses") or []
        ready = sum(1 for c in containers if c.get("ready"))
        waiting = [
            (c.get("state") or {}).get("waiting", {}).get("reason")
            for c in containers
            if (c.get("state") or {}).get("waiting")
        ]
        phase = waiting[0] if waiting else str(status.get("phase", "?"))
        restarts = sum(int(c.get("restartCount") or 0) for c in containers)
        images = ",".join(
            c.get("image", "") for c in (pod.get("spec") or {}).get("containers") or []
        )
        rows.append(
            (
                str(metadata.get("name", "")),
                f"{ready}/{len((pod.get('spec') or {}).get('containers') or [])}",
                phase,
                str(restarts),
                _age(metadata.get("creationTimestamp"), now),
                str((pod.get("spec") or {}).get("nodeName", "")),
                images,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
        + "  "
        + row[-1]
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def events_text(events: Sequence[Mapping[str, Any]]) -> str:
    """Events oldest first: time, type, reason, object, message (xN)."""

    def when(event: Mapping[str, Any]) -> str:
        return str(
            event.get("lastTimestamp")
            or event.get("eventTime")
            or (event.get("metadata") or {}).get("creationTimestamp")
            or ""
        )

    lines = []
    for event in sorted(events, key=when):
        involved = event.get("involvedObject") or {}
        count = event.get("count") or 1
        lines.append(
            f"{when(event)}  {event.get('type', '')}  {event.get('reason', '')}  "
            f"{involved.get('kind', '')}/{involved.get('name', '')}: "
            f"{' '.join(str(event.get('message', '')).split())}"
            + (f" (x{count})" if int(count) > 1 else "")
        )
    return "\n".join(lines) + "\n" if lines else ""


def project(live: Any, manifest: Any, key: str = "") -> Any:
    """The part of a live object that manifests/ sets, so API-server defaults are not drift.

    Maps keep the manifest's keys (plus every live key under labels, annotations, data and
    env-like lists, where additions are drift); lists of named items are matched by name.
    """
    if isinstance(manifest, Mapping) and isinstance(live, Mapping):
        keys = list(manifest) + (
            [k for k in live if k not in manifest] if key in _SHOWN_WHOLE else []
        )
        return {k: project(live[k], manifest.get(k), k) for k in keys if k in live}
    if isinstance(manifest, list) and isinstance(live, list):
        named = all(isinstance(i, Mapping) and "name" in i for i in manifest + live)
        if named:
            by_name = {i["name"]: i for i in manifest}
            return [project(item, by_name.get(item["name"], item), key) for item in live]
        return [
            project(item, manifest[index] if index < len(manifest) else item, key)
            for index, item in enumerate(live)
        ]
    return live


def drift_diff(
    documents: Sequence[Any], snapshot: Any, namespace: str, redactor: Redactor
) -> tuple[str, list[str]]:
    """A unified diff of every comparable manifest object against its live object."""
    chunks: list[str] = []
    not_compared: list[str] = []
    for document in documents:
        body = document.body
        kind, name = str(body.get("kind", "")), str((body.get("metadata") or {}).get("name", ""))
        label = f"{kind}/{name}"
        if kind not in COMPARED_KINDS:
            not_compared.append(label)
            continue
        namespace_of = (body.get("metadata") or {}).get("namespace", namespace)
        if namespace_of != namespace:
            not_compared.append(f"{label} (namespace {namespace_of})")
            continue
        live = snapshot.get(kind, name)
        if live is not None and "apiVersion" not in live:
            live = {"apiVersion": body.get("apiVersion"), **live}  # list items omit it
        expected = clean_object(body)
        shown = project(clean_object(live), expected) if live is not None else {}
        before = _yaml(redactor.data(expected)).splitlines(keepends=True)
        after = (_yaml(redactor.data(shown)) if live is not None else "").splitlines(keepends=True)
        where = f"manifests/{Path(document.file).name}"
        diff = list(
            difflib.unified_diff(
                before,
                after,
                fromfile=f"{where} ({label})",
                tofile=f"live {label}" + ("" if live is not None else " (absent)"),
            )
        )
        if diff:
            chunks.append("".join(diff))
    header = (
        "# Live objects against manifests/ (only the fields manifests/ sets are compared, plus\n"
        "# every label, annotation, ConfigMap key and env entry; '-' manifest, '+' live).\n"
    )
    body_text = "\n".join(chunks) if chunks else "# no differences\n"
    if not_compared:
        body_text += (
            "\n# not compared (not read by the snapshot): " + ", ".join(not_compared) + "\n"
        )
    return header + body_text, not_compared


def _url_password(url: str | None) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password if url else None
    except ValueError:
        return None


# Collecting ---------------------------------------------------------------------------------


async def _collect(
    options: Any, expected: Any, settings: BundleSettings, root: str, now: datetime
) -> _Collector:
    from immichcheck import __version__
    from immichcheck.clients import kubernetes as kube
    from immichcheck.clients import kubernetes_logs as kube_logs
    from immichcheck.common.host_facts import host_facts
    from immichcheck.deploy.expected_state import load_manifest_documents
    from immichcheck.verify.checks import load_catalogue, select_codes
    from immichcheck.verify.endpoints import NOT_SECRET_KEYS, resolve_kube_access
    from immichcheck.verify.engine import RunSettings, VerifyRequest, run_verify
    from immichcheck.verify.output.formats import render_verify

    redactor = Redactor()
    redactor.add_many(
        [options.api_key, *(_url_password(u) for u in (options.pg_dsn, options.redis_url))]
    )
    collector = _Collector(redactor, root)
    namespace = options.namespace or expected.namespace
    timeout = settings.timeout
    kube_access = resolve_kube_access(options)
    snapshot: Any = None
    if kube_access is not None:
        try:
            snapshot_connection = await kube.open_connection(kube_access, namespace, timeout)
            snapshot = await kube.read_snapshot(
                snapshot_connection, namespace, list(expected.secrets), timeout
            )
        except kube.KubeError as exc:
            collector.missing["cluster"] = f"{exc} ({kube_access.description})"
    else:
        collector.missing["cluster"] = "no kubeconfig found and not running in a pod"
    if snapshot is not None:
        secret_names = [
            str((s.get("metadata") or {}).get("name", "")) for s in snapshot.items("Secret")
        ]
        # Every value of every Secret read except identifiers such as the username: with the
        # usual username "immich" every Immich name in the bundle would read ***.
        for values in kube.secret_values(snapshot, secret_names).values():
            redactor.add_many(v for k, v in values.items() if k not in NOT_SECRET_KEYS)
        live = [item for items in snapshot.objects.values() for item in items]
        redactor.add_many(secret_env_values([*live, *expected.objects]))
        for kind, reason in snapshot.errors.items():
            collector.missing[f"cluster/{kind}"] = reason

    # verify, on the snapshot just read -----------------------------------------------------
    run = await run_verify(
        VerifyRequest(
            options=options,
            expected=expected,
            codes=select_codes(load_catalogue()),
            settings=RunSettings(timeout=timeout, inference=settings.inference),
            kube_access=kube_access,
            snapshot=snapshot,
            tags=("support-bundle",),
            redactor=redactor,
        )
    )
    record = run.record
    collector.structured("verify.json", record.to_dict(), "the verify run (JSON)", fmt="json")
    collector.text(
        "verify.txt", render_verify(record, "table", color=False), "the verify run (table)"
    )

    # the cluster ------------------------------------------------------------------------------
    if snapshot is not None:
        from immichcheck.clients.kubernetes_dump import BUNDLE_DUMP, dump_document

        # The form `kubectl get ... -o json` writes: `verify --from-dump` reads it (or this
        # archive) and judges the cluster offline as the live run did.
        collector.structured(
            BUNDLE_DUMP,
            dump_document(snapshot),
            "every object verify read, for verify --from-dump (secret values masked)",
            "json",
        )
        pods = snapshot.items("Pod")
        collector.text("cluster/pods.txt", pods_table(pods, now), "pod list")
        collector.structured(
            "cluster/pods.yaml",
            [clean_object(p) for p in pods],
            "pods as YAML (spec and status)",
        )
        collector.text("cluster/events.txt", events_text(snapshot.items("Event")), "events")
        for configmap in snapshot.items("ConfigMap"):
            name = (configmap.get("metadata") or {}).get("name", "")
            collector.structured(
                f"cluster/configmaps/{name}.yaml", clean_object(configmap), f"ConfigMap {name}"
            )
        for kind in (
            "Deployment",
            "StatefulSet",
            "Service",
            "Endpoints",
            "PersistentVolumeClaim",
            "Ingress",
        ):
            for obj in snapshot.items(kind):
                name = (obj.get("metadata") or {}).get("name", "")
                collector.structured(
                    f"cluster/live/{kind}/{name}.yaml", clean_object(obj), f"live {kind} {name}"
                )
        secrets_lines = [
            f"Secret {(s.get('metadata') or {}).get('name', '')} has the keys "
            + ", ".join(sorted((s.get("data") or {}).keys()))
            + " (values never included)"
            for s in snapshot.items("Secret")
        ]
        collector.text(
            "cluster/secrets.txt",
            "\n".join(secrets_lines) + "\n" if secrets_lines else "",
            "which secrets and keys exist (no values)",
        )
        diff, _ = drift_diff(
            load_manifest_documents(expected.directory), snapshot, namespace, redactor
        )
        collector.text("cluster/drift.diff", diff, "unified diff: manifests/ against live objects")

    images = []
    if snapshot is not None:
        for pod in snapshot.items("Pod"):
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                images.append(
                    {
                        "pod": (pod.get("metadata") or {}).get("name", ""),
                        "container": status.get("name", ""),
                        "image": status.get("image", ""),
                        "image_id": status.get("imageID", ""),
                    }
                )
    versions = {
        "immichcheck": __version__,
        "kubernetes": getattr(snapshot, "server_version", "") if snapshot is not None else "",
        "services": dict(run.outcome.service_versions),
        "images_running": images,
        "images_in_manifests": {key: c.image for key, c in expected.components.items()},
    }
    collector.structured(
        "versions.json", versions, "versions (tool, cluster, services, images)", "json"
    )

    # logs and nodes ----------------------------------------------------------------------------
    if snapshot is not None and kube_access is not None:
        pods_to_log = []
        for key in LOG_COMPONENTS:
            if key in expected.components:
                pods_to_log += snapshot.pods_matching(expected.component(key).labels)
        requests = kube_logs.log_requests(pods_to_log)
        extras = kube_logs.ClusterExtras()
        try:
            # The snapshot closed its client; logs and nodes get a fresh one.
            connection: Any = await kube.open_connection(kube_access, namespace, timeout)
        except kube.KubeError as exc:
            collector.missing["logs"] = str(exc)
            connection = None
        if connection is not None:
            extras = await kube_logs.read_extras(
                connection,
                namespace,
                requests,
                tail=settings.tail,
                since_seconds=settings.since_seconds,
                timeout=max(3 * timeout, 10.0),
            )
        for request in requests:
            suffix = ".previous.log" if request.previous else ".log"
            name = f"logs/{request.pod}/{request.container}{suffix}"
            if request in extras.logs:
                window = f"last {settings.tail} lines" if settings.tail is not None else "all lines"
                collector.text(name, extras.logs[request], f"container log ({window})")
        collector.missing.update(extras.errors)
        if extras.nodes:
            collector.structured(
                "nodes.json",
                [kube_logs.node_facts(n) for n in extras.nodes],
                "Kubernetes nodes (versions, capacity, conditions)",
                "json",
            )
    collector.structured(
        "host.json", host_facts().to_dict(), "the machine immichcheck ran on", "json"
    )

    # the latest benchmark run ------------------------------------------------------------------
    from immichcheck.history.store import load_runs

    benches = load_runs(settings.reports_dir, kinds={"bench"}).runs
    if benches:
        latest = benches[-1]
        collector.structured(
            f"bench/{latest.run_id}.json", latest.to_dict(), "the latest benchmark run", "json"
        )
    else:
        collector.missing["bench"] = f"no benchmark run under {settings.reports_dir}"
    return collector


def _index(collector: _Collector, created: datetime) -> str:
    lines = [
        f"immichcheck support bundle, created {created.isoformat(timespec='seconds')}",
        "Secrets and secret-looking values are replaced by *** throughout.",
        "",
        "Contents (besides this index):",
    ]
    for member in collector.members:
        name = member.name.split("/", 1)[1]
        lines.append(f"  {name:<58} {len(member.data):>9} B  {member.description}")
    if collector.missing:
        lines += ["", "Not collected:"]
        lines += [f"  {what}: {why}" for what, why in collector.missing.items()]
    return "\n".join(lines) + "\n"


def default_name(moment: datetime) -> str:
    """immichcheck-bundle-20261128T120304Z.tar.gz"""
    return f"immichcheck-bundle-{moment.strftime('%Y%m%dT%H%M%SZ')}.tar.gz"


def destination(output: str | os.PathLike[str], moment: datetime) -> Path:
    """--output: a folder (the default name goes in it) or the archive's own path."""
    path = Path(output)
    if path.is_dir():
        return path / default_name(moment)
    if not path.parent.is_dir():
        why = "is a file, not a folder" if path.parent.exists() else "does not exist"
        raise ImmichcheckError(f"cannot write {path}: {path.parent} {why}")
    return path


def write_archive(path: Path, members: Iterable[Member], mtime: float) -> None:
    """A gzip tar readable only by its owner (it holds logs), written atomically."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.size = len(member.data)
            info.mtime = int(mtime)
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(member.data))
    try:
        atomic_write_bytes(path, buffer.getvalue(), mode=0o600)
    except OSError as exc:
        raise ImmichcheckError(f"cannot write {path}: {exc.strerror or exc}") from exc


def build_support_bundle(
    options: Any,
    expected: Any,
    settings: BundleSettings,
    output: str | os.PathLike[str] = ".",
    *,
    now: datetime | None = None,
) -> BundleResult:
    """Collect everything, scrub it, and write the archive; returns what is in it."""
    moment = now or datetime.now(UTC)
    path = destination(output, moment)
    root = default_name(moment).removesuffix(".tar.gz")
    collector = asyncio.run(_collect(options, expected, settings, root, moment))
    index_text = collector.redactor.text(_index(collector, moment))
    index = Member(f"{root}/index.txt", index_text.encode("utf-8"), "this list")
    members = [index, *collector.members]
    write_archive(path, members, time.time())
    return BundleResult(path=path, members=members, missing=dict(collector.missing))

"""The Kubernetes side of verify: one snapshot of the namespace, read once, in parallel.

Every list verify needs is requested at the same time through kr8s (an asyncio client), so
reading the cluster costs one round trip of wall time. The two manual secrets are fetched by
name because immichcheck's Role may only `get` them (`resourceNames`), never list secrets.
`--from-dump` builds the same `Snapshot` from `kubectl get ... -o json` output
(kubernetes_dump.py), so the cluster checks run unchanged offline. Port-forwards go through
the API server's websocket with kr8s, so no kubectl binary is needed.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import ssl
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from immichcheck.clients.kubeconfig import KubeAccess, service_account_dir
from immichcheck.clients.kubeconfig import in_cluster as in_cluster  # where callers found it

# kind -> (API version, plural); all namespaced. Secrets are read by name, see above.
LISTED_KINDS: dict[str, tuple[str, str]] = {
    "Pod": ("v1", "pods"),
    "Service": ("v1", "services"),
    "Endpoints": ("v1", "endpoints"),
    "PersistentVolumeClaim": ("v1", "persistentvolumeclaims"),
    "ConfigMap": ("v1", "configmaps"),
    "Event": ("v1", "events"),
    "Deployment": ("apps/v1", "deployments"),
    "StatefulSet": ("apps/v1", "statefulsets"),
    "Ingress": ("networking.k8s.io/v1", "ingresses"),
}
# Cluster-scoped kinds verify lists whole (the node checks pick the nodes Immich uses); they
# need the ClusterRole of manifests/11-immichcheck.yaml.
CLUSTER_LISTED_KINDS: dict[str, tuple[str, str]] = {"Node": ("v1", "nodes")}


# What a check reads when it judges the secrets' values (not only their keys): a support
# bundle's dump holds the keys with masked values, so such checks SKIP on it.
SECRET_VALUES = "secret values"


class KubeError(Exception):
    """The cluster could not be read; the message is one clean line."""


@dataclass
class Snapshot:
    """Everything verify knows about the namespace, read once; checks only read this."""

    namespace: str
    source: str
    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    namespace_found: bool | None = None  # None: could not be asked (RBAC) or not in the dump
    errors: dict[str, str] = field(default_factory=dict)  # kind -> why it could not be read
    server_version: str = ""
    # kind -> what to add: kinds a dump does not hold. An empty list there means "not asked
    # for", not "none exist", so a check that reads one is SKIP, never FAIL (see engine).
    absent: dict[str, str] = field(default_factory=dict)
    _reads: set[str] = field(default_factory=set, repr=False, compare=False)

    def items(self, kind: str) -> list[dict[str, Any]]:
        """Objects of one kind (empty when none or unreadable; see `errors`)."""
        self._reads.add(kind)
        return self.objects.get(kind, [])

    def note_read(self, what: str) -> None:
        """Record that a check used `what` (a kind, or SECRET_VALUES) beyond `items`."""
        self._reads.add(what)

    def begin_reads(self) -> None:
        """Start recording what one check reads."""
        self._reads = set()

    def absent_reads(self) -> dict[str, str]:
        """What was read since `begin_reads` that this snapshot lacks: kind -> what to add."""
        return {kind: hint for kind, hint in self.absent.items() if kind in self._reads}

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """One object by kind and name."""
        for item in self.items(kind):
            if item.get("metadata", {}).get("name") == name:
                return item
        return None

    def pods_matching(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        """Pods whose labels include all of `labels` (a selector match)."""
        result = []
        for pod in self.items("Pod"):
            pod_labels = pod.get("metadata", {}).get("labels") or {}
            if labels and all(pod_labels.get(k) == v for k, v in labels.items()):
                result.append(pod)
        return result

    def events_for(self, kind: str, name: str, limit: int = 3) -> list[dict[str, Any]]:
        """The newest events about one object, newest first."""
        matching = [
            event
            for event in self.items("Event")
            if (event.get("involvedObject") or {}).get("kind") == kind
            and (event.get("involvedObject") or {}).get("name") == name
        ]

        def when(event: dict[str, Any]) -> str:
            return str(
                event.get("lastTimestamp")
                or event.get("eventTime")
                or (event.get("metadata") or {}).get("creationTimestamp")
                or ""
            )

        return sorted(matching, key=when, reverse=True)[:limit]

    def namespace_exists(self) -> bool | None:
        """Whether the namespace exists; inferred from its objects when it could not be read."""
        if self.namespace_found is not None:
            return self.namespace_found
        if any(self.objects.get(kind) for kind in self.objects):
            return True
        return None


class ApiStatusError(Exception):
    """The API server answered with an error status (the Status object's message kept)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _describe_status(exc: ApiStatusError) -> str:
    if exc.status in (401, 403):
        return f"the Kubernetes API refused the request (HTTP {exc.status}): {exc}"
    return f"the Kubernetes API answered HTTP {exc.status}: {exc}"


def describe_kube_exception(exc: BaseException) -> str:
    """One clean line for whatever the Kubernetes client raised."""
    if isinstance(exc, ApiStatusError):
        return _describe_status(exc)
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "the Kubernetes API did not answer in time"
    if type(exc).__module__.startswith("kr8s"):  # kr8s is imported only when it was used
        from kr8s import APITimeoutError, ServerError

        if isinstance(exc, ServerError):
            code = exc.response.status_code if exc.response is not None else 0
            return _describe_status(ApiStatusError(code, str(exc)))
        if isinstance(exc, APITimeoutError):
            return "the Kubernetes API did not answer in time"
    import httpx

    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect to the Kubernetes API: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return "the Kubernetes API did not answer in time"
    if isinstance(exc, httpx.HTTPError):
        return f"Kubernetes API request failed: {type(exc).__name__}: {exc}"
    if isinstance(exc, ssl.SSLError | OSError):
        return f"cannot use the kubeconfig's credentials: {exc}"
    if isinstance(exc, UnicodeDecodeError | json.JSONDecodeError):
        # A proxy's error page or a server that is not an API server at that address.
        return "the Kubernetes API answered with something that is not JSON (wrong server address?)"
    if isinstance(exc, ValueError) and "credentials" in str(exc):
        return "no usable Kubernetes credentials (kubeconfig or service account)"
    return f"{type(exc).__name__}: {exc}"


async def connect(access: KubeAccess, namespace: str, timeout: float) -> Any:
    """A kr8s API object: kubeconfig or service-account credentials (KubeError on failure)."""
    loaded = sys.modules.get("kr8s.asyncio")
    if loaded is None or getattr(getattr(loaded, "__spec__", None), "_initializing", False):
        # kr8s takes ~0.1 s to import; in a thread, the other probes' I/O goes on meanwhile.
        # Once imported, no detour through the loop: that would hand the CPU to another
        # probe before the first API request is out.
        await asyncio.to_thread(importlib.import_module, "kr8s.asyncio")
    import kr8s.asyncio

    kwargs: dict[str, Any] = {"namespace": namespace}
    if access.service_account:
        kwargs["serviceaccount"] = str(service_account_dir())
        kwargs["kubeconfig"] = "/nonexistent-kubeconfig-use-service-account"
    else:
        # kr8s merges the files (it splits the path on ':' as KUBECONFIG is split); the
        # context is always named, as kubectl chose it: kr8s alone would take the first
        # file's current-context only.
        kwargs["kubeconfig"] = ":".join(str(path) for path in access.kubeconfig)
        kwargs["context"] = access.active_context
    try:
        async with asyncio.timeout(timeout):
            with warnings.catch_warnings():
                # kr8s warns on stderr about Kubernetes versions it was not tested with;
                # verify's output must stay clean for cron, so that note is dropped.
                warnings.simplefilter("ignore")
                api = await kr8s.asyncio.api(**kwargs)
    except Exception as exc:  # every client failure becomes one clean line
        if access.exec_command and not isinstance(exc, TimeoutError):
            raise KubeError(describe_plugin_failure(access.exec_command, exc)) from exc
        raise KubeError(describe_kube_exception(exc)) from exc
    api.timeout = timeout
    return api


def describe_plugin_failure(command: str, exc: BaseException) -> str:
    """One line for an exec credential plugin that failed (kr8s runs it while connecting)."""
    text = str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"the kubeconfig's credential plugin {command!r} was not found"
    if isinstance(exc, RuntimeError) and text.startswith("Process exited with non-zero code"):
        # kr8s: "Process exited with non-zero code N:\n<the plugin's stderr>"
        head, _, stderr = text.partition(":\n")
        code = head.rsplit(" ", 1)[-1]
        said = next((line.strip() for line in stderr.splitlines() if line.strip()), "")
        return f"the kubeconfig's credential plugin {command!r} failed (exit {code})" + (
            f": {said[:200]}" if said else ""
        )
    if isinstance(exc, json.JSONDecodeError | KeyError):
        return f"the kubeconfig's credential plugin {command!r} printed no usable credentials"
    return describe_kube_exception(exc)


@dataclass
class ApiConnection:
    """An HTTP client ready to GET from the API server, however the credentials were found."""

    server: str
    client: Any
    sni: str | None = None


async def open_connection(access: KubeAccess, namespace: str, timeout: float) -> ApiConnection:
    """A client for the snapshot, with the credentials kr8s found (kubeconfig or in-cluster)."""
    api = await connect(access, namespace, timeout)
    try:
        client = await _snapshot_client(api, timeout)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise KubeError(f"cannot use the TLS settings of {access.description}: {exc}") from exc
    return ApiConnection(api.auth.server, client, api.auth.tls_server_name)


# HTTP/1.1: every concurrent request needs its own TLS connection, and thirteen handshakes
# at once cost more than they save (measured against the fake API server on 2 busy cores:
# 1.1 s with 13 connections, 0.18 s with 4). Four connections still overlap the round trips.
API_CONNECTIONS = 4


async def _snapshot_client(api: Any, timeout: float) -> Any:
    """An httpx client with kr8s's credentials, for the snapshot's read-only GETs.

    Not kr8s's own session: on any 401/403 kr8s re-authenticates by replacing its session,
    which breaks the other requests in flight, and a 403 is an expected answer here (a
    namespaced Role cannot read the Namespace object).
    """
    import httpx

    headers = {"Accept": "application/json", "User-Agent": "immichcheck"}
    if api.auth.token:
        headers["Authorization"] = f"Bearer {api.auth.token}"
    return httpx.AsyncClient(
        base_url=api.auth.server,
        headers=headers,
        verify=await api.auth.ssl_context(),
        timeout=timeout,
        proxy=api.auth.proxy,
        limits=httpx.Limits(max_connections=API_CONNECTIONS),
    )


async def _get_json(client: Any, path: str, sni: str | None) -> Any:
    extensions = {"sni_hostname": sni} if sni else None
    response = await client.get(path, extensions=extensions)
    if response.status_code >= 400:
        try:
            message = str(response.json().get("message", ""))
        except ValueError:
            message = response.text[:200]
        raise ApiStatusError(response.status_code, message or response.reason_phrase)
    return response.json()


def _path(version: str, namespace: str | None, rest: str) -> str:
    base = "/api" if version == "v1" else "/apis"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}/{version}{scope}/{rest}"


async def read_snapshot(
    connection: ApiConnection,
    namespace: str,
    secret_names: Sequence[str],
    timeout: float,
) -> Snapshot:
    """Read every list verify needs at once; a kind that cannot be read is noted, not fatal.

    The one exception is HTTP 401: the credentials are wrong for every request, so the
    snapshot as a whole could not be read.
    """
    snapshot = Snapshot(namespace=namespace, source=f"Kubernetes API {connection.server}")
    sni = connection.sni

    async def list_kind(
        client: Any, kind: str, version: str, plural: str, scope: str | None = namespace
    ) -> None:
        try:
            body = await _get_json(client, _path(version, scope, plural), sni)
        except ApiStatusError as exc:
            snapshot.errors[kind] = _describe_status(exc)
            return
        items = body.get("items") or []
        for item in items:
            item.setdefault("kind", kind)  # list items carry no kind of their own
        snapshot.objects[kind] = items

    async def get_namespace(client: Any) -> None:
        try:
            await _get_json(client, _path("v1", None, f"namespaces/{namespace}"), sni)
            snapshot.namespace_found = True
        except ApiStatusError as exc:
            if exc.status == 404:
                snapshot.namespace_found = False
            else:  # a namespaced Role cannot read the Namespace object: inferred later
                snapshot.errors["Namespace"] = _describe_status(exc)

    async def get_secret(client: Any, name: str) -> None:
        try:
            body = await _get_json(client, _path("v1", namespace, f"secrets/{name}"), sni)
        except ApiStatusError as exc:
            if exc.status != 404:
                snapshot.errors[f"Secret/{name}"] = _describe_status(exc)
            return
        body.setdefault("kind", "Secret")
        snapshot.objects.setdefault("Secret", []).append(body)

    async def get_version(client: Any) -> None:
        try:
            body = await _get_json(client, "/version", sni)
            snapshot.server_version = str(body.get("gitVersion", ""))
        except ApiStatusError:  # the version is decoration; the lists matter
            snapshot.server_version = ""

    snapshot.objects["Secret"] = []
    try:
        async with asyncio.timeout(timeout), connection.client as client:
            jobs = [
                list_kind(client, kind, version, plural)
                for kind, (version, plural) in LISTED_KINDS.items()
            ]
            jobs += [
                list_kind(client, kind, version, plural, None)
                for kind, (version, plural) in CLUSTER_LISTED_KINDS.items()
            ]
            jobs += [get_namespace(client), get_version(client)]
            jobs += [get_secret(client, name) for name in secret_names]
            await asyncio.gather(*jobs)
        unauthorised = [e for e in snapshot.errors.values() if "(HTTP 401)" in e]
        if unauthorised:
            raise KubeError(unauthorised[0])
    except KubeError:
        raise
    except Exception as exc:
        if isinstance(exc, ApiStatusError):
            raise KubeError(_describe_status(exc)) from exc
        raise KubeError(describe_kube_exception(exc)) from exc
    return snapshot


FORWARD_TRIES = 3


async def forward_listening(forward: Any) -> bool:
    """Wait until kr8s's local server for a forward is serving (False when its task failed)."""
    while True:
        task = getattr(forward, "_bg_task", None)
        if task is not None and task.done():
            if not task.cancelled():
                task.exception()  # retrieved, so asyncio does not log it as lost
            return False
        servers = list(getattr(forward, "servers", []))
        if servers and all(server.is_serving() for server in servers):
            return True
        await asyncio.sleep(0.005)


class PortForwards:
    """Port-forwards to services through the API server (kr8s websockets), closed together."""

    def __init__(self, api: Any, namespace: str) -> None:
        self._api = api
        self._namespace = namespace
        self._forwards: list[Any] = []
        self._lock = asyncio.Lock()

    async def open(self, service: str, port: int, timeout: float) -> int:
        """Forward a free local port to `service:port`; returns the local port."""
        from kr8s.asyncio.objects import Service

        try:
            async with asyncio.timeout(timeout):
                target = await Service.get(service, namespace=self._namespace, api=self._api)
                async with self._lock:
                    for _attempt in range(FORWARD_TRIES):
                        forward = target.portforward(remote_port=port, local_port="auto")
                        local_port = int(await forward.start())
                        self._forwards.append(forward)
                        if await forward_listening(forward):
                            return local_port
                        # kr8s picks a free port, then binds it in a background task; another
                        # process can take it in between, leaving nothing listening there.
                        await forward.stop()
                    raise KubeError(f"no local port could be bound in {FORWARD_TRIES} tries")
        except Exception as exc:
            raise KubeError(
                f"port-forward to service {service}:{port} failed: {describe_kube_exception(exc)}"
            ) from exc

    async def close(self) -> None:
        """Stop every forward opened by this object."""
        forwards, self._forwards = self._forwards, []
        for forward in forwards:
            try:
                await forward.stop()
            except Exception:  # already torn down with its connection; nothing to release
                continue


def secret_keys(snapshot: Snapshot, names: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The keys of the named secrets present in the snapshot, without reading their values."""
    result: dict[str, tuple[str, ...]] = {}
    for name in names:
        secret = snapshot.get("Secret", name)
        if secret is not None:
            keys = [*(secret.get("data") or {}), *(secret.get("stringData") or {})]
            result[name] = tuple(dict.fromkeys(keys))
    return result


def secret_values(snapshot: Snapshot, names: Iterable[str]) -> dict[str, dict[str, str]]:
    """Decoded data of the named secrets present in the snapshot (for credentials, redaction)."""
    import base64
    import binascii

    snapshot.note_read(SECRET_VALUES)
    result: dict[str, dict[str, str]] = {}
    for name in names:
        secret = snapshot.get("Secret", name)
        if secret is None:
            continue
        decoded: dict[str, str] = {}
        for key, value in (secret.get("data") or {}).items():
            try:
                decoded[key] = base64.b64decode(str(value)).decode("utf-8", errors="replace")
            except (binascii.Error, ValueError):
                decoded[key] = str(value)
        for key, value in (secret.get("stringData") or {}).items():
            decoded[key] = str(value)
        result[name] = decoded
    return result

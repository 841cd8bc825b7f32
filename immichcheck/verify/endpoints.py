"""How each service is reached in one verify run: explicit URL/DSN, cluster DNS, port-forward.

Precedence per service: an explicit `--pg-dsn`/`--redis-url`/`--server-url`/`--ml-url` wins;
otherwise, inside a pod, the service's cluster DNS name; otherwise, with `--port-forward`, a
forward through the API server. PostgreSQL credentials come from `immich-postgres-secret`
unless `--pg-dsn` carries them. Every secret value handled here is registered with the run's
`Redactor` before anything can print it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import quote, urlsplit

from immichcheck.clients import ProbeError, ProbeSkipped
from immichcheck.common.errors import ImmichcheckError
from immichcheck.common.redaction import Redactor

POSTGRES_SECRET = "immich-postgres-secret"
NOT_SECRET_KEYS = frozenset({"username", "user", "database"})


@dataclass(frozen=True)
class TargetOptions:
    """The command line's say on where things are (all optional)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    server_url: str | None = None
    ml_url: str | None = None
    pg_dsn: str | None = None
    redis_url: str | None = None
    api_key: str | None = None
    port_forward: bool = False
    from_dump: str | None = None
    node_ip: str | None = None
    ingress_ip: str | None = None
    media_path: str | None = None
    data_path: str | None = None
    external_url: str | None = None
    ca_file: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> TargetOptions:
        """The options a command parsed (`target_options` and its own ways in) that name a field."""
        return cls(**{item.name: params[item.name] for item in fields(cls) if item.name in params})

    def has_direct_target(self) -> bool:
        """True when something can be checked without a cluster."""
        return any(
            (
                self.server_url,
                self.ml_url,
                self.pg_dsn,
                self.redis_url,
                self.media_path,
                self.data_path,
                self.node_ip,
                self.ingress_ip,
                self.external_url,
            )
        )


def resolve_kube_access(options: TargetOptions) -> Any:
    """How to reach the API server, None when verify runs without it; one-line error when unusable.

    Without --kubeconfig, an absent default kubeconfig is fine as long as something else can be
    checked; with nothing at all to check, verify stops here with one line (exit 3).
    """
    from immichcheck.clients.kubeconfig import find_kube_access, kubeconfig_candidates

    if options.from_dump:
        return None
    access = find_kube_access(options.kubeconfig, options.context)
    if access is not None:
        return access
    if options.has_direct_target():
        return None
    where = ", ".join(str(p) for p in kubeconfig_candidates(options.kubeconfig))
    raise ImmichcheckError(
        f"nothing to check: no kubeconfig found ({where}), not running in a pod, and no "
        "--server-url/--ml-url/--pg-dsn/--redis-url/--media-path/--external-url/--from-dump given"
    )


def _with_password_masked(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


class Targets:
    """Resolves endpoints for one run; owns the snapshot task and any port-forwards."""

    def __init__(
        self,
        options: TargetOptions,
        expected: Any,
        kube_access: Any,
        timeout: float,
        redactor: Redactor,
        preloaded_snapshot: Any = None,
    ) -> None:
        self.options = options
        self.expected = expected
        self.kube_access = kube_access
        self.timeout = timeout
        self.redactor = redactor
        self.namespace = options.namespace or expected.namespace
        self._snapshot_task: asyncio.Task[Any] | None = None
        self._preloaded = preloaded_snapshot
        self._api: Any = None
        self._forwards: Any = None
        self._forward_ports: dict[tuple[str, int], asyncio.Task[int]] = {}
        self._forward_lock = asyncio.Lock()
        self.in_cluster = False
        if kube_access is not None and kube_access.service_account:
            self.in_cluster = True
        redactor.add_many(
            [options.api_key, _password_of(options.pg_dsn), _password_of(options.redis_url)]
        )

    # The snapshot -------------------------------------------------------------------------

    def snapshot(self) -> asyncio.Task[Any]:
        """The one snapshot of the namespace, started on first use and shared by every probe."""
        if self._snapshot_task is None:
            self._snapshot_task = asyncio.ensure_future(self._read_snapshot())
        return self._snapshot_task

    async def _read_snapshot(self) -> Any:
        from immichcheck.clients import kubernetes as kube

        if self._preloaded is not None:
            snapshot = self._preloaded
        elif self.options.from_dump:
            from immichcheck.clients.kubernetes_dump import snapshot_from_dump

            snapshot = await asyncio.to_thread(
                snapshot_from_dump,
                self.options.from_dump,
                self.namespace,
                list(self.expected.secrets),
            )
        elif self.kube_access is None:
            raise ProbeSkipped("no kubeconfig found and not running in a pod")
        else:
            try:
                connection = await kube.open_connection(
                    self.kube_access, self.namespace, self.timeout
                )
                snapshot = await kube.read_snapshot(
                    connection, self.namespace, list(self.expected.secrets), self.timeout
                )
            except kube.KubeError as exc:
                raise ProbeError(f"{exc} ({self.kube_access.description})") from exc
        for values in kube.secret_values(snapshot, self.expected.secrets).values():
            # Identifiers such as the username stay readable; every other value is secret.
            self.redactor.add_many(v for k, v in values.items() if k not in NOT_SECRET_KEYS)
        return snapshot

    async def _snapshot_or_skip(self, why: str) -> Any:
        try:
            return await self.snapshot()
        except ProbeSkipped as exc:
            raise ProbeSkipped(f"{why}: {exc}") from exc
        except ProbeError as exc:
            raise ProbeSkipped(f"{why}, but the cluster could not be read ({exc})") from exc

    # Reaching services --------------------------------------------------------------------

    def _service_port(self, key: str) -> tuple[str, int]:
        component = self.expected.component(key)
        service = self.expected.services.get(component.service)
        port = component.port
        if service is not None and service.ports:
            port = int(service.ports[0].port)
        return component.service, port

    def _require_route(self, flag: str) -> None:
        """SKIP at once when neither cluster DNS nor a port-forward can reach the service."""
        if self.in_cluster or (self.options.port_forward and self.kube_access is not None):
            return
        raise ProbeSkipped(f"not reachable from outside the cluster: pass {flag} or --port-forward")

    async def _host_port(self, key: str, flag: str) -> tuple[str, int]:
        self._require_route(flag)
        service, port = self._service_port(key)
        if self.in_cluster:
            return f"{service}.{self.namespace}.svc.cluster.local", port
        await self._snapshot_or_skip("--port-forward needs the cluster")
        return "127.0.0.1", await self._forward(service, port)

    async def _forward(self, service: str, port: int) -> int:
        from immichcheck.clients.kubernetes import KubeError, PortForwards

        async with self._forward_lock:
            if self._forwards is None:
                from immichcheck.clients.kubernetes import connect

                # Port-forwards need kr8s (websocket channels); only this path imports it.
                try:
                    self._api = await connect(self.kube_access, self.namespace, self.timeout)
                except KubeError as exc:
                    raise ProbeError(str(exc)) from exc
                self._forwards = PortForwards(self._api, self.namespace)
        key = (service, port)
        if key not in self._forward_ports:
            self._forward_ports[key] = asyncio.ensure_future(
                self._forwards.open(service, port, self.timeout)
            )
        try:
            return await self._forward_ports[key]
        except KubeError as exc:
            raise ProbeError(str(exc)) from exc

    async def postgres_dsn(self) -> str:
        """The DSN to connect with (credentials from the secret unless --pg-dsn)."""
        if self.options.pg_dsn:
            return self.options.pg_dsn
        self._require_route("--pg-dsn")
        # Credentials first: no port-forward is opened for a database we cannot log in to.
        snapshot = await self._snapshot_or_skip(f"the credentials come from {POSTGRES_SECRET}")
        from immichcheck.clients.kubernetes import secret_values

        secret = secret_values(snapshot, [POSTGRES_SECRET]).get(POSTGRES_SECRET)
        if not secret or "password" not in secret:
            raise ProbeSkipped(
                f"no credentials: {POSTGRES_SECRET} is missing or lacks password; pass --pg-dsn"
            )
        user = secret.get("username", "postgres")
        self.redactor.add(secret["password"])
        host, port = await self._host_port("postgres", "--pg-dsn")
        return (
            f"postgresql://{quote(user, safe='')}:{quote(secret['password'], safe='')}"
            f"@{host}:{port}/{quote(self.expected.postgres_database, safe='')}"
        )

    async def redis_url(self) -> str:
        """The Redis URL (the deployment's Redis has no password)."""
        if self.options.redis_url:
            return self.options.redis_url
        host, port = await self._host_port("redis", "--redis-url")
        return f"redis://{host}:{port}/0"

    async def server_url(self) -> str:
        """The server's base URL (ClusterIP service in the cluster)."""
        if self.options.server_url:
            return self.options.server_url.rstrip("/")
        host, port = await self._host_port("server", "--server-url")
        return f"http://{host}:{port}"

    async def ml_url(self) -> str:
        """The ML service's base URL."""
        if self.options.ml_url:
            return self.options.ml_url.rstrip("/")
        host, port = await self._host_port("ml", "--ml-url")
        return f"http://{host}:{port}"

    def describe(self) -> dict[str, str]:
        """How each service is reached, for the run record (passwords masked)."""

        def how(explicit: str | None) -> str:
            if explicit:
                return _with_password_masked(explicit)
            if self.in_cluster:
                return "cluster DNS"
            if self.options.port_forward:
                return "port-forward"
            return "not reachable"

        return {
            "kubernetes": "dump " + str(self.options.from_dump)
            if self.options.from_dump
            else (self.kube_access.description if self.kube_access else "none"),
            "postgres": how(self.options.pg_dsn),
            "redis": how(self.options.redis_url),
            "server": how(self.options.server_url),
            "ml": how(self.options.ml_url),
        }

    async def close(self) -> None:
        """Stop port-forwards and cancel a snapshot nobody awaited."""
        if self._forwards is not None:
            await self._forwards.close()
        for task in self._forward_ports.values():
            if not task.done():
                task.cancel()
        if self._snapshot_task is not None and not self._snapshot_task.done():
            self._snapshot_task.cancel()


def _password_of(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return urlsplit(url).password
    except ValueError:
        return None

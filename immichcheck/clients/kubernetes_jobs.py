"""Kubernetes calls behind `bench --node`: nodes, Jobs, their pods, logs and events.

Every call goes through kr8s's raw `call_api` with its own timeout, so each request is one
plain REST call that the shipped Role must allow. A refusal (HTTP 403) is raised as
`KubeForbidden` naming the exact permission that is missing ("create jobs.batch in namespace
immich"), because that is what the user has to add to the Role. Watching is done by polling:
it needs only `get`/`list`, works through every proxy, and a benchmark Job changes state
every few seconds at most.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from immichcheck.clients.kubernetes import KubeError, describe_kube_exception

JOB_NAME_LABEL = "job-name"  # set on a Job's pods by every Kubernetes version


@dataclass(frozen=True)
class Permission:
    """One RBAC permission: verb on resource (API group) in a namespace or cluster-wide."""

    verb: str
    resource: str  # plural, with a subresource when there is one: "pods/log"
    group: str = ""
    namespace: str | None = None

    def describe(self) -> str:
        """`create jobs.batch in namespace immich`, as an RBAC rule reads."""
        plural, _, subresource = self.resource.partition("/")
        name = f"{plural}.{self.group}" if self.group else plural
        if subresource:
            name += f"/{subresource}"
        scope = f"in namespace {self.namespace}" if self.namespace else "(cluster-wide)"
        return f"{self.verb} {name} {scope}"


class KubeForbidden(KubeError):
    """The API server refused a request (HTTP 401/403); `permission` is what is missing."""

    def __init__(self, permission: Permission, server_message: str) -> None:
        self.permission = permission
        self.server_message = server_message
        super().__init__(
            f"the Kubernetes API refused to {permission.verb} {permission.resource}: missing "
            f"permission '{permission.describe()}' ({server_message})"
        )


class KubeNotFound(KubeError):
    """The object asked for does not exist."""


def _status_message(exc: Any) -> str:
    """The `message` of a Kubernetes Status body, else the exception text."""
    status = getattr(exc, "status", None)
    if isinstance(status, Mapping) and status.get("message"):
        return str(status["message"])
    return str(exc)


class JobsApi:
    """The few REST calls a node benchmark makes, each bounded by `timeout` seconds."""

    def __init__(self, api: Any, namespace: str, timeout: float) -> None:
        self.api = api
        self.namespace = namespace
        self.timeout = timeout

    async def _request(
        self,
        method: str,
        version: str,
        url: str,
        permission: Permission,
        *,
        namespaced: bool = True,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        text: bool = False,
    ) -> Any:
        from kr8s import ServerError

        kwargs: dict[str, Any] = {}
        if params:
            kwargs["params"] = dict(params)
        if body is not None:
            kwargs["json"] = dict(body)
        try:
            async with asyncio.timeout(self.timeout):
                async with self.api.call_api(
                    method,
                    version=version,
                    namespace=self.namespace if namespaced else None,
                    url=url,
                    **kwargs,
                ) as response:
                    return response.text if text else response.json()
        except ServerError as exc:
            code = exc.response.status_code if exc.response is not None else None
            if code in (401, 403):
                raise KubeForbidden(permission, _status_message(exc)) from exc
            if code == 404:
                raise KubeNotFound(_status_message(exc)) from exc
            raise KubeError(describe_kube_exception(exc)) from exc
        except KubeError:
            raise
        except Exception as exc:  # timeouts and transport errors: one clean line
            raise KubeError(describe_kube_exception(exc)) from exc

    def _permission(self, verb: str, resource: str, group: str = "") -> Permission:
        return Permission(verb, resource, group, self.namespace)

    # Nodes ------------------------------------------------------------------------------

    async def list_nodes(self) -> list[dict[str, Any]]:
        """Every node of the cluster."""
        body = await self._request(
            "GET", "v1", "nodes", Permission("list", "nodes"), namespaced=False
        )
        return list(body.get("items") or [])

    async def get_node(self, name: str) -> dict[str, Any] | None:
        """One node, or None when it no longer exists."""
        try:
            body = await self._request(
                "GET", "v1", f"nodes/{name}", Permission("get", "nodes"), namespaced=False
            )
        except KubeNotFound:
            return None
        return dict(body)

    # Jobs -------------------------------------------------------------------------------

    async def create_job(self, job: Mapping[str, Any]) -> dict[str, Any]:
        """Create a Job in the namespace; returns the stored object."""
        body = await self._request(
            "POST", "batch/v1", "jobs", self._permission("create", "jobs", "batch"), body=job
        )
        return dict(body)

    async def get_job(self, name: str) -> dict[str, Any] | None:
        """A Job by name, or None when it is gone."""
        try:
            body = await self._request(
                "GET", "batch/v1", f"jobs/{name}", self._permission("get", "jobs", "batch")
            )
        except KubeNotFound:
            return None
        return dict(body)

    async def delete_job(self, name: str) -> bool:
        """Delete a Job and, through the garbage collector, its pods; False if already gone.

        batch/v1 Jobs orphan their pods on a plain DELETE (kept for old clients), so the
        propagation policy is always sent.
        """
        try:
            await self._request(
                "DELETE",
                "batch/v1",
                f"jobs/{name}",
                self._permission("delete", "jobs", "batch"),
                params={"propagationPolicy": "Background"},
            )
        except KubeNotFound:
            return False
        return True

    # Pods, logs, events -------------------------------------------------------------------

    async def job_pods(self, job_name: str) -> list[dict[str, Any]]:
        """The pods the Job controller made for one Job, oldest first."""
        body = await self._request(
            "GET",
            "v1",
            "pods",
            self._permission("list", "pods"),
            params={"labelSelector": f"{JOB_NAME_LABEL}={job_name}"},
        )
        pods = list(body.get("items") or [])
        return sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp")))

    async def pod_log(self, pod: str, container: str) -> str:
        """The whole current log of one container (a benchmark writes a few hundred lines)."""
        return str(
            await self._request(
                "GET",
                "v1",
                f"pods/{pod}/log",
                self._permission("get", "pods/log"),
                params={"container": container},
                text=True,
            )
        )

    async def events_for(self, kind: str, name: str) -> list[dict[str, Any]]:
        """Events about one object, oldest first."""
        body = await self._request(
            "GET",
            "v1",
            "events",
            self._permission("list", "events"),
            params={"fieldSelector": f"involvedObject.kind={kind},involvedObject.name={name}"},
        )
        events = list(body.get("items") or [])

        def when(event: Mapping[str, Any]) -> tuple[str, int]:
            # Event times have one-second precision; the resourceVersion (an etcd revision)
            # orders events written within the same second.
            version = str((event.get("metadata") or {}).get("resourceVersion") or "")
            stamp = str(
                event.get("lastTimestamp")
                or event.get("eventTime")
                or (event.get("metadata") or {}).get("creationTimestamp")
                or ""
            )
            return stamp, int(version) if version.isdigit() else 0

        return sorted(events, key=when)

"""The fake Kubernetes API's shared state: what every part of it reads, and how it answers errors.

`KubeClusterState` declares the cluster's state (objects, secrets, RBAC, routes, handlers)
and the lookups the other parts use; `FakeKubeCluster` (kube_api) combines it with the
faults, derived objects, RBAC, resource CRUD, exec, port-forward and logs, each in its
own module.
"""

from __future__ import annotations

import base64
import builtins
import copy
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any

from immichcheck.deploy.expected_state import ExpectedState
from tests.fakes.http_base import FakeHTTPServer, Response
from tests.fakes.kube_exec import ExecHandler
from tests.fakes.kube_objects import BuiltCluster
from tests.fakes.kube_selectors import labels_match, parse_label_selector
from tests.fakes.kube_store import RESOURCE_TYPES, ResourceStore, ResourceType

DEFAULT_DB_USERNAME = "immich"
# A callback run after each create of a resource (e.g. the Job controller of kube_jobs).
Controller = Callable[[Any, dict[str, Any]], None]


def default_secret_data(state: ExpectedState) -> dict[str, dict[str, str]]:
    """Strong random values for every key of every manual secret (username: immich)."""
    data: dict[str, dict[str, str]] = {}
    for name, keys in state.secrets.items():
        data[name] = {
            key: DEFAULT_DB_USERNAME if key == "username" else secrets.token_urlsafe(32)
            for key in keys
        }
    return data


def status_body(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A metav1.Status failure object."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = dict(details)
    return body


def status_response(
    code: int, reason: str, message: str, details: Mapping[str, Any] | None = None
) -> Response:
    """A Status failure as an HTTP response."""
    return Response.json(code, status_body(code, reason, message, details))


class KubeClusterState(FakeHTTPServer):
    """The cluster's state and lookups, shared by every part of the fake API server."""

    expected: ExpectedState
    token: str
    user: str
    state: ResourceStore
    built: BuiltCluster
    secret_data: dict[str, dict[str, str]]
    rbac_service_account: str | None
    denials: builtins.list[tuple[str, str, str | None, str | None]]
    endpoint_overrides: dict[str, builtins.list[str]]
    port_routes: dict[tuple[str, int], tuple[str, int]]
    exec_handlers: dict[str, ExecHandler]
    controllers: dict[tuple[str, str], Controller]
    requests: builtins.list[dict[str, Any]]
    _request_context: threading.local

    # Lookups used by tests and faults ---------------------------------------------------------

    def resource(self, plural: str, group: str | None = None) -> ResourceType:
        """The catalogue entry for a plural name."""
        for resource in RESOURCE_TYPES:
            if resource.plural == plural and (group is None or resource.group == group):
                return resource
        raise KeyError(plural)

    def get(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any]:
        """A stored object (namespace defaults to the manifests' namespace); KeyError if absent."""
        resource = self.resource(plural)
        obj = self.state.get(resource, namespace or self.expected.namespace, name)
        if obj is None:
            raise KeyError(f"{plural}/{name}")
        return obj

    def list(self, plural: str, namespace: str | None = None) -> builtins.list[dict[str, Any]]:
        """Stored objects of a plural (all namespaces when namespace is None)."""
        return self.state.items(self.resource(plural), namespace)

    def pods_of(self, component: str) -> builtins.list[dict[str, Any]]:
        """The pods of a component key ('postgres', 'redis', 'ml', 'server')."""
        spec = self.expected.component(component)
        requirements = parse_label_selector(",".join(f"{k}={v}" for k, v in spec.labels.items()))
        return [
            pod
            for pod in self.list("pods", self.expected.namespace)
            if labels_match(requirements, pod)
        ]

    def workload_of(self, component: str) -> dict[str, Any]:
        """The Deployment or StatefulSet of a component key."""
        spec = self.expected.component(component)
        return self.get("deployments" if spec.kind == "Deployment" else "statefulsets", spec.name)

    def secret_values(self, name: str) -> dict[str, str]:
        """Decoded data of a stored secret."""
        secret = self.get("secrets", name)
        return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}

    def _not_found(self, resource: ResourceType, name: str) -> Response:
        details: dict[str, Any] = {"name": name, "kind": resource.plural}
        if resource.group:
            details["group"] = resource.group
        return status_response(404, "NotFound", f'{resource.qualified} "{name}" not found', details)

    def _with_kind(self, resource: ResourceType, obj: Mapping[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(dict(obj))
        body["apiVersion"] = resource.group_version
        body["kind"] = resource.kind
        return body

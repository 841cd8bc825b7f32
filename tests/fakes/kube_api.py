"""A fake Kubernetes API server over real HTTP, built from manifests/ plus realistic status.

It speaks enough of the real API for kubectl and kr8s to work unchanged: discovery
(/version, /api, /apis, APIResourceLists), list/get with label and field selectors and
`limit`/`continue`, server-side Table printing, Status objects for errors, bearer-token
authentication, optional RBAC (the shipped Role/ClusterRole of a service account, or
explicit denials), pod logs, and create/replace/merge-patch/delete with owner-reference
garbage collection. Fault-injection methods break it the way real clusters break.

This module is the transport (authentication, impersonation, discovery, routing);
the other parts live beside it: kube_cluster_state (state and lookups), kube_derived
(Endpoints and workload status), kube_faults, kube_rbac, kube_crud and kube_pod_streams
(port-forward, exec, logs).
"""

from __future__ import annotations

import base64
import builtins
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import yaml

from immichcheck.deploy.expected_state import ExpectedState, load_expected_state
from tests.fakes.http_base import Request, Response
from tests.fakes.kube_cluster_state import (
    Controller,
    KubeClusterState,
    default_secret_data,
    status_response,
)
from tests.fakes.kube_crud import ResourceCrud
from tests.fakes.kube_exec import ExecHandler
from tests.fakes.kube_faults import ClusterFaults
from tests.fakes.kube_objects import KUBELET_VERSION, BuiltCluster, ClusterBuilder
from tests.fakes.kube_pod_streams import PodStreams
from tests.fakes.kube_rbac import exact_name
from tests.fakes.kube_store import RESOURCE_TYPES, ResourceStore, find_type, group_versions
from tests.fakes.tls import loopback_certificate

__all__ = ["FakeKubeCluster", "KubeClusterState"]


class FakeKubeCluster(ClusterFaults, ResourceCrud, PodStreams):
    """The fake API server plus its cluster state and fault-injection methods."""

    server_name = "kube-apiserver-fake"
    # Controllers every fresh cluster runs (group, plural) -> callback; extended by subclasses.
    default_controllers: Mapping[tuple[str, str], Controller] = {}

    def __init__(self, manifests_dir: str | Path | None = None) -> None:
        super().__init__()
        self.expected: ExpectedState = load_expected_state(manifests_dir)
        self.token = secrets.token_urlsafe(24)
        self.user = "immichcheck-test-admin"
        self.state = ResourceStore()
        self.built = BuiltCluster()
        self.secret_data: dict[str, dict[str, str]] = {}
        self.rbac_service_account: str | None = None
        self.denials: builtins.list[tuple[str, str, str | None, str | None]] = []
        self.endpoint_overrides: dict[str, builtins.list[str]] = {}
        self.port_routes: dict[tuple[str, int], tuple[str, int]] = {}
        self.exec_handlers: dict[str, ExecHandler] = {}
        self.controllers: dict[tuple[str, str], Controller] = {}
        self.requests: builtins.list[dict[str, Any]] = []
        self.kubeconfig_path: Path | None = None
        self._https_port = 0
        self._request_context = threading.local()
        self.reset()

    # Life cycle and state -------------------------------------------------------------------

    def start(self) -> Self:
        """Serve plain HTTP (`.url`) and HTTPS (`.https_url`, used by the kubeconfig)."""
        super().start()
        self._https_port = self.serve_tls(loopback_certificate().server_context())
        return self

    @property
    def https_url(self) -> str:
        """The TLS endpoint: kubectl sends a bearer token only over TLS."""
        return f"https://127.0.0.1:{self._https_port}"

    def reset(self, secret_data: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """Rebuild the healthy cluster from the manifests (new random secrets unless given)."""
        with self.lock:
            self.reset_knobs()
            self.state = ResourceStore()
            self.secret_data = (
                {name: dict(values) for name, values in secret_data.items()}
                if secret_data is not None
                else default_secret_data(self.expected)
            )
            self.built = ClusterBuilder(self.expected, self.state, self.secret_data).build()
            self.rbac_service_account = None
            self.denials = []
            self.endpoint_overrides = {}
            self.port_routes = {}
            self.exec_handlers = {}
            self.controllers = dict(self.default_controllers)
            self.requests = []
            self.refresh()

    def write_kubeconfig(self, path: str | Path, *, token: str | None = None) -> Path:
        """Write a kubeconfig (bearer-token user, namespace = the manifests' namespace)."""
        target = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fake",
                    "cluster": {
                        "server": self.https_url,
                        "certificate-authority-data": base64.b64encode(
                            loopback_certificate().ca_pem
                        ).decode(),
                    },
                }
            ],
            "users": [{"name": "fake-user", "user": {"token": token or self.token}}],
            "contexts": [
                {
                    "name": "fake",
                    "context": {
                        "cluster": "fake",
                        "user": "fake-user",
                        "namespace": self.expected.namespace,
                    },
                }
            ],
            "current-context": "fake",
            "preferences": {},
        }
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        target.chmod(0o600)
        if token is None:
            self.kubeconfig_path = target
        return target

    def service_account_env(self, folder: str | Path) -> dict[str, str]:
        """Write a pod's service-account folder for this cluster (token, CA, namespace) and
        return the environment a pod sees: the in-cluster variables and immichcheck's
        override of where the folder is mounted."""
        account = Path(folder)
        account.mkdir(parents=True, exist_ok=True)
        (account / "token").write_text(self.token)
        (account / "ca.crt").write_bytes(loopback_certificate().ca_pem)
        (account / "namespace").write_text(self.expected.namespace)
        return {
            "IMMICHCHECK_SERVICE_ACCOUNT_DIR": str(account),
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": self.https_url.rsplit(":", 1)[1],
        }

    def register_controller(self, group: str, plural: str, controller: Controller) -> None:
        """Call `controller(cluster, obj)` after each create of that resource (e.g. a Job)."""
        self.controllers[(group, plural)] = controller

    # HTTP -----------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Authenticate, route and log one request."""
        impersonate = request.headers.get("impersonate-user")
        if impersonate:
            # `kubectl --as=system:serviceaccount:<ns>:<name>`: the admin token may
            # impersonate; RBAC is then evaluated for that account.
            prefix, _, rest = impersonate.partition("system:serviceaccount:")
            namespace, _, account = rest.partition(":")
            home = namespace == self.expected.namespace and not prefix
            self._request_context.user = impersonate
            self._request_context.account = account if home else impersonate
        try:
            response = self._route(request)
        finally:
            self._request_context.user = None
            self._request_context.account = None
        with self.lock:
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "query": {k: v[0] for k, v in request.query.items()},
                    "status": response.status,
                }
            )
        return response

    def _route(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        if path in ("/healthz", "/livez", "/readyz"):
            return Response.text(200, "ok")
        authorization = request.headers.get("authorization", "")
        if authorization:
            if authorization != f"Bearer {self.token}":
                request.drain()
                return status_response(401, "Unauthorized", "Unauthorized")
        elif path != "/version":
            request.drain()
            return status_response(
                403,
                "Forbidden",
                f'forbidden: User "system:anonymous" cannot get path "{path}"',
            )
        if path == "/version":
            return Response.json(200, self._version())
        if path == "/api":
            return Response.json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}
                    ],
                },
            )
        if path == "/apis":
            return Response.json(200, self._group_list())
        if path.startswith(("/openapi", "/swagger")):
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        segments = [s for s in path.split("/") if s]
        if segments[0] == "api" and len(segments) >= 2:
            group, version, rest = "", segments[1], segments[2:]
        elif segments[0] == "apis" and len(segments) >= 2:
            if len(segments) == 2:
                return self._group(segments[1])
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        if (group, version) not in group_versions():
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        if not rest:
            return Response.json(200, self._resource_list(group, version))
        return self._resource_request(request, group, version, rest)

    def _version(self) -> dict[str, str]:
        return {
            "major": "1",
            "minor": "32",
            "gitVersion": KUBELET_VERSION,
            "gitCommit": "23e4a6b1f4ab77d7ab2d5e3f4b7c4f1de2d07a3c",
            "gitTreeState": "clean",
            "buildDate": "2025-04-23T20:48:33Z",
            "goVersion": "go1.23.6",
            "compiler": "gc",
            "platform": "linux/arm64",
        }

    def _group_entry(self, group: str) -> dict[str, Any]:
        versions = [v for g, v in group_versions() if g == group]
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def _group_list(self) -> dict[str, Any]:
        groups: builtins.list[dict[str, Any]] = []
        for group, _ in group_versions():
            if group and group not in [g["name"] for g in groups]:
                groups.append(self._group_entry(group))
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}

    def _group(self, group: str) -> Response:
        if group not in {g for g, _ in group_versions()}:
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        return Response.json(
            200, {"kind": "APIGroup", "apiVersion": "v1", **self._group_entry(group)}
        )

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources: builtins.list[dict[str, Any]] = []
        for resource in RESOURCE_TYPES:
            if (resource.group, resource.version) == (group, version):
                resources.extend(resource.discovery())
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    # Resource requests --------------------------------------------------------------------

    def _resource_request(
        self, request: Request, group: str, version: str, rest: builtins.list[str]
    ) -> Response:
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        resource = find_type(group, version, rest[0])
        if resource is None or (namespace is not None and not resource.namespaced):
            request.drain()
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        name = rest[1] if len(rest) >= 2 else None
        subresource = rest[2] if len(rest) >= 3 else None
        if len(rest) > 3 or (subresource and subresource not in resource.subresources):
            request.drain()
            return status_response(
                404, "NotFound", "the server could not find the requested resource"
            )
        verb = self._verb(request, name)
        authorized_name = name
        if verb in ("list", "watch"):
            # RBAC authorizes a list narrowed by `metadata.name=<x>` against resourceNames.
            authorized_name = exact_name(request.query_value("fieldSelector"))
        denied = self._authorize(verb, resource, subresource, namespace, authorized_name)
        if denied is None and subresource in ("portforward", "exec") and verb == "get":
            # Kubernetes >= 1.31 (AuthorizePodWebsocketUpgradeCreatePermission, on by
            # default) also requires `create` for a WebSocket upgrade of these subresources.
            denied = self._authorize("create", resource, subresource, namespace, name)
        if denied is not None:
            request.drain()
            return denied
        if subresource == "portforward":
            return self._port_forward(request, namespace or "", name or "")
        if subresource == "exec":
            return self._exec(request, namespace or "", name or "")
        with self.lock:
            if subresource == "log":
                return self._pod_log(request, resource, namespace, name or "")
            if request.method == "GET" and name is None:
                return self._list(request, resource, namespace)
            if request.method == "GET":
                return self._get(resource, namespace, name or "")
            if request.method == "POST" and name is None:
                return self._create(request, resource, namespace)
            if request.method == "DELETE" and name is not None:
                return self._delete(request, resource, namespace, name)
            if request.method == "PATCH" and name is not None:
                return self._patch(request, resource, namespace, name)
            if request.method == "PUT" and name is not None:
                return self._replace(request, resource, namespace, name)
        request.drain()
        return status_response(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

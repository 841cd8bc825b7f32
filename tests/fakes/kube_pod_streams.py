"""Pod streams of the fake Kubernetes API: port-forward, exec and logs.

Port-forward and exec speak the WebSocket channel protocols kr8s and kubectl use;
`route_port` puts a local server behind a pod's port and `set_exec_handler` answers
`kubectl exec`. Logs honour `container`, `previous`, `sinceSeconds`, `tailLines`,
`timestamps` and `limitBytes`, and refuse as the kubelet does for a waiting container.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from datetime import UTC, datetime, timedelta

from tests.fakes.http_base import OPCODE_BINARY, Request, Response, WebSocket, WebSocketClosed
from tests.fakes.kube_cluster_state import KubeClusterState, status_response
from tests.fakes.kube_exec import EXEC_PROTOCOLS, ExecHandler, serve_exec
from tests.fakes.kube_objects import PodLog
from tests.fakes.kube_store import ResourceType

# Raw channel protocols (channel byte + data); kr8s offers none, which means the same.
PORT_FORWARD_PROTOCOLS = ("v4.channel.k8s.io", "channel.k8s.io")


class PodStreams(KubeClusterState):
    """Port-forward, exec and log subresources of pods."""

    # Port-forward -------------------------------------------------------------------------

    def route_port(self, component: str, remote_port: int, address: tuple[str, int]) -> None:
        """Port-forwards to the component's pods on `remote_port` reach this local address.

        This is how tests put a real local PostgreSQL or Redis, or the fake Immich server,
        behind the cluster's pods: kr8s port-forward then reaches it through the API server.
        """
        with self.lock:
            self.port_routes[(component, remote_port)] = address

    def _port_forward(self, request: Request, namespace: str, name: str) -> Response:
        request.drain()
        if request.method != "GET" or request.headers.get("upgrade", "").lower() != "websocket":
            # kubectl's SPDY fallback (POST + Upgrade: SPDY/3.1) is not implemented here.
            return status_response(400, "BadRequest", "Upgrade request required")
        with self.lock:
            pod = self.state.get(self.resource("pods"), namespace, name)
            if pod is None:
                return self._not_found(self.resource("pods"), name)
            ports = request.query.get("ports") or []
            if not ports or not all(p.isdigit() for p in ports):
                return status_response(400, "BadRequest", "at least one port must be specified")
            port = int(ports[0])
            if pod["status"].get("phase") != "Running":
                return status_response(
                    400, "BadRequest",
                    f"unable to upgrade connection: pod {name} is not running",
                )  # fmt: skip
            component = self.built.pod_components.get((namespace, name))
            target = self.port_routes.get((component or "", port))
        uid = pod["metadata"]["uid"]

        def session(websocket: WebSocket) -> None:
            header = port.to_bytes(2, "little")
            websocket.send(OPCODE_BINARY, b"\x00" + header)
            websocket.send(OPCODE_BINARY, b"\x01" + header)
            failure = (
                f"error forwarding port {port} to pod {name}, uid {uid}: failed to connect "
                f"to localhost:{port} inside namespace {namespace}: connection refused"
            )
            if target is None:
                websocket.send(OPCODE_BINARY, b"\x01" + failure.encode())
                websocket.close()
                return
            try:
                upstream = socket.create_connection(target, timeout=5)
            except OSError:
                websocket.send(OPCODE_BINARY, b"\x01" + failure.encode())
                websocket.close()
                return
            upstream.settimeout(None)

            def upstream_to_client() -> None:
                try:
                    while data := upstream.recv(65536):
                        websocket.send(OPCODE_BINARY, b"\x00" + data)
                except (OSError, WebSocketClosed):
                    pass
                websocket.close()

            pump = threading.Thread(target=upstream_to_client, daemon=True)
            pump.start()
            try:
                while True:
                    _, payload = websocket.receive()
                    if payload[:1] == b"\x00" and len(payload) > 1:
                        upstream.sendall(payload[1:])
            except (OSError, WebSocketClosed):
                pass
            finally:
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_RDWR)
                upstream.close()
                pump.join(timeout=5)

        return self.websocket_response(request, session, protocols=PORT_FORWARD_PROTOCOLS)

    # Exec ------------------------------------------------------------------------------------

    def set_exec_handler(self, component: str, handler: ExecHandler) -> None:
        """`kubectl exec` into the component's pods runs `handler(argv)` (see kube_exec)."""
        with self.lock:
            self.exec_handlers[component] = handler

    def _exec(self, request: Request, namespace: str, name: str) -> Response:
        request.drain()
        argv = request.query.get("command") or []
        if not argv:
            return status_response(400, "BadRequest", "you must specify at least 1 command")
        if request.query_value("stdin") in ("true", "1"):
            # The handlers take argv only; a command reading stdin cannot be served.
            return status_response(400, "BadRequest", "stdin is not supported by the fake")
        with self.lock:
            pod = self.state.get(self.resource("pods"), namespace, name)
            if pod is None:
                return self._not_found(self.resource("pods"), name)
            containers = [c["name"] for c in pod["spec"].get("containers") or []]
            container = request.query_value("container") or (
                containers[0] if len(containers) == 1 else None
            )
            if container is None:
                return status_response(
                    400, "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(containers)}]",
                )  # fmt: skip
            if container not in containers:
                return status_response(
                    400, "BadRequest", f"container {container} is not valid for pod {name}"
                )
            running = any(
                c["name"] == container and "running" in (c.get("state") or {})
                for c in pod["status"].get("containerStatuses") or []
            )
            if pod["status"].get("phase") != "Running" or not running:
                return status_response(
                    400, "BadRequest",
                    f"unable to upgrade connection: container not found (\"{container}\")",
                )  # fmt: skip
            component = self.built.pod_components.get((namespace, name))
            handler = self.exec_handlers.get(component or "")
        # Checked after the pod: kubectl falls back to SPDY when the WebSocket upgrade is
        # refused, and shows the answer to that second request.
        if request.method != "GET" or request.headers.get("upgrade", "").lower() != "websocket":
            # kubectl's SPDY fallback (POST + Upgrade: SPDY/3.1) is not implemented here.
            return status_response(400, "BadRequest", "Upgrade request required")
        offered = request.headers.get("sec-websocket-protocol", "")
        if not any(p.strip() in EXEC_PROTOCOLS for p in offered.split(",")):
            return status_response(
                400, "BadRequest", f"no supported stream protocol in {offered!r}"
            )
        stdout = request.query_value("stdout") in ("true", "1")
        stderr = request.query_value("stderr") in ("true", "1")

        def session(websocket: WebSocket) -> None:
            serve_exec(websocket, handler, argv, stdout=stdout, stderr=stderr)

        return self.websocket_response(request, session, protocols=EXEC_PROTOCOLS)

    # Pod logs -------------------------------------------------------------------------------

    def append_log(self, component: str, line: str) -> None:
        """Add a line to the current log of the component's main container."""
        with self.lock:
            container = self.expected.component(component).container
            for pod in self.pods_of(component):
                key = (pod["metadata"]["namespace"], pod["metadata"]["name"], container)
                self.built.logs.setdefault(key, PodLog()).current.append((datetime.now(UTC), line))

    def _pod_log(
        self, request: Request, resource: ResourceType, namespace: str | None, name: str
    ) -> Response:
        pod = self.state.get(resource, namespace, name)
        if pod is None:
            return self._not_found(resource, name)
        containers = [c["name"] for c in pod["spec"].get("containers") or []]
        container = request.query_value("container")
        if container is None:
            if len(containers) != 1:
                return status_response(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(containers)}]",
                )
            container = containers[0]
        if container not in containers:
            return status_response(
                400, "BadRequest", f"container {container} is not valid for pod {name}"
            )
        status = next(
            (c for c in pod["status"].get("containerStatuses") or [] if c["name"] == container),
            None,
        )
        waiting = ((status or {}).get("state") or {}).get("waiting") or {}
        previous = request.query_value("previous") in ("true", "1")
        if status is None or (
            not previous
            and waiting.get("reason") in ("ImagePullBackOff", "ErrImagePull", "ContainerCreating")
        ):
            reason = waiting.get("reason", "ContainerCreating")
            detail = (
                "trying and failing to pull image"
                if "Image" in reason or "Pull" in reason
                else reason
            )
            return status_response(
                400,
                "BadRequest",
                f'container "{container}" in pod "{name}" is waiting to start: {detail}',
            )
        log = self.built.logs.get((namespace or "", name, container), PodLog())
        if previous:
            if not (status.get("lastState") or {}).get("terminated"):
                return status_response(
                    400,
                    "BadRequest",
                    f'previous terminated container "{container}" in pod "{name}" not found',
                )
            lines = list(log.previous)
        else:
            lines = list(log.current)
        since = request.query_value("sinceSeconds")
        if since and since.isdigit():
            cutoff = datetime.now(UTC) - timedelta(seconds=int(since))
            lines = [entry for entry in lines if entry[0] >= cutoff]
        tail = request.query_value("tailLines")
        if tail and tail.isdigit():
            lines = lines[-int(tail) :] if int(tail) else []
        with_timestamps = request.query_value("timestamps") in ("true", "1")
        text = "".join(
            (when.strftime("%Y-%m-%dT%H:%M:%S.%f000Z") + " " if with_timestamps else "")
            + line
            + "\n"
            for when, line in lines
        )
        limit = request.query_value("limitBytes")
        if limit and limit.isdigit():
            text = text.encode()[: int(limit)].decode("utf-8", "ignore")
        return Response.text(200, text)

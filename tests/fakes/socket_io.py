"""Engine.IO v4 / Socket.IO v5 server side, as the Immich server speaks it on /api/socket.io.

Immich's gateway (server/src/repositories/websocket.repository.ts) is
`@WebSocketGateway({cors: true, path: '/api/socket.io', transports: ['websocket']})`, so
only the WebSocket transport exists: engine.io (lib/server.ts, `verify`, `abortRequest`,
`abortUpgrade`) answers everything else itself, in this order: an unknown transport
(`polling` included) 400 `{"code":0,"message":"Transport unknown"}`; an unknown sid
`{"code":1,...}`; a handshake that is not a GET `{"code":2,"message":"Bad handshake
method"}`; `transport=websocket` without the Upgrade headers (a proxy dropped them)
`{"code":3,"message":"Bad request"}`; EIO other than 4 `{"code":5,"message":"Unsupported
protocol version"}`. Plain requests get JSON (with the CORS header `cors: true` adds); a
refused upgrade gets engine.io's raw `text/html` answer and a closed connection.

On connect Socket.IO acknowledges (`40{"sid":...}`) and then Immich authenticates: an
authenticated client gets `on_server_version`, an unauthenticated one gets
`42["error","unauthorized"]` and is disconnected (`41`). Tests push events with
`SocketHub.emit`.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.http_base import (
    OPCODE_TEXT,
    FakeHTTPServer,
    Request,
    Response,
    WebSocket,
    WebSocketClosed,
)

# Engine.IO packet types.
OPEN, CLOSE, PING, PONG, MESSAGE = "0", "1", "2", "3", "4"
# engine.io's error codes (Server.errors) and messages (Server.errorMessages).
UNKNOWN_TRANSPORT, UNKNOWN_SID, BAD_HANDSHAKE_METHOD, BAD_REQUEST = 0, 1, 2, 3
UNSUPPORTED_PROTOCOL_VERSION = 5
ERROR_MESSAGES = {
    UNKNOWN_TRANSPORT: "Transport unknown",
    UNKNOWN_SID: "Session ID unknown",
    BAD_HANDSHAKE_METHOD: "Bad handshake method",
    BAD_REQUEST: "Bad request",
    4: "Forbidden",
    UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


def compact(payload: Any) -> str:
    """JSON without spaces, as Engine.IO/Socket.IO servers write packets."""
    return json.dumps(payload, separators=(",", ":"))


@dataclass
class EngineSocket:
    """One Engine.IO session on its WebSocket."""

    sid: str
    user_id: str | None
    websocket: WebSocket
    connected: bool = False  # Socket.IO namespace "/" connected
    closed: bool = False
    received: list[str] = field(default_factory=list)

    def push(self, packet: str) -> None:
        """Send a packet over the session's WebSocket."""
        try:
            self.websocket.send(OPCODE_TEXT, packet.encode())
        except WebSocketClosed:
            self.closed = True


class SocketHub:
    """All Engine.IO sessions of one fake server."""

    def __init__(
        self,
        server: FakeHTTPServer,
        authenticate: Callable[[Request], str | None],
        greeting: Callable[[], Any],
    ) -> None:
        self.server = server
        self.authenticate = authenticate  # user id, or None when unauthenticated
        self.greeting = greeting  # payload of on_server_version
        self.ping_interval = 25.0
        self.ping_timeout = 20.0
        self.sockets: dict[str, EngineSocket] = {}
        self.lock = threading.Lock()

    def reset(self) -> None:
        """Drop every session (their WebSockets close)."""
        with self.lock:
            sockets, self.sockets = list(self.sockets.values()), {}
        for socket in sockets:
            socket.closed = True
            socket.websocket.close()

    def connected(self) -> list[EngineSocket]:
        """Sessions with a connected Socket.IO namespace."""
        with self.lock:
            return [s for s in self.sockets.values() if s.connected and not s.closed]

    def emit(self, event: str, payload: Any, *, user_id: str | None = None) -> int:
        """Send an event to connected clients (of one user if given); returns how many."""
        targets = [s for s in self.connected() if user_id is None or s.user_id == user_id]
        for socket in targets:
            socket.push(MESSAGE + "2" + compact([event, payload]))
        return len(targets)

    def _handshake(self, sid: str) -> str:
        """The open packet; no upgrades, the WebSocket is the only transport."""
        return OPEN + compact(
            {
                "sid": sid,
                "upgrades": [],
                "pingInterval": int(self.ping_interval * 1000),
                "pingTimeout": int(self.ping_timeout * 1000),
                "maxPayload": 1000000,
            }
        )

    def handle(self, request: Request) -> Response:
        """Serve /api/socket.io/ as engine.io does with `transports: ['websocket']`."""
        request.drain()
        upgrade = request.headers.get("upgrade", "").lower() == "websocket"
        if request.query_value("transport") != "websocket":
            return self._refuse(UNKNOWN_TRANSPORT, upgrade)
        sid = request.query_value("sid")
        if sid is not None:
            # Sessions start on the WebSocket, so no request ever joins one by its sid.
            with self.lock:
                known = sid in self.sockets
            return self._refuse(BAD_REQUEST if known else UNKNOWN_SID, upgrade)
        if request.method != "GET":
            return self._refuse(BAD_HANDSHAKE_METHOD, upgrade)
        if not upgrade:
            return self._refuse(BAD_REQUEST, upgrade)
        if request.query_value("EIO") != "4":
            return self._refuse(UNSUPPORTED_PROTOCOL_VERSION, upgrade)
        user_id = self.authenticate(request)
        return self.server.websocket_response(request, lambda ws: self._serve(user_id, ws))

    @staticmethod
    def _refuse(code: int, upgrade: bool) -> Response:
        """engine.io's error answers: `abortUpgrade` for an upgrade, else `abortRequest`."""
        message = ERROR_MESSAGES[code]
        if upgrade:
            return Response(
                400, message.encode(), {"Connection": "close", "Content-type": "text/html"}
            )
        return Response(
            400,
            compact({"code": code, "message": message}).encode(),
            {"Content-Type": "application/json", "Access-Control-Allow-Origin": "*"},
        )

    def _on_packet(self, socket: EngineSocket, packet: str) -> None:
        """React to one client packet as engine.io v4 and Immich's gateway do."""
        socket.received.append(packet)
        if packet in (PING, CLOSE):
            # In Engine.IO v4 the server pings; a client ping is "invalid heartbeat
            # direction" and, like a close packet, ends the session.
            socket.closed = True
            return
        if packet.startswith(MESSAGE + "0"):  # Socket.IO CONNECT to namespace "/"
            # Socket.IO acknowledges first; Immich's handleConnection then authenticates.
            socket.push(MESSAGE + "0" + compact({"sid": secrets.token_urlsafe(15)}))
            if socket.user_id is None:
                socket.push(MESSAGE + "2" + compact(["error", "unauthorized"]))
                socket.push(MESSAGE + "1")
                return
            socket.connected = True
            socket.push(MESSAGE + "2" + compact(["on_server_version", self.greeting()]))
            return
        if packet.startswith(MESSAGE + "1"):  # Socket.IO DISCONNECT
            socket.connected = False

    def _serve(self, user_id: str | None, websocket: WebSocket) -> None:
        """Open a session on a new WebSocket and serve it until either side closes."""
        socket = EngineSocket(secrets.token_urlsafe(15), user_id, websocket)
        with self.lock:
            self.sockets[socket.sid] = socket
        socket.push(self._handshake(socket.sid))
        stop = threading.Event()

        def pinger() -> None:
            while not stop.wait(self.ping_interval):
                try:
                    websocket.send(OPCODE_TEXT, PING.encode())
                except WebSocketClosed:
                    return

        threading.Thread(target=pinger, daemon=True).start()
        try:
            while not socket.closed:
                _, payload = websocket.receive()
                self._on_packet(socket, payload.decode("utf-8", "replace"))
        except WebSocketClosed:
            pass
        finally:
            stop.set()
            socket.closed = True
            websocket.close()

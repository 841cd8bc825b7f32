"""Engine.IO v4 / Socket.IO v5 server side, as the Immich server speaks it on /api/socket.io.

Long-polling and WebSocket transports, the polling-to-WebSocket upgrade, pings, and
Immich's behaviour on connect: an authenticated client gets `on_server_version`, an
unauthenticated one is disconnected. Tests push events with `SocketHub.emit`.
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
OPEN, CLOSE, PING, PONG, MESSAGE, UPGRADE, NOOP = "0", "1", "2", "3", "4", "5", "6"
RECORD_SEPARATOR = "\x1e"


def compact(payload: Any) -> str:
    """JSON without spaces, as Engine.IO/Socket.IO servers write packets."""
    return json.dumps(payload, separators=(",", ":"))


@dataclass
class EngineSocket:
    """One Engine.IO session: its polling outbox, its WebSocket once upgraded."""

    sid: str
    user_id: str | None
    connected: bool = False  # Socket.IO namespace "/" connected
    closed: bool = False
    outbox: list[str] = field(default_factory=list)
    websocket: WebSocket | None = None
    wakeup: threading.Condition = field(default_factory=threading.Condition)
    received: list[str] = field(default_factory=list)

    def push(self, packet: str) -> None:
        """Deliver a packet: over the WebSocket if upgraded, else queue it for the next poll."""
        with self.wakeup:
            websocket = self.websocket
            if websocket is None:
                self.outbox.append(packet)
                self.wakeup.notify_all()
                return
        try:
            websocket.send(OPCODE_TEXT, packet.encode())
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
        """Drop every session (clients see their sid rejected)."""
        with self.lock:
            sockets, self.sockets = list(self.sockets.values()), {}
        for socket in sockets:
            socket.closed = True
            with socket.wakeup:
                socket.wakeup.notify_all()
            if socket.websocket is not None:
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

    def _handshake(self, sid: str, upgrades: list[str]) -> str:
        return OPEN + compact(
            {
                "sid": sid,
                "upgrades": upgrades,
                "pingInterval": int(self.ping_interval * 1000),
                "pingTimeout": int(self.ping_timeout * 1000),
                "maxPayload": 1000000,
            }
        )

    def handle(self, request: Request) -> Response:
        """Serve /api/socket.io/ for both transports."""
        if request.query_value("EIO") != "4":
            request.drain()
            return Response.json(400, {"code": 5, "message": "Unsupported protocol version"})
        transport = request.query_value("transport")
        if transport not in ("polling", "websocket"):
            request.drain()
            return Response.json(400, {"code": 0, "message": "Transport unknown"})
        sid = request.query_value("sid")
        if sid is None:
            if request.method != "GET":
                request.drain()
                return Response.json(400, {"code": 3, "message": "Bad request"})
            socket = EngineSocket(secrets.token_urlsafe(15), self.authenticate(request))
            with self.lock:
                self.sockets[socket.sid] = socket
            if transport == "websocket":
                return self.server.websocket_response(
                    request, lambda ws: self._run_websocket(socket, ws, fresh=True)
                )
            return Response.text(200, self._handshake(socket.sid, ["websocket"]))
        with self.lock:
            existing = self.sockets.get(sid)
        if existing is None or existing.closed:
            request.drain()
            return Response.json(400, {"code": 1, "message": "Session ID unknown"})
        if transport == "websocket":
            return self.server.websocket_response(
                request, lambda ws: self._run_websocket(existing, ws, fresh=False)
            )
        if request.method == "POST":
            for packet in request.body().decode("utf-8", "replace").split(RECORD_SEPARATOR):
                self._on_packet(existing, packet)
            return Response.text(200, "ok")
        return Response.text(200, self._poll(existing))

    def _poll(self, socket: EngineSocket) -> str:
        """Hold a long-poll until something is queued, or answer with a ping."""
        with socket.wakeup:
            if not socket.outbox and socket.websocket is None and not socket.closed:
                socket.wakeup.wait(timeout=min(self.ping_interval, 5.0))
            if socket.websocket is not None:
                return NOOP  # a poll that races the upgrade is closed with a noop
            if socket.closed:
                return CLOSE
            packets = list(socket.outbox) or [PING]
            socket.outbox.clear()
        return RECORD_SEPARATOR.join(packets)

    def _on_packet(self, socket: EngineSocket, packet: str) -> str | None:
        """React to one client packet; returns a direct reply for the WebSocket, if any."""
        socket.received.append(packet)
        if packet == PING + "probe":
            return PONG + "probe"
        if packet == PING:
            return PONG
        if packet == CLOSE:
            socket.closed = True
            return None
        if packet.startswith(MESSAGE + "0"):  # Socket.IO CONNECT to namespace "/"
            if socket.user_id is None:
                # Immich disconnects clients it cannot authenticate.
                socket.push(MESSAGE + "1")
                return None
            socket.connected = True
            socket.push(MESSAGE + "0" + compact({"sid": secrets.token_urlsafe(15)}))
            socket.push(MESSAGE + "2" + compact(["on_server_version", self.greeting()]))
            return None
        if packet.startswith(MESSAGE + "1"):  # Socket.IO DISCONNECT
            socket.connected = False
        return None

    def _run_websocket(self, socket: EngineSocket, websocket: WebSocket, *, fresh: bool) -> None:
        """Serve one WebSocket until either side closes."""
        stop = threading.Event()
        if fresh:
            websocket.send(OPCODE_TEXT, self._handshake(socket.sid, []).encode())
            self._attach(socket, websocket)

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
                packet = payload.decode("utf-8", "replace")
                if packet == UPGRADE:
                    self._attach(socket, websocket)
                    continue
                reply = self._on_packet(socket, packet)
                if reply is not None:
                    websocket.send(OPCODE_TEXT, reply.encode())
        except WebSocketClosed:
            pass
        finally:
            stop.set()
            socket.closed = True
            websocket.close()

    @staticmethod
    def _attach(socket: EngineSocket, websocket: WebSocket) -> None:
        """Switch the session to the WebSocket and flush what polling had queued."""
        with socket.wakeup:
            socket.websocket = websocket
            pending, socket.outbox = socket.outbox, []
            socket.wakeup.notify_all()
        for packet in pending:
            websocket.send(OPCODE_TEXT, packet.encode())

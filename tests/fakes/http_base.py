"""Shared plumbing for the fakes: a threaded loopback HTTP server, replies and multipart parsing."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import ssl
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qs, urlsplit

from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:  # the TypedDict exists only for type checkers
    from python_multipart.multipart import MultipartCallbacks

# A file part keeps only its head in memory: enough to read an image header, while the
# SHA-1 and size cover the whole stream so large uploads cost no memory.
FILE_HEAD_BYTES = 256 * 1024
READ_CHUNK_BYTES = 64 * 1024
FAIL_MODES = (None, "500", "garbage", "hang")
# A hung request is released after this long (or when the server stops), so a client without
# a timeout cannot wedge the test session forever.
HANG_SECONDS = 60.0


@dataclass
class Request:
    """One parsed HTTP request as the fakes' route functions see it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    handler: BaseHTTPRequestHandler
    body_read: bool = False
    _body: bytes = b""

    def query_value(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter, or the default."""
        values = self.query.get(name)
        return values[0] if values else default

    @property
    def content_length(self) -> int:
        """Declared request body size in bytes (0 when absent or malformed)."""
        try:
            return max(int(self.headers.get("content-length", "0")), 0)
        except ValueError:
            return 0

    def body(self) -> bytes:
        """The whole request body (read once, then cached)."""
        if not self.body_read:
            self._body = (
                self.handler.rfile.read(self.content_length) if self.content_length else b""
            )
            self.body_read = True
        return self._body

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError when it is not JSON."""
        raw = self.body()
        if not raw:
            raise ValueError("empty body")
        return json.loads(raw)

    def drain(self) -> None:
        """Read and discard the body so the connection stays usable for keep-alive."""
        if self.body_read:
            return
        remaining = self.content_length
        while remaining > 0:
            chunk = self.handler.rfile.read(min(READ_CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
        self.body_read = True

    def form(self) -> MultipartForm:
        """Form fields of a multipart or urlencoded body (FastAPI's Form() accepts both)."""
        content_type, _ = parse_options_header(self.headers.get("content-type", ""))
        if content_type == b"application/x-www-form-urlencoded":
            pairs = parse_qs(self.body().decode("utf-8", "replace"), keep_blank_values=True)
            return MultipartForm(fields={key: values[0] for key, values in pairs.items()})
        return self.multipart()

    def multipart(self) -> MultipartForm:
        """Stream-parse a multipart/form-data body into fields and hashed file parts."""
        content_type, options = parse_options_header(self.headers.get("content-type", ""))
        if content_type != b"multipart/form-data" or b"boundary" not in options:
            raise ValueError("not multipart/form-data")
        form = MultipartForm()
        collector = _PartCollector(form)
        parser = MultipartParser(options[b"boundary"], collector.callbacks())
        remaining = self.content_length
        while remaining > 0:
            chunk = self.handler.rfile.read(min(READ_CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            parser.write(chunk)
        parser.finalize()
        self.body_read = True
        return form


@dataclass
class FilePart:
    """A file part of a multipart body: name, declared filename, size, SHA-1 and first bytes."""

    name: str
    filename: str
    content_type: str
    size: int
    sha1: bytes
    head: bytes


@dataclass
class MultipartForm:
    """Fields (text) and files of a multipart/form-data body."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, FilePart] = field(default_factory=dict)


class _PartCollector:
    """Callbacks for python-multipart's streaming parser that fill a MultipartForm."""

    def __init__(self, form: MultipartForm) -> None:
        self.form = form
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._data = bytearray()
        self._hash = hashlib.sha1()
        self._size = 0

    def callbacks(self) -> MultipartCallbacks:
        """The callback mapping MultipartParser expects."""
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field_data,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._headers = {}
        self._data = bytearray()
        self._hash = hashlib.sha1()
        self._size = 0

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = b""
        self._header_value = b""

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        self._hash.update(piece)
        self._size += len(piece)
        if len(self._data) < FILE_HEAD_BYTES:
            self._data += piece[: FILE_HEAD_BYTES - len(self._data)]

    def _part_end(self) -> None:
        _, disposition = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in disposition:
            self.form.files[name] = FilePart(
                name=name,
                filename=disposition[b"filename"].decode("utf-8", "replace"),
                content_type=self._headers.get(b"content-type", b"").decode("latin-1"),
                size=self._size,
                sha1=self._hash.digest(),
                head=bytes(self._data),
            )
        else:
            self.form.fields[name] = bytes(self._data).decode("utf-8", "replace")


@dataclass
class Response:
    """What a route returns: status, body bytes and headers."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # For 101 Switching Protocols: takes over the connection after the headers are sent.
    upgrade: Callable[[WebSocket], None] | None = None

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
        """A JSON response."""
        merged = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status, json.dumps(payload).encode(), merged)

    @classmethod
    def text(
        cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8"
    ) -> Response:
        """A plain text response."""
        return cls(status, text.encode(), {"Content-Type": content_type})

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        """A response without a body (204 No Content by default)."""
        return cls(status, b"", {})


WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA


class WebSocketClosed(Exception):
    """The peer closed the WebSocket (or the TCP connection)."""


class WebSocket:
    """Server side of an upgraded connection: RFC 6455 frames over the handler's streams."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self._rfile = handler.rfile
        self._wfile = handler.wfile
        self._send_lock = threading.Lock()
        self.closed = False

    def _read_exact(self, count: int) -> bytes:
        data = self._rfile.read(count)
        if data is None or len(data) < count:
            raise WebSocketClosed("connection closed")
        return bytes(data)

    def receive(self) -> tuple[int, bytes]:
        """Next data message (opcode, payload); answers pings; raises WebSocketClosed."""
        message = bytearray()
        message_opcode = 0
        while True:
            first, second = self._read_exact(2)
            opcode = first & 0x0F
            length = second & 0x7F
            if length == 126:
                length = int.from_bytes(self._read_exact(2), "big")
            elif length == 127:
                length = int.from_bytes(self._read_exact(8), "big")
            mask = self._read_exact(4) if second & 0x80 else b""
            payload = self._read_exact(length)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode == OPCODE_CLOSE:
                self.close()
                raise WebSocketClosed("peer sent close")
            if opcode == OPCODE_PING:
                self.send(OPCODE_PONG, payload)
                continue
            if opcode == OPCODE_PONG:
                continue
            if opcode:
                message_opcode = opcode
            message += payload
            if first & 0x80:
                return message_opcode, bytes(message)

    def send(self, opcode: int, payload: bytes) -> None:
        """Send one unmasked frame (servers never mask)."""
        length = len(payload)
        if length < 126:
            header = bytes([0x80 | opcode, length])
        elif length < 1 << 16:
            header = bytes([0x80 | opcode, 126]) + length.to_bytes(2, "big")
        else:
            header = bytes([0x80 | opcode, 127]) + length.to_bytes(8, "big")
        with self._send_lock:
            if self.closed and opcode != OPCODE_CLOSE:
                raise WebSocketClosed("already closed")
            try:
                self._wfile.write(header + payload)
                self._wfile.flush()
            except OSError as exc:
                self.closed = True
                raise WebSocketClosed(str(exc)) from exc

    def close(self, code: int = 1000) -> None:
        """Send a close frame once."""
        if self.closed:
            return
        with contextlib.suppress(WebSocketClosed):
            self.send(OPCODE_CLOSE, code.to_bytes(2, "big"))
        self.closed = True


class _QuietThreadingServer(ThreadingHTTPServer):
    """Prints no traceback for a client that went away mid-answer (killed, timed out): that
    is routine for a server, and the traceback would land in whichever test runs next."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError | TimeoutError):
            return
        super().handle_error(request, client_address)


class FakeHTTPServer(ABC):
    """Base of the fakes: serves `handle(request)` on 127.0.0.1:<free port> in a thread.

    Subclasses implement `handle` and may use the shared knobs `latency` (seconds added to
    every request) and `fail_mode` (None, "500", "garbage" or "hang").
    """

    server_name = "fake"

    def __init__(self) -> None:
        self.latency: float = 0.0
        self.fail_mode: str | None = None
        self.lock = threading.RLock()
        self._release_hangs = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    # Life cycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind a free loopback port and serve plain HTTP in a daemon thread."""
        self._release_hangs.clear()
        self._httpd = self._serve(None)
        return self

    def serve_tls(self, context: ssl.SSLContext) -> int:
        """Also serve HTTPS (same routes) on another free loopback port; returns the port."""
        httpd = self._serve(context)
        return int(httpd.server_address[1])

    def _serve(self, context: ssl.SSLContext | None) -> ThreadingHTTPServer:
        httpd = _QuietThreadingServer(("127.0.0.1", 0), _make_handler(self))
        httpd.daemon_threads = True
        if context is not None:
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        # A short poll interval keeps stop() (and so session teardown) quick.
        thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.server_name}-http",
            daemon=True,
        )
        thread.start()
        self._servers.append((httpd, thread))
        return httpd

    def stop(self) -> None:
        """Stop serving and release hung requests."""
        self._release_hangs.set()
        for httpd, thread in self._servers:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)
        self._servers = []
        self._httpd = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._httpd is None:
            raise RuntimeError(f"{self.server_name} is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:41234."""
        return f"http://127.0.0.1:{self.port}"

    def reset_knobs(self) -> None:
        """Back to no latency, no failure; lets hung requests go."""
        self.latency = 0.0
        self.fail_mode = None
        # Release any request hung by a previous test, then re-arm for the next one.
        self._release_hangs.set()
        self._release_hangs = threading.Event()

    # Request handling ---------------------------------------------------------------------

    @abstractmethod
    def handle(self, request: Request) -> Response:
        """Answer one request; each fake implements its routes here."""

    def websocket_response(
        self,
        request: Request,
        session: Callable[[WebSocket], None],
        *,
        protocols: tuple[str, ...] = (),
    ) -> Response:
        """Accept a WebSocket upgrade (RFC 6455) and hand the connection to `session`."""
        key = request.headers.get("sec-websocket-key", "")
        if request.headers.get("upgrade", "").lower() != "websocket" or not key:
            return Response.json(400, {"message": "Upgrade request required"})
        accept = base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()).decode()
        headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": accept}
        offered = [p.strip() for p in request.headers.get("sec-websocket-protocol", "").split(",")]
        chosen = next((p for p in protocols if p in offered), None)
        if chosen:
            headers["Sec-WebSocket-Protocol"] = chosen
        return Response(101, b"", headers, upgrade=session)

    def failure_response(self, request: Request) -> Response | None:
        """Apply `fail_mode`: a 500, a garbage 200 body, or a hang; None when healthy."""
        mode = self.fail_mode
        if mode is None:
            return None
        if mode not in FAIL_MODES:
            raise ValueError(f"unknown fail_mode {mode!r}; expected one of {FAIL_MODES}")
        request.drain()
        if mode == "500":
            return self.internal_error_response()
        if mode == "garbage":
            # Says JSON but is not: a proxy error page or a truncated body looks like this.
            return Response(
                200,
                b"\x00<html>502 Bad Gateway</html>\xff{not json",
                {"Content-Type": "application/json"},
            )
        self._release_hangs.wait(HANG_SECONDS)
        return Response.text(504, "released from hang")

    def internal_error_response(self) -> Response:
        """The body a real server sends on an unhandled error."""
        return Response.json(
            500,
            {
                "message": "Internal server error",
                "statusCode": 500,
                "error": "Internal Server Error",
            },
        )


def _make_handler(fake: FakeHTTPServer) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to one fake instance."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = fake.server_name
        # Headers and body go out in two writes; with Nagle's algorithm the body waits for
        # the client's delayed ACK, adding about 40 ms to every keep-alive request.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            # Tests read the fakes' own request logs; stderr noise helps nobody.
            return

        def _dispatch(self) -> None:
            parts = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={key.lower(): value for key, value in self.headers.items()},
                handler=self,
            )
            if fake.latency > 0:
                time.sleep(fake.latency)
            try:
                response = fake.failure_response(request) or fake.handle(request)
            except Exception:  # a bug in a fake must show up as a 500, not a dead socket
                request.drain()
                response = fake.internal_error_response()
            if not request.body_read and request.content_length:
                # The route answered without reading the body (for example an early
                # duplicate reply): close rather than leave unread bytes on the socket.
                response.headers["Connection"] = "close"
                self.close_connection = True
            self._send(response)

        def _send(self, response: Response) -> None:
            if response.upgrade is not None:
                self.send_response(101)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.flush()
                self.close_connection = True
                response.upgrade(WebSocket(self))
                return
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD" and response.body:
                try:
                    self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        do_GET = _dispatch
        do_POST = _dispatch
        do_PUT = _dispatch
        do_PATCH = _dispatch
        do_DELETE = _dispatch
        do_HEAD = _dispatch
        do_OPTIONS = _dispatch

    return Handler

"""Loopback reverse proxies that break the way real ones do, for the access checks' tests.

`ReverseProxy` stands where ingress-nginx, an nginx/Caddy reverse proxy or a tunnel stands: it
accepts HTTP or HTTPS (with a certificate of a chosen age) and forwards each request to an
upstream (the fake Immich server). Knobs reproduce the failures users report:

- `body_limit`: count the body while streaming it upstream and answer nginx's 413 page as
  soon as it passes the limit (ingress-nginx's `proxy-body-size` with request buffering off);
- `websocket`: "pass" tunnels an upgrade to the upstream (the fake server speaks socket.io
  over websockets), "strip" drops the Upgrade and Connection headers and forwards a plain GET
  (nginx without `proxy_set_header Upgrade`), and "refuse" answers 400 itself;
- `tls`: a server SSLContext, see `make_certificate` for expiring and expired certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

from tests.fakes.tls import make_ca, make_server_certificate

NGINX_413 = (
    b"<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n"
    b"<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
_CHUNK = 64 * 1024
_HOP_BY_HOP = {"connection", "keep-alive", "upgrade", "proxy-connection", "te", "trailer"}


class _LoopThread:
    """An asyncio loop in a daemon thread that serves one `asyncio.Server`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._server: asyncio.Server | None = None
        self.port = 0

    def serve(
        self,
        handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        context: ssl.SSLContext | None,
    ) -> int:
        self._thread.start()

        async def start() -> asyncio.Server:
            return await asyncio.start_server(handler, "127.0.0.1", 0, ssl=context)

        self._server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(5)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            server = self._server

            async def close() -> None:
                server.close()
                # Connections still open (a test that failed halfway) must not block the stop.
                for task in asyncio.all_tasks():
                    if task is not asyncio.current_task():
                        task.cancel()

            asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, list[tuple[str, str]]] | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        return None
    lines = raw.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _header(headers: list[tuple[str, str]], name: str) -> str:
    return next((v for k, v in headers if k.lower() == name), "")


def _encode_head(first_line: str, headers: list[tuple[str, str]]) -> bytes:
    text = first_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return text.encode("latin-1")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_CHUNK):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, RuntimeError):
            writer.close()


class ReverseProxy:
    """A one-request-per-connection reverse proxy on 127.0.0.1 with failure knobs."""

    def __init__(
        self,
        upstream: str,
        *,
        body_limit: int | None = None,
        websocket: str = "pass",
        tls: ssl.SSLContext | None = None,
        server_header: str = "nginx",
    ) -> None:
        if websocket not in ("pass", "strip", "refuse"):
            raise ValueError(f"websocket must be pass, strip or refuse, not {websocket!r}")
        self.upstream = urlsplit(upstream)
        self.body_limit = body_limit
        self.websocket = websocket
        self.tls = tls
        self.server_header = server_header
        self.requests: list[dict[str, Any]] = []
        self._runner = _LoopThread("test-reverse-proxy")

    def start(self) -> Self:
        """Serve on a free loopback port."""
        self._runner.serve(self._handle, self.tls)
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._runner.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        """127.0.0.1:<port>, for --node-ip / --ingress-ip."""
        return f"127.0.0.1:{self._runner.port}"

    @property
    def url(self) -> str:
        """http(s)://127.0.0.1:<port>."""
        return f"{'https' if self.tls else 'http'}://{self.address}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await _read_head(reader)
            if head is None:
                return
            request_line, headers = head
            upgrade = _header(headers, "upgrade").lower() == "websocket"
            record = {"line": request_line, "host": _header(headers, "host"), "upgrade": upgrade}
            self.requests.append(record)
            if upgrade and self.websocket == "refuse":
                await self._answer(writer, 400, b"websocket not allowed here")
                return
            if upgrade and self.websocket == "pass":
                await self._tunnel(reader, writer, request_line, headers)
                return
            await self._forward(reader, writer, request_line, headers, record)
        finally:
            with contextlib.suppress(ConnectionError, RuntimeError):
                writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
        reason = {400: "Bad Request", 413: "Request Entity Too Large", 502: "Bad Gateway"}
        headers = [
            ("Server", self.server_header),
            ("Content-Type", "text/html"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
        writer.write(_encode_head(f"HTTP/1.1 {status} {reason.get(status, 'Error')}", headers))
        writer.write(body)
        with contextlib.suppress(ConnectionError):
            await writer.drain()

    def _upstream_headers(self, headers: list[tuple[str, str]], keep_upgrade: bool) -> list:
        kept = [
            (k, v)
            for k, v in headers
            if k.lower() not in _HOP_BY_HOP or (keep_upgrade and k.lower() in ("upgrade",))
        ]
        kept.append(("X-Forwarded-Proto", "https" if self.tls else "http"))
        kept.append(("X-Forwarded-For", "127.0.0.1"))
        kept.append(("Connection", "Upgrade" if keep_upgrade else "close"))
        return kept

    async def _tunnel(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request_line: str,
        headers: list[tuple[str, str]],
    ) -> None:
        target = self.upstream
        up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port)
        up_writer.write(_encode_head(request_line, self._upstream_headers(headers, True)))
        await up_writer.drain()
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def _forward(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        request_line: str,
        headers: list[tuple[str, str]],
        record: dict[str, Any],
    ) -> None:
        length_text = _header(headers, "content-length")
        length = int(length_text) if length_text.isdigit() else 0
        up_reader, up_writer = await asyncio.open_connection(
            self.upstream.hostname, self.upstream.port
        )
        try:
            up_writer.write(_encode_head(request_line, self._upstream_headers(headers, False)))
            remaining, seen = length, 0
            while remaining > 0:
                chunk = await reader.read(min(_CHUNK, remaining))
                if not chunk:
                    return
                seen += len(chunk)
                remaining -= len(chunk)
                if self.body_limit is not None and seen > self.body_limit:
                    # Like nginx counting a streamed body: 413 the moment it is over the limit.
                    record["refused_after"] = seen
                    await self._answer(writer, 413, NGINX_413)
                    return
                up_writer.write(chunk)
                await up_writer.drain()
            response = await _read_head(up_reader)
            if response is None:
                await self._answer(writer, 502, b"upstream closed")
                return
            status_line, response_headers = response
            kept = [(k, v) for k, v in response_headers if k.lower() not in _HOP_BY_HOP]
            kept.append(("Connection", "close"))
            writer.write(_encode_head(status_line, kept))
            await writer.drain()
            await _pipe(up_reader, writer)
        finally:
            up_writer.close()


# Certificates -----------------------------------------------------------------------------


def make_certificate(
    folder: Path,
    *,
    days_left: float,
    names: tuple[str, ...] = ("127.0.0.1", "localhost"),
) -> tuple[Path, ssl.SSLContext, datetime.datetime]:
    """A fresh CA (written to folder/ca.pem) and a server context whose leaf has `days_left`."""
    now = datetime.datetime.now(datetime.UTC)
    not_after = now + datetime.timedelta(days=days_left)
    not_before = min(now, not_after) - datetime.timedelta(days=90)
    year = datetime.timedelta(days=365)
    ca_key, ca_cert = make_ca("immichcheck-access-test-ca", now - year, now + year)
    certificate = make_server_certificate(
        ca_key,
        ca_cert,
        common_name=names[0],
        names=names,
        not_before=not_before,
        not_after=not_after,
    )
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(certificate.ca_pem)
    return ca_file, certificate.server_context(), not_after

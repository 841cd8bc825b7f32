"""How large a request body a way in lets through to `POST /api/assets`.

The probe posts an unauthenticated `application/octet-stream` body. In a real Immich server
the global auth guard runs before the upload interceptor (multer), so the request is
answered 401 and nothing is stored; Node then reads and discards the rest of the body. A
proxy in front decides on its own: ingress-nginx checks `Content-Length` against
`proxy-body-size` (413 before any byte is sent upstream), a Cloudflare tunnel rejects bodies
over its plan limit. So a 401 means the whole body passed the path and a 413 means something
on the way refused it. The probe reads the answer while it is still sending, because proxies
answer 413 early and then close the connection.
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from immichcheck.clients import ProbeError
from immichcheck.clients.access_tls import unverified_context
from immichcheck.clients.access_ways import SAMPLE, UPLOAD_PATH, WayIn, kept_headers

_CHUNK = 256 * 1024
# Bisection stops when the bounds are this close (a ratio) or after this many attempts.
_BISECT_RATIO = 1.25
_BISECT_ATTEMPTS = 7
_SMALLEST_PROBE = 64 * 1024


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and up to a few KiB of body of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ProbeError(f"not an HTTP response: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length", "")
    body = b""
    try:
        if length.isdigit():
            body = await reader.readexactly(min(int(length), 4096))
        else:
            body = await asyncio.wait_for(reader.read(4096), 0.5)
    except (asyncio.IncompleteReadError, TimeoutError, OSError):
        pass  # the status line is the answer; the body is only evidence
    return int(parts[1]), headers, body


def rejected_by(status: int, headers: Mapping[str, str], body: bytes) -> str:
    """Who answered: 'server' for Immich's NestJS error JSON, else the proxy's own name."""
    try:
        parsed = json.loads(body.decode("utf-8", "replace")) if body else None
    except json.JSONDecodeError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("statusCode") == status:
        return "server"
    if "cf-ray" in headers or headers.get("server", "").lower() == "cloudflare":
        return "cloudflare"
    server = headers.get("server", "").split("/")[0].strip().lower()
    return server or "proxy"


async def post_body(
    way: WayIn, size: int, context: ssl.SSLContext | None, timeout: float
) -> dict[str, Any]:
    """Stream `size` bytes to POST /api/assets (no auth); read the answer even mid-body."""
    host, port = way.connect_address()
    server_name = way.server_name or host
    started = time.perf_counter()
    attempt: dict[str, Any] = {"bytes": size, "status": None, "sent": 0, "error": ""}
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(
                host,
                port,
                ssl=context,
                server_hostname=server_name if context is not None else None,
            )
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        attempt["error"] = f"cannot connect: {exc or type(exc).__name__}"
        attempt["seconds"] = time.perf_counter() - started
        return attempt
    host_header = way.host_header or urlsplit(way.base_url).netloc
    request_head = (
        f"POST {way.path_prefix}{UPLOAD_PATH} HTTP/1.1\r\n"
        f"Host: {host_header}\r\n"
        "User-Agent: immichcheck body-limit probe\r\n"
        "Content-Type: application/octet-stream\r\n"
        f"Content-Length: {size}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    answer = asyncio.ensure_future(_read_head(reader))
    chunk = bytes(_CHUNK)
    try:
        writer.write(request_head)
        while attempt["sent"] < size and not answer.done():
            piece = min(_CHUNK, size - attempt["sent"])
            writer.write(chunk[:piece] if piece < _CHUNK else chunk)
            async with asyncio.timeout(timeout):
                await writer.drain()
            attempt["sent"] += piece
    except TimeoutError:
        attempt["error"] = f"sending stalled for {timeout:g} s"
    except (OSError, ssl.SSLError) as exc:
        attempt["error"] = f"the connection closed while sending: {exc or type(exc).__name__}"
    try:
        async with asyncio.timeout(timeout):
            status, headers, body = await answer
        attempt.update(
            status=status,
            headers=kept_headers(headers),
            text=body.decode("utf-8", "replace")[:SAMPLE],
            by=rejected_by(status, headers, body),
        )
    except (TimeoutError, asyncio.IncompleteReadError, OSError, ssl.SSLError, ProbeError) as exc:
        answer.cancel()
        if not attempt["error"]:
            text = str(exc) or type(exc).__name__
            attempt["error"] = f"no HTTP answer: {text}"
    finally:
        writer.close()
    attempt["seconds"] = time.perf_counter() - started
    return attempt


def body_passed(attempt: Mapping[str, Any]) -> bool:
    """The body reached the server: it answered (401 from the auth guard), not 413/408/5xx."""
    status = attempt.get("status")
    return isinstance(status, int) and status < 500 and status not in (408, 413)


async def body_limit_facts(
    way: WayIn,
    size: int,
    ca_file: str | None,
    timeout: float,
    budget: float,
    post: Callable[[int], Awaitable[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The full size first; when refused, geometric bisection for the largest size that passes."""
    context: ssl.SSLContext | None = None
    if way.scheme == "https":
        # The certificate is judged by the TLS checks; here only the body limit matters.
        context = unverified_context()

    async def default_post(n: int) -> dict[str, Any]:
        return await post_body(way, n, context, timeout)

    send = post or default_post
    deadline = time.monotonic() + budget
    attempts: list[dict[str, Any]] = []
    first = await send(size)
    attempts.append(first)
    facts: dict[str, Any] = {
        "name": way.name,
        "kind": way.kind,
        "url": way.display,
        "target_bytes": size,
        "attempts": attempts,
        "largest_passed": size if body_passed(first) else None,
        "smallest_refused": None if body_passed(first) else size,
        "budget_exhausted": False,
    }
    if body_passed(first) or (first.get("status") is None and first.get("sent", 0) == 0):
        return facts  # passed, or the path is down altogether (the ping check says so)
    low, high = 0, size
    candidates = [_SMALLEST_PROBE] if size > _SMALLEST_PROBE else []
    while len(attempts) < _BISECT_ATTEMPTS:
        if time.monotonic() >= deadline:
            facts["budget_exhausted"] = True
            break
        if candidates:
            trial = candidates.pop()
        elif low == 0 or high / max(low, 1) <= _BISECT_RATIO:
            break
        else:
            trial = int(math.sqrt(low * high))
        attempt = await send(trial)
        attempts.append(attempt)
        if body_passed(attempt):
            low = trial
        else:
            high = trial
    facts["largest_passed"] = low or None
    facts["smallest_refused"] = high
    return facts

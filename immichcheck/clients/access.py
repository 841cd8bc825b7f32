"""The ways into Immich from outside the cluster: NodePort, ingress hosts, a tunnel or proxy.

For each way in this probe does what the phone app does and records what came back: the ping
and version routes, the TLS handshake (chain and host name checked apart from the dates, so an
expired certificate and an untrusted one are told apart), the socket.io websocket the apps
open, a few responses whose headers break clients, and (a separate probe, because it moves
data) how large a request body the path lets through.

The body-limit probe posts an unauthenticated `application/octet-stream` body to
`POST /api/assets`. In a real Immich server the global auth guard runs before the upload
interceptor (multer), so the request is answered 401 and nothing is stored; Node then reads
and discards the rest of the body. A proxy in front decides on its own: ingress-nginx checks
`Content-Length` against `proxy-body-size` (413 before any byte is sent upstream), a
Cloudflare tunnel rejects bodies over its plan limit. So a 401 means the whole body passed the
path and a 413 means something on the way refused it. The probe reads the answer while it is
still sending, because proxies answer 413 early and then close the connection.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from immichcheck.clients import ProbeError, ProbeSkipped
from immichcheck.clients.http import response_answer

NEW_PING = "/api/server/ping"
LEGACY_PING = "/api/server-info/ping"
SOCKET_PATH = "/api/socket.io/"
UPLOAD_PATH = "/api/assets"
WELL_KNOWN = "/.well-known/immich"
# OpenSSL's X509_V_FLAG_NO_CHECK_TIME: verify chain and host name apart from the dates, so
# the expiry is judged by its own check (an expired but otherwise valid chain is not "untrusted").
_NO_CHECK_TIME = 0x200000
_SAMPLE = 160  # characters of an unexpected body kept as evidence
_CHUNK = 256 * 1024
# Bisection stops when the bounds are this close (a ratio) or after this many attempts.
_BISECT_RATIO = 1.25
_BISECT_ATTEMPTS = 7
_SMALLEST_PROBE = 64 * 1024
# Response headers worth keeping as evidence (proxy identity, caching, keep-alive).
_KEPT_HEADERS = (
    "server",
    "via",
    "age",
    "x-cache",
    "cf-cache-status",
    "cf-ray",
    "keep-alive",
    "www-authenticate",
    "location",
    "content-type",
    "strict-transport-security",
)


@dataclass(frozen=True)
class WayIn:
    """One way into the server: where to connect, the Host header and the TLS server name."""

    name: str  # "nodeport", "ingress immich.home", "external photos.example.com"
    kind: str  # "nodeport" | "ingress" | "external"
    base_url: str  # scheme://connect-host[:port][/prefix], without a trailing slash
    host_header: str | None = None
    server_name: str | None = None  # SNI and the name the certificate must match

    @property
    def scheme(self) -> str:
        """http or https."""
        return urlsplit(self.base_url).scheme

    @property
    def display(self) -> str:
        """How the way in is shown in messages."""
        if self.host_header:
            return f"{self.base_url} (Host: {self.host_header})"
        return self.base_url

    def connect_address(self) -> tuple[str, int]:
        """Host and TCP port to open a socket to."""
        parts = urlsplit(self.base_url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return host, port

    @property
    def path_prefix(self) -> str:
        """A path the external URL carries (a proxy serving Immich under /immich), or ''."""
        return urlsplit(self.base_url).path.rstrip("/")


def ways_in(
    expected: Any,
    node_ip: str | None,
    ingress_ip: str | None,
    external_url: str | None,
) -> list[WayIn]:
    """Every way in the user named: NodePort, one per ingress host, the external URL."""
    result: list[WayIn] = []
    if node_ip:
        result.append(
            WayIn("nodeport", "nodeport", f"http://{_with_port(node_ip, expected.nodeport)}")
        )
    if ingress_ip:
        base = ingress_ip if "://" in ingress_ip else f"http://{ingress_ip}"
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProbeError(f"--ingress-ip {ingress_ip!r} is not an IP, IP:port or URL")
        for host in expected.ingress_hosts:
            result.append(
                WayIn(
                    f"ingress {host}",
                    "ingress",
                    base.rstrip("/"),
                    host_header=host,
                    server_name=host if parts.scheme == "https" else None,
                )
            )
    if external_url:
        parts = urlsplit(external_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ProbeError(f"--external-url {external_url!r} is not an http(s) URL")
        result.append(
            WayIn(
                f"external {parts.hostname}",
                "external",
                external_url.rstrip("/"),
                server_name=parts.hostname if parts.scheme == "https" else None,
            )
        )
    return result


def _with_port(address: str, port: int) -> str:
    """`10.0.0.5` -> `10.0.0.5:31283`; an explicit `HOST:PORT` (NAT, tests) is kept."""
    host, _, explicit = address.rpartition(":")
    if host and explicit.isdigit() and not address.endswith("]"):
        return address
    return f"{address}:{port}"


# TLS ------------------------------------------------------------------------------------------


def verifying_context(ca_file: str | None) -> ssl.SSLContext:
    """The trust a phone has: system CAs, or only --ca-file when given (a private CA)."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ProbeError(f"cannot load --ca-file {ca_file}: {exc}") from exc
    return context


def _unverified_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _handshake(
    address: tuple[str, int], server_name: str, context: ssl.SSLContext, timeout: float
) -> tuple[bytes, str, str]:
    """One TLS handshake: the leaf certificate (DER), protocol version and cipher."""
    async with asyncio.timeout(timeout):
        _reader, writer = await asyncio.open_connection(
            address[0], address[1], ssl=context, server_hostname=server_name
        )
    try:
        tls = writer.get_extra_info("ssl_object")
        der = tls.getpeercert(binary_form=True) or b""
        cipher = tls.cipher()
        return der, str(tls.version() or ""), str(cipher[0] if cipher else "")
    finally:
        writer.close()
        try:
            async with asyncio.timeout(timeout):
                await writer.wait_closed()
        except (OSError, TimeoutError, ssl.SSLError):
            pass  # the handshake is what we came for; a messy close changes nothing


def certificate_facts(der: bytes, now: datetime.datetime | None = None) -> dict[str, Any]:
    """Subject, issuer, names and validity dates of a DER certificate."""
    from cryptography import x509

    certificate = x509.load_der_x509_certificate(der)
    now = now or datetime.datetime.now(datetime.UTC)
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in san.get_values_for_type(x509.DNSName)]
        names += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    not_after = certificate.not_valid_after_utc
    not_before = certificate.not_valid_before_utc
    return {
        "subject": certificate.subject.rfc4514_string(),
        "issuer": certificate.issuer.rfc4514_string(),
        "names": names,
        "self_signed": certificate.subject == certificate.issuer,
        "not_before": not_before.isoformat(),
        "not_after": not_after.isoformat(),
        "seconds_left": (not_after - now).total_seconds(),
        "not_yet_valid": not_before > now,
    }


async def tls_facts(way: WayIn, ca_file: str | None, timeout: float) -> dict[str, Any]:
    """Chain and host name (dates aside), protocol, cipher and the certificate's dates."""
    address = way.connect_address()
    server_name = way.server_name or address[0]
    context = verifying_context(ca_file)
    context.verify_flags |= _NO_CHECK_TIME
    facts: dict[str, Any] = {"server_name": server_name, "verified": False, "error": ""}
    try:
        der, version, cipher = await _handshake(address, server_name, context, timeout)
        facts["verified"] = True
    except ssl.SSLCertVerificationError as exc:
        facts["error"] = str(exc.verify_message or exc.reason or exc)
        facts["error_code"] = exc.verify_code
        try:
            der, version, cipher = await _handshake(
                address, server_name, _unverified_context(), timeout
            )
        except (OSError, TimeoutError, ssl.SSLError) as inner:
            raise ProbeError(f"TLS handshake with {way.display} failed: {inner}") from inner
    except TimeoutError as exc:
        raise ProbeError(f"no TLS handshake with {way.display} within {timeout:g} s") from exc
    except (OSError, ssl.SSLError) as exc:
        raise ProbeError(f"TLS handshake with {way.display} failed: {exc}") from exc
    facts.update(protocol=version, cipher=cipher)
    if der:
        facts["certificate"] = certificate_facts(der)
    return facts


# HTTP through a way in ------------------------------------------------------------------------


def _client(way: WayIn, verify: ssl.SSLContext | bool, timeout: float) -> Any:
    import httpx

    headers = {"User-Agent": "immichcheck"}
    if way.host_header:
        headers["Host"] = way.host_header
    return httpx.AsyncClient(
        base_url=way.base_url,
        timeout=httpx.Timeout(timeout),
        headers=headers,
        verify=verify,
        follow_redirects=False,
        trust_env=False,  # an environment proxy must not stand in for the path under test
    )


def _extensions(way: WayIn) -> dict[str, Any]:
    """SNI for https to an IP with a Host header (the ingress case)."""
    return {"sni_hostname": way.server_name} if way.server_name else {}


def _kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: headers[name] for name in _KEPT_HEADERS if name in headers}


def _answer(response: Any, seconds: float) -> dict[str, Any]:
    headers = _kept_headers({k.lower(): v for k, v in response.headers.items()})
    return {**response_answer(response, seconds, _SAMPLE), "headers": headers}


async def _get(client: Any, way: WayIn, path: str) -> dict[str, Any]:
    started = time.perf_counter()
    response = await client.get(path, extensions=_extensions(way))
    return _answer(response, time.perf_counter() - started)


def describe_transport_error(exc: BaseException, where: str) -> str:
    """One line for a connection-level failure."""
    from immichcheck.clients.http import describe_http_exception

    return describe_http_exception(exc, where)


async def http_facts(way: WayIn, verify: ssl.SSLContext | bool, timeout: float) -> dict[str, Any]:
    """Ping (new route, old on 404), version, /.well-known/immich and the root redirect."""
    prefix = way.path_prefix
    async with _client(way, verify, timeout) as client:
        try:
            ping = await _get(client, way, prefix + NEW_PING)
            route = NEW_PING
            if ping["status"] == 404:
                legacy = await _get(client, way, prefix + LEGACY_PING)
                if legacy["status"] != 404:
                    ping, route = legacy, LEGACY_PING
            family = "/api/server" if route == NEW_PING else "/api/server-info"
            version, well_known, root = await asyncio.gather(
                _get(client, way, f"{prefix}{family}/version"),
                _get(client, way, prefix + WELL_KNOWN),
                _get(client, way, prefix + "/"),
            )
        except Exception as exc:
            raise ProbeError(describe_transport_error(exc, way.display)) from exc
    root.pop("json", None)  # the web UI's HTML is no evidence; its status and Location are
    root["text"] = ""
    return {
        "ping": ping,
        "route": route,
        "version": version,
        "well_known": well_known,
        "root": root,
    }


# socket.io ------------------------------------------------------------------------------------


def engine_io_open(text: str) -> dict[str, Any] | None:
    """The Engine.IO v4 open packet (`0{"sid":...}`) parsed, or None when `text` is not one."""
    if not text.startswith("0"):
        return None
    try:
        body = json.loads(text[1:])
    except json.JSONDecodeError:
        return None
    return body if isinstance(body, dict) and "sid" in body else None


async def websocket_facts(
    way: WayIn, verify: ssl.SSLContext | bool, timeout: float
) -> dict[str, Any]:
    """The long-polling handshake, then the websocket transport the apps open directly."""
    import httpx
    from httpx_ws import WebSocketUpgradeError, aconnect_ws

    connect: Any = aconnect_ws  # its generic session type defeats mypy's inference

    path = way.path_prefix + SOCKET_PATH
    facts: dict[str, Any] = {}
    async with _client(way, verify, timeout) as client:
        try:
            polling = await client.get(
                path, params={"EIO": "4", "transport": "polling"}, extensions=_extensions(way)
            )
            facts["polling"] = {
                "status": polling.status_code,
                "open": engine_io_open(polling.text),
                "text": polling.text[:_SAMPLE],
            }
        except httpx.HTTPError as exc:
            facts["polling"] = {"error": describe_transport_error(exc, way.display)}
        upgrade: dict[str, Any] = {"status": None, "error": "", "open": None, "connect": ""}
        facts["websocket"] = upgrade
        url = f"{way.base_url}{SOCKET_PATH}?EIO=4&transport=websocket"
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                async with connect(
                    url,
                    client,
                    keepalive_ping_interval_seconds=None,
                    extensions=_extensions(way),
                ) as session:
                    upgrade["status"] = 101
                    first = await session.receive_text(timeout)
                    upgrade["open"] = engine_io_open(first)
                    upgrade["first"] = first[:_SAMPLE]
                    # Socket.IO CONNECT: Immich answers 40 (connected) or disconnects a client
                    # without a token; either answer proves frames travel both ways.
                    await session.send_text("40")
                    upgrade["connect"] = (await session.receive_text(timeout))[:_SAMPLE]
        except WebSocketUpgradeError as exc:
            response = exc.response
            upgrade["status"] = response.status_code
            upgrade["text"] = await _refused_upgrade_body(client, way, path, timeout)
            upgrade["headers"] = _kept_headers({k.lower(): v for k, v in response.headers.items()})
            upgrade["error"] = f"the upgrade was answered HTTP {response.status_code}"
        except TimeoutError:
            stage = "no frame" if upgrade["status"] == 101 else "no upgrade answer"
            upgrade["error"] = f"{stage} within {timeout:g} s"
        except Exception as exc:  # httpx-ws raises plain exceptions and groups for a dead socket
            upgrade["error"] = _websocket_error_text(exc, way.display)
        upgrade["seconds"] = time.perf_counter() - started
    return facts


async def _refused_upgrade_body(client: Any, way: WayIn, path: str, timeout: float) -> str:
    """The body of a refused upgrade, asked again (httpx-ws closes the first one unread).

    It tells a proxy that dropped the Upgrade header (Engine.IO's own `{"code":3}` "Bad
    request" to a plain GET) from one that refused the upgrade itself.
    """
    import base64
    import os

    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    try:
        async with asyncio.timeout(timeout):
            response = await client.get(
                path,
                params={"EIO": "4", "transport": "websocket"},
                headers=headers,
                extensions=_extensions(way),
            )
    except Exception:  # only evidence: the refused status has been recorded already
        return ""
    if response.status_code == 101:
        return ""
    return str(response.text[:_SAMPLE])


def _websocket_error_text(exc: BaseException, where: str) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _websocket_error_text(exc.exceptions[0], where)
    import httpx

    if isinstance(exc, httpx.HTTPError):
        return describe_transport_error(exc, where)
    text = str(exc) or type(exc).__name__
    return f"the websocket broke: {text}"


# One way in, everything but the body limit -----------------------------------------------------


async def way_in_facts(way: WayIn, ca_file: str | None, timeout: float) -> dict[str, Any]:
    """TLS (https only), HTTP answers and the socket.io websocket through one way in."""
    facts: dict[str, Any] = {
        "name": way.name,
        "kind": way.kind,
        "url": way.display,
        "scheme": way.scheme,
        "tls": None,
        "error": "",
    }
    verify: ssl.SSLContext | bool = False
    if way.scheme == "https":
        try:
            facts["tls"] = await tls_facts(way, ca_file, timeout)
        except ProbeError as exc:
            facts["error"] = str(exc)
            return facts
        certificate = facts["tls"].get("certificate") or {}
        trusted = facts["tls"]["verified"] and certificate.get("seconds_left", 0) > 0
        # An untrusted or expired certificate is reported by the TLS checks; the remaining
        # probes go on without verification so their findings are not hidden behind it.
        verify = verifying_context(ca_file) if trusted else False
        facts["verified_http"] = trusted
    try:
        facts.update(await http_facts(way, verify, timeout))
    except ProbeError as exc:
        facts["error"] = str(exc)
        return facts
    facts["socket"] = await websocket_facts(way, verify, timeout)
    return facts


# Upload body limit -----------------------------------------------------------------------------


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
            headers=_kept_headers(headers),
            text=body.decode("utf-8", "replace")[:_SAMPLE],
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
        context = _unverified_context()

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


# Binding to a verify run --------------------------------------------------------------------------


def bind_access_probes(targets: Any, settings: Any) -> dict[str, tuple[Any, float]]:
    """verify's `access` and `access.upload` probes for this run: name -> (function, guard)."""
    options = targets.options
    timeout = float(settings.timeout)
    node_ip = getattr(options, "node_ip", None)
    ingress_ip = getattr(options, "ingress_ip", None)
    external_url = getattr(options, "external_url", None)
    ca_file = getattr(options, "ca_file", None)
    size = int(getattr(settings, "body_limit_size", 100_000_000))
    budget = float(getattr(settings, "body_limit_budget", 60.0))

    def chosen() -> list[WayIn]:
        found = ways_in(targets.expected, node_ip, ingress_ip, external_url)
        if not found:
            raise ProbeSkipped("no way in given (--node-ip, --ingress-ip, --external-url)")
        return found

    async def access_probe() -> dict[str, Any]:
        found = chosen()
        answers = await asyncio.gather(*(way_in_facts(w, ca_file, timeout) for w in found))
        return {w.name: a for w, a in zip(found, answers, strict=True)}

    async def upload_probe() -> dict[str, Any]:
        # One way after another: parallel uploads would share (and blur) the uplink.
        result: dict[str, Any] = {}
        for way in chosen():
            result[way.name] = await body_limit_facts(way, size, ca_file, timeout, budget)
        return result

    ways = max(1, _way_count(targets.expected, node_ip, ingress_ip, external_url))
    # TLS, HTTP and websocket steps each wait at most `timeout`, and the ways run in parallel.
    access_guard = 8 * timeout + 2.0
    upload_guard = ways * (budget + 2 * timeout) + 2.0
    return {"access": (access_probe, access_guard), "access.upload": (upload_probe, upload_guard)}


def _way_count(expected: Any, *flags: str | None) -> int:
    node_ip, ingress_ip, external_url = flags
    return (
        (1 if node_ip else 0)
        + (len(expected.ingress_hosts) if ingress_ip else 0)
        + (1 if external_url else 0)
    )

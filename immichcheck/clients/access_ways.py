"""The ways into Immich from outside the cluster, and how to speak HTTP through one.

A way in is where to connect, the Host header and the TLS server name: the NodePort, one
per ingress host (sent to the ingress IP), or an external URL (a tunnel or proxy). The
HTTP helpers here keep the Host header and SNI of the way in and never take an
environment proxy, so the path under test is the one measured.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from immichcheck.clients import ProbeError

NEW_PING = "/api/server/ping"
LEGACY_PING = "/api/server-info/ping"
SOCKET_PATH = "/api/socket.io/"
UPLOAD_PATH = "/api/assets"
WELL_KNOWN = "/.well-known/immich"
SAMPLE = 160  # characters of an unexpected body kept as evidence
# Response headers worth keeping as evidence (proxy identity, caching, keep-alive).
KEPT_HEADERS = (
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


def client_for(way: WayIn, verify: ssl.SSLContext | bool, timeout: float) -> Any:
    """An httpx client for one way in: its base URL and Host header, no redirects, no env proxy."""
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


def sni_extensions(way: WayIn) -> dict[str, Any]:
    """SNI for https to an IP with a Host header (the ingress case)."""
    return {"sni_hostname": way.server_name} if way.server_name else {}


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The response headers worth keeping as evidence (lower-case names)."""
    return {name: headers[name] for name in KEPT_HEADERS if name in headers}


def describe_transport_error(exc: BaseException, where: str) -> str:
    """One line for a connection-level failure."""
    from immichcheck.clients.http import describe_http_exception

    return describe_http_exception(exc, where)

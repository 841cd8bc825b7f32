"""The ways into Immich from outside the cluster: NodePort, ingress hosts, a tunnel or proxy.

For each way in this probe does what the phone app does and records what came back: the ping
and version routes, the TLS handshake (access_tls), the socket.io websocket the apps open
(access_socket_io), a few responses whose headers break clients, and (a separate probe,
because it moves data; access_body_limit) how large a request body the path lets through.
The ways in themselves and the HTTP client through one are in access_ways.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

from immichcheck.clients import ProbeError, ProbeSkipped
from immichcheck.clients.access_body_limit import body_limit_facts
from immichcheck.clients.access_socket_io import websocket_facts
from immichcheck.clients.access_tls import tls_facts, verifying_context
from immichcheck.clients.access_ways import (
    LEGACY_PING,
    NEW_PING,
    SAMPLE,
    WELL_KNOWN,
    WayIn,
    client_for,
    describe_transport_error,
    kept_headers,
    sni_extensions,
    ways_in,
)
from immichcheck.clients.http import response_answer


def _answer(response: Any, seconds: float) -> dict[str, Any]:
    headers = kept_headers({k.lower(): v for k, v in response.headers.items()})
    return {**response_answer(response, seconds, SAMPLE), "headers": headers}


async def _get(client: Any, way: WayIn, path: str) -> dict[str, Any]:
    started = time.perf_counter()
    response = await client.get(path, extensions=sni_extensions(way))
    return _answer(response, time.perf_counter() - started)


async def http_facts(way: WayIn, verify: ssl.SSLContext | bool, timeout: float) -> dict[str, Any]:
    """Ping (new route, old on 404), version, /.well-known/immich and the root redirect."""
    prefix = way.path_prefix
    async with client_for(way, verify, timeout) as client:
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

"""The socket.io websocket through a way in: the polling handshake, then the upgrade.

Immich's socket.io accepts only the websocket transport (REFERENCE.md), so the long-polling
handshake is answered by Immich itself with 400 `{"code":0,"message":"Transport unknown"}`:
that answer proves the path reaches the server. The websocket upgrade is what the apps
use and what a proxy without the Upgrade/Connection headers breaks.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from typing import Any

from immichcheck.clients.access_ways import (
    SAMPLE,
    SOCKET_PATH,
    WayIn,
    client_for,
    describe_transport_error,
    kept_headers,
    sni_extensions,
)


def engine_io_open(text: str) -> dict[str, Any] | None:
    """The Engine.IO v4 open packet (`0{"sid":...}`) parsed, or None when `text` is not one."""
    if not text.startswith("0"):
        return None
    try:
        body = json.loads(text[1:])
    except json.JSONDecodeError:
        return None
    return body if isinstance(body, dict) and "sid" in body else None


def engine_io_error(text: str) -> dict[str, Any] | None:
    """engine.io's own refusal (`{"code":0,"message":"Transport unknown"}`), or None.

    engine.io answers a request it will not serve with exactly these two members
    (`abortRequest` in its lib/server.ts); a proxy's or another server's error page does
    not look like this, so the body tells who answered.
    """
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return None
    if (
        isinstance(body, dict)
        and set(body) == {"code", "message"}
        and isinstance(body["code"], int)
        and isinstance(body["message"], str)
    ):
        return body
    return None


async def websocket_facts(
    way: WayIn, verify: ssl.SSLContext | bool, timeout: float
) -> dict[str, Any]:
    """The long-polling handshake (who answers it), then the websocket the apps open."""
    import httpx
    from httpx_ws import WebSocketUpgradeError, aconnect_ws

    connect: Any = aconnect_ws  # its generic session type defeats mypy's inference

    path = way.path_prefix + SOCKET_PATH
    facts: dict[str, Any] = {}
    async with client_for(way, verify, timeout) as client:
        try:
            polling = await client.get(
                path, params={"EIO": "4", "transport": "polling"}, extensions=sni_extensions(way)
            )
            facts["polling"] = {
                "status": polling.status_code,
                "open": engine_io_open(polling.text),
                "engine_io_error": engine_io_error(polling.text),
                "text": polling.text[:SAMPLE],
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
                    extensions=sni_extensions(way),
                ) as session:
                    upgrade["status"] = 101
                    first = await session.receive_text(timeout)
                    upgrade["open"] = engine_io_open(first)
                    upgrade["first"] = first[:SAMPLE]
                    # Socket.IO CONNECT: Immich answers 40 (connected) or disconnects a client
                    # without a token; either answer proves frames travel both ways.
                    await session.send_text("40")
                    upgrade["connect"] = (await session.receive_text(timeout))[:SAMPLE]
        except WebSocketUpgradeError as exc:
            response = exc.response
            upgrade["status"] = response.status_code
            upgrade["text"] = await _refused_upgrade_body(client, way, path, timeout)
            upgrade["engine_io_error"] = engine_io_error(upgrade["text"])
            upgrade["headers"] = kept_headers({k.lower(): v for k, v in response.headers.items()})
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

    It tells a proxy that dropped the Upgrade header (engine.io's own `{"code":3,"message":
    "Bad request"}` to a plain GET of the websocket transport) from one that refused the
    upgrade itself.
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
                extensions=sni_extensions(way),
            )
    except Exception:  # only evidence: the refused status has been recorded already
        return ""
    if response.status_code == 101:
        return ""
    return str(response.text[:SAMPLE])


def _websocket_error_text(exc: BaseException, where: str) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _websocket_error_text(exc.exceptions[0], where)
    import httpx

    if isinstance(exc, httpx.HTTPError):
        return describe_transport_error(exc, where)
    text = str(exc) or type(exc).__name__
    return f"the websocket broke: {text}"

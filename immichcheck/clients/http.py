"""HTTP probes (httpx) for the Immich server and the machine-learning service.

A transport failure (refused, timed out, DNS) raises `ProbeError`: the check is ERROR. An
answer, however wrong (500, HTML instead of JSON, a body that is not `pong`), is returned as
data, so the check can say FAIL and show what came back.
"""

from __future__ import annotations

import asyncio
import functools
import json
import ssl
import time
from typing import Any

from immichcheck.clients import ProbeError

NEW_PING = "/api/server/ping"
LEGACY_PING = "/api/server-info/ping"
_BODY_SAMPLE = 120  # characters of an unexpected body kept as evidence


def describe_http_exception(exc: BaseException, url: str) -> str:
    """One clean line for an httpx transport failure."""
    import httpx

    if isinstance(exc, httpx.TimeoutException | TimeoutError | asyncio.TimeoutError):
        return f"no answer from {url} in time"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc) or type(exc).__name__
        if "refused" in text.lower() or _caused_by(exc, ConnectionRefusedError):
            return f"connection refused at {url}"
        if "name" in text.lower() and ("resolution" in text.lower() or "known" in text.lower()):
            return f"cannot resolve the host of {url}"
        return f"cannot connect to {url}: {text}"
    if isinstance(exc, httpx.RemoteProtocolError):
        # h11 appends the raw bytes it rejected ("illegal status line: bytearray(b'...')"):
        # noise from a port that is not HTTP, so only the reason before them is kept.
        reason = str(exc).split(": b", 1)[0].split(": bytearray(", 1)[0][:120]
        return f"{url} broke the HTTP protocol: {reason}"
    if isinstance(exc, httpx.HTTPError):
        return f"HTTP request to {url} failed: {type(exc).__name__}: {exc}"
    return f"{type(exc).__name__} talking to {url}: {exc}"


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether `kind` is anywhere in the exception's cause chain (httpx wraps the OS error)."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def response_answer(response: Any, seconds: float, sample: int = _BODY_SAMPLE) -> dict[str, Any]:
    """Status, parsed JSON (or None) and the first `sample` characters of one httpx response."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        body = None
    return {
        "status": response.status_code,
        "json": body,
        "text": response.text[:sample],
        "seconds": seconds,
    }


async def _get(client: Any, path: str, **kwargs: Any) -> dict[str, Any]:
    started = time.perf_counter()
    response = await client.get(path, **kwargs)
    return response_answer(response, time.perf_counter() - started)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every https probe of the run."""
    import httpx

    return httpx.create_ssl_context()


def _verify_for(base_url: str, ca_file: str | None) -> Any:
    """TLS verification for a client: none needed over http, the user's CA when given."""
    if not base_url.startswith("https:"):
        return False
    return ssl.create_default_context(cafile=ca_file) if ca_file else _tls_context()


def http_client(base_url: str, timeout: float, ca_file: str | None = None) -> Any:
    """An httpx client as every probe here makes one: timeout, TLS as asked, no env proxy."""
    return _client(base_url, timeout, ca_file=ca_file)


def _client(
    base_url: str, timeout: float, host: str | None = None, ca_file: str | None = None
) -> Any:
    import httpx

    headers = {"User-Agent": "immichcheck"}
    if host:
        headers["Host"] = host
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        timeout=httpx.Timeout(timeout),
        headers=headers,
        # Loading the CA bundle costs ~0.1 s per client: only https targets pay it, once.
        verify=_verify_for(base_url, ca_file),
        follow_redirects=False,
        trust_env=False,  # a proxy from the environment must not sit between us and the pod
    )


async def server_facts(
    base_url: str,
    timeout: float,
    *,
    host: str | None = None,
    api_key: str | None = None,
    details: bool = True,
    ca_file: str | None = None,
) -> dict[str, Any]:
    """Ping (new route, old one on 404), then version, features, config and authenticated calls."""
    where = f"{base_url} (Host: {host})" if host else base_url
    # Through an https ingress the certificate is the virtual host's: present it as the TLS
    # server name too, not only as the Host header.
    sni: dict[str, Any] = (
        {"extensions": {"sni_hostname": host}} if host and base_url.startswith("https:") else {}
    )
    async with _client(base_url, timeout, host, ca_file) as client:
        try:
            ping = await _get(client, NEW_PING, **sni)
            route = NEW_PING
            if ping["status"] == 404:
                legacy = await _get(client, LEGACY_PING, **sni)
                if legacy["status"] != 404:
                    ping, route = legacy, LEGACY_PING
            facts: dict[str, Any] = {"url": where, "ping": ping, "route": route}
            if not details or ping["status"] != 200:
                return facts
            family = "/api/server" if route == NEW_PING else "/api/server-info"
            version, features, config = await asyncio.gather(
                _get(client, f"{family}/version", **sni),
                _get(client, f"{family}/features", **sni),
                _get(client, f"{family}/config", **sni),
            )
            facts.update(version=version, features=features, config=config)
            if api_key:
                headers = {"x-api-key": api_key}
                about, statistics = await asyncio.gather(
                    _get(client, f"{family}/about", headers=headers, **sni),
                    _get(client, f"{family}/statistics", headers=headers, **sni),
                )
                facts.update(about=about, statistics=statistics)
            return facts
        except Exception as exc:
            raise ProbeError(describe_http_exception(exc, where)) from exc


async def ml_ping(base_url: str, timeout: float) -> dict[str, Any]:
    """GET /ping on the ML service (a healthy one answers plain text `pong`)."""
    async with _client(base_url, timeout) as client:
        try:
            return {"url": base_url, **await _get(client, "/ping")}
        except Exception as exc:
            raise ProbeError(describe_http_exception(exc, base_url)) from exc


async def ml_text_embedding(base_url: str, timeout: float, model: str) -> dict[str, Any]:
    """A tiny CLIP textual /predict: status, wall time and the embedding's length."""
    entries = json.dumps({"clip": {"textual": {"modelName": model}}})
    async with _client(base_url, timeout) as client:
        try:
            started = time.perf_counter()
            response = await client.post(
                "/predict", data={"entries": entries, "text": "a photo of a dog"}
            )
            seconds = time.perf_counter() - started
        except Exception as exc:
            raise ProbeError(describe_http_exception(exc, f"{base_url}/predict")) from exc
    answer = response_answer(response, seconds)
    answer.update(url=base_url, model=model, dimension=None, problem="")
    body = answer["json"]
    if response.status_code != 200:
        answer["problem"] = f"HTTP {response.status_code}"
    elif not isinstance(body, dict) or "clip" not in body:
        answer["problem"] = "the answer is not JSON with a 'clip' field"
    else:
        answer["dimension"], answer["problem"] = _embedding_length(body["clip"])
    answer.pop("json")  # 512 floats are no evidence anyone wants in a report
    return answer


def _embedding_length(value: Any) -> tuple[int | None, str]:
    """The real service sends the embedding as a JSON-encoded string of floats."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None, "'clip' is not a JSON array"
    if not isinstance(value, list) or not value:
        return None, "'clip' is not a non-empty array"
    if not all(isinstance(v, int | float) for v in value):
        return None, "'clip' holds non-numbers"
    return len(value), ""

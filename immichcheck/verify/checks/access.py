"""Access checks: the ways in from outside the cluster (NodePort, ingress hosts, tunnel/proxy).

Each check gives one verdict per way in, so a broken ingress host does not hide what the
external URL does. A way in whose ping failed is SKIP for the other checks (naming
IC-AC-601). Every finding names the setting to change and the value that fixes it, for the
kind of path it is: the ingress annotations in manifests/09-ingress.yaml, or the reverse
proxy's or tunnel's own setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from immichcheck.verify.checks import Facts, Verdict, check, failed, passed, skipped, warned

PING = "IC-AC-601"
INGRESS_FILE = "manifests/09-ingress.yaml"
BODY_SIZE_ANNOTATION = "nginx.ingress.kubernetes.io/proxy-body-size"
EXPIRY_WARN_DAYS = 14
_MODERN_TLS = ("TLSv1.2", "TLSv1.3")


def _megabytes(size: float | None) -> str:
    if size is None:
        return "nothing"
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} MB"
    return f"{size / 1000:.0f} kB"


def _ways(facts: Facts) -> Mapping[str, Mapping[str, Any]]:
    ways: Mapping[str, Mapping[str, Any]] = facts["access"]
    return ways


def _reachable(way: Mapping[str, Any]) -> bool:
    ping = way.get("ping") or {}
    return not way.get("error") and ping.get("status") == 200


def _per_reachable_way(
    facts: Facts, judge: Callable[[str, Mapping[str, Any]], Verdict | None]
) -> list[Verdict]:
    """Run `judge` for every way in whose ping passed; others are SKIP naming IC-AC-601."""
    verdicts: list[Verdict] = []
    for name, way in _ways(facts).items():
        if not _reachable(way):
            verdicts.append(skipped(f"skipped: {PING} did not pass through this way in", name))
            continue
        verdict = judge(name, way)
        if verdict is not None:
            verdicts.append(verdict)
    return verdicts


# IC-AC-601 ------------------------------------------------------------------------------------


@check(PING, probes=("access",))
def answers_through_each_way_in(facts: Facts) -> list[Verdict]:
    """The server answers its ping through every way in, and how long that took."""
    verdicts = []
    for name, way in _ways(facts).items():
        if way.get("error"):
            verdicts.append(failed(f"{way['url']}: {way['error']}", name))
            continue
        ping, route = way["ping"], way["route"]
        headers = ping.get("headers") or {}
        if ping["status"] == 401 and "basic" in headers.get("www-authenticate", "").lower():
            verdicts.append(
                failed(
                    f"{route} answered 401 with a basic-auth challenge: a proxy asks for a "
                    "login the Immich apps cannot send; exempt /api/ from the proxy's auth",
                    name,
                )
            )
        elif ping["status"] != 200:
            verdicts.append(
                failed(f"{route} answered HTTP {ping['status']}: {ping['text'][:60]!r}", name)
            )
        elif ping["json"] != {"res": "pong"}:
            verdicts.append(failed(f"{route} answered {ping['text'][:60]!r}, not pong", name))
        else:
            milliseconds = ping["seconds"] * 1000
            verdicts.append(
                passed(
                    f"pong via {route} in {milliseconds:.0f} ms ({way['url']})",
                    name,
                    seconds=ping["seconds"],
                    route=route,
                )
            )
    return verdicts


# IC-AC-602 ------------------------------------------------------------------------------------


def _version(answer: Mapping[str, Any] | None) -> str | None:
    body = (answer or {}).get("json")
    if isinstance(body, dict) and all(isinstance(body.get(k), int) for k in ("major", "minor")):
        return f"v{body['major']}.{body['minor']}.{body.get('patch', 0)}"
    return None


@check("IC-AC-602", probes=("access",))
def same_server_behind_each_way_in(facts: Facts) -> list[Verdict]:
    """Each way in reaches the same server version as the ClusterIP path (or the pinned tag)."""
    from immichcheck.verify.checks.server import version_text

    server = facts.get("server")
    reference = version_text(server) if server else None
    origin = "the ClusterIP path"
    if reference is None:
        image = facts.expected.component("server").image
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        reference = f"v{tag.lstrip('v')}" if tag and tag[0:1] in "v0123456789" else None
        origin = "the image tag manifests/ pin"

    def judge(name: str, way: Mapping[str, Any]) -> Verdict:
        seen = _version(way.get("version"))
        if seen is None:
            status = (way.get("version") or {}).get("status")
            return failed(f"the version route answered HTTP {status} without a version", name)
        if reference is None:
            return passed(f"server {seen} (nothing to compare with)", name, version=seen)
        if seen != reference:
            if origin == "the ClusterIP path":
                return failed(
                    f"this way in reaches {seen} but {origin} answers {reference}: it routes to "
                    "another Immich instance (an old deployment or another namespace); point "
                    "its backend at Service immich-server",
                    name,
                    version=seen,
                    expected=reference,
                )
            return warned(
                f"this way in reaches {seen}, {origin} is {reference}", name, version=seen
            )
        return passed(f"{seen}, the same as {origin}", name, version=seen)

    return _per_reachable_way(facts, judge)


# IC-AC-603..605: TLS --------------------------------------------------------------------------


def _certificate_fix(way: Mapping[str, Any]) -> str:
    if way["kind"] == "ingress":
        return (
            f"add spec.tls (hosts and secretName, e.g. from cert-manager's "
            f"cert-manager.io/cluster-issuer annotation) to the Ingress in {INGRESS_FILE}"
        )
    return (
        "renew or replace the certificate on the proxy/tunnel "
        "(e.g. certbot renew, Caddy's automatic HTTPS)"
    )


def _tls_verdicts(
    facts: Facts, judge: Callable[[str, Mapping[str, Any], Mapping[str, Any]], Verdict]
) -> list[Verdict]:
    verdicts: list[Verdict] = []
    for name, way in _ways(facts).items():
        tls = way.get("tls")
        if way.get("scheme") != "https":
            continue
        if not tls:
            verdicts.append(skipped(f"skipped: no TLS handshake ({way.get('error', '')})", name))
            continue
        verdicts.append(judge(name, way, tls))
    if not verdicts:
        return [skipped("no https way in to check (pass an https --external-url)")]
    return verdicts


@check("IC-AC-603", probes=("access",))
def certificate_trusted(facts: Facts) -> list[Verdict]:
    """The certificate chain is trusted and valid for the host name (dates judged by 604)."""

    def judge(name: str, way: Mapping[str, Any], tls: Mapping[str, Any]) -> Verdict:
        certificate = tls.get("certificate") or {}
        names = ", ".join(certificate.get("names") or []) or "none"
        if tls["verified"]:
            return passed(
                f"trusted for {tls['server_name']} (issuer {certificate.get('issuer', '?')})",
                name,
                names=certificate.get("names", []),
            )
        problem = tls.get("error") or "verification failed"
        hint = ""
        if "hostname" in problem.lower() or "ip address mismatch" in problem.lower():
            hint = f"; the certificate names {names}, not {tls['server_name']}"
        elif certificate.get("self_signed"):
            hint = "; it is self-signed: phones reject it unless it is installed on them"
        elif "self-signed" in problem or "issuer" in problem:
            hint = (
                "; its CA is not one the phones trust (a private CA must be installed on "
                "every phone; pass it here with --ca-file)"
            )
        return failed(
            f"not trusted: {problem}{hint}; {_certificate_fix(way)}",
            name,
            names=certificate.get("names", []),
            issuer=certificate.get("issuer", ""),
        )

    return _tls_verdicts(facts, judge)


@check("IC-AC-604", probes=("access",))
def certificate_not_expiring(facts: Facts) -> list[Verdict]:
    """The certificate has more than 14 days left (WARN under 14, FAIL when expired)."""

    def judge(name: str, way: Mapping[str, Any], tls: Mapping[str, Any]) -> Verdict:
        certificate = tls.get("certificate")
        if not certificate:
            return failed("the server sent no certificate", name)
        days = certificate["seconds_left"] / 86400
        evidence = {"not_after": certificate["not_after"], "days_left": round(days, 2)}
        if certificate.get("not_yet_valid"):
            return failed(
                f"not valid before {certificate['not_before']}: check the clock of the "
                "machine that issued it",
                name,
                **evidence,
            )
        if days <= 0:
            return failed(
                f"expired {-days:.1f} days ago ({certificate['not_after']}); "
                f"{_certificate_fix(way)}",
                name,
                **evidence,
            )
        if days < EXPIRY_WARN_DAYS:
            return warned(
                f"expires in {days:.1f} days ({certificate['not_after']}); renewal should "
                f"have happened by now (cert-manager and certbot renew 30 days ahead): "
                f"{_certificate_fix(way)}",
                name,
                **evidence,
            )
        return passed(f"{days:.0f} days left (until {certificate['not_after']})", name, **evidence)

    return _tls_verdicts(facts, judge)


@check("IC-AC-605", probes=("access",))
def modern_tls_protocol(facts: Facts) -> list[Verdict]:
    """The handshake negotiates TLS 1.2 or 1.3."""

    def judge(name: str, way: Mapping[str, Any], tls: Mapping[str, Any]) -> Verdict:
        protocol = tls.get("protocol") or "unknown"
        if protocol in _MODERN_TLS:
            return passed(f"{protocol} ({tls.get('cipher', '')})", name, protocol=protocol)
        fix = (
            'ssl-protocols: "TLSv1.2 TLSv1.3" in the ingress-nginx controller ConfigMap'
            if way["kind"] == "ingress"
            else "ssl_protocols TLSv1.2 TLSv1.3; (nginx) or the proxy's minimum TLS version"
        )
        return failed(f"negotiated {protocol}; allow only TLS 1.2+: {fix}", name, protocol=protocol)

    return _tls_verdicts(facts, judge)


# IC-AC-606: upload body limit -----------------------------------------------------------------


def _body_limit_fix(kind: str, by: str, expected: Any) -> str:
    """The setting that lifts the limit on this kind of path, with the value that fixes it."""
    if by == "server":
        return (
            "the Immich server itself refused the size (HTTP 413 in its JSON): nothing in "
            "front of it is to blame; check for an IMMICH_* upload limit or a sidecar"
        )
    if kind == "ingress":
        current = expected.ingress_annotations.get(BODY_SIZE_ANNOTATION)
        text = f'set {BODY_SIZE_ANNOTATION}: "0" in {INGRESS_FILE} (metadata.annotations)'
        if current == "0":
            text += (
                f"; the manifests already set it, so the live Ingress lacks it (re-apply "
                f"{INGRESS_FILE}) or another proxy sits in front of ingress-nginx"
            )
        return text
    if by == "cloudflare":
        return (
            "a Cloudflare tunnel/proxy caps request bodies at 100 MB on Free and Pro plans "
            "(200 MB Business, 500 MB Enterprise) and the cap cannot be raised: back up large "
            "videos over the LAN (NodePort or ingress) or use a tunnel without a body cap"
        )
    if by == "nginx" or kind == "external":
        return (
            "client_max_body_size 0; in the nginx server block (Caddy: request_body max_size; "
            "Traefik: the buffering middleware's maxRequestBodyBytes; Apache: LimitRequestBody 0)"
        )
    return "a proxy between you and the NodePort refused it: raise its request body limit"


def _timeout_fix(kind: str) -> str:
    if kind == "ingress":
        return (
            'nginx.ingress.kubernetes.io/proxy-send-timeout: "600" and proxy-read-timeout: '
            f'"600" in {INGRESS_FILE}'
        )
    return "client_body_timeout / proxy_read_timeout 600s (nginx) or the proxy's request timeout"


@check("IC-AC-606", probes=("access.upload",))
def upload_body_limit(facts: Facts) -> list[Verdict]:
    """A request body the size of a phone video (--body-limit-size) passes each way in."""
    verdicts: list[Verdict] = []
    for name, result in facts["access.upload"].items():
        target = result["target_bytes"]
        attempts = result["attempts"]
        first = attempts[0]
        evidence = {
            "target_bytes": target,
            "largest_passed_bytes": result["largest_passed"],
            "smallest_refused_bytes": result["smallest_refused"],
            "attempts": [
                {"bytes": a["bytes"], "status": a.get("status"), "by": a.get("by", "")}
                for a in attempts
            ],
        }
        if result["largest_passed"] == target:
            seconds = first.get("seconds", 0.0)
            rate = target / seconds / 1_000_000 if seconds else 0.0
            verdicts.append(
                passed(
                    f"a {_megabytes(target)} body passed (answered HTTP {first['status']} by the "
                    f"server, nothing stored) in {seconds:.1f} s ({rate:.0f} MB/s)",
                    name,
                    **evidence,
                )
            )
            continue
        if first.get("status") is None and not first.get("sent"):
            verdicts.append(failed(f"could not send: {first.get('error', '')}", name, **evidence))
            continue
        refused = [a for a in attempts if a.get("status") == 413]
        timed_out = [a for a in attempts if a.get("status") in (408, 504)]
        by = (refused or attempts)[0].get("by", "") or "proxy"
        largest = result["largest_passed"]
        bounds = (
            f"largest that passed {_megabytes(largest)}, smallest refused "
            f"{_megabytes(result['smallest_refused'])}"
        )
        if result.get("budget_exhausted"):
            bounds += " (time budget used up before the bounds met)"
        if refused:
            who = "the Immich server" if by == "server" else f"the proxy ({by})"
            message = (
                f"{who} answered 413 to {_megabytes(target)}: {bounds}; "
                f"{_body_limit_fix(result['kind'], by, facts.expected)}"
            )
        elif timed_out:
            message = (
                f"the upload timed out on the way (HTTP {timed_out[0]['status']}): {bounds}; "
                f"{_timeout_fix(result['kind'])}"
            )
        else:
            detail = first.get("error") or f"HTTP {first.get('status')}"
            message = (
                f"a {_megabytes(target)} body did not get through ({detail}): {bounds}; "
                f"{_body_limit_fix(result['kind'], by, facts.expected)}"
            )
        verdicts.append(failed(message, name, proxy_413=bool(refused), **evidence))
    return verdicts


# IC-AC-607: websocket -------------------------------------------------------------------------


# Socket.IO's answer to our CONNECT ("40") without a token: any of them proves frames pass.
_SOCKET_REPLIES = {
    "40": "connected",
    "41": "disconnected the client without a token, as Immich does",
    "44": "refused the connect without a token",
}


def _websocket_fix(kind: str, cloudflare: bool) -> str:
    if cloudflare:
        return "turn on WebSockets in the Cloudflare dashboard (Network > WebSockets)"
    if kind == "ingress":
        return (
            "ingress-nginx upgrades websockets by itself: keep nginx.ingress.kubernetes.io/"
            f'proxy-http-version: "1.1" and proxy-read-timeout: "600" in {INGRESS_FILE}, and '
            "make sure no other proxy in front drops the Upgrade header"
        )
    return (
        "nginx: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
        'proxy_set_header Connection "upgrade"; (Apache: ProxyPass ... upgrade=websocket)'
    )


# engine.io's error codes (lib/server.ts, Server.errors).
ENGINE_IO_UNKNOWN_TRANSPORT = 0
ENGINE_IO_BAD_REQUEST = 3


def _socket_io_reached(polling: Mapping[str, Any]) -> str | None:
    """How the polling handshake proves the path reaches Immich's engine.io, or None.

    Immich's socket.io accepts only the websocket transport, so engine.io itself answers a
    polling handshake 400 `{"code":0,"message":"Transport unknown"}`; a server that still
    offers polling answers with an open packet. Anything else came from something else.
    """
    if polling.get("status") == 200 and polling.get("open"):
        return "the polling handshake opened a session"
    refusal = polling.get("engine_io_error") or {}
    if polling.get("status") == 400 and refusal.get("code") == ENGINE_IO_UNKNOWN_TRANSPORT:
        return "engine.io itself refused the polling handshake: 400 Transport unknown"
    return None


def _quoted(text: str) -> str:
    """A body sample on one line, for a message."""
    return " ".join(str(text).split())[:80]


@check("IC-AC-607", probes=("access",))
def websocket_upgrades(facts: Facts) -> list[Verdict]:
    """The socket.io handshake upgrades to a websocket through each way in (live updates)."""

    def judge(name: str, way: Mapping[str, Any]) -> Verdict:
        socket = way.get("socket") or {}
        polling = socket.get("polling") or {}
        upgrade = socket.get("websocket") or {}
        headers = upgrade.get("headers") or {}
        cloudflare = "cf-ray" in headers or headers.get("server", "").lower() == "cloudflare"
        fix = _websocket_fix(way["kind"], cloudflare)
        if upgrade.get("status") == 101 and upgrade.get("open") and upgrade.get("connect"):
            reply = _SOCKET_REPLIES.get(upgrade["connect"][:2], f"{upgrade['connect'][:2]!r}")
            return passed(
                f"websocket upgraded, Engine.IO open packet, socket.io {reply} "
                f"({upgrade.get('seconds', 0) * 1000:.0f} ms)",
                name,
            )
        if upgrade.get("status") == 101:
            return failed(
                "upgraded (101) but no socket.io frames came back: "
                f"{upgrade.get('error') or 'no open packet'}; the proxy cuts upgraded "
                "connections: raise its read timeout",
                name,
            )
        reached = _socket_io_reached(polling)
        if reached is None:
            answer = polling.get("error") or f"HTTP {polling.get('status')}: " + (
                _quoted(polling.get("text", "")) or "no body"
            )
            return failed(
                "the socket.io path does not reach Immich: the polling handshake was not "
                f"answered by engine.io ({answer}); route /api/socket.io/ to the "
                "immich-server Service",
                name,
            )
        status = upgrade.get("status")
        refusal = upgrade.get("engine_io_error") or {}
        if status == 400 and refusal.get("code") == ENGINE_IO_BAD_REQUEST:
            reason = (
                "Immich saw a plain GET (engine.io 'Bad request'): a proxy on the way dropped "
                "the Upgrade/Connection headers"
            )
        elif status is not None:
            reason = f"the upgrade was answered HTTP {status}"
        else:
            reason = upgrade.get("error") or "no answer"
        return failed(
            f"the socket.io path reaches Immich ({reached}) but the websocket upgrade fails "
            f"({reason}); the apps then get no live updates; {fix}",
            name,
            status=status,
        )

    return _per_reachable_way(facts, judge)


# IC-AC-608: headers ---------------------------------------------------------------------------


@check("IC-AC-608", probes=("access",))
def headers_do_not_break_clients(facts: Facts) -> list[Verdict]:
    """No http:// redirects or URLs behind https, and API answers are not served from a cache."""

    def judge(name: str, way: Mapping[str, Any]) -> Verdict:
        problems: list[str] = []
        root = way.get("root") or {}
        location = (root.get("headers") or {}).get("location", "")
        https = way.get("scheme") == "https"
        if https and location.startswith("http://"):
            problems.append(
                f"over https the answer redirects to {location}: the server does not learn the "
                "scheme; send X-Forwarded-Proto: https (nginx: proxy_set_header "
                "X-Forwarded-Proto $scheme; ingress-nginx behind a TLS load balancer: "
                'use-forwarded-headers: "true" in its ConfigMap)'
            )
        well_known = way.get("well_known") or {}
        endpoint = ((well_known.get("json") or {}).get("api") or {}).get("endpoint", "")
        if https and isinstance(endpoint, str) and endpoint.startswith("http://"):
            problems.append(
                f"{'/.well-known/immich'} sends the apps to {endpoint} (http) although they came "
                "over https: fix the proxy rule serving it (it should be the relative /api)"
            )
        ping_headers = (way.get("ping") or {}).get("headers") or {}
        cache_state = (
            ping_headers.get("cf-cache-status", "") + " " + ping_headers.get("x-cache", "")
        ).upper()
        if "HIT" in cache_state or ping_headers.get("age"):
            problems.append(
                "API answers come from a cache (Age / X-Cache / CF-Cache-Status: HIT): "
                "bypass caching for /api/* (Cloudflare cache rule; nginx: proxy_cache off)"
            )
        if problems:
            return warned("; ".join(problems), name)
        keep_alive = ping_headers.get("keep-alive", "")
        extra = f" (Keep-Alive: {keep_alive})" if keep_alive else ""
        return passed(f"no client-breaking redirects, URLs or caching{extra}", name)

    return _per_reachable_way(facts, judge)

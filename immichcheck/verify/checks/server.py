"""Immich server checks: health, version, features, initialisation, the ways in, the API key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from immichcheck.verify.checks import (
    Facts,
    Verdict,
    check,
    errored,
    failed,
    passed,
    skipped,
    warned,
)

PING = "IC-SV-401"
API_KEY = "IC-SV-408"
_AFTER_PING = (PING,)
LEGACY_PING = "/api/server-info/ping"
# Features that need the ML service, which manifests/ deploys and immich-config.json enables.
ML_FEATURES = ("smartSearch", "facialRecognition", "duplicateDetection")


def ping_verdict(answer: Mapping[str, Any], target: str) -> Verdict:
    """PASS when the ping answered 200 `{"res":"pong"}`, FAIL otherwise (the answer is shown)."""
    ping = answer["ping"]
    route = answer["route"]
    if ping["status"] != 200:
        return failed(f"{route} answered HTTP {ping['status']}: {ping['text'][:60]!r}", target)
    if ping["json"] != {"res": "pong"}:
        return failed(f'{route} answered {ping["text"][:60]!r}, not {{"res":"pong"}}', target)
    return passed(f"pong via {route} in {ping['seconds'] * 1000:.0f} ms", target, route=route)


def version_text(answer: Mapping[str, Any]) -> str | None:
    """`v2.7.5` from a /version answer, or None when it is not a version object."""
    body = (answer.get("version") or {}).get("json")
    if not isinstance(body, dict) or not all(
        isinstance(body.get(k), int) for k in ("major", "minor", "patch")
    ):
        return None
    return f"v{body['major']}.{body['minor']}.{body['patch']}"


@check(PING, probes=("server",))
def answers_ping(facts: Facts) -> Verdict:
    """The server answers its health route (new route first, the pre-v1.118 one on 404)."""
    answer = facts["server"]
    return ping_verdict(answer, answer["url"])


@check("IC-SV-402", probes=("server",), requires=_AFTER_PING)
def current_release(facts: Facts) -> Verdict:
    """The server has the current API (/api/server/ping), not only the pre-v1.118 routes."""
    answer = facts["server"]
    if answer["route"] == LEGACY_PING:
        return warned(
            "only /api/server-info/ping answered: the server is older than v1.118; "
            "upgrade it (its default port moves from 3001 to 2283)",
            answer["url"],
        )
    return passed(f"{answer['route']} answered (v1.118 or newer)", answer["url"])


@check("IC-SV-403", probes=("server",), requires=_AFTER_PING)
def version_as_shipped(facts: Facts) -> Verdict:
    """The version the server reports is the tag of the image pinned in manifests/."""
    answer = facts["server"]
    version = version_text(answer)
    if version is None:
        status = (answer.get("version") or {}).get("status")
        return failed(f"the version route answered HTTP {status} without a version", answer["url"])
    image = facts.expected.component("server").image
    tag = image.rsplit(":", 1)[-1] if ":" in image else ""
    if tag and tag.lstrip("v") != version.lstrip("v"):
        return warned(
            f"server reports {version}, manifests/ pin {tag}", answer["url"], version=version
        )
    return passed(f"server {version}", answer["url"], version=version)


@check("IC-SV-404", probes=("server",), requires=_AFTER_PING)
def features_enabled(facts: Facts) -> Verdict:
    """The machine-learning features the deployment ships are enabled."""
    answer = facts["server"]
    body = (answer.get("features") or {}).get("json")
    if not isinstance(body, dict):
        return failed("the features route did not answer a JSON object", answer["url"])
    enabled = sorted(name for name, on in body.items() if on is True)
    off = [name for name in ML_FEATURES if body.get(name) is False]
    if off:
        return warned(f"disabled: {', '.join(off)}", answer["url"], enabled=enabled)
    return passed(f"enabled: {', '.join(enabled)}", answer["url"], enabled=enabled)


@check("IC-SV-405", probes=("server",), requires=_AFTER_PING)
def initialised(facts: Facts) -> Verdict:
    """An admin account exists (isInitialized)."""
    answer = facts["server"]
    body = (answer.get("config") or {}).get("json")
    if not isinstance(body, dict) or "isInitialized" not in body:
        return failed("the config route did not report isInitialized", answer["url"])
    if not body["isInitialized"]:
        return warned("no admin account yet (isInitialized false)", answer["url"])
    return passed("initialised (an admin exists)", answer["url"])


@check("IC-SV-406", probes=("server.nodeport",))
def reachable_through_nodeport(facts: Facts) -> Verdict:
    """The server answers through NODE_IP:NodePort."""
    answer = facts["server.nodeport"]
    return ping_verdict(answer, answer["url"])


@check("IC-SV-407", probes=("server.ingress",))
def reachable_through_ingress(facts: Facts) -> list[Verdict]:
    """The server answers through each ingress host (Host header to the ingress IP)."""
    verdicts = []
    for host, answer in facts["server.ingress"].items():
        target = f"ingress {host}"
        if isinstance(answer, str):
            verdicts.append(errored(answer, target))
        else:
            verdicts.append(ping_verdict(answer, target))
    return verdicts


@check(API_KEY, probes=("server",), requires=_AFTER_PING)
def api_key_accepted(facts: Facts) -> Verdict:
    """An authenticated call with --api-key succeeds."""
    answer = facts["server"]
    about = answer.get("about")
    if about is None:
        return skipped("no --api-key given", answer["url"])
    if about["status"] == 200:
        version = (about.get("json") or {}).get("version", "")
        return passed(
            f"authenticated /about answered{f' ({version})' if version else ''}", answer["url"]
        )
    if about["status"] == 401:
        return failed("the API key was rejected (HTTP 401)", answer["url"])
    if about["status"] == 403:
        return failed("the API key lacks the server.about permission (HTTP 403)", answer["url"])
    return failed(f"authenticated call answered HTTP {about['status']}", answer["url"])


@check("IC-SV-409", probes=("server",), requires=(API_KEY,))
def statistics_readable(facts: Facts) -> Verdict:
    """The admin statistics (photos, videos, usage) can be read with the key."""
    answer = facts["server"]
    statistics = answer.get("statistics") or {}
    body = statistics.get("json")
    if statistics.get("status") == 403:
        return warned("the key is not an admin key (HTTP 403)", answer["url"])
    if statistics.get("status") != 200 or not isinstance(body, dict):
        return warned(f"statistics answered HTTP {statistics.get('status')}", answer["url"])
    photos, videos, usage = body.get("photos", 0), body.get("videos", 0), body.get("usage", 0)
    return passed(
        f"{photos} photos, {videos} videos, {int(usage) / 1024**3:.2f} GiB",
        answer["url"],
        photos=photos,
        videos=videos,
        usage_bytes=usage,
    )

"""Pushing metrics to a Prometheus Pushgateway (httpx, with a timeout).

One group per node: `PUT <url>/metrics/job/<job>/instance/<node>` replaces everything the
group held, so a series that disappeared from the latest run does not linger.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from immichcheck.clients import ProbeError
from immichcheck.clients.http import describe_http_exception

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _path_value(value: str) -> str:
    # The Pushgateway cannot take "/" in a path segment even escaped; its documented
    # workaround is the base64url form with the "@base64" suffix on the label name.
    if "/" in value or not value:
        encoded = base64.urlsafe_b64encode(value.encode()).decode().rstrip("=") or "="
        return f"@base64/{encoded}"
    return "/" + quote(value, safe="")


def group_url(base_url: str, job: str, instance: str) -> str:
    """The grouping-key URL of one job/instance group."""
    return f"{base_url.rstrip('/')}/metrics/job{_path_value(job)}/instance{_path_value(instance)}"


def push_metrics(
    base_url: str, job: str, instance: str, text: str, *, timeout: float = 10.0
) -> int:
    """PUT one group's exposition text; returns the HTTP status, raises ProbeError on failure."""
    import httpx

    url = group_url(base_url, job, instance)
    try:
        response = httpx.put(
            url,
            content=text.encode("utf-8"),
            headers={"Content-Type": CONTENT_TYPE},
            timeout=timeout,
        )
    except httpx.HTTPError as exc:
        raise ProbeError(describe_http_exception(exc, url)) from exc
    if response.status_code >= 300:
        body = " ".join(response.text.split())[:200]
        raise ProbeError(f"Pushgateway at {url} answered {response.status_code}: {body}")
    return response.status_code

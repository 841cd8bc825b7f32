"""Immich's admin API as verify reads it: system config, database backups, queues, storage.

Every call sends the admin API key (`x-api-key`) and has a timeout. Answers come back as data
(`{status, json, text, seconds}`) so a check can tell a missing endpoint (404: a server older
than the release that added it) from a missing permission (403); only a transport failure
(refused, timed out) raises `ProbeError`. Paths, versions and permissions are Immich's own
(server/src/controllers/*.controller.ts).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from immichcheck.clients import ProbeError, bounded
from immichcheck.clients.http import describe_http_exception, http_client, response_answer

SYSTEM_CONFIG = "/api/system-config"
DATABASE_BACKUPS = "/api/admin/database-backups"
QUEUES = "/api/queues"
LEGACY_JOBS = "/api/jobs"
SERVER_STORAGE = "/api/server/storage"


@dataclass(frozen=True)
class Endpoint:
    """What an admin endpoint needs: the release that added it and the key's permission."""

    added: str
    permission: str


ENDPOINTS: dict[str, Endpoint] = {
    SYSTEM_CONFIG: Endpoint("v1", "systemConfig.read"),
    DATABASE_BACKUPS: Endpoint("v2.5.0", "maintenance"),
    QUEUES: Endpoint("v2.3.0", "queue.read"),
    LEGACY_JOBS: Endpoint("v1", "job.read"),
    SERVER_STORAGE: Endpoint("v1", "server.storage"),
    "/api/queues/{name}/jobs": Endpoint("v2.3.0", "queueJob.read"),
}
# The least an API key needs for every check that reads the admin API (README lists them).
KEY_PERMISSIONS: tuple[str, ...] = (
    "server.about",
    "server.statistics",
    "server.storage",
    "systemConfig.read",
    "maintenance",
    "queue.read",
    "queueJob.read",
    "job.read",
)

# Immich's own rules (server/src/utils/database-backups.ts): what the list endpoint shows, what
# a routine nightly dump is called, and the `.tmp` a failed or unfinished dump leaves behind.
BACKUP_NAME = re.compile(r"^[\w.-]+\.sql(?:\.gz)?$")
FAILED_BACKUP_NAME = re.compile(r"^immich-db-backup-.*\.sql\.gz\.tmp$")
BACKUPS_FOLDER = "backups"


async def _request(
    base_url: str,
    api_key: str,
    timeout: float,
    path: str,
    params: Mapping[str, str] | None = None,
    ca_file: str | None = None,
) -> dict[str, Any]:
    """One authenticated GET: the answer as data; ProbeError only when nothing came back."""
    import time

    url = f"{base_url.rstrip('/')}{path}"
    async with http_client(base_url, timeout, ca_file) as client:
        try:
            started = time.perf_counter()
            response = await client.get(path, params=params, headers={"x-api-key": api_key})
        except Exception as exc:
            raise ProbeError(describe_http_exception(exc, url)) from exc
        return response_answer(response, time.perf_counter() - started, sample=200)


async def read_system_config(
    base_url: str, api_key: str, timeout: float, *, ca_file: str | None = None
) -> dict[str, Any]:
    """GET /api/system-config with an admin key: the server's whole config as a dict."""
    answer = await bounded(
        _request(base_url, api_key, timeout, SYSTEM_CONFIG, ca_file=ca_file),
        timeout,
        f"{base_url}{SYSTEM_CONFIG}",
    )
    problem = answer_problem(answer, SYSTEM_CONFIG)
    if problem:
        raise ProbeError(problem)
    body = answer["json"]
    if not isinstance(body, dict):
        raise ProbeError(f"{SYSTEM_CONFIG} did not answer a JSON object")
    return body


def answer_problem(answer: Mapping[str, Any], path: str) -> str:
    """Why an admin answer cannot be used ('' when it is a 200), naming what would fix it."""
    status = answer["status"]
    endpoint = ENDPOINTS.get(path)
    if status == 200:
        return ""
    if status == 401:
        return f"GET {path}: the API key was rejected (HTTP 401)"
    if status == 403 and endpoint:
        return (
            f"GET {path}: the API key lacks the {endpoint.permission} permission or is not an "
            "admin's (HTTP 403)"
        )
    if status == 404 and endpoint:
        return f"GET {path} answered 404: the server is older than {endpoint.added}, which added it"
    return f"GET {path} answered HTTP {status}: {str(answer.get('text', ''))[:80]!r}"


class ImmichAdmin:
    """One run's reads of the admin API: each path fetched once and shared by every probe."""

    def __init__(
        self, base_url: str, api_key: str, timeout: float, ca_file: str | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self._ca_file = ca_file
        self._answers: dict[str, asyncio.Task[dict[str, Any]]] = {}

    def fetch(self, path: str, params: Mapping[str, str] | None = None) -> Awaitable[Any]:
        """A fresh GET of `path` within the timeout (a second reading is never the cached one)."""
        return bounded(
            _request(self.base_url, self._api_key, self.timeout, path, params, self._ca_file),
            self.timeout,
            f"{self.base_url}{path}",
        )

    async def get(self, path: str) -> dict[str, Any]:
        """The run's one answer for `path` (fetched on first use)."""
        if path not in self._answers:
            task = asyncio.ensure_future(self.fetch(path))
            # Retrieved even when every waiter was cancelled, so asyncio logs nothing.
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._answers[path] = task
        return await asyncio.shield(self._answers[path])


def queue_states(path: str, body: Any) -> dict[str, dict[str, Any]] | None:
    """{queue: {paused, counts}} from /api/queues (a list) or /api/jobs (a map); None if neither."""
    states: dict[str, dict[str, Any]] = {}
    if path == QUEUES and isinstance(body, list):
        for item in body:
            if isinstance(item, dict) and isinstance(item.get("statistics"), dict):
                states[str(item.get("name"))] = {
                    "paused": bool(item.get("isPaused")),
                    "counts": {k: int(v) for k, v in item["statistics"].items()},
                }
        return states
    if path == LEGACY_JOBS and isinstance(body, dict):
        for name, item in body.items():
            if isinstance(item, dict) and isinstance(item.get("jobCounts"), dict):
                states[str(name)] = {
                    "paused": bool((item.get("queueStatus") or {}).get("isPaused")),
                    "counts": {k: int(v) for k, v in item["jobCounts"].items()},
                }
        return states
    return None


def stall_candidates(states: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Queues with work waiting, none active and not paused: stalled unless they move soon."""
    return [
        name
        for name, state in states.items()
        if not state["paused"]
        and state["counts"].get("waiting", 0) > 0
        and state["counts"].get("active", 0) == 0
    ]


async def read_queues(
    admin: ImmichAdmin, settle_seconds: float, failed_threshold: int
) -> dict[str, Any]:
    """Queue states (/api/queues, else /api/jobs), a second reading after `settle_seconds`
    when a queue looks stuck, and the newest failure's reason for queues over the threshold."""
    path = QUEUES
    answer = await admin.get(QUEUES)
    if answer["status"] == 404:
        path, answer = LEGACY_JOBS, await admin.get(LEGACY_JOBS)
    result: dict[str, Any] = {"path": path, "answer": answer, "first": None, "second": None}
    result["problem"] = answer_problem(answer, path)
    if result["problem"]:
        return result
    first = queue_states(path, answer["json"])
    if first is None:
        result["problem"] = f"GET {path} did not answer the queue list"
        return result
    result["first"] = first
    if stall_candidates(first):
        # Only a queue that looks stuck is read twice: a healthy run pays no wait.
        await asyncio.sleep(settle_seconds)
        again = await admin.fetch(path)
        result["second"] = queue_states(path, again["json"]) if again["status"] == 200 else None
        result["settle_seconds"] = settle_seconds
    over = [n for n, s in first.items() if s["counts"].get("failed", 0) > failed_threshold]
    if path == QUEUES and over:
        reasons = await asyncio.gather(*(_newest_failure(admin, name) for name in over))
        result["failures"] = dict(zip(over, reasons, strict=True))
    return result


async def _newest_failure(admin: ImmichAdmin, queue: str) -> str:
    """The newest failed job's reason ('' when the key may not read jobs or none is given)."""
    try:
        path = f"/api/queues/{quote(queue, safe='')}/jobs"
        answer = await admin.fetch(path, {"status": "failed"})
    except ProbeError:
        return ""
    jobs = answer["json"] if answer["status"] == 200 else None
    if not isinstance(jobs, list):
        return ""
    dated = [j for j in jobs if isinstance(j, dict) and j.get("failedReason")]
    if not dated:
        return ""
    newest = max(dated, key=lambda j: int(j.get("finishedOn") or j.get("timestamp") or 0))
    return str(newest["failedReason"])


def backup_files(media_root: str) -> dict[str, Any]:
    """The database dumps in `<media>/backups/` as the server would list them, plus `.tmp` ones."""
    folder = Path(media_root) / BACKUPS_FOLDER
    listing: dict[str, Any] = {"where": str(folder), "exists": folder.is_dir()}
    backups: list[dict[str, Any]] = []
    unfinished: list[str] = []
    if listing["exists"]:
        try:
            names = sorted(os.listdir(folder), reverse=True)
            for name in names:
                if BACKUP_NAME.match(name):
                    size = (folder / name).stat().st_size
                    # The files carry the server's local time; a container's zone is UTC
                    # unless TZ is set, which a mounted volume cannot tell.
                    backups.append({"filename": name, "filesize": size, "timezone": "UTC"})
                elif FAILED_BACKUP_NAME.match(name):
                    unfinished.append(name)
        except OSError as exc:
            raise ProbeError(f"cannot list {folder}: {exc.strerror or exc}") from exc
    listing.update(backups=backups, unfinished=unfinished)
    return listing


async def read_backup_files(media_root: str, timeout: float) -> dict[str, Any]:
    """`backup_files` in a thread, bounded (a hung NFS mount must not hold the run)."""
    where = str(Path(media_root) / BACKUPS_FOLDER)
    return await bounded(asyncio.to_thread(backup_files, media_root), timeout, where)

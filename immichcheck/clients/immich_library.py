"""What the Immich server says about its library and its job settings (admin API key).

Two admin-only reads feed the capacity estimates:
- `GET /api/server/statistics` (permission `server.statistics`): `photos`, `videos`, `usage`;
- `GET /api/system-config` (permission `systemConfig.read`): `job.<queue>.concurrency`,
  `machineLearning.{enabled, clip, facialRecognition, ocr}` and `image.preview.size`.

Only those fields are kept: the config also holds SMTP and OAuth secrets, which must never
reach a run record. A refused read (401/403/other) is kept as a sentence beside the facts, so
the capacity section can say what to fix; a transport failure raises `ProbeError`.
"""

from __future__ import annotations

from typing import Any

from immichcheck.clients import ProbeError
from immichcheck.clients.http import describe_http_exception

STATISTICS_PATH = "/api/server/statistics"
SYSTEM_CONFIG_PATH = "/api/system-config"
# The queues whose settings a capacity estimate needs (names from Immich's QueueName enum).
CAPACITY_QUEUES = ("smartSearch", "faceDetection", "ocr", "thumbnailGeneration")


def _refusal(status: int, path: str, permission: str, body: Any) -> str:
    """One sentence for an answer that is not 200, naming the fix."""
    if status == 401:
        return f"{path} refused the API key (401): check --api-key"
    if status == 403:
        return (
            f"{path} answered 403: the API key must belong to an admin and carry the "
            f"{permission} permission"
        )
    message = body.get("message") if isinstance(body, dict) else None
    return f"{path} answered HTTP {status}" + (f": {message}" if message else "")


def _whole(value: Any) -> int | None:
    """A non-negative integer from JSON, or None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return int(value)


def _statistics(body: Any) -> dict[str, int] | None:
    if not isinstance(body, dict):
        return None
    picked = {key: _whole(body.get(key)) for key in ("photos", "videos", "usage")}
    if any(value is None for value in picked.values()):
        return None
    return {key: int(value) for key, value in picked.items() if value is not None}


def _enabled(section: Any) -> bool | None:
    if isinstance(section, dict) and isinstance(section.get("enabled"), bool):
        return bool(section["enabled"])
    return None


def _capacity_config(body: Any) -> dict[str, Any] | None:
    """The job, machine-learning and preview settings of a system-config answer, nothing else."""
    if not isinstance(body, dict) or not isinstance(body.get("job"), dict):
        return None
    jobs: dict[str, int] = {}
    for queue in CAPACITY_QUEUES:
        entry = body["job"].get(queue)
        concurrency = _whole(entry.get("concurrency")) if isinstance(entry, dict) else None
        if concurrency:
            jobs[queue] = concurrency
    learning = body.get("machineLearning")
    learning = learning if isinstance(learning, dict) else {}
    image = body.get("image")
    preview = image.get("preview") if isinstance(image, dict) else None
    models = {
        key: learning[key].get("modelName")
        for key in ("clip", "facialRecognition", "ocr")
        if isinstance(learning.get(key), dict) and isinstance(learning[key].get("modelName"), str)
    }
    return {
        "job_concurrency": jobs,
        "machine_learning_enabled": _enabled(learning),
        "clip_enabled": _enabled(learning.get("clip")),
        "faces_enabled": _enabled(learning.get("facialRecognition")),
        "ocr_enabled": _enabled(learning.get("ocr")),
        "models": models,
        "preview_size": _whole(preview.get("size")) if isinstance(preview, dict) else None,
    }


def read_library_facts(base_url: str, api_key: str, timeout: float) -> dict[str, Any]:
    """Library size and job settings from the server; refusals are kept as sentences."""
    import httpx

    facts: dict[str, Any] = {"server": base_url.rstrip("/")}
    reads = (
        ("statistics", STATISTICS_PATH, "server.statistics", _statistics),
        ("settings", SYSTEM_CONFIG_PATH, "systemConfig.read", _capacity_config),
    )
    with httpx.Client(
        base_url=base_url.rstrip("/"),
        timeout=httpx.Timeout(timeout),
        headers={"x-api-key": api_key, "User-Agent": "immichcheck"},
        follow_redirects=False,
        trust_env=False,
    ) as client:
        for key, path, permission, pick in reads:
            try:
                response = client.get(path)
            except httpx.HTTPError as exc:
                raise ProbeError(describe_http_exception(exc, base_url + path)) from exc
            try:
                body: Any = response.json()
            except ValueError:
                body = None
            if response.status_code != 200:
                facts[f"{key}_problem"] = _refusal(response.status_code, path, permission, body)
                continue
            picked = pick(body)
            if picked is None:
                facts[f"{key}_problem"] = f"{path} answered 200 without the expected fields"
            else:
                facts[key] = picked
    return facts

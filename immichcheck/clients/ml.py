"""HTTP client for the Immich machine-learning service's `/predict` API (benchmark use).

`POST /predict` is multipart: a JSON `entries` field naming the task and model, plus an
`image` file or a `text` field (shared/REFERENCE.md). This module only moves bytes and
parses JSON; whether the answer has the right shape is judged by `immichcheck.bench.suites.ml`.
Every failure becomes `MlRequestError` with a short reason fit for an error count.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

_BODY_SAMPLE = 80


class MlRequestError(Exception):
    """One /predict request failed; the message is a short reason (e.g. 'HTTP 500')."""


def clip_visual_entries(model: str) -> dict[str, Any]:
    """`entries` for a CLIP image embedding."""
    return {"clip": {"visual": {"modelName": model}}}


def clip_textual_entries(model: str) -> dict[str, Any]:
    """`entries` for a CLIP text embedding."""
    return {"clip": {"textual": {"modelName": model}}}


def facial_recognition_entries(model: str, min_score: float = 0.7) -> dict[str, Any]:
    """`entries` for face detection plus recognition, as the Immich server sends them."""
    return {
        "facial-recognition": {
            "detection": {"modelName": model, "options": {"minScore": min_score}},
            "recognition": {"modelName": model},
        }
    }


def ocr_entries(
    model: str,
    min_detection_score: float = 0.5,
    min_recognition_score: float = 0.8,
    max_resolution: int = 736,
) -> dict[str, Any]:
    """`entries` for OCR (text detection plus recognition), as the Immich server sends them.

    Defaults are Immich's machineLearning.ocr settings (server/src/config.ts).
    """
    return {
        "ocr": {
            "detection": {
                "modelName": model,
                "options": {"minScore": min_detection_score, "maxResolution": max_resolution},
            },
            "recognition": {"modelName": model, "options": {"minScore": min_recognition_score}},
        }
    }


class MlClient:
    """An async client for one ML service; use as `async with MlClient(url) as client`."""

    def __init__(self, base_url: str, *, max_connections: int = 8) -> None:
        self.base_url = base_url.rstrip("/")
        self._max_connections = max_connections
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> MlClient:
        import httpx

        limits = httpx.Limits(max_connections=self._max_connections)
        # Per-request timeouts are passed to `predict`; this default only bounds stragglers.
        self._client = httpx.AsyncClient(base_url=self.base_url, limits=limits, timeout=120.0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def predict(
        self,
        entries: dict[str, Any],
        *,
        timeout: float,
        image: bytes | None = None,
        text: str | None = None,
    ) -> Any:
        """POST /predict and return the decoded JSON answer; MlRequestError on any failure."""
        import httpx

        if self._client is None:
            raise RuntimeError("MlClient used outside 'async with'")
        data = {"entries": json.dumps(entries)}
        if text is not None:
            data["text"] = text
        files = {"image": ("image.jpg", image, "image/jpeg")} if image is not None else None
        try:
            response = await self._client.post("/predict", data=data, files=files, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise MlRequestError(f"timeout after {timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise MlRequestError(f"{type(exc).__name__}: {exc}".strip(": ")) from exc
        if response.status_code != 200:
            sample = response.text[:_BODY_SAMPLE].replace("\n", " ")
            raise MlRequestError(f"HTTP {response.status_code}: {sample}")
        try:
            return response.json()
        except ValueError as exc:
            raise MlRequestError("answer is not JSON") from exc

"""HTTP client for the Immich server's asset API, as the upload benchmark uses it.

Upload (`POST /api/assets`, multipart), force-delete (`DELETE /api/assets`), existence
(`GET /api/assets/<id>`) and a metadata search for leftovers (`POST /api/search/metadata`).
The API key travels only in the `x-api-key` header and never appears in an error message.
Failures become `UploadRequestError` with a short reason fit for an error count.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

_BODY_SAMPLE = 120
_SEARCH_PAGE_SIZE = 1000
_SEARCH_MAX_PAGES = 50


class UploadRequestError(Exception):
    """A request to the server failed; `status` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadAnswer:
    """The server's answer to one upload: 201 created or 200 duplicate, and the asset id."""

    status_code: int
    status: str
    asset_id: str


def _sample(response: httpx.Response) -> str:
    """The start of a response body, on one line, for an error message."""
    return response.text[:_BODY_SAMPLE].replace("\n", " ")


class ImmichAssetClient:
    """An async client for one server and API key; use as `async with ImmichAssetClient(...)`."""

    def __init__(
        self, base_url: str, api_key: str, *, timeout: float = 120.0, max_connections: int = 8
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._timeout = timeout
        self._max_connections = max_connections
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> ImmichAssetClient:
        import httpx

        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"x-api-key": self._api_key, "accept": "application/json"},
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=self._max_connections),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("ImmichAssetClient used outside 'async with'")
        return self._client

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; transport failures become UploadRequestError without the key."""
        import httpx

        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise UploadRequestError(f"{method} {path}: no answer in time") from exc
        except httpx.HTTPError as exc:
            raise UploadRequestError(f"{method} {path}: {type(exc).__name__} {exc}") from exc

    async def upload(
        self,
        content: bytes | Path,
        *,
        filename: str,
        device_asset_id: str,
        device_id: str,
        created_at: str,
        checksum: str | None = None,
        content_type: str = "image/jpeg",
    ) -> UploadAnswer:
        """Upload one file; returns the server's created/duplicate answer."""
        fields = {
            "deviceAssetId": device_asset_id,
            "deviceId": device_id,
            "fileCreatedAt": created_at,
            "fileModifiedAt": created_at,
            "filename": filename,
            "isFavorite": "false",
        }
        headers = {"x-immich-checksum": checksum} if checksum else {}
        if isinstance(content, Path):
            with content.open("rb") as handle:
                files = {"assetData": (filename, handle, content_type)}
                response = await self._request(
                    "POST", "/api/assets", data=fields, files=files, headers=headers
                )
        else:
            files = {"assetData": (filename, content, content_type)}  # type: ignore[dict-item]
            response = await self._request(
                "POST", "/api/assets", data=fields, files=files, headers=headers
            )
        if response.status_code not in (200, 201):
            raise UploadRequestError(
                f"upload: HTTP {response.status_code}: {_sample(response)}", response.status_code
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise UploadRequestError("upload: answer is not JSON", response.status_code) from exc
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise UploadRequestError(
                f"upload: answer has no asset id: {json.dumps(body)[:_BODY_SAMPLE]}",
                response.status_code,
            )
        return UploadAnswer(response.status_code, str(body.get("status", "")), body["id"])

    async def delete(self, ids: Sequence[str]) -> None:
        """Force-delete assets (no trash); UploadRequestError unless the server answers 204."""
        response = await self._request(
            "DELETE", "/api/assets", json={"ids": list(ids), "force": True}
        )
        if response.status_code not in (200, 204):
            raise UploadRequestError(
                f"delete: HTTP {response.status_code}: {_sample(response)}", response.status_code
            )

    async def exists(self, asset_id: str) -> bool:
        """Whether the asset is still there: 200 yes, 400/404 no (Immich answers 400)."""
        response = await self._request("GET", f"/api/assets/{asset_id}")
        if response.status_code == 200:
            return True
        if response.status_code in (400, 404):
            return False
        raise UploadRequestError(
            f"GET asset: HTTP {response.status_code}: {_sample(response)}", response.status_code
        )

    async def search_by_device(self, device_id: str, name_prefix: str) -> list[dict[str, Any]]:
        """Assets found by `POST /api/search/metadata` for this device id and file name.

        Servers up to v2 filter on `deviceId`; newer ones dropped it from the search and
        ignore it, so the file name narrows the search too. The caller must still check each
        item's fields: a server that ignores a filter returns assets that are not ours.
        """
        items: list[dict[str, Any]] = []
        page: int | None = 1
        for _ in range(_SEARCH_MAX_PAGES):
            if page is None:
                break
            body = {
                "deviceId": device_id,
                "originalFileName": name_prefix,
                "size": _SEARCH_PAGE_SIZE,
                "page": page,
            }
            response = await self._request("POST", "/api/search/metadata", json=body)
            if response.status_code != 200:
                raise UploadRequestError(
                    f"search: HTTP {response.status_code}: {_sample(response)}",
                    response.status_code,
                )
            try:
                assets = response.json()["assets"]
                found = assets["items"]
                next_page = assets.get("nextPage")
            except (ValueError, KeyError, TypeError) as exc:
                raise UploadRequestError("search: answer has no assets.items") from exc
            items.extend(item for item in found if isinstance(item, dict))
            page = int(next_page) if next_page and str(next_page).isdigit() else None
        return items

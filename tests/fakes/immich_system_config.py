"""`GET /api/system-config` for the fake Immich server, and a library of known size.

The config holds the sections a real v2.7.5 server answers that immichcheck reads (job
concurrency per queue, machine learning, image sizes) with Immich's defaults from
server/src/config.ts; tests change `server.system_config` to configure the fake. Admin only,
permission `systemConfig.read`, with the same 401/403 bodies as every other route.
"""

from __future__ import annotations

import copy
import uuid
from typing import TYPE_CHECKING, Any

from tests.fakes.http_base import Request, Response

if TYPE_CHECKING:
    from tests.fakes.immich_server import FakeImmichServer

SYSTEM_CONFIG_DEFAULTS: dict[str, Any] = {
    "job": {
        "backgroundTask": {"concurrency": 5},
        "smartSearch": {"concurrency": 2},
        "metadataExtraction": {"concurrency": 5},
        "faceDetection": {"concurrency": 2},
        "search": {"concurrency": 5},
        "sidecar": {"concurrency": 5},
        "library": {"concurrency": 5},
        "migration": {"concurrency": 5},
        "thumbnailGeneration": {"concurrency": 3},
        "videoConversion": {"concurrency": 1},
        "notifications": {"concurrency": 5},
        "ocr": {"concurrency": 1},
        "workflow": {"concurrency": 5},
        "editor": {"concurrency": 2},
    },
    "machineLearning": {
        "enabled": True,
        "urls": ["http://immich-machine-learning:3003"],
        "clip": {"enabled": True, "modelName": "ViT-B-32__openai"},
        "duplicateDetection": {"enabled": True, "maxDistance": 0.01},
        "facialRecognition": {
            "enabled": True,
            "modelName": "buffalo_l",
            "minScore": 0.7,
            "maxDistance": 0.5,
            "minFaces": 3,
        },
        "ocr": {"enabled": True, "modelName": "PP-OCRv5_mobile", "maxResolution": 736},
    },
    "image": {
        "thumbnail": {"format": "webp", "size": 250, "quality": 80},
        "preview": {"format": "jpeg", "size": 1440, "quality": 80},
    },
    # A secret the real config holds: clients must never copy it anywhere.
    "notifications": {"smtp": {"enabled": False, "transport": {"password": "smtp-secret"}}},
}


def default_system_config() -> dict[str, Any]:
    """A fresh copy of the defaults, for `reset()`."""
    return copy.deepcopy(SYSTEM_CONFIG_DEFAULTS)


def system_config_route(server: FakeImmichServer, request: Request) -> Response:
    """GET /api/system-config: admin with `systemConfig.read`, else 401/403 as Immich answers."""
    user = server._authenticate(request, "systemConfig.read", admin=True)
    if isinstance(user, Response):
        return user
    with server.lock:
        return Response.json(200, copy.deepcopy(server.system_config))


def seed_library(
    server: FakeImmichServer, *, photos: int, videos: int, photo_bytes: int, video_bytes: int
) -> None:
    """Give the admin a library of known size, as /api/server/statistics will count it."""
    from tests.fakes.immich_server import FakeAsset

    with server.lock:
        owner = next(user for user in server.users.values() if user.is_admin)
        for index in range(photos + videos):
            is_photo = index < photos
            asset_id = str(uuid.uuid4())
            server.assets[asset_id] = FakeAsset(
                id=asset_id,
                owner_id=owner.id,
                device_asset_id=f"seed-{index}",
                device_id="seed",
                checksum=uuid.UUID(asset_id).bytes + index.to_bytes(4, "big"),
                original_file_name=f"seed-{index}.{'jpg' if is_photo else 'mp4'}",
                file_created_at="2026-01-01T00:00:00.000Z",
                file_modified_at="2026-01-01T00:00:00.000Z",
                size=photo_bytes if is_photo else video_bytes,
                type="IMAGE" if is_photo else "VIDEO",
            )

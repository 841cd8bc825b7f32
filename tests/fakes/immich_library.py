"""A library of known size in the fake Immich server, as /api/server/statistics counts it."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.fakes.immich_server import FakeImmichServer


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

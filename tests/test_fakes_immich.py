"""The fake Immich server answers like a real v2.7.5 server (shared/REFERENCE.md)."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from typing import Any

import httpx
import pytest

from tests.fakes.images import jpeg_bytes
from tests.fakes.immich_server import FakeImmichServer


def _upload_fields(**overrides: str) -> dict[str, str]:
    fields = {
        "deviceAssetId": "immichcheck-asset-1",
        "deviceId": "immichcheck-bench",
        "fileCreatedAt": "2024-05-01T10:00:00.000Z",
        "fileModifiedAt": "2024-05-01T10:00:00.000Z",
    }
    fields.update(overrides)
    return {key: value for key, value in fields.items() if value}


def _upload(
    client: httpx.Client, key: str, data: bytes, name: str = "photo.jpg", **headers: str
) -> httpx.Response:
    return client.post(
        "/api/assets",
        headers={"x-api-key": key, **headers},
        data=_upload_fields(),
        files={"assetData": (name, data, "image/jpeg")},
    )


@pytest.fixture
def client(fake_immich_server: FakeImmichServer) -> Any:
    with httpx.Client(base_url=fake_immich_server.url, timeout=5) as http:
        yield http


def test_public_routes_of_current_version(client: httpx.Client) -> None:
    ping = client.get("/api/server/ping")
    assert ping.status_code == 200 and ping.json() == {"res": "pong"}
    assert client.get("/api/server/version").json() == {"major": 2, "minor": 7, "patch": 5}
    assert client.get("/api/server/features").json()["smartSearch"] is True
    config = client.get("/api/server/config").json()
    assert config["isInitialized"] is True and config["isOnboarded"] is True
    assert ".jpg" in client.get("/api/server/media-types").json()["image"]
    legacy = client.get("/api/server-info/ping")
    assert legacy.status_code == 404
    assert legacy.json()["message"] == "Cannot GET /api/server-info/ping"


def test_legacy_ping_only_and_old_versions(
    client: httpx.Client, fake_immich_server: FakeImmichServer
) -> None:
    fake_immich_server.legacy_ping_only = True
    assert client.get("/api/server/ping").status_code == 404
    assert client.get("/api/server-info/ping").json() == {"res": "pong"}
    fake_immich_server.legacy_ping_only = False
    fake_immich_server.version = (1, 110, 0)  # both families existed between 1.107 and 1.118
    assert client.get("/api/server/ping").status_code == 200
    assert client.get("/api/server-info/ping").status_code == 200
    fake_immich_server.version = (1, 100, 0)
    assert client.get("/api/server/ping").status_code == 404
    assert client.get("/api/server-info/version").json() == {"major": 1, "minor": 100, "patch": 0}


def test_admin_sign_up_login_and_api_key(
    client: httpx.Client, fake_immich_server: FakeImmichServer
) -> None:
    fake_immich_server.reset(seed_admin=False)
    assert client.get("/api/server/config").json()["isInitialized"] is False
    body = {"email": "a@b.test", "password": "secret-pw", "name": "Admin"}
    first = client.post("/api/auth/admin-sign-up", json=body)
    assert first.status_code == 201 and first.json()["isAdmin"] is True
    again = client.post("/api/auth/admin-sign-up", json=body)
    assert again.status_code == 400
    assert again.json() == {
        "message": "The server already has an admin",
        "error": "Bad Request",
        "statusCode": 400,
    }
    wrong = client.post("/api/auth/login", json={"email": "a@b.test", "password": "nope"})
    assert wrong.status_code == 401
    login = client.post("/api/auth/login", json={"email": "a@b.test", "password": "secret-pw"})
    assert login.status_code == 201 and login.json()["isAdmin"] is True
    bearer = {"Authorization": f"Bearer {login.json()['accessToken']}"}
    created = client.post(
        "/api/api-keys", headers=bearer, json={"name": "ic", "permissions": ["all"]}
    )
    assert created.status_code == 201
    assert created.json()["apiKey"]["permissions"] == ["all"]
    secret = created.json()["secret"]
    assert client.get("/api/server/about", headers={"x-api-key": secret}).status_code == 200
    assert client.get("/api/server/about", params={"apiKey": secret}).status_code == 200
    listed = client.get("/api/api-keys", headers=bearer).json()
    assert all("secret" not in key for key in listed)


def test_auth_errors(client: httpx.Client, fake_immich_server: FakeImmichServer) -> None:
    assert client.get("/api/server/about").status_code == 401
    bad_key = client.get("/api/server/storage", headers={"x-api-key": "nope"})
    assert bad_key.status_code == 401 and bad_key.json()["message"] == "Invalid API key"
    bad_token = client.get("/api/server/storage", headers={"Authorization": "Bearer nope"})
    assert bad_token.status_code == 401
    admin = next(iter(fake_immich_server.users.values()))
    narrow = fake_immich_server.create_api_key(admin, "narrow", ("server.about",))
    assert client.get("/api/server/about", headers={"x-api-key": narrow.secret}).status_code == 200
    denied = client.get("/api/server/storage", headers={"x-api-key": narrow.secret})
    assert denied.status_code == 403
    assert denied.json()["message"] == "Missing required permission: server.storage"
    user = fake_immich_server.create_user("u@b.test", "pw", "User")
    user_key = fake_immich_server.create_api_key(user, "user-key")
    stats = client.get("/api/server/statistics", headers={"x-api-key": user_key.secret})
    assert stats.status_code == 403


def test_upload_duplicate_and_delete(
    client: httpx.Client, fake_immich_server: FakeImmichServer
) -> None:
    key = fake_immich_server.admin_api_key
    data = jpeg_bytes()
    created = _upload(client, key, data)
    assert created.status_code == 201 and created.json()["status"] == "created"
    asset_id = created.json()["id"]
    duplicate = _upload(client, key, data)
    assert duplicate.status_code == 200
    assert duplicate.json() == {"status": "duplicate", "id": asset_id}
    asset = fake_immich_server.assets[asset_id]
    assert asset.checksum == hashlib.sha1(data).digest()
    assert asset.device_id == "immichcheck-bench" and asset.size == len(data)
    read = client.get(f"/api/assets/{asset_id}", headers={"x-api-key": key})
    assert read.json()["checksum"] == base64.b64encode(hashlib.sha1(data).digest()).decode()
    stats = client.get("/api/server/statistics", headers={"x-api-key": key}).json()
    assert stats["photos"] == 1 and stats["usage"] == len(data)
    buckets = client.get("/api/timeline/buckets", headers={"x-api-key": key}).json()
    assert buckets == [{"timeBucket": "2024-05-01", "count": 1}]
    deleted = client.request(
        "DELETE", "/api/assets", headers={"x-api-key": key}, json={"ids": [asset_id], "force": True}
    )
    assert deleted.status_code == 204
    gone = client.get(f"/api/assets/{asset_id}", headers={"x-api-key": key})
    assert gone.status_code == 400
    assert fake_immich_server.live_assets() == []
    assert [a.id for a in fake_immich_server.deleted_assets()] == [asset_id]
    # Once force-deleted, the same bytes are new again.
    assert _upload(client, key, data).status_code == 201


def test_checksum_header_answers_duplicate_without_the_body(
    client: httpx.Client, fake_immich_server: FakeImmichServer
) -> None:
    key = fake_immich_server.admin_api_key
    data = jpeg_bytes()
    asset_id = _upload(client, key, data).json()["id"]
    sha1_hex = hashlib.sha1(data).hexdigest()
    early = _upload(client, key, jpeg_bytes(), **{"x-immich-checksum": sha1_hex})
    assert early.status_code == 200 and early.json()["id"] == asset_id
    check = client.post(
        "/api/assets/bulk-upload-check",
        headers={"x-api-key": key},
        json={"assets": [{"id": "a", "checksum": sha1_hex}, {"id": "b", "checksum": "0" * 40}]},
    ).json()["results"]
    assert check[0]["action"] == "reject" and check[0]["reason"] == "duplicate"
    assert check[1] == {"id": "b", "action": "accept"}


def test_upload_validation_and_limits(
    client: httpx.Client, fake_immich_server: FakeImmichServer
) -> None:
    key = fake_immich_server.admin_api_key
    missing = client.post(
        "/api/assets",
        headers={"x-api-key": key},
        data=_upload_fields(deviceId="", fileCreatedAt="yesterday"),
        files={"assetData": ("p.jpg", jpeg_bytes(), "image/jpeg")},
    )
    assert missing.status_code == 400
    assert "deviceId should not be empty" in missing.json()["message"]
    assert "fileCreatedAt must be a Date instance" in missing.json()["message"]
    unsupported = _upload(client, key, b"text", name="notes.txt")
    assert unsupported.status_code == 400
    assert _upload(client, "wrong", jpeg_bytes()).status_code == 401
    fake_immich_server.upload_limit_bytes = 1000
    assert _upload(client, key, jpeg_bytes(payload=b"x" * 5000)).status_code == 413
    assert fake_immich_server.assets == {}


def test_queues_by_version(client: httpx.Client, fake_immich_server: FakeImmichServer) -> None:
    key = {"x-api-key": fake_immich_server.admin_api_key}
    fake_immich_server.queue_counts["thumbnailGeneration"] = {"waiting": 3}
    queues = client.get("/api/queues", headers=key).json()
    by_name = {queue["name"]: queue for queue in queues}
    assert by_name["thumbnailGeneration"]["statistics"]["waiting"] == 3
    assert "ocr" in by_name
    jobs = client.get("/api/jobs", headers=key).json()
    assert jobs["thumbnailGeneration"]["jobCounts"]["waiting"] == 3
    fake_immich_server.version = (2, 2, 0)
    assert client.get("/api/queues", headers=key).status_code == 404
    assert "ocr" not in client.get("/api/jobs", headers=key).json()


def test_socket_io_answers_as_engine_io_with_only_the_websocket_transport(
    client: httpx.Client,
) -> None:
    """Immich's gateway has `transports: ['websocket']`: engine.io refuses everything else."""
    polling = client.get("/api/socket.io/", params={"EIO": "4", "transport": "polling"})
    assert polling.status_code == 400
    assert polling.content == b'{"code":0,"message":"Transport unknown"}'
    assert polling.headers["content-type"] == "application/json"
    assert polling.headers["access-control-allow-origin"] == "*"
    # The websocket transport as a plain GET: what the server sees when a proxy drops Upgrade.
    plain = client.get("/api/socket.io/", params={"EIO": "4", "transport": "websocket"})
    assert (plain.status_code, plain.content) == (400, b'{"code":3,"message":"Bad request"}')
    posted = client.post("/api/socket.io/", params={"EIO": "4", "transport": "websocket"})
    assert posted.content == b'{"code":2,"message":"Bad handshake method"}'
    unknown = client.get(
        "/api/socket.io/", params={"EIO": "4", "transport": "websocket", "sid": "x"}
    )
    assert unknown.content == b'{"code":1,"message":"Session ID unknown"}'
    # A refused upgrade gets engine.io's raw abortUpgrade answer: text/html, connection closed.
    from httpx_ws import WebSocketUpgradeError, connect_ws

    url = "/api/socket.io/?EIO=3&transport=websocket"
    with pytest.raises(WebSocketUpgradeError) as refused, connect_ws(url, client):
        pass
    assert refused.value.response.status_code == 400
    assert refused.value.response.headers["content-type"] == "text/html"
    assert refused.value.response.headers["connection"] == "close"


def test_fail_modes_and_latency(client: httpx.Client, fake_immich_server: FakeImmichServer) -> None:
    fake_immich_server.fail_mode = "500"
    assert client.get("/api/server/ping").status_code == 500
    fake_immich_server.fail_mode = "garbage"
    garbage = client.get("/api/server/ping")
    assert garbage.status_code == 200
    with pytest.raises(ValueError):
        garbage.json()
    fake_immich_server.fail_mode = "hang"
    with pytest.raises(httpx.ReadTimeout):
        client.get("/api/server/ping", timeout=0.3)
    fake_immich_server.reset_knobs()
    fake_immich_server.latency = 0.2
    started = time.perf_counter()
    assert client.get("/api/server/ping").status_code == 200
    assert time.perf_counter() - started >= 0.2


def test_concurrent_uploads_keep_one_asset_per_checksum(
    fake_immich_server: FakeImmichServer,
) -> None:
    data = jpeg_bytes()
    statuses: list[int] = []

    def upload() -> None:
        with httpx.Client(base_url=fake_immich_server.url, timeout=5) as http:
            statuses.append(_upload(http, fake_immich_server.admin_api_key, data).status_code)

    threads = [threading.Thread(target=upload) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 5 + [201]
    assert len(fake_immich_server.assets) == 1


def test_socket_io_websocket_events(
    client: httpx.Client, fake_immich_server: FakeImmichServer
) -> None:
    from httpx_ws import WebSocketSession, connect_ws

    websocket: WebSocketSession
    anonymous: WebSocketSession
    key = {"x-api-key": fake_immich_server.admin_api_key}
    url = "/api/socket.io/?EIO=4&transport=websocket"
    with connect_ws(url, client, headers=key) as websocket:
        assert websocket.receive_text().startswith('0{"sid":')
        websocket.send_text("40")
        assert websocket.receive_text().startswith("40{")
        assert websocket.receive_text() == '42["on_server_version",{"major":2,"minor":7,"patch":5}]'
        asset_id = _upload(client, fake_immich_server.admin_api_key, jpeg_bytes()).json()["id"]
        event = websocket.receive_text()
        assert event.startswith('42["on_upload_success",') and asset_id in event
    with connect_ws(url, client) as anonymous:
        opened = anonymous.receive_text()
        assert opened.startswith('0{"sid":') and '"upgrades":[]' in opened
        anonymous.send_text("40")
        # Socket.IO acknowledges, then Immich's handleConnection fails to authenticate.
        assert anonymous.receive_text().startswith('40{"sid":')
        assert anonymous.receive_text() == '42["error","unauthorized"]'
        assert anonymous.receive_text() == "41"


def test_metadata_search_filters_pages_and_needs_auth(
    client: httpx.Client, fake_immich_server: FakeImmichServer
) -> None:
    key = {"x-api-key": fake_immich_server.admin_api_key}

    def put(name: str, device: str) -> str:
        answer = client.post(
            "/api/assets",
            headers=key,
            data=_upload_fields(deviceId=device, deviceAssetId=name),
            files={"assetData": (name, jpeg_bytes(payload=name.encode()), "image/jpeg")},
        )
        assert answer.status_code == 201
        return str(answer.json()["id"])

    ours = [put(f"immichcheck-bench-r-{n}.jpg", "immichcheck-bench") for n in range(3)]
    lookalike = put("IMG_IMMICHCHECK-BENCH-copy.jpg", "iphone")
    put("IMG_0001.jpg", "iphone")

    def search(**body: Any) -> httpx.Response:
        return client.post("/api/search/metadata", headers=key, json=body)

    by_name = search(originalFileName="immichcheck-bench-")
    assert by_name.status_code == 200
    answer = by_name.json()
    assert answer["albums"] == {"total": 0, "count": 0, "items": [], "facets": []}
    assert set(answer["assets"]) == {"total", "count", "items", "facets", "nextPage"}
    # originalFileName is a case-insensitive "contains"; deviceId must match exactly.
    assert {i["id"] for i in answer["assets"]["items"]} == {*ours, lookalike}
    both = search(originalFileName="immichcheck-bench-", deviceId="immichcheck-bench").json()
    assert {i["id"] for i in both["assets"]["items"]} == set(ours)
    assert search(deviceId="immichcheck").json()["assets"]["items"] == []
    assert len(search().json()["assets"]["items"]) == 5

    first = search(deviceId="immichcheck-bench", size=2).json()["assets"]
    assert first["count"] == 2 and first["nextPage"] == "2"
    second = search(deviceId="immichcheck-bench", size=2, page=2).json()["assets"]
    assert second["count"] == 1 and second["nextPage"] is None
    assert {i["id"] for i in first["items"] + second["items"]} == set(ours)

    # Trashed assets only come back with withDeleted; force-deleted ones never.
    trash = {"ids": [ours[0]]}
    assert client.request("DELETE", "/api/assets", headers=key, json=trash).status_code == 204
    assert search(deviceId="immichcheck-bench").json()["assets"]["count"] == 2
    assert search(deviceId="immichcheck-bench", withDeleted=True).json()["assets"]["count"] == 3

    too_big = search(size=1001)
    assert too_big.status_code == 400
    assert too_big.json()["message"] == ["size must not be greater than 1000"]
    assert search(page=0).json()["message"] == ["page must not be less than 1"]
    assert client.post("/api/search/metadata", json={}).status_code == 401
    other = fake_immich_server.create_user("u@b.test", "pw", "User")
    other_key = fake_immich_server.create_api_key(other, "other").secret
    theirs = client.post("/api/search/metadata", headers={"x-api-key": other_key}, json={})
    assert theirs.status_code == 200 and theirs.json()["assets"]["items"] == []

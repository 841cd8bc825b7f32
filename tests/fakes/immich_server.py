"""A fake Immich server over real HTTP that follows the API contract in shared/REFERENCE.md.

Status codes and bodies copy what a real v2.7.5 server answers (NestJS error shape
`{"message", "error", "statusCode"}`); routes appear and disappear with the simulated
version the way they did in real releases (the `/api/server-info/*` family before v1.118,
`/api/server/*` from v1.107, `/api/queues` from v2.3).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from immichcheck.clients.immich_queues import QUEUE_NAMES, QUEUES_ADDED_IN_V2_7
from tests.fakes import immich_admin
from tests.fakes.http_base import FakeHTTPServer, FilePart, Request, Response
from tests.fakes.socket_io import SocketHub

DEFAULT_VERSION = (2, 7, 5)
NEW_ROUTES_SINCE = (1, 107, 0)  # /api/server/* appeared
LEGACY_ROUTES_UNTIL = (1, 118, 0)  # /api/server-info/* removed
QUEUES_ROUTE_SINCE = (2, 3, 0)  # /api/jobs renamed /api/queues
METADATA_SEARCH_DEFAULT_SIZE = 250  # the server's page size when the request names none

DEFAULT_ADMIN_EMAIL = "admin@immichcheck.test"
DEFAULT_ADMIN_NAME = "Immichcheck Admin"

BASE_QUEUES = tuple(q for q in QUEUE_NAMES if q not in QUEUES_ADDED_IN_V2_7)
V27_QUEUES = QUEUES_ADDED_IN_V2_7

IMAGE_EXTENSIONS = (
    ".3fr", ".ari", ".arw", ".avif", ".bmp", ".cap", ".cin", ".cr2", ".cr3", ".crw", ".dcr",
    ".dng", ".erf", ".fff", ".gif", ".heic", ".heif", ".hif", ".iiq", ".insp", ".jp2", ".jpe",
    ".jpeg", ".jpg", ".jxl", ".k25", ".kdc", ".mrw", ".nef", ".nrw", ".orf", ".ori", ".pef",
    ".png", ".psd", ".raf", ".raw", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".svg", ".tif",
    ".tiff", ".webp", ".x3f",
)  # fmt: skip
VIDEO_EXTENSIONS = (
    ".3gp", ".3gpp", ".avi", ".flv", ".insv", ".m2t", ".m2ts", ".m4v", ".mkv", ".mov", ".mp4",
    ".mpe", ".mpeg", ".mpg", ".mts", ".vob", ".webm", ".wmv",
)  # fmt: skip
SIDECAR_EXTENSIONS = (".xmp",)

UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
ASSET_ID_ROUTE = re.compile(r"^/api/assets/([^/]+)$")
API_KEY_ID_ROUTE = re.compile(r"^/api/api-keys/([^/]+)$")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error(status: int, message: str | list[str], error: str) -> Response:
    """The NestJS error body every Immich endpoint uses."""
    return Response.json(status, {"message": message, "error": error, "statusCode": status})


def bad_request(message: str | list[str]) -> Response:
    """400 in Immich's shape."""
    return _error(400, message, "Bad Request")


def _parse_checksum(value: str) -> bytes | None:
    """A SHA-1 given as 40 hex digits or base64 (both are accepted by Immich)."""
    value = value.strip()
    if re.fullmatch(r"[0-9a-fA-F]{40}", value):
        return bytes.fromhex(value)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 20 else None


def _parse_date(value: str | None) -> datetime | None:
    """An ISO 8601 timestamp as class-transformer would accept it, or None."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class FakeUser:
    """A user account."""

    id: str
    email: str
    name: str
    password: str
    is_admin: bool
    created_at: str = field(default_factory=_now_iso)

    def to_dto(self) -> dict[str, Any]:
        """UserAdminResponseDto (the fields clients read)."""
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "isAdmin": self.is_admin,
            "profileImagePath": "",
            "avatarColor": "primary",
            "shouldChangePassword": False,
            "storageLabel": "admin" if self.is_admin else None,
            "quotaSizeInBytes": None,
            "quotaUsageInBytes": 0,
            "status": "active",
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
            "deletedAt": None,
            "oauthId": "",
            "license": None,
        }


@dataclass
class FakeApiKey:
    """An API key; the secret is only ever returned by the create call."""

    id: str
    name: str
    secret: str
    user_id: str
    permissions: tuple[str, ...]
    created_at: str = field(default_factory=_now_iso)

    def to_dto(self) -> dict[str, Any]:
        """APIKeyResponseDto."""
        return {
            "id": self.id,
            "name": self.name,
            "createdAt": self.created_at,
            "updatedAt": self.created_at,
            "permissions": list(self.permissions),
        }


@dataclass
class FakeAsset:
    """An uploaded asset, kept after deletion so tests can check cleanup."""

    id: str
    owner_id: str
    device_asset_id: str
    device_id: str
    checksum: bytes
    original_file_name: str
    file_created_at: str
    file_modified_at: str
    size: int
    type: str
    is_favorite: bool = False
    visibility: str = "timeline"
    duration: str | None = None
    created_at: str = field(default_factory=_now_iso)
    trashed_at: str | None = None
    deleted_at: str | None = None

    @property
    def is_deleted(self) -> bool:
        """Force-deleted (gone from the database in a real server)."""
        return self.deleted_at is not None

    @property
    def is_trashed(self) -> bool:
        """In the trash (deleted without force)."""
        return self.trashed_at is not None

    def to_dto(self) -> dict[str, Any]:
        """AssetResponseDto (the fields clients read)."""
        return {
            "id": self.id,
            "deviceAssetId": self.device_asset_id,
            "deviceId": self.device_id,
            "ownerId": self.owner_id,
            "libraryId": None,
            "type": self.type,
            "originalPath": f"/data/upload/{self.owner_id}/{self.id[:2]}/{self.id}",
            "originalFileName": self.original_file_name,
            "originalMimeType": "image/jpeg" if self.type == "IMAGE" else "video/mp4",
            "fileCreatedAt": self.file_created_at,
            "fileModifiedAt": self.file_modified_at,
            "localDateTime": self.file_created_at,
            "updatedAt": self.created_at,
            "createdAt": self.created_at,
            "isFavorite": self.is_favorite,
            "isArchived": self.visibility == "archive",
            "isTrashed": self.is_trashed,
            "isOffline": False,
            "visibility": self.visibility,
            "duration": self.duration or "0:00:00.00000",
            "checksum": base64.b64encode(self.checksum).decode(),
            "hasMetadata": False,
            "duplicateId": None,
            "resized": False,
            "thumbhash": None,
        }


def _signed_in(
    permission: str, *, admin: bool = False
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Route decorator: the handler runs with the user the request authenticates as, and
    otherwise the request gets the 401/403 a real server sends (its body drained first)."""

    def decorate(handler: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(handler)
        def route(server: FakeImmichServer, request: Request, *args: Any) -> Response:
            user = server._authenticate(request, permission, admin=admin)
            if isinstance(user, Response):
                request.drain()
                return user
            return handler(server, request, user, *args)

        return route

    return decorate


class FakeImmichServer(FakeHTTPServer):
    """Fake Immich server: public, auth, upload/delete, timeline, queues and socket.io open."""

    server_name = "immich-fake"

    def __init__(self) -> None:
        super().__init__()
        self.version: tuple[int, int, int] = DEFAULT_VERSION
        self.legacy_ping_only = False
        self.upload_limit_bytes: int | None = None
        self.onboarded = True
        self.features: dict[str, bool] = {}
        self.queue_counts: dict[str, dict[str, int]] = {}
        self.paused_queues: set[str] = set()
        self.admin = immich_admin.AdminState()  # system config, backups, disk (immich_admin.py)
        self.users: dict[str, FakeUser] = {}
        self.api_keys: dict[str, FakeApiKey] = {}
        self.sessions: dict[str, str] = {}
        self.assets: dict[str, FakeAsset] = {}
        self.requests: list[dict[str, Any]] = []
        self.processing_delay = 0.0
        self.socket_hub = SocketHub(self, self._socket_user, self._version_dto)
        self.admin_email = DEFAULT_ADMIN_EMAIL
        self.admin_password = ""
        self.admin_api_key = ""
        self.reset()

    # State and knobs --------------------------------------------------------------------

    def reset(self, *, seed_admin: bool = True) -> None:
        """Back to a healthy v2.7.5 server; with `seed_admin` an admin and an API key exist."""
        with self.lock:
            self.reset_knobs()
            self.version = DEFAULT_VERSION
            self.legacy_ping_only = False
            self.upload_limit_bytes = None
            self.onboarded = True
            self.features = {
                "smartSearch": True,
                "facialRecognition": True,
                "duplicateDetection": True,
                "map": True,
                "reverseGeocoding": True,
                "importFaces": False,
                "sidecar": True,
                "search": True,
                "trash": True,
                "oauth": False,
                "oauthAutoLaunch": False,
                "ocr": True,
                "passwordLogin": True,
                "configFile": False,
                "email": False,
            }
            self.queue_counts = {}
            self.paused_queues = set()
            self.admin = immich_admin.reset_state(self)
            self.users = {}
            self.api_keys = {}
            self.sessions = {}
            self.assets = {}
            self.requests = []
            self.processing_delay = 0.0
            self.socket_hub.reset()
            self.admin_password = ""
            self.admin_api_key = ""
            if seed_admin:
                self.admin_password = secrets.token_urlsafe(18)
                admin = self.create_user(
                    DEFAULT_ADMIN_EMAIL, self.admin_password, DEFAULT_ADMIN_NAME, is_admin=True
                )
                self.admin_api_key = self.create_api_key(admin, "immichcheck-admin").secret

    def create_user(
        self, email: str, password: str, name: str, *, is_admin: bool = False
    ) -> FakeUser:
        """Add a user directly (what the admin UI would do)."""
        with self.lock:
            user = FakeUser(str(uuid.uuid4()), email, name, password, is_admin)
            self.users[user.id] = user
            return user

    def create_api_key(
        self, user: FakeUser, name: str, permissions: tuple[str, ...] = ("all",)
    ) -> FakeApiKey:
        """Add an API key for a user; tests use narrow permissions to provoke 403."""
        with self.lock:
            key = FakeApiKey(
                str(uuid.uuid4()), name, secrets.token_urlsafe(32), user.id, tuple(permissions)
            )
            self.api_keys[key.secret] = key
            return key

    def queue_names(self) -> tuple[str, ...]:
        """The BullMQ queues the simulated version has."""
        return BASE_QUEUES + (V27_QUEUES if self.version >= (2, 7, 0) else ())

    def live_assets(self) -> list[FakeAsset]:
        """Assets not force-deleted."""
        with self.lock:
            return [asset for asset in self.assets.values() if not asset.is_deleted]

    def deleted_assets(self) -> list[FakeAsset]:
        """Assets that were force-deleted."""
        with self.lock:
            return [asset for asset in self.assets.values() if asset.is_deleted]

    def version_string(self) -> str:
        """`v2.7.5` style."""
        return "v{}.{}.{}".format(*self.version)

    # Dispatch ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Route one request and log it."""
        started = time.perf_counter()
        response = self._route(request)
        with self.lock:
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "status": response.status,
                    "seconds": time.perf_counter() - started,
                }
            )
        return response

    def _route(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        method = request.method
        if path == "/api/socket.io":
            return self.socket_hub.handle(request)
        admin_answer = immich_admin.route(self, request, path)
        if admin_answer is not None:
            return admin_answer
        server_route = self._server_route(path)
        if server_route is not None:
            if method != "GET":
                return self._not_found(request)
            return server_route(request)
        simple: dict[tuple[str, str], Callable[[Request], Response]] = {
            ("POST", "/api/auth/admin-sign-up"): self._admin_sign_up,
            ("POST", "/api/auth/login"): self._login,
            ("POST", "/api/auth/logout"): self._logout,
            ("POST", "/api/api-keys"): self._create_api_key,
            ("GET", "/api/api-keys"): self._list_api_keys,
            ("GET", "/api/users/me"): self._users_me,
            ("POST", "/api/assets"): self._upload,
            ("DELETE", "/api/assets"): self._delete_assets,
            ("POST", "/api/assets/bulk-upload-check"): self._bulk_upload_check,
            ("GET", "/api/jobs"): self._jobs,
            ("GET", "/api/timeline/buckets"): self._timeline_buckets,
            ("GET", "/api/timeline/bucket"): self._timeline_bucket,
            ("POST", "/api/search/smart"): self._smart_search,
            ("POST", "/api/search/metadata"): self._metadata_search,
        }
        if self.version >= QUEUES_ROUTE_SINCE:
            simple[("GET", "/api/queues")] = self._queues
        handler = simple.get((method, path))
        if handler is not None:
            return handler(request)
        match = ASSET_ID_ROUTE.match(path)
        if match and method == "GET" and match.group(1) != "bulk-upload-check":
            return self._get_asset(request, match.group(1))
        match = API_KEY_ID_ROUTE.match(path)
        if match and method == "DELETE":
            return self._delete_api_key(request, match.group(1))
        return self._not_found(request)

    def _not_found(self, request: Request) -> Response:
        request.drain()
        return _error(404, f"Cannot {request.method} {request.path}", "Not Found")

    def _server_route(self, path: str) -> Callable[[Request], Response] | None:
        """The /api/server/* or legacy /api/server-info/* handler the version has, if any."""
        new_family = self.version >= NEW_ROUTES_SINCE and not self.legacy_ping_only
        legacy_family = self.version < LEGACY_ROUTES_UNTIL or self.legacy_ping_only
        for prefix, available in (
            ("/api/server/", new_family),
            ("/api/server-info/", legacy_family),
        ):
            if path.startswith(prefix) and available:
                name = path[len(prefix) :]
                routes: dict[str, Callable[[Request], Response]] = {
                    "ping": lambda _r: Response.json(200, {"res": "pong"}),
                    "version": lambda _r: Response.json(200, self._version_dto()),
                    "features": lambda _r: Response.json(200, dict(self.features)),
                    "config": self._server_config,
                    "media-types": lambda _r: Response.json(200, self._media_types()),
                    "about": self._about,
                    "storage": self._storage,
                    "statistics": self._statistics,
                }
                return routes.get(name)
        return None

    # Authentication -------------------------------------------------------------------------

    def _authenticate(
        self, request: Request, permission: str, *, admin: bool = False
    ) -> FakeUser | Response:
        """The user behind the request, or the 401/403 a real server would send."""
        key_value = request.headers.get("x-api-key") or request.query_value("apiKey")
        bearer = request.headers.get("authorization", "")
        cookie_token = _cookie(request.headers.get("cookie", ""), "immich_access_token")
        permissions: tuple[str, ...] = ("all",)
        with self.lock:
            if key_value:
                key = self.api_keys.get(key_value)
                if key is None:
                    return _error(401, "Invalid API key", "Unauthorized")
                user = self.users[key.user_id]
                permissions = key.permissions
            elif bearer.lower().startswith("bearer ") or cookie_token:
                token = bearer[7:].strip() if bearer else cookie_token
                user_id = self.sessions.get(token or "")
                if user_id is None:
                    return _error(401, "Invalid user token", "Unauthorized")
                user = self.users[user_id]
            else:
                return _error(401, "Authentication required", "Unauthorized")
        if admin and not user.is_admin:
            return _error(403, "Forbidden", "Forbidden")
        if "all" not in permissions and permission not in permissions:
            return _error(403, f"Missing required permission: {permission}", "Forbidden")
        return user

    def _json_body(self, request: Request) -> dict[str, Any] | Response:
        try:
            body = request.json()
        except ValueError:
            return bad_request("Unexpected token in JSON at position 0")
        if not isinstance(body, dict):
            return bad_request("Request body must be an object")
        return body

    # Server routes ----------------------------------------------------------------------

    def _version_dto(self) -> dict[str, int]:
        major, minor, patch = self.version
        return {"major": major, "minor": minor, "patch": patch}

    def _media_types(self) -> dict[str, list[str]]:
        return {
            "video": list(VIDEO_EXTENSIONS),
            "image": list(IMAGE_EXTENSIONS),
            "sidecar": list(SIDECAR_EXTENSIONS),
        }

    def _server_config(self, request: Request) -> Response:
        with self.lock:
            initialized = any(user.is_admin for user in self.users.values())
        return Response.json(
            200,
            {
                "loginPageMessage": "",
                "trashDays": 30,
                "userDeleteDelay": 7,
                "oauthButtonText": "Login with OAuth",
                "isInitialized": initialized,
                "isOnboarded": initialized and self.onboarded,
                "externalDomain": "",
                "publicUsers": True,
                "mapDarkStyleUrl": "https://tiles.immich.cloud/v1/style/dark.json",
                "mapLightStyleUrl": "https://tiles.immich.cloud/v1/style/light.json",
                "maintenanceMode": False,
            },
        )

    @_signed_in("server.about")
    def _about(self, request: Request, user: FakeUser) -> Response:
        version = self.version_string()
        return Response.json(
            200,
            {
                "version": version,
                "versionUrl": f"https://github.com/immich-app/immich/releases/tag/{version}",
                "licensed": False,
                "nodejs": "v22.18.0",
                "ffmpeg": "7.1.1-7",
                "imagemagick": "7.1.2-0",
                "libvips": "8.17.1",
                "exiftool": "13.30",
                "repository": "immich-app/immich",
                "repositoryUrl": "https://github.com/immich-app/immich",
                "build": "fake",
                "sourceRef": version,
            },
        )

    @_signed_in("server.storage")
    def _storage(self, request: Request, user: FakeUser) -> Response:
        size = 2_000_000_000_000
        used = 400_000_000_000 + sum(asset.size for asset in self.live_assets())
        return Response.json(200, immich_admin.storage_body(self, size, used))

    @_signed_in("server.statistics", admin=True)
    def _statistics(self, request: Request, user: FakeUser) -> Response:
        live = self.live_assets()
        per_user = []
        with self.lock:
            users = list(self.users.values())
        for owner in users:
            owned = [asset for asset in live if asset.owner_id == owner.id]
            photos = [asset for asset in owned if asset.type == "IMAGE"]
            videos = [asset for asset in owned if asset.type == "VIDEO"]
            per_user.append(
                {
                    "userId": owner.id,
                    "userName": owner.name,
                    "photos": len(photos),
                    "videos": len(videos),
                    "usage": sum(asset.size for asset in owned),
                    "usagePhotos": sum(asset.size for asset in photos),
                    "usageVideos": sum(asset.size for asset in videos),
                    "quotaSizeInBytes": None,
                }
            )
        return Response.json(
            200,
            {
                "photos": sum(entry["photos"] for entry in per_user),
                "videos": sum(entry["videos"] for entry in per_user),
                "usage": sum(entry["usage"] for entry in per_user),
                "usagePhotos": sum(entry["usagePhotos"] for entry in per_user),
                "usageVideos": sum(entry["usageVideos"] for entry in per_user),
                "usageByUser": per_user,
            },
        )

    # Auth routes --------------------------------------------------------------------------

    def _admin_sign_up(self, request: Request) -> Response:
        body = self._json_body(request)
        if isinstance(body, Response):
            return body
        problems = _required_strings(body, ("email", "password", "name"))
        if problems:
            return bad_request(problems)
        with self.lock:
            if any(user.is_admin for user in self.users.values()):
                return bad_request("The server already has an admin")
            user = self.create_user(body["email"], body["password"], body["name"], is_admin=True)
        return Response.json(201, user.to_dto())

    def _login(self, request: Request) -> Response:
        body = self._json_body(request)
        if isinstance(body, Response):
            return body
        problems = _required_strings(body, ("email", "password"))
        if problems:
            return bad_request(problems)
        with self.lock:
            user = next(
                (
                    candidate
                    for candidate in self.users.values()
                    if candidate.email.lower() == str(body["email"]).lower()
                    and candidate.password == body["password"]
                ),
                None,
            )
            if user is None:
                return _error(401, "Incorrect email or password", "Unauthorized")
            token = secrets.token_urlsafe(32)
            self.sessions[token] = user.id
        return Response.json(
            201,
            {
                "accessToken": token,
                "userId": user.id,
                "userEmail": user.email,
                "name": user.name,
                "profileImagePath": "",
                "isAdmin": user.is_admin,
                "shouldChangePassword": False,
                "isOnboarded": self.onboarded,
            },
        )

    @_signed_in("session.delete")
    def _logout(self, request: Request, user: FakeUser) -> Response:
        token = request.headers.get("authorization", "")[7:].strip()
        with self.lock:
            self.sessions.pop(token, None)
        request.drain()
        return Response.json(200, {"successful": True, "redirectUri": "/auth/login"})

    @_signed_in("user.read")
    def _users_me(self, request: Request, user: FakeUser) -> Response:
        return Response.json(200, user.to_dto())

    @_signed_in("apiKey.create")
    def _create_api_key(self, request: Request, user: FakeUser) -> Response:
        body = self._json_body(request)
        if isinstance(body, Response):
            return body
        permissions = body.get("permissions")
        if not isinstance(permissions, list) or not permissions:
            return bad_request(["permissions must be an array", "permissions should not be empty"])
        key = self.create_api_key(user, str(body.get("name") or "API Key"), tuple(permissions))
        return Response.json(201, {"secret": key.secret, "apiKey": key.to_dto()})

    @_signed_in("apiKey.read")
    def _list_api_keys(self, request: Request, user: FakeUser) -> Response:
        with self.lock:
            keys = [key.to_dto() for key in self.api_keys.values() if key.user_id == user.id]
        return Response.json(200, keys)

    @_signed_in("apiKey.delete")
    def _delete_api_key(self, request: Request, user: FakeUser, key_id: str) -> Response:
        request.drain()
        with self.lock:
            for secret, key in list(self.api_keys.items()):
                if key.id == key_id and key.user_id == user.id:
                    del self.api_keys[secret]
                    return Response.empty(204)
        return bad_request("API Key not found")

    # Assets -------------------------------------------------------------------------------

    def _find_duplicate(self, owner_id: str, checksum: bytes) -> FakeAsset | None:
        """Checksums are unique per user among assets still in the database (trash counts)."""
        with self.lock:
            for asset in self.assets.values():
                if (
                    asset.owner_id == owner_id
                    and asset.checksum == checksum
                    and not asset.is_deleted
                ):
                    return asset
        return None

    @_signed_in("asset.upload")
    def _upload(self, request: Request, user: FakeUser) -> Response:
        limit = self.upload_limit_bytes
        if limit is not None and request.content_length > limit:
            request.drain()
            return _error(413, "request entity too large", "Payload Too Large")
        header_checksum = request.headers.get("x-immich-checksum")
        if header_checksum:
            checksum = _parse_checksum(header_checksum)
            duplicate = self._find_duplicate(user.id, checksum) if checksum else None
            if duplicate is not None:
                # The server answers from the header alone; the body is never stored.
                request.drain()
                return Response.json(200, {"status": "duplicate", "id": duplicate.id})
        try:
            form = request.multipart()
        except ValueError:
            request.drain()
            return bad_request("Multipart: Boundary not found")
        fields = form.fields
        problems: list[str] = []
        file_part: FilePart | None = form.files.get("assetData")
        if file_part is None:
            problems.append("assetData should not be empty")
        for name in ("deviceAssetId", "deviceId"):
            if not fields.get(name):
                problems.extend([f"{name} should not be empty", f"{name} must be a string"])
        created = _parse_date(fields.get("fileCreatedAt"))
        modified = _parse_date(fields.get("fileModifiedAt"))
        if created is None:
            problems.append("fileCreatedAt must be a Date instance")
        if modified is None:
            problems.append("fileModifiedAt must be a Date instance")
        visibility = fields.get("visibility", "timeline")
        if visibility not in ("archive", "timeline", "hidden", "locked"):
            problems.append(
                "visibility must be one of the following values: archive, timeline, hidden, locked"
            )
        if problems or file_part is None or created is None or modified is None:
            return bad_request(problems)
        filename = fields.get("filename") or file_part.filename or "file"
        extension = ("." + filename.rsplit(".", 1)[-1].lower()) if "." in filename else ""
        if extension in VIDEO_EXTENSIONS:
            asset_type = "VIDEO"
        elif extension in IMAGE_EXTENSIONS:
            asset_type = "IMAGE"
        else:
            return bad_request(f"Unsupported file type {filename}")
        with self.lock:
            duplicate = self._find_duplicate(user.id, file_part.sha1)
            if duplicate is not None:
                return Response.json(200, {"status": "duplicate", "id": duplicate.id})
            asset = FakeAsset(
                id=str(uuid.uuid4()),
                owner_id=user.id,
                device_asset_id=fields["deviceAssetId"],
                device_id=fields["deviceId"],
                checksum=file_part.sha1,
                original_file_name=filename,
                file_created_at=created.isoformat().replace("+00:00", "Z"),
                file_modified_at=modified.isoformat().replace("+00:00", "Z"),
                size=file_part.size,
                type=asset_type,
                is_favorite=fields.get("isFavorite", "false").lower() == "true",
                visibility=visibility,
                duration=fields.get("duration"),
            )
            self.assets[asset.id] = asset
        self._announce_upload(asset)
        return Response.json(201, {"id": asset.id, "status": "created"})

    @_signed_in("asset.upload")
    def _bulk_upload_check(self, request: Request, user: FakeUser) -> Response:
        body = self._json_body(request)
        if isinstance(body, Response):
            return body
        items = body.get("assets")
        if not isinstance(items, list):
            return bad_request(["assets must be an array"])
        results = []
        for item in items:
            if not isinstance(item, dict) or "id" not in item or "checksum" not in item:
                return bad_request(["each value in assets must be an object with id and checksum"])
            checksum = _parse_checksum(str(item["checksum"]))
            duplicate = self._find_duplicate(user.id, checksum) if checksum else None
            if duplicate is not None:
                results.append(
                    {
                        "id": item["id"],
                        "action": "reject",
                        "reason": "duplicate",
                        "assetId": duplicate.id,
                        "isTrashed": duplicate.is_trashed,
                    }
                )
            else:
                results.append({"id": item["id"], "action": "accept"})
        return Response.json(200, {"results": results})

    @_signed_in("asset.read")
    def _get_asset(self, request: Request, user: FakeUser, asset_id: str) -> Response:
        if not UUID_PATTERN.match(asset_id):
            return bad_request(["id must be a UUID"])
        with self.lock:
            asset = self.assets.get(asset_id)
            if asset is None or asset.is_deleted or asset.owner_id != user.id:
                return bad_request("Not found or no asset.read access")
            return Response.json(200, asset.to_dto())

    @_signed_in("asset.delete")
    def _delete_assets(self, request: Request, user: FakeUser) -> Response:
        body = self._json_body(request)
        if isinstance(body, Response):
            return body
        ids = body.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return bad_request(["ids must be an array", "each value in ids must be a UUID"])
        if not all(UUID_PATTERN.match(asset_id) for asset_id in ids):
            return bad_request(["each value in ids must be a UUID"])
        force = body.get("force") is True
        with self.lock:
            targets = [self.assets.get(asset_id) for asset_id in ids]
            if any(a is None or a.is_deleted or a.owner_id != user.id for a in targets):
                return bad_request("Not found or no asset.delete access")
            stamp = _now_iso()
            for asset in targets:
                if asset is None:
                    continue
                if force or not self.features.get("trash", True):
                    asset.deleted_at = stamp
                else:
                    asset.trashed_at = stamp
        return Response.empty(204)

    # Timeline, search, queues -------------------------------------------------------------

    def _visible_assets(self, user: FakeUser) -> list[FakeAsset]:
        return [
            asset
            for asset in self.live_assets()
            if asset.owner_id == user.id and not asset.is_trashed and asset.visibility == "timeline"
        ]

    @_signed_in("asset.read")
    def _timeline_buckets(self, request: Request, user: FakeUser) -> Response:
        counts: dict[str, int] = {}
        for asset in self._visible_assets(user):
            bucket = asset.file_created_at[:7] + "-01"
            counts[bucket] = counts.get(bucket, 0) + 1
        buckets = [
            {"timeBucket": key, "count": counts[key]} for key in sorted(counts, reverse=True)
        ]
        return Response.json(200, buckets)

    @_signed_in("asset.read")
    def _timeline_bucket(self, request: Request, user: FakeUser) -> Response:
        time_bucket = request.query_value("timeBucket")
        if not time_bucket:
            return bad_request(["timeBucket should not be empty", "timeBucket must be a string"])
        month = time_bucket[:7]
        assets = sorted(
            (asset for asset in self._visible_assets(user) if asset.file_created_at[:7] == month),
            key=lambda asset: asset.file_created_at,
            reverse=True,
        )
        # v2 answers one columnar object per bucket instead of a list of asset objects.
        return Response.json(
            200,
            {
                "id": [asset.id for asset in assets],
                "ownerId": [asset.owner_id for asset in assets],
                "isImage": [asset.type == "IMAGE" for asset in assets],
                "isFavorite": [asset.is_favorite for asset in assets],
                "isTrashed": [asset.is_trashed for asset in assets],
                "visibility": [asset.visibility for asset in assets],
                "fileCreatedAt": [asset.file_created_at for asset in assets],
                "localOffsetHours": [0 for _ in assets],
                "duration": [asset.duration for asset in assets],
                "ratio": [1.5 for _ in assets],
                "thumbhash": [None for _ in assets],
                "livePhotoVideoId": [None for _ in assets],
                "projectionType": [None for _ in assets],
                "city": [None for _ in assets],
                "country": [None for _ in assets],
            },
        )

    @_signed_in("asset.read")
    def _smart_search(self, request: Request, user: FakeUser) -> Response:
        body = self._json_body(request)
        if isinstance(body, Response):
            return body
        if not self.features.get("smartSearch", False):
            return bad_request("Smart search is not enabled")
        query = body.get("query")
        if not isinstance(query, str) or not query:
            return bad_request(["query should not be empty", "query must be a string"])
        size = body.get("size", 100)
        items = [asset.to_dto() for asset in self._visible_assets(user)][: int(size)]
        return _search_response(items, next_page=None)

    @_signed_in("asset.read")
    def _metadata_search(self, request: Request, user: FakeUser) -> Response:
        """`POST /api/search/metadata` (MetadataSearchDto in, SearchResponseDto out)."""
        body = self._json_body(request)
        if isinstance(body, Response):
            return body
        problems: list[str] = []
        for name in ("deviceId", "deviceAssetId", "originalFileName"):
            if name in body and not isinstance(body[name], str):
                problems.append(f"{name} must be a string")
        page = body.get("page", 1)
        size = body.get("size", METADATA_SEARCH_DEFAULT_SIZE)
        for name, value, maximum in (("page", page, None), ("size", size, 1000)):
            if not isinstance(value, int) or isinstance(value, bool):
                problems.append(f"{name} must be an integer number")
            elif value < 1:
                problems.append(f"{name} must not be less than 1")
            elif maximum is not None and value > maximum:
                problems.append(f"{name} must not be greater than {maximum}")
        if problems:
            return bad_request(problems)
        with self.lock:
            owned = [
                asset
                for asset in self.assets.values()
                if asset.owner_id == user.id and not asset.is_deleted
            ]
        matches = sorted(
            (asset for asset in owned if self._metadata_matches(asset, body)),
            key=lambda asset: asset.file_created_at,
            reverse=True,
        )
        start = (page - 1) * size
        items = [asset.to_dto() for asset in matches[start : start + size]]
        # Immich sends the next page number as a string, or null on the last page.
        next_page = str(page + 1) if len(matches) > start + size else None
        return _search_response(items, next_page=next_page)

    def _metadata_matches(self, asset: FakeAsset, filters: dict[str, Any]) -> bool:
        """Whether an asset passes the MetadataSearchDto filters the fake knows.

        Immich compares `deviceId` and `deviceAssetId` exactly and `originalFileName` with
        `ilike '%name%'`; trashed assets only come back with `withDeleted`. Filters the fake
        does not model are ignored, as the server's whitelisting validation strips unknown ones.
        """
        if asset.is_trashed and filters.get("withDeleted") is not True:
            return False
        for name, value in (
            ("deviceId", asset.device_id),
            ("deviceAssetId", asset.device_asset_id),
        ):
            wanted = filters.get(name)
            if wanted is not None and wanted != value:
                return False
        name_part = filters.get("originalFileName")
        return name_part is None or name_part.lower() in asset.original_file_name.lower()

    def _counts(self, name: str) -> dict[str, int]:
        counts = {"active": 0, "completed": 0, "failed": 0, "delayed": 0, "waiting": 0, "paused": 0}
        counts.update(self.queue_counts.get(name, {}))
        return counts

    @_signed_in("job.read", admin=True)
    def _jobs(self, request: Request, user: FakeUser) -> Response:
        body = {
            name: {
                "jobCounts": self._counts(name),
                "queueStatus": {
                    "isActive": self._counts(name)["active"] > 0,
                    "isPaused": name in self.paused_queues,
                },
            }
            for name in self.queue_names()
        }
        return Response.json(200, body)

    @_signed_in("queue.read", admin=True)
    def _queues(self, request: Request, user: FakeUser) -> Response:
        body = [
            {
                "name": name,
                "isPaused": name in self.paused_queues,
                "statistics": self._counts(name),
            }
            for name in self.queue_names()
        ]
        return Response.json(200, body)

    # socket.io and events --------------------------------------------------------------------

    def _socket_user(self, request: Request) -> str | None:
        """The user a socket.io handshake authenticates as (Immich accepts any valid auth)."""
        user = self._authenticate(request, "all")
        return None if isinstance(user, Response) else user.id

    def emit(self, event: str, payload: Any, *, user_id: str | None = None) -> int:
        """Push a socket.io event to connected clients; returns how many received it."""
        return self.socket_hub.emit(event, payload, user_id=user_id)

    def _announce_upload(self, asset: FakeAsset) -> None:
        """on_upload_success once "processing" is done, as Immich does after metadata extraction."""

        def send() -> None:
            self.emit("on_upload_success", asset.to_dto(), user_id=asset.owner_id)

        if self.processing_delay > 0:
            timer = threading.Timer(self.processing_delay, send)
            timer.daemon = True
            timer.start()
        else:
            send()


def _required_strings(body: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    problems: list[str] = []
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value:
            problems.extend([f"{name} should not be empty", f"{name} must be a string"])
    return problems


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _search_response(items: list[dict[str, Any]], *, next_page: str | None) -> Response:
    """SearchResponseDto: the assets found (no albums), `nextPage` null on the last page."""
    return Response.json(
        200,
        {
            "albums": {"total": 0, "count": 0, "items": [], "facets": []},
            "assets": {
                "total": len(items),
                "count": len(items),
                "items": items,
                "facets": [],
                "nextPage": next_page,
            },
        },
    )

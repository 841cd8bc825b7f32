"""The fake Immich server's admin side: system config, database backups, queue jobs, disk.

Shapes follow Immich's server source: `SystemConfig` defaults (server/src/config.ts, the
sections a v2.7 server has), `DatabaseBackupListResponseDto` `{backups:[{filename, filesize,
timezone}]}` on GET /api/admin/database-backups (added v2.5.0, permission `maintenance`),
`QueueJobResponseDto` on GET /api/queues/<name>/jobs (v2.3.0, `queueJob.read`). Tests set the
state: backups with ages and sizes, a full disk, failing, moving or stalled queues, config.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tests.fakes.http_base import Request, Response

if TYPE_CHECKING:
    from tests.fakes.immich_server import FakeImmichServer

DATABASE_BACKUPS_SINCE = (2, 5, 0)
QUEUE_JOBS_SINCE = (2, 3, 0)
DEFAULT_POSTGRES = "15.20"
DEFAULT_BACKUP_SIZE = 30879  # the dump of a small library seen on a real v2.7.5 server
DEFAULT_DISK = 270_553_174_016  # diskSizeRaw seen on a real server

DEFAULT_SYSTEM_CONFIG: dict[str, Any] = {
    "backup": {"database": {"enabled": True, "cronExpression": "0 02 * * *", "keepLastAmount": 14}},
    "ffmpeg": {
        "crf": 23,
        "threads": 0,
        "preset": "ultrafast",
        "targetVideoCodec": "h264",
        "acceptedVideoCodecs": ["h264"],
        "targetAudioCodec": "aac",
        "acceptedAudioCodecs": ["aac", "mp3", "libopus"],
        "acceptedContainers": ["mov", "ogg", "webm"],
        "targetResolution": "720",
        "maxBitrate": "0",
        "bframes": -1,
        "refs": 0,
        "gopSize": 0,
        "temporalAQ": False,
        "cqMode": "auto",
        "twoPass": False,
        "preferredHwDevice": "auto",
        "transcode": "required",
        "tonemap": "hable",
        "accel": "disabled",
        "accelDecode": False,
    },
    # Concurrency per queue (ConcurrentQueueName: the queues whose workers can run in parallel).
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
    "logging": {"enabled": True, "level": "log"},
    "machineLearning": {
        "enabled": True,
        "urls": ["http://immich-machine-learning:3003"],
        "availabilityChecks": {"enabled": True, "timeout": 2000, "interval": 30000},
        "clip": {"enabled": True, "modelName": "ViT-B-32__openai"},
        "duplicateDetection": {"enabled": True, "maxDistance": 0.01},
        "facialRecognition": {
            "enabled": True,
            "modelName": "buffalo_l",
            "minScore": 0.7,
            "maxDistance": 0.5,
            "minFaces": 3,
        },
        "ocr": {
            "enabled": True,
            "modelName": "PP-OCRv5_mobile",
            "minDetectionScore": 0.5,
            "minRecognitionScore": 0.8,
            "maxResolution": 736,
        },
    },
    "map": {
        "enabled": True,
        "lightStyle": "https://tiles.immich.cloud/v1/style/light.json",
        "darkStyle": "https://tiles.immich.cloud/v1/style/dark.json",
    },
    "reverseGeocoding": {"enabled": True},
    "metadata": {"faces": {"import": False}},
    "oauth": {
        "autoLaunch": False,
        "autoRegister": True,
        "buttonText": "Login with OAuth",
        "clientId": "",
        "clientSecret": "",
        "defaultStorageQuota": None,
        "enabled": False,
        "issuerUrl": "",
        "mobileOverrideEnabled": False,
        "mobileRedirectUri": "",
        "scope": "openid email profile",
        "signingAlgorithm": "RS256",
        "profileSigningAlgorithm": "none",
        "storageLabelClaim": "preferred_username",
        "storageQuotaClaim": "immich_quota",
        "roleClaim": "immich_role",
        "tokenEndpointAuthMethod": "client_secret_post",
        "timeout": 30000,
    },
    "passwordLogin": {"enabled": True},
    "storageTemplate": {
        "enabled": False,
        "hashVerificationEnabled": True,
        "template": "{{y}}/{{y}}-{{MM}}-{{dd}}/{{filename}}",
    },
    "image": {
        "thumbnail": {"format": "webp", "size": 250, "quality": 80, "progressive": False},
        "preview": {"format": "jpeg", "size": 1440, "quality": 80, "progressive": False},
        "colorspace": "p3",
        "extractEmbedded": False,
        "fullsize": {"enabled": False, "format": "jpeg", "quality": 80, "progressive": False},
    },
    "newVersionCheck": {"enabled": True},
    "nightlyTasks": {
        "startTime": "00:00",
        "databaseCleanup": True,
        "generateMemories": True,
        "syncQuotaUsage": True,
        "missingThumbnails": True,
        "clusterNewFaces": True,
    },
    "trash": {"enabled": True, "days": 30},
    "theme": {"customCss": ""},
    "library": {
        "scan": {"enabled": True, "cronExpression": "0 0 * * *"},
        "watch": {"enabled": False},
    },
    "server": {"externalDomain": "", "loginPageMessage": "", "publicUsers": True},
    "notifications": {
        "smtp": {
            "enabled": False,
            "from": "",
            "replyTo": "",
            "transport": {
                "ignoreCert": False,
                "host": "",
                "port": 587,
                "secure": False,
                "username": "",
                "password": "",
            },
        }
    },
    "templates": {
        "email": {"welcomeTemplate": "", "albumInviteTemplate": "", "albumUpdateTemplate": ""}
    },
    "user": {"deleteDelay": 7},
}


def backup_filename(taken: datetime, server: str, postgres: str = DEFAULT_POSTGRES) -> str:
    """Immich's name for a nightly dump: immich-db-backup-<local time>-v<server>-pg<pg>.sql.gz."""
    return f"immich-db-backup-{taken:%Y%m%dT%H%M%S}-v{server}-pg{postgres}.sql.gz"


@dataclass
class AdminState:
    """What the admin endpoints answer; every field can be set by a test."""

    config: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_SYSTEM_CONFIG))
    backups: list[dict[str, Any]] = field(default_factory=list)
    timezone: str = "UTC"
    disk_size: int | None = None  # None: the server's own computed default
    disk_used: int | None = None
    # Jobs finished per reading of the queue list: a busy queue that moves.
    moving_queues: dict[str, int] = field(default_factory=dict)
    failed_reasons: dict[str, list[str]] = field(default_factory=dict)

    def add_backup(
        self, age: timedelta, size: int = DEFAULT_BACKUP_SIZE, server: str = "2.7.5"
    ) -> str:
        """A dump taken `age` ago (newest first in the listing, as the server sorts)."""
        name = backup_filename(datetime.now(UTC) - age, server)
        self.backups.append({"filename": name, "filesize": size})
        self.backups.sort(key=lambda b: str(b["filename"]), reverse=True)
        return name

    def set_disk_percent(self, percent: float, size: int = DEFAULT_DISK) -> None:
        """The media disk at `percent` full."""
        self.disk_size, self.disk_used = size, int(size * percent / 100)


def reset_state(server: FakeImmichServer) -> AdminState:
    """A healthy admin side: defaults, one backup from two hours ago, the usual disk."""
    state = AdminState()
    state.add_backup(timedelta(hours=2), server="{}.{}.{}".format(*server.version))
    return state


def route(server: FakeImmichServer, request: Request, path: str) -> Response | None:
    """The admin route's answer, or None when the path is not one of them."""
    state = server.admin
    if request.method != "GET":
        return None
    if path in ("/api/queues", "/api/jobs"):
        _advance_moving_queues(server, state)
        return None  # the server's own handler answers
    if path == "/api/system-config":
        return _answer(server, request, "systemConfig.read", lambda: copy.deepcopy(state.config))
    if path == "/api/admin/database-backups" and server.version >= DATABASE_BACKUPS_SINCE:
        return _answer(
            server,
            request,
            "maintenance",
            lambda: {"backups": [{**b, "timezone": state.timezone} for b in state.backups]},
        )
    parts = path.split("/")
    if (
        len(parts) == 5
        and path.startswith("/api/queues/")
        and parts[4] == "jobs"
        and server.version >= QUEUE_JOBS_SINCE
    ):
        return _answer(server, request, "queueJob.read", lambda: _failed_jobs(state, parts[3]))
    return None


def storage_body(server: FakeImmichServer, default_size: int, default_used: int) -> dict[str, Any]:
    """GET /api/server/storage: the set disk, or the server's default one."""
    state = server.admin
    size = state.disk_size if state.disk_size is not None else default_size
    used = state.disk_used if state.disk_used is not None else default_used
    return {
        "diskSize": _human(size),
        "diskUse": _human(used),
        "diskAvailable": _human(size - used),
        "diskSizeRaw": size,
        "diskUseRaw": used,
        "diskAvailableRaw": size - used,
        "diskUsagePercentage": round(used * 100 / size, 2),
    }


def _answer(server: FakeImmichServer, request: Request, permission: str, body: Any) -> Response:
    user = server._authenticate(request, permission, admin=True)
    if isinstance(user, Response):
        request.drain()
        return user
    with server.lock:
        return Response.json(200, body())


def _failed_jobs(state: AdminState, queue: str) -> list[dict[str, Any]]:
    now = int(datetime.now(UTC).timestamp() * 1000)
    return [
        {
            "id": str(index + 1),
            "name": "generateThumbnails",
            "data": {"id": f"00000000-0000-4000-8000-{index:012d}"},
            "timestamp": now - 60_000 * (len(state.failed_reasons[queue]) - index),
            "failedReason": reason,
            "attemptsMade": 1,
            "processedOn": now - 60_000 * (len(state.failed_reasons[queue]) - index),
            "finishedOn": now - 59_000 * (len(state.failed_reasons[queue]) - index),
        }
        for index, reason in enumerate(state.failed_reasons.get(queue, []))
    ]


def _advance_moving_queues(server: FakeImmichServer, state: AdminState) -> None:
    """Each reading of the queue list finds the moving queues a few jobs further."""
    with server.lock:
        for name, step in state.moving_queues.items():
            counts = server.queue_counts.setdefault(name, {})
            taken = min(step, counts.get("waiting", 0))
            counts["waiting"] = counts.get("waiting", 0) - taken


def _human(size: int) -> str:
    """Immich's asHumanReadable: 1024-based, one decimal ("252.0 GiB")."""
    value, units = float(size), ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    return f"{value:.1f} {units[unit]}"

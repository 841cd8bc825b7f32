"""verify's probes of what the server knows about itself (admin API key) and of its ML models.

Bound to one run like the engine's own probes: `immich.config` (GET /api/system-config),
`immich.backups` (the API's list, or the files in `<media>/backups/`), `immich.queues` (two
readings when a queue looks stuck), `immich.storage` (GET /api/server/storage) and `ml.faces`
(face detection with the server's model). Each admin path is read once per run and shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from immichcheck.clients import ProbeError, ProbeSkipped, bounded

ProbeFunction = Callable[[], Awaitable[Any]]
NO_KEY = "no --api-key given (an admin's key: see README, 'API key permissions')"


class AdminProbes:
    """The admin-API probes of one run and the server's configured CLIP model for inference."""

    def __init__(self, targets: Any, settings: Any) -> None:
        self.targets = targets
        self.settings = settings
        self._admin: asyncio.Task[Any] | None = None

    async def _make_admin(self) -> Any:
        from immichcheck.clients.immich_admin import ImmichAdmin

        options = self.targets.options
        url = await self.targets.server_url()
        return ImmichAdmin(url, options.api_key, self.settings.timeout, options.ca_file)

    async def admin(self) -> Any:
        """The run's one admin reader (SKIP without --api-key)."""
        if not self.targets.options.api_key:
            raise ProbeSkipped(NO_KEY)
        if self._admin is None:
            self._admin = asyncio.ensure_future(self._make_admin())
            self._admin.add_done_callback(lambda t: t.cancelled() or t.exception())
        return await asyncio.shield(self._admin)

    async def config(self) -> dict[str, Any]:
        """GET /api/system-config as data, with what the ML checks compare it to."""
        from immichcheck.clients.immich_admin import SYSTEM_CONFIG

        admin = await self.admin()
        try:
            answer = await admin.get(SYSTEM_CONFIG)
        except ProbeError as exc:
            # The ML block comes before the server's in the catalogue, so IC-ML-304 cannot
            # wait for IC-SV-401: an unreachable server is reported there, skipped here.
            raise ProbeSkipped(f"the server did not answer ({exc})") from exc
        if answer["status"] >= 500 or (answer["status"] == 200 and answer["json"] is None):
            raise ProbeSkipped(f"the server is not answering its API (HTTP {answer['status']})")
        return {"url": admin.base_url, "answer": answer, "ml_url": self.targets.options.ml_url}

    async def _ml_config(self) -> dict[str, Any] | None:
        """The server's machineLearning section, None when it cannot be read."""
        try:
            answer = (await self.config())["answer"]
        except (ProbeSkipped, ProbeError):
            return None
        body = answer["json"] if answer["status"] == 200 else None
        section = body.get("machineLearning") if isinstance(body, dict) else None
        return section if isinstance(section, dict) else None

    async def clip_model(self, fallback: str) -> str:
        """The CLIP model the server is configured with, else `fallback` (--clip-model)."""
        try:
            section = await asyncio.wait_for(self._ml_config(), self.settings.timeout + 1.0)
        except TimeoutError:
            return fallback
        name = ((section or {}).get("clip") or {}).get("modelName")
        return name if isinstance(name, str) and name else fallback

    async def backups(self) -> dict[str, Any]:
        """The database backups: the API's list with the server's settings, else the files."""
        from immichcheck.clients import immich_admin as api

        options = self.targets.options
        timeout = self.settings.timeout
        if not options.api_key and not options.media_path:
            raise ProbeSkipped(
                f"no --api-key (GET {api.DATABASE_BACKUPS}) and no --media-path (<media>/backups/)"
            )
        config = None
        if options.api_key:
            admin = await self.admin()
            try:
                config, listing = await asyncio.gather(
                    admin.get(api.SYSTEM_CONFIG), admin.get(api.DATABASE_BACKUPS)
                )
            except ProbeError as exc:
                if not options.media_path:
                    # IC-SV-401 reports the unreachable server; here it is a missing source.
                    raise ProbeSkipped(f"the server did not answer ({exc})") from exc
                listing = {"status": 0}
            # A 5xx or a 200 that is not JSON is a broken server (IC-SV-401 says so), not a
            # backup problem: the files are read instead, or the checks SKIP.
            broken = listing["status"] >= 500 or (
                listing["status"] == 200 and not isinstance(listing.get("json"), dict)
            )
            if broken and not options.media_path:
                raise ProbeSkipped(
                    f"the server is not answering its API (HTTP {listing['status']})"
                )
            older = listing["status"] in (0, 404) or broken
            if not (older and options.media_path):
                where = f"{admin.base_url}{api.DATABASE_BACKUPS}"
                body = listing["json"] if isinstance(listing["json"], dict) else {}
                return {
                    "source": "api",
                    "where": where,
                    "answer": listing,
                    "problem": api.answer_problem(listing, api.DATABASE_BACKUPS),
                    "backups": list(body.get("backups") or []),
                    "unfinished": [],
                    "config": config,
                }
        files = await api.read_backup_files(str(options.media_path), timeout)
        return {"source": "files", "problem": "", "config": config, **files}

    async def queues(self) -> dict[str, Any]:
        """Queue states, read twice when one looks stalled (see immich_admin.read_queues)."""
        from immichcheck.clients.immich_admin import read_queues

        admin = await self.admin()
        settle = min(2.0, self.settings.timeout / 2)
        data = await read_queues(admin, settle, self.settings.failed_jobs_warn)
        return {"url": admin.base_url, **data}

    async def storage(self) -> dict[str, Any]:
        """GET /api/server/storage (the media root's disk as the server sees it)."""
        from immichcheck.clients.immich_admin import SERVER_STORAGE

        admin = await self.admin()
        return {"url": admin.base_url, "answer": await admin.get(SERVER_STORAGE)}

    async def faces(self) -> dict[str, Any]:
        """Face detection + recognition on the ML service with the server's configured model."""
        from immichcheck.clients.ml_faces import ml_face_detection

        section = await self._ml_config()
        if section is None:
            if not self.targets.options.api_key:
                raise ProbeSkipped(f"the server's face model is unknown: {NO_KEY}")
            raise ProbeSkipped("the server's face model is unknown: /api/system-config unreadable")
        faces = section.get("facialRecognition") or {}
        if section.get("enabled") is False or faces.get("enabled") is False:
            raise ProbeSkipped("facial recognition is disabled in the server's config")
        if not self.settings.inference:
            raise ProbeSkipped("inference disabled with --no-inference")
        url = await self.targets.ml_url()
        seconds = self.settings.inference_timeout
        model, min_score = str(faces.get("modelName")), float(faces.get("minScore", 0.7))
        return await bounded(
            ml_face_detection(url, seconds, model, min_score), seconds, f"{url}/predict"
        )

    def functions(self) -> dict[str, tuple[ProbeFunction, float]]:
        """name -> (probe, safety guard seconds), merged into the engine's probe table."""
        timeout = self.settings.timeout
        after_kube = 3 * timeout + 1.0  # waiting for the snapshot or a port-forward first
        settle = min(2.0, timeout / 2)
        return {
            "immich.config": (self.config, after_kube + timeout),
            "immich.backups": (self.backups, after_kube + 2 * timeout),
            "immich.queues": (self.queues, after_kube + 3 * timeout + settle),
            "immich.storage": (self.storage, after_kube + timeout),
            "ml.faces": (self.faces, after_kube + timeout + self.settings.inference_timeout),
        }

"""A fake Immich machine-learning service over real HTTP (contract: shared/REFERENCE.md).

Embeddings are deterministic functions of the input bytes and model name, so tests can
assert on them; image dimensions come from the JPEG/PNG header like the real service reads
them; the first request per model pays a configurable cold-start delay (model load).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct
import time
from dataclasses import dataclass
from typing import Any

from tests.fakes.http_base import FakeHTTPServer, Request, Response

DEFAULT_CLIP_DIMENSION = 512
FACE_EMBEDDING_DIMENSION = 512
# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) do not.
JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


class ImageDecodeError(ValueError):
    """The bytes are neither a JPEG nor a PNG the fake can read dimensions from."""


def image_dimensions(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG SOF segment or a PNG IHDR chunk."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if not data.startswith(b"\xff\xd8"):
        raise ImageDecodeError("not a JPEG or PNG image")
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            raise ImageDecodeError("corrupt JPEG marker stream")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if marker in JPEG_SOF_MARKERS:
            if position + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[position + 5 : position + 9])
            return int(width), int(height)
        if marker == 0xDA:  # start of scan before any frame header
            break
        position += 2 + length
    raise ImageDecodeError("no JPEG frame header found")


def deterministic_vector(seed_material: bytes, dimension: int) -> list[float]:
    """A unit-length float vector derived from the seed (same input, same vector)."""
    seed = int.from_bytes(hashlib.sha256(seed_material).digest()[:8], "big")
    generator = random.Random(seed)
    values = [generator.gauss(0.0, 1.0) for _ in range(dimension)]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    return [round(value / norm, 7) for value in values]


@dataclass(frozen=True)
class _Task:
    """One model invocation requested in `entries`."""

    task: str  # "clip" | "facial-recognition" | "ocr"
    kind: str  # "visual" | "textual" | "detection" | "recognition"
    model_name: str
    options: dict[str, Any]


class FakeMLService(FakeHTTPServer):
    """Fake Immich ML: /ping, / and /predict for CLIP, facial recognition and OCR."""

    server_name = "immich-ml-fake"

    def __init__(self) -> None:
        super().__init__()
        self.cold_start: float = 0.0
        self.clip_dimension = DEFAULT_CLIP_DIMENSION
        self.faces_per_image = 1
        self.texts_per_image = 2
        # Seconds added to every request holding an OCR task (on top of `latency`).
        self.ocr_latency = 0.0
        # Models that cannot load (a name the model hub does not have): /predict answers 500.
        self.broken_models: set[str] = set()
        self.loaded_models: set[tuple[str, str, str]] = set()
        self.requests: list[dict[str, Any]] = []
        self.reset()

    def reset(self) -> None:
        """No latency, no cold start, no failures, no loaded models, empty request log."""
        with self.lock:
            self.reset_knobs()
            self.cold_start = 0.0
            self.clip_dimension = DEFAULT_CLIP_DIMENSION
            self.faces_per_image = 1
            self.texts_per_image = 2
            self.ocr_latency = 0.0
            self.broken_models = set()
            self.loaded_models = set()
            self.requests = []

    def unload_models(self) -> None:
        """Forget loaded models, as the real service does after MACHINE_LEARNING_MODEL_TTL."""
        with self.lock:
            self.loaded_models.clear()

    def handle(self, request: Request) -> Response:
        """Route one request and append it to the request log."""
        started = time.perf_counter()
        entry: dict[str, Any] = {"method": request.method, "path": request.path}
        response = self._route(request, entry)
        entry["status"] = response.status
        entry["seconds"] = time.perf_counter() - started
        with self.lock:
            self.requests.append(entry)
        return response

    def _route(self, request: Request, entry: dict[str, Any]) -> Response:
        if request.path == "/ping" and request.method == "GET":
            return Response.text(200, "pong")
        if request.path == "/" and request.method == "GET":
            return Response.json(200, {"message": "Immich ML"})
        if request.path == "/predict" and request.method == "POST":
            return self._predict(request, entry)
        if request.path in ("/ping", "/", "/predict"):
            request.drain()
            return Response.json(405, {"detail": "Method Not Allowed"})
        request.drain()
        return Response.json(404, {"detail": "Not Found"})

    def _predict(self, request: Request, entry: dict[str, Any]) -> Response:
        try:
            form = request.form()
        except ValueError:
            request.drain()
            return _validation_error("entries", "Field required")
        raw_entries = form.fields.get("entries")
        if raw_entries is None:
            return _validation_error("entries", "Field required")
        try:
            tasks = _parse_entries(raw_entries)
        except ValueError:
            return Response.json(422, {"detail": "Invalid request format."})
        entry["tasks"] = [f"{task.task}/{task.kind}/{task.model_name}" for task in tasks]
        entry["entries"] = json.loads(raw_entries)  # as sent, for tests of the request
        image = form.files.get("image")
        text = form.fields.get("text")
        if image is None and text is None:
            return Response.json(400, {"detail": "Either image or text must be provided"})
        kinds = {(task.task, task.kind) for task in tasks}
        for pipeline in ("facial-recognition", "ocr"):
            if (pipeline, "recognition") in kinds and (pipeline, "detection") not in kinds:
                # The real service resolves model dependencies before running anything.
                return Response.json(
                    400,
                    {
                        "detail": f"Task {pipeline} of type recognition depends on output "
                        f"of {pipeline}/detection"
                    },
                )
        wants_image = any(task.kind in ("visual", "detection") for task in tasks)
        if (image is None) == wants_image:
            # A text handed to an image model (or the reverse) fails inside the model.
            return Response.text(500, "Internal Server Error")
        if any(task.model_name in self.broken_models for task in tasks):
            return Response.text(500, "Internal Server Error")
        self._load_models(tasks)
        if self.ocr_latency > 0 and ("ocr", "detection") in kinds:
            time.sleep(self.ocr_latency)
        if image is not None:
            try:
                width, height = image_dimensions(image.head)
            except ImageDecodeError:
                # PIL raises inside the worker; FastAPI turns that into a bare 500.
                return Response.text(500, "Internal Server Error")
            return Response.json(200, self._predict_image(tasks, image.sha1, width, height))
        return Response.json(200, self._predict_text(tasks, str(text)))

    def _load_models(self, tasks: list[_Task]) -> None:
        """Sleep `cold_start` once per model never used since reset/unload."""
        with self.lock:
            missing = [
                (task.task, task.kind, task.model_name)
                for task in tasks
                if (task.task, task.kind, task.model_name) not in self.loaded_models
            ]
            self.loaded_models.update(missing)
        if missing and self.cold_start > 0:
            time.sleep(self.cold_start * len(missing))

    def _predict_image(
        self, tasks: list[_Task], digest: bytes, width: int, height: int
    ) -> dict[str, Any]:
        response: dict[str, Any] = {}
        for task in tasks:
            if task.task == "clip" and task.kind == "visual":
                vector = deterministic_vector(
                    b"visual|" + task.model_name.encode() + b"|" + digest, self.clip_dimension
                )
                response["clip"] = json.dumps(vector)
        detection = next(
            (t for t in tasks if t.task == "facial-recognition" and t.kind == "detection"), None
        )
        if detection is not None:
            min_score = float(detection.options.get("minScore", 0.7))
            faces = self._faces(digest, width, height, min_score)
            if any(t.task == "facial-recognition" and t.kind == "recognition" for t in tasks):
                response["facial-recognition"] = faces
            else:
                # Detection alone answers the detector's raw output.
                response["facial-recognition"] = {
                    "boxes": [list(face["boundingBox"].values()) for face in faces],
                    "scores": [face["score"] for face in faces],
                    "landmarks": [[] for _ in faces],
                }
        ocr_detection = next((t for t in tasks if t.task == "ocr" and t.kind == "detection"), None)
        if ocr_detection is not None:
            recognition = next(
                (t for t in tasks if t.task == "ocr" and t.kind == "recognition"), None
            )
            response["ocr"] = self._ocr(digest, ocr_detection, recognition, (width, height))
        # Every image request reports the decoded size, whatever the tasks.
        response["imageHeight"] = height
        response["imageWidth"] = width
        return response

    def _faces(self, digest: bytes, width: int, height: int, min_score: float) -> list[Any]:
        """Deterministic faces laid out left to right; scores fall so minScore filters."""
        faces = []
        for index in range(self.faces_per_image):
            score = round(0.99 - 0.05 * index, 4)
            if score < min_score:
                continue
            slot = width / max(self.faces_per_image, 1)
            faces.append(
                {
                    "boundingBox": {
                        "x1": round(slot * index + slot * 0.2, 2),
                        "y1": round(height * 0.2, 2),
                        "x2": round(slot * index + slot * 0.8, 2),
                        "y2": round(height * 0.7, 2),
                    },
                    "embedding": json.dumps(
                        deterministic_vector(
                            b"face|" + digest + index.to_bytes(2, "big"), FACE_EMBEDDING_DIMENSION
                        )
                    ),
                    "score": score,
                }
            )
        return faces

    def _ocr(
        self, digest: bytes, detection: _Task, recognition: _Task | None, size: tuple[int, int]
    ) -> dict[str, Any]:
        """Text lines stacked down the image, as immich_ml/models/ocr answers them.

        Detection alone answers its raw output: `boxes` as 4 corner points in pixels of the
        decoded image, and `scores`. With recognition
        the answer is parallel arrays: `text`, `boxScore`, `textScore` per text and `box`
        with 8 normalised corner coordinates per text; texts at or under the recognition
        minScore (default 0.9 in the model) are dropped, as the real filter does.
        """
        min_box = float(detection.options.get("minScore", 0.5))
        lines = []
        for index in range(self.texts_per_image):
            box_score = round(0.95 - 0.1 * index, 4)
            if box_score < min_box:
                continue
            top, bottom = 0.1 + 0.1 * index, 0.17 + 0.1 * index
            corners = [0.1, top, 0.6, top, 0.6, bottom, 0.1, bottom]
            text = f"TEXT{digest.hex()[:6].upper()}-{index}"
            lines.append((text, corners, box_score, round(0.97 - 0.05 * index, 4)))
        if recognition is None:
            return {
                "boxes": [
                    [[line[1][i] * size[0], line[1][i + 1] * size[1]] for i in range(0, 8, 2)]
                    for line in lines
                ],
                "scores": [line[2] for line in lines],
            }
        min_text = float(recognition.options.get("minScore", 0.9))
        kept = [line for line in lines if line[3] > min_text]
        return {
            "box": [value for line in kept for value in line[1]],
            "boxScore": [line[2] for line in kept],
            "text": [line[0] for line in kept],
            "textScore": [line[3] for line in kept],
        }

    def _predict_text(self, tasks: list[_Task], text: str) -> dict[str, Any]:
        response: dict[str, Any] = {}
        for task in tasks:
            if task.task == "clip" and task.kind == "textual":
                vector = deterministic_vector(
                    b"textual|" + task.model_name.encode() + b"|" + text.encode(),
                    self.clip_dimension,
                )
                response["clip"] = json.dumps(vector)
        return response


def _parse_entries(raw: str) -> list[_Task]:
    """`entries` JSON -> tasks; ValueError for anything the real service rejects with 422."""
    entries = json.loads(raw)
    if not isinstance(entries, dict) or not entries:
        raise ValueError("entries must be a non-empty object")
    tasks: list[_Task] = []
    allowed = {
        "clip": ("visual", "textual"),
        "facial-recognition": ("detection", "recognition"),
        "ocr": ("detection", "recognition"),
    }
    for task_name, kinds in entries.items():
        if task_name not in allowed or not isinstance(kinds, dict) or not kinds:
            raise ValueError(f"unknown task {task_name!r}")
        for kind, spec in kinds.items():
            if kind not in allowed[task_name] or not isinstance(spec, dict):
                raise ValueError(f"unknown model type {kind!r}")
            model_name = spec.get("modelName")
            if not isinstance(model_name, str) or not model_name:
                raise ValueError("modelName missing")
            options = spec.get("options", {})
            if not isinstance(options, dict):
                raise ValueError("options must be an object")
            tasks.append(_Task(task_name, kind, model_name, options))
    return tasks


def _validation_error(field_name: str, message: str) -> Response:
    """FastAPI's 422 body for a missing form field."""
    return Response.json(
        422,
        {"detail": [{"type": "missing", "loc": ["body", field_name], "msg": message}]},
    )

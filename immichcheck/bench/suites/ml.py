"""ML inference through the Immich machine-learning service's real `/predict` API.

Workloads, each for the configured model (`--clip-model`, `--face-model`, `--ocr-model`):

- `ml.clip_visual.cold`, `ml.clip_textual.cold`, `ml.facial_recognition.cold`: the first
  request of the run per model (count 1). It includes the model load unless the service
  preloaded the model or used it within MACHINE_LEARNING_MODEL_TTL; a note says which it
  looks like by comparing it with the warm median.
- `ml.clip_visual` (per image size: 12 MP photo, 1440 px preview, 250 px thumbnail),
  `ml.clip_textual` (short search queries), `ml.facial_recognition` (a portrait-like image):
  warm latency percentiles and requests/s at each concurrency of the profile (1, 2, 4).
- `ml.ocr.cold`, `ml.ocr`: the OCR request Immich's server sends for each asset (text
  detection + recognition with its default thresholds) on the preview-sized image, cold
  first request then warm steps as above.

Every answer is checked: a CLIP answer must hold an embedding of the model's length (512 for
ViT-B-32), a face answer a list of faces with boundingBox/embedding/score and the image's
size, an OCR answer `ocr` {text, box, boxScore, textScore} of matching lengths (8 box
coordinates per text) and the image's size. Failed or malformed answers are counted as errors
with their reason.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from immichcheck.bench.base import BenchContext
from immichcheck.bench.suites import images
from immichcheck.clients.ml import (
    MlClient,
    MlRequestError,
    clip_textual_entries,
    clip_visual_entries,
    facial_recognition_entries,
    ocr_entries,
)
from immichcheck.common.records import BenchmarkResult
from immichcheck.common.statistics import LatencyRecorder, summarize

DEFAULT_CLIP_MODEL = "ViT-B-32__openai"
DEFAULT_FACE_MODEL = "buffalo_l"
DEFAULT_OCR_MODEL = "PP-OCRv5_mobile"  # Immich's machineLearning.ocr.modelName default
# Embedding lengths of models whose size is certain; others are held to the first answer's.
CLIP_DIMENSIONS: Mapping[str, int] = {
    "ViT-B-32__openai": 512,
    "ViT-B-16__openai": 512,
    "ViT-L-14__openai": 768,
}
FACE_DIMENSIONS: Mapping[str, int] = {
    "buffalo_l": 512,
    "buffalo_m": 512,
    "buffalo_s": 512,
    "antelopev2": 512,
}
TEXT_QUERIES = (
    "a dog running on the beach",
    "birthday cake with candles",
    "snowy mountain at sunset",
    "two people hiking in a forest",
    "red car parked in the city",
    "cat sleeping on a sofa",
)
DEFAULTS: Mapping[str, Any] = {
    "concurrency": [1, 2, 4],
    "clip_images": ["photo", "preview", "thumbnail"],
    "cold_timeout_seconds": 120.0,
    "warm_timeout_seconds": 30.0,
    "max_requests": 10_000,
    "face_min_score": 0.7,
}
# A first request under this multiple of the warm median did not pay for a model load.
_COLD_FACTOR = 2.0


class ShapeError(ValueError):
    """An answer arrived but does not have the shape the Immich server relies on."""


def parse_embedding(value: Any, what: str) -> list[float]:
    """An embedding from the service's JSON-encoded string (or a plain list) of numbers."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ShapeError(f"{what} is not a JSON array") from exc
    if not isinstance(value, list) or not value:
        raise ShapeError(f"{what} is not a non-empty array")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise ShapeError(f"{what} holds non-numbers")
    if not all(math.isfinite(v) for v in value):
        raise ShapeError(f"{what} holds NaN or infinity")
    return [float(v) for v in value]


@dataclass
class DimensionCheck:
    """The embedding length answers must have: known per model, else the first answer's."""

    what: str
    expected: int | None

    def check(self, length: int) -> None:
        """Raise ShapeError when `length` is wrong; remember it when nothing was expected."""
        if self.expected is None:
            self.expected = length
        elif length != self.expected:
            raise ShapeError(f"{self.what} has {length} values, expected {self.expected}")


def check_clip_answer(answer: Any, dimension: DimensionCheck) -> int:
    """Validate a CLIP answer; returns the embedding length."""
    if not isinstance(answer, dict) or "clip" not in answer:
        raise ShapeError("answer has no 'clip' field")
    embedding = parse_embedding(answer["clip"], "clip embedding")
    dimension.check(len(embedding))
    return len(embedding)


def check_face_answer(answer: Any, size: tuple[int, int], dimension: DimensionCheck) -> int:
    """Validate a facial-recognition answer for an image of `size`; returns the face count."""
    if not isinstance(answer, dict) or "facial-recognition" not in answer:
        raise ShapeError("answer has no 'facial-recognition' field")
    faces = answer["facial-recognition"]
    if not isinstance(faces, list):
        raise ShapeError("'facial-recognition' is not a list")
    width, height = size
    if answer.get("imageWidth") != width or answer.get("imageHeight") != height:
        raise ShapeError(
            f"imageWidth/imageHeight {answer.get('imageWidth')}x{answer.get('imageHeight')} "
            f"do not match the {width}x{height} image sent"
        )
    for face in faces:
        if not isinstance(face, dict):
            raise ShapeError("a face is not an object")
        box = face.get("boundingBox")
        if not isinstance(box, dict) or not all(
            isinstance(box.get(k), int | float) for k in ("x1", "y1", "x2", "y2")
        ):
            raise ShapeError("a face has no boundingBox {x1,y1,x2,y2}")
        if not isinstance(face.get("score"), int | float):
            raise ShapeError("a face has no numeric score")
        dimension.check(len(parse_embedding(face.get("embedding"), "face embedding")))
    return len(faces)


def check_ocr_answer(answer: Any, size: tuple[int, int]) -> int:
    """Validate an OCR answer for an image of `size`; returns the number of texts found.

    The service answers parallel arrays (immich_ml/models/ocr/recognition.py): `text`,
    `boxScore`, `textScore` one per text and `box` eight normalised coordinates per text,
    which the server zips row by row, so unequal lengths would lose or shift texts.
    """
    if not isinstance(answer, dict) or not isinstance(answer.get("ocr"), dict):
        raise ShapeError("answer has no 'ocr' object")
    width, height = size
    if answer.get("imageWidth") != width or answer.get("imageHeight") != height:
        raise ShapeError(
            f"imageWidth/imageHeight {answer.get('imageWidth')}x{answer.get('imageHeight')} "
            f"do not match the {width}x{height} image sent"
        )
    ocr = answer["ocr"]
    for field in ("text", "box", "boxScore", "textScore"):
        if not isinstance(ocr.get(field), list):
            raise ShapeError(f"'ocr' has no list '{field}'")
    texts = ocr["text"]
    if not all(isinstance(t, str) for t in texts):
        raise ShapeError("'ocr.text' holds non-strings")
    for field in ("box", "boxScore", "textScore"):
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in ocr[field]):
            raise ShapeError(f"'ocr.{field}' holds non-numbers")
    if len(ocr["boxScore"]) != len(texts) or len(ocr["textScore"]) != len(texts):
        raise ShapeError(
            f"'ocr' has {len(texts)} texts but {len(ocr['boxScore'])} boxScores and "
            f"{len(ocr['textScore'])} textScores"
        )
    if len(ocr["box"]) != 8 * len(texts):
        raise ShapeError(f"'ocr.box' has {len(ocr['box'])} values for {len(texts)} texts (8 each)")
    return len(texts)


async def timed_requests(
    call: Callable[[int], Awaitable[None]],
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
) -> tuple[LatencyRecorder, float]:
    """Run `call(n)` from `concurrency` workers for `duration` seconds; latencies and wall."""
    recorder = LatencyRecorder()
    counter = itertools.count()
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        while time.perf_counter() < deadline:
            number = next(counter)
            if number >= max_requests:
                return
            begin = time.perf_counter_ns()
            try:
                await call(number)
            except (MlRequestError, ShapeError) as exc:
                recorder.record_error(str(exc))
                continue
            recorder.record_ns(time.perf_counter_ns() - begin)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(concurrency, 1))))
    return recorder, time.perf_counter() - started


@dataclass
class _Model:
    """One model family under test: how to call it and how to name its results."""

    workload: str
    model: str
    parameters: dict[str, Any]
    call: Callable[[int, float], Awaitable[Any]]  # (request number, timeout) -> checked answer
    describe: Callable[[], list[str]]


def _with_timeout(model: _Model, timeout: float) -> Callable[[int], Awaitable[Any]]:
    """The model's call with its timeout bound, as `timed_requests` wants it."""

    def call(number: int) -> Awaitable[Any]:
        return model.call(number, timeout)

    return call


class MlSuite:
    """CLIP visual/textual, facial recognition, OCR: cold first request, then warm latency."""

    name = "ml"

    def unavailable_reason(self, ctx: BenchContext) -> str | None:
        """Needs the ML service's URL."""
        if not ctx.ml_url:
            return "no ML service URL (use --ml-url, e.g. http://immich-ml:3003)"
        return None

    async def run(self, ctx: BenchContext) -> Sequence[BenchmarkResult]:
        """Cold and warm runs for each model; see the module docstring."""
        assert ctx.ml_url is not None
        section = {**DEFAULTS, **ctx.profile.section("ml")}
        clip_model = str(ctx.options.get("clip_model") or DEFAULT_CLIP_MODEL)
        face_model = str(ctx.options.get("face_model") or DEFAULT_FACE_MODEL)
        ocr_model = str(ctx.options.get("ocr_model") or DEFAULT_OCR_MODEL)
        concurrency = [int(c) for c in section["concurrency"]]
        image_names = [str(name) for name in section["clip_images"]]
        unknown = [name for name in image_names if name not in images.IMAGE_SIZES]
        if unknown:
            from immichcheck.common.errors import ImmichcheckError

            raise ImmichcheckError(
                f"unknown ml.clip_images {unknown} in the profile; "
                f"known: {', '.join(images.IMAGE_SIZES)}"
            )
        cold_timeout = float(section["cold_timeout_seconds"])
        warm_timeout = float(section["warm_timeout_seconds"])

        ctx.progress.step("ml: generating test images")
        pictures = {
            name: await asyncio.to_thread(images.photo_jpeg, *images.IMAGE_SIZES[name])
            for name in image_names
        }
        face_picture = await asyncio.to_thread(images.face_jpeg)

        clip_dimension = DimensionCheck("clip embedding", CLIP_DIMENSIONS.get(clip_model))
        face_dimension = DimensionCheck("face embedding", FACE_DIMENSIONS.get(face_model))
        face_counts: list[int] = []
        text_counts: list[int] = []
        results: list[BenchmarkResult] = []
        async with MlClient(ctx.ml_url, max_connections=max(concurrency) + 1) as client:

            def visual(picture: bytes) -> Callable[[int, float], Awaitable[Any]]:
                async def call(_number: int, timeout: float) -> Any:
                    answer = await client.predict(
                        clip_visual_entries(clip_model), image=picture, timeout=timeout
                    )
                    return check_clip_answer(answer, clip_dimension)

                return call

            async def textual(number: int, timeout: float) -> Any:
                query = TEXT_QUERIES[number % len(TEXT_QUERIES)]
                answer = await client.predict(
                    clip_textual_entries(clip_model), text=query, timeout=timeout
                )
                return check_clip_answer(answer, clip_dimension)

            async def faces(_number: int, timeout: float) -> Any:
                answer = await client.predict(
                    facial_recognition_entries(face_model, float(section["face_min_score"])),
                    image=face_picture,
                    timeout=timeout,
                )
                count = check_face_answer(answer, images.FACE_SIZE, face_dimension)
                face_counts.append(count)
                return count

            # Immich sends OCR the preview; without one in the profile, a fresh 1440 px image.
            ocr_size = images.IMAGE_SIZES["preview"]
            ocr_picture = pictures.get("preview")
            if ocr_picture is None:
                ocr_picture = await asyncio.to_thread(images.photo_jpeg, *ocr_size)

            async def ocr(_number: int, timeout: float) -> Any:
                answer = await client.predict(
                    ocr_entries(ocr_model), image=ocr_picture, timeout=timeout
                )
                count = check_ocr_answer(answer, ocr_size)
                text_counts.append(count)
                return count

            def ocr_notes() -> list[str]:
                if not text_counts:
                    return []
                return [f"texts found per image: {max(text_counts)}"]

            def clip_notes() -> list[str]:
                return (
                    [f"embedding length {clip_dimension.expected}"]
                    if clip_dimension.expected
                    else []
                )

            def face_notes() -> list[str]:
                if not face_counts:
                    return []
                found = max(face_counts)
                if found == 0:
                    return [
                        "no face found in the generated portrait: only detection was "
                        "exercised, recognition had nothing to embed"
                    ]
                return [f"faces found per image: {found}"]

            first_image = "preview" if "preview" in pictures else image_names[0]
            groups: list[list[_Model]] = [
                [
                    _Model(
                        "ml.clip_visual",
                        clip_model,
                        {
                            "image": name,
                            "width": images.IMAGE_SIZES[name][0],
                            "bytes": len(pictures[name]),
                        },
                        visual(pictures[name]),
                        clip_notes,
                    )
                    for name in sorted(image_names, key=lambda n: n != first_image)
                ],
                [_Model("ml.clip_textual", clip_model, {}, textual, clip_notes)],
                [
                    _Model(
                        "ml.facial_recognition",
                        face_model,
                        {"image": "face", "width": images.FACE_SIZE[0]},
                        faces,
                        face_notes,
                    )
                ],
                [
                    _Model(
                        "ml.ocr",
                        ocr_model,
                        {"image": "preview", "width": ocr_size[0], "bytes": len(ocr_picture)},
                        ocr,
                        ocr_notes,
                    )
                ],
            ]
            for group in groups:
                results.extend(
                    await self._run_group(
                        ctx, group, concurrency, section, cold_timeout, warm_timeout
                    )
                )
        return results

    async def _run_group(
        self,
        ctx: BenchContext,
        group: Sequence[_Model],
        concurrency: Sequence[int],
        section: Mapping[str, Any],
        cold_timeout: float,
        warm_timeout: float,
    ) -> list[BenchmarkResult]:
        """The first request of a model (cold), then its warm steps at each concurrency."""
        first = group[0]
        ctx.progress.step(f"{first.workload}: first request ({first.model})")
        recorder = LatencyRecorder()
        begin = time.perf_counter()
        try:
            await first.call(0, cold_timeout)
            recorder.record_seconds(time.perf_counter() - begin)
        except (MlRequestError, ShapeError) as exc:
            recorder.record_error(str(exc))
        cold_wall = time.perf_counter() - begin
        cold = summarize(
            f"{first.workload}.cold",
            {"model": first.model, **first.parameters},
            recorder,
            cold_wall,
            notes=(
                "first request of this run for this model: includes loading the model unless "
                "the service preloaded it or used it within MACHINE_LEARNING_MODEL_TTL",
            ),
        )
        if recorder.errors:
            return [
                replace(cold, notes=(*cold.notes, "warm runs skipped: the first request failed"))
            ]

        results: list[BenchmarkResult] = []
        duration = float(section.get("duration_seconds", ctx.profile.duration_seconds))
        warmup = float(section.get("warmup_seconds", ctx.profile.warmup_seconds))
        max_requests = int(section["max_requests"])
        for model in group:
            if warmup > 0:
                await timed_requests(
                    _with_timeout(model, warm_timeout),
                    concurrency=1,
                    duration=warmup,
                    max_requests=max_requests,
                )
            for level in concurrency:
                ctx.progress.step(f"{model.workload} {model.parameters} concurrency={level}")
                recorder, wall = await timed_requests(
                    _with_timeout(model, warm_timeout),
                    concurrency=level,
                    duration=duration,
                    max_requests=max_requests,
                )
                results.append(
                    summarize(
                        model.workload,
                        {"model": model.model, **model.parameters, "concurrency": level},
                        recorder,
                        wall,
                        notes=model.describe(),
                    )
                )
        warm_p50 = next(
            (r.p50 for r in results if r.count and r.parameters.get("concurrency") == 1), 0.0
        )
        if warm_p50 > 0 and cold.p50 < _COLD_FACTOR * warm_p50:
            note = (
                f"first request {cold.p50 * 1000:.0f} ms is close to the warm median "
                f"{warm_p50 * 1000:.0f} ms: the model was probably already loaded"
            )
        elif warm_p50 > 0:
            note = (
                f"first request {cold.p50 * 1000:.0f} ms vs warm median {warm_p50 * 1000:.0f} ms: "
                f"about {cold.p50 - warm_p50:.2f} s of model load"
            )
        else:
            note = "no warm request succeeded: the first request cannot be compared"
        cold = replace(cold, notes=(*cold.notes, note, *first.describe()))
        return [cold, *results]


SUITE = MlSuite()

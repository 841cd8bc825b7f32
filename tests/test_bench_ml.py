"""The ML suite against the fake ML service over real HTTP: cold/warm, shapes, failures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from immichcheck.bench.base import BenchContext, Profile
from immichcheck.bench.suites import images
from immichcheck.bench.suites.ml import (
    SUITE,
    DimensionCheck,
    ShapeError,
    check_clip_answer,
    check_face_answer,
    check_ocr_answer,
)
from tests.fakes.ml_service import FakeMLService


def make_ctx(url: str | None, **ml: Any) -> BenchContext:
    """A context with short steps and small images."""
    section = {
        "concurrency": [1, 2],
        "clip_images": ["thumbnail", "preview"],
        "cold_timeout_seconds": 5.0,
        "warm_timeout_seconds": 5.0,
        **ml,
    }
    settings = {"duration_seconds": 0.2, "warmup_seconds": 0.0, "ml": section}
    return BenchContext(run_id="t", profile=Profile(name="test", settings=settings), ml_url=url)


def by_workload(results: Any) -> dict[tuple[str, Any, Any], Any]:
    """Results keyed by (workload, image, concurrency)."""
    return {
        (r.workload, r.parameters.get("image"), r.parameters.get("concurrency")): r for r in results
    }


@pytest.mark.slow
async def test_cold_and_warm_runs_for_every_model(fake_ml_service: FakeMLService) -> None:
    fake_ml_service.cold_start = 0.4
    results = await SUITE.run(make_ctx(fake_ml_service.url))
    keyed = by_workload(results)

    assert set(keyed) == {
        ("ml.clip_visual.cold", "preview", None),
        ("ml.clip_visual", "preview", 1),
        ("ml.clip_visual", "preview", 2),
        ("ml.clip_visual", "thumbnail", 1),
        ("ml.clip_visual", "thumbnail", 2),
        ("ml.clip_textual.cold", None, None),
        ("ml.clip_textual", None, 1),
        ("ml.clip_textual", None, 2),
        ("ml.facial_recognition.cold", "face", None),
        ("ml.facial_recognition", "face", 1),
        ("ml.facial_recognition", "face", 2),
        ("ml.ocr.cold", "preview", None),
        ("ml.ocr", "preview", 1),
        ("ml.ocr", "preview", 2),
    }
    assert all(r.errors == 0 for r in results)
    for name in ("ml.clip_visual", "ml.clip_textual", "ml.facial_recognition", "ml.ocr"):
        cold = next(r for r in results if r.workload == f"{name}.cold")
        warm = next(r for r in results if r.workload == name and r.parameters["concurrency"] == 1)
        assert cold.count == 1
        assert cold.p50 >= 0.4  # seconds: the fake's model load is in the first request only
        assert 0 < warm.p50 < 0.4 and warm.count >= 1 and warm.throughput > 0
        assert any("of model load" in note for note in cold.notes)
    assert keyed[("ml.clip_visual", "preview", 1)].parameters["model"] == "ViT-B-32__openai"
    assert keyed[("ml.facial_recognition", "face", 1)].parameters["model"] == "buffalo_l"
    assert "faces found per image: 1" in keyed[("ml.facial_recognition", "face", 1)].notes
    assert "embedding length 512" in keyed[("ml.clip_textual", None, 1)].notes
    ocr = keyed[("ml.ocr", "preview", 1)]
    assert ocr.parameters["model"] == "PP-OCRv5_mobile" and ocr.parameters["width"] == 1440
    assert "texts found per image: 2" in ocr.notes
    # The real /predict contract: one multipart request per inference naming task and model.
    tasks = {t for request in fake_ml_service.requests for t in request.get("tasks", [])}
    assert tasks == {
        "clip/visual/ViT-B-32__openai",
        "clip/textual/ViT-B-32__openai",
        "facial-recognition/detection/buffalo_l",
        "facial-recognition/recognition/buffalo_l",
        "ocr/detection/PP-OCRv5_mobile",
        "ocr/recognition/PP-OCRv5_mobile",
    }


async def test_ocr_request_is_the_one_the_server_sends(fake_ml_service: FakeMLService) -> None:
    ctx = make_ctx(fake_ml_service.url, clip_images=["thumbnail"], concurrency=[1])
    ctx.options = {"ocr_model": "PP-OCRv5_server"}
    fake_ml_service.ocr_latency = 0.05
    results = await SUITE.run(ctx)
    keyed = by_workload(results)
    # No preview in the profile: OCR still gets a preview-sized image, as Immich sends.
    warm = keyed[("ml.ocr", "preview", 1)]
    assert warm.errors == 0 and warm.parameters["model"] == "PP-OCRv5_server"
    assert warm.p50 >= 0.05  # seconds: the fake's OCR latency, which only OCR pays
    assert keyed[("ml.clip_visual", "thumbnail", 1)].p50 < 0.05
    entries = [r["entries"] for r in fake_ml_service.requests if "ocr" in r.get("entries", {})]
    assert entries and entries[0] == {
        "ocr": {
            "detection": {
                "modelName": "PP-OCRv5_server",
                "options": {"minScore": 0.5, "maxResolution": 736},
            },
            "recognition": {"modelName": "PP-OCRv5_server", "options": {"minScore": 0.8}},
        }
    }


async def test_ocr_model_that_fails_to_load_is_an_error(fake_ml_service: FakeMLService) -> None:
    fake_ml_service.broken_models = {"PP-OCRv9_nope"}
    ctx = make_ctx(fake_ml_service.url, clip_images=["thumbnail"], concurrency=[1])
    ctx.options = {"ocr_model": "PP-OCRv9_nope"}
    results = await SUITE.run(ctx)
    cold = next(r for r in results if r.workload == "ml.ocr.cold")
    assert cold.errors == 1 and cold.error_messages[0].startswith("HTTP 500")
    assert not any(r.workload == "ml.ocr" for r in results)
    assert next(r for r in results if r.workload == "ml.clip_visual").errors == 0


async def test_models_are_configurable_and_unknown_dimensions_are_held_consistent(
    fake_ml_service: FakeMLService,
) -> None:
    fake_ml_service.clip_dimension = 768
    ctx = make_ctx(fake_ml_service.url, clip_images=["thumbnail"], concurrency=[1])
    ctx.options = {"clip_model": "ViT-B-16-SigLIP__webli", "face_model": "antelopev2"}
    results = await SUITE.run(ctx)
    assert all(r.errors == 0 for r in results)
    assert {r.parameters["model"] for r in results} == {
        "ViT-B-16-SigLIP__webli",
        "antelopev2",
        "PP-OCRv5_mobile",
    }
    assert any("embedding length 768" in r.notes for r in results)


async def test_already_loaded_model_is_called_out(fake_ml_service: FakeMLService) -> None:
    ctx = make_ctx(fake_ml_service.url, clip_images=["thumbnail"], concurrency=[1])
    results = await SUITE.run(ctx)
    cold = next(r for r in results if r.workload == "ml.clip_textual.cold")
    assert any("probably already loaded" in note for note in cold.notes)


async def test_wrong_embedding_length_is_an_explained_error(fake_ml_service: FakeMLService) -> None:
    fake_ml_service.clip_dimension = 256
    results = await SUITE.run(make_ctx(fake_ml_service.url, clip_images=["thumbnail"]))
    keyed = by_workload(results)
    for workload, image in (("ml.clip_visual.cold", "thumbnail"), ("ml.clip_textual.cold", None)):
        cold = keyed[(workload, image, None)]
        assert cold.errors == 1 and cold.count == 0
        assert cold.error_messages == ("clip embedding has 256 values, expected 512",)
        assert "warm runs skipped: the first request failed" in cold.notes
    # Faces still answer correctly and run their warm steps.
    assert keyed[("ml.facial_recognition", "face", 1)].errors == 0


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("500", "HTTP 500"),
        ("garbage", "answer is not JSON"),
        ("hang", "timeout after 0.3 s"),
    ],
)
async def test_failures_are_counted_with_their_reason(
    fake_ml_service: FakeMLService, mode: str, reason: str
) -> None:
    fake_ml_service.fail_mode = mode
    ctx = make_ctx(fake_ml_service.url, clip_images=["thumbnail"], cold_timeout_seconds=0.3)
    results = await SUITE.run(ctx)
    assert [r.workload for r in results] == [
        "ml.clip_visual.cold",
        "ml.clip_textual.cold",
        "ml.facial_recognition.cold",
        "ml.ocr.cold",
    ]
    for result in results:
        assert result.errors == 1 and result.count == 0
        assert result.error_messages[0].startswith(reason)


async def test_warm_failures_are_counted_per_step(fake_ml_service: FakeMLService) -> None:
    ctx = make_ctx(fake_ml_service.url, clip_images=["thumbnail"], concurrency=[2])
    suite_task = SUITE.run(ctx)
    fake_ml_service.cold_start = 0.0
    # Break the service once the first (cold) request has been answered: every warm
    # request after it fails.
    original = fake_ml_service.handle

    def flaky(request: Any) -> Any:
        if len(fake_ml_service.requests) >= 1:
            fake_ml_service.fail_mode = "500"
        return original(request)

    fake_ml_service.handle = flaky  # type: ignore[method-assign]
    try:
        results = await suite_task
    finally:
        del fake_ml_service.handle
    warm = next(r for r in results if r.workload == "ml.clip_visual")
    assert warm.errors >= 1 and warm.error_messages[0].startswith("HTTP 500")


def test_unavailable_without_an_ml_url() -> None:
    assert "--ml-url" in str(SUITE.unavailable_reason(make_ctx(None)))
    assert SUITE.unavailable_reason(make_ctx("http://127.0.0.1:3003")) is None


def test_answer_shapes_are_checked() -> None:
    dimension = DimensionCheck("clip embedding", 4)
    assert check_clip_answer({"clip": json.dumps([0.1, 0.2, 0.3, 0.4])}, dimension) == 4
    assert check_clip_answer({"clip": [0.1, 0.2, 0.3, 0.4]}, dimension) == 4
    for answer, message in (
        ({"nope": 1}, "no 'clip' field"),
        ({"clip": "not json"}, "not a JSON array"),
        ({"clip": '["a", "b", "c", "d"]'}, "non-numbers"),
        ({"clip": "[1, 2]"}, "has 2 values, expected 4"),
    ):
        with pytest.raises(ShapeError, match=message):
            check_clip_answer(answer, dimension)

    face: dict[str, Any] = {
        "boundingBox": {"x1": 1, "y1": 2, "x2": 30, "y2": 40},
        "embedding": json.dumps([0.5] * 3),
        "score": 0.9,
    }
    good: dict[str, Any] = {"facial-recognition": [face], "imageWidth": 64, "imageHeight": 48}
    assert check_face_answer(good, (64, 48), DimensionCheck("face embedding", 3)) == 1
    for answer, message in (
        ({**good, "imageWidth": 10}, "do not match the 64x48 image"),
        ({**good, "facial-recognition": [{**face, "boundingBox": {"x1": 1}}]}, "boundingBox"),
        ({**good, "facial-recognition": [{**face, "score": None}]}, "numeric score"),
        ({**good, "facial-recognition": "x"}, "is not a list"),
    ):
        with pytest.raises(ShapeError, match=message):
            check_face_answer(answer, (64, 48), DimensionCheck("face embedding", 3))

    ocr: dict[str, Any] = {
        "text": ["EXIT", "OPEN"],
        "box": [0.1, 0.1, 0.5, 0.1, 0.5, 0.2, 0.1, 0.2] * 2,
        "boxScore": [0.9, 0.8],
        "textScore": [0.95, 0.9],
    }
    read = {"ocr": ocr, "imageWidth": 64, "imageHeight": 48}
    assert check_ocr_answer(read, (64, 48)) == 2
    empty = {"ocr": {"text": [], "box": [], "boxScore": [], "textScore": []}}
    assert check_ocr_answer({**empty, "imageWidth": 64, "imageHeight": 48}, (64, 48)) == 0
    for answer, message in (
        ({"facial-recognition": []}, "no 'ocr' object"),
        ({**read, "imageHeight": 10}, "do not match the 64x48 image"),
        ({**read, "ocr": {**ocr, "textScore": None}}, "no list 'textScore'"),
        ({**read, "ocr": {**ocr, "text": [1, 2]}}, "non-strings"),
        ({**read, "ocr": {**ocr, "boxScore": [0.9]}}, "2 texts but 1 boxScores"),
        ({**read, "ocr": {**ocr, "box": ocr["box"][:8]}}, "8 values for 2 texts"),
        ({**read, "ocr": {**ocr, "box": ["a"] * 16}}, "non-numbers"),
    ):
        with pytest.raises(ShapeError, match=message):
            check_ocr_answer(answer, (64, 48))


def test_generated_images_have_realistic_sizes() -> None:
    preview = images.photo_jpeg(*images.PREVIEW_SIZE)
    assert preview[:2] == b"\xff\xd8"
    # A 1440x1080 photo-like JPEG: hundreds of KB, like a real preview, not a flat few KB.
    assert 200_000 < len(preview) < 1_500_000
    first = images.unique_variant(preview, "a")
    second = images.unique_variant(preview, "b")
    assert images.sha1_hex(first) != images.sha1_hex(second)
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(first)) as decoded:
        assert decoded.size == images.PREVIEW_SIZE
    with Image.open(BytesIO(images.face_jpeg())) as portrait:
        assert portrait.size == images.FACE_SIZE


@pytest.mark.slow
def test_phone_photo_is_a_few_megabytes() -> None:
    photo = images.photo_jpeg(*images.PHOTO_SIZE)
    assert 2_000_000 <= len(photo) <= 5_000_000

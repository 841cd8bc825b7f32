"""The fake ML service follows the Immich ML contract (shared/REFERENCE.md)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.fakes.images import jpeg_bytes, png_bytes
from tests.fakes.ml_service import FakeMLService, image_dimensions

CLIP_VISUAL = {"clip": {"visual": {"modelName": "ViT-B-32__openai"}}}
CLIP_TEXTUAL = {"clip": {"textual": {"modelName": "ViT-B-32__openai"}}}
FACES = {
    "facial-recognition": {
        "detection": {"modelName": "buffalo_l", "options": {"minScore": 0.7}},
        "recognition": {"modelName": "buffalo_l"},
    }
}


@pytest.fixture
def client(fake_ml_service: FakeMLService) -> Any:
    with httpx.Client(base_url=fake_ml_service.url, timeout=5) as http:
        yield http


def _predict_image(client: httpx.Client, entries: Any, image: bytes) -> httpx.Response:
    return client.post(
        "/predict",
        data={"entries": json.dumps(entries)},
        files={"image": ("image.jpg", image, "image/jpeg")},
    )


def test_ping_and_root(client: httpx.Client) -> None:
    ping = client.get("/ping")
    assert ping.text == "pong" and ping.headers["content-type"].startswith("text/plain")
    assert client.get("/").json() == {"message": "Immich ML"}


def test_clip_visual_and_textual_are_deterministic(client: httpx.Client) -> None:
    image = jpeg_bytes(payload=b"same")
    first = _predict_image(client, CLIP_VISUAL, image)
    assert first.status_code == 200
    assert first.json()["imageWidth"] == 1440  # every image request reports its size
    vector = json.loads(first.json()["clip"])
    assert len(vector) == 512 and abs(sum(v * v for v in vector) - 1) < 1e-3
    assert _predict_image(client, CLIP_VISUAL, image).json() == first.json()
    text = client.post("/predict", data={"entries": json.dumps(CLIP_TEXTUAL), "text": "a dog"})
    assert len(json.loads(text.json()["clip"])) == 512
    assert text.json()["clip"] != first.json()["clip"]


def test_faces_with_dimensions(client: httpx.Client, fake_ml_service: FakeMLService) -> None:
    response = _predict_image(client, FACES, jpeg_bytes(1440, 1080)).json()
    assert response["imageWidth"] == 1440 and response["imageHeight"] == 1080
    (face,) = response["facial-recognition"]
    assert set(face) == {"boundingBox", "embedding", "score"}
    assert len(json.loads(face["embedding"])) == 512
    fake_ml_service.faces_per_image = 8  # scores fall by 0.05: minScore 0.7 keeps 6
    assert len(_predict_image(client, FACES, png_bytes()).json()["facial-recognition"]) == 6


def test_error_codes(client: httpx.Client) -> None:
    bad_json = client.post("/predict", data={"entries": "{not json", "text": "x"})
    assert bad_json.status_code == 422
    unknown = client.post("/predict", data={"entries": json.dumps({"ocr": {}}), "text": "x"})
    assert unknown.status_code == 422
    no_input = client.post("/predict", data={"entries": json.dumps(CLIP_TEXTUAL)})
    assert no_input.status_code == 400
    not_image = _predict_image(client, CLIP_VISUAL, b"definitely not an image")
    assert not_image.status_code == 500
    recognition_only = {"facial-recognition": {"recognition": {"modelName": "buffalo_l"}}}
    orphan = _predict_image(client, recognition_only, jpeg_bytes())
    assert orphan.status_code == 400 and "depends on output" in orphan.json()["detail"]
    text_to_visual = client.post("/predict", data={"entries": json.dumps(CLIP_VISUAL), "text": "x"})
    assert text_to_visual.status_code == 500


def test_cold_start_once_per_model(client: httpx.Client, fake_ml_service: FakeMLService) -> None:
    fake_ml_service.cold_start = 0.5
    started = time.perf_counter()
    _predict_image(client, CLIP_VISUAL, jpeg_bytes())
    cold = time.perf_counter() - started
    started = time.perf_counter()
    _predict_image(client, CLIP_VISUAL, jpeg_bytes())
    warm = time.perf_counter() - started
    assert cold >= 0.5 and warm < 0.5
    assert fake_ml_service.requests[0]["tasks"] == ["clip/visual/ViT-B-32__openai"]
    fake_ml_service.unload_models()
    started = time.perf_counter()
    _predict_image(client, CLIP_VISUAL, jpeg_bytes())
    assert time.perf_counter() - started >= 0.5


def test_fail_modes(client: httpx.Client, fake_ml_service: FakeMLService) -> None:
    fake_ml_service.fail_mode = "500"
    assert client.get("/ping").status_code == 500
    fake_ml_service.fail_mode = "hang"
    with pytest.raises(httpx.ReadTimeout):
        client.get("/ping", timeout=0.3)


def test_image_dimensions_reads_headers() -> None:
    assert image_dimensions(jpeg_bytes(640, 480)) == (640, 480)
    assert image_dimensions(png_bytes(3, 2)) == (3, 2)

"""One face detection + recognition /predict on the ML service, as the Immich server sends it.

The image is a small generated one with no face: the answer proves that the model the server
is configured with loads and runs (an empty face list is a correct answer), not its accuracy.
"""

from __future__ import annotations

import functools
import io
import json
import time
from typing import Any

from immichcheck.clients import ProbeError
from immichcheck.clients.http import describe_http_exception, http_client, response_answer
from immichcheck.clients.ml import facial_recognition_entries


@functools.cache
def probe_image() -> bytes:
    """A 96x96 JPEG with a gradient (the service decodes it with PIL like any photo)."""
    from PIL import Image

    image = Image.new("RGB", (96, 96))
    image.putdata([(x * 2, y * 2, 128) for y in range(96) for x in range(96)])
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


async def ml_face_detection(
    base_url: str, timeout: float, model: str, min_score: float
) -> dict[str, Any]:
    """POST /predict with facial-recognition detection + recognition: status, time, faces."""
    entries = json.dumps(facial_recognition_entries(model, min_score))
    url = f"{base_url}/predict"
    async with http_client(base_url, timeout) as client:
        try:
            started = time.perf_counter()
            response = await client.post(
                "/predict",
                data={"entries": entries},
                files={"image": ("probe.jpg", probe_image(), "image/jpeg")},
            )
            seconds = time.perf_counter() - started
        except Exception as exc:
            raise ProbeError(describe_http_exception(exc, url)) from exc
    answer = response_answer(response, seconds)
    body = answer.pop("json")
    answer.update(url=base_url, model=model, faces=None, problem="")
    if response.status_code != 200:
        answer["problem"] = f"HTTP {response.status_code}"
    elif not isinstance(body, dict) or not isinstance(body.get("facial-recognition"), list):
        answer["problem"] = "the answer has no 'facial-recognition' list"
    elif not isinstance(body.get("imageWidth"), int):
        answer["problem"] = "the answer has no imageWidth: the image was not decoded"
    else:
        answer["faces"] = len(body["facial-recognition"])
    return answer

"""Generated JPEGs for the ML and upload benchmarks: photo-like sizes without shipping photos.

A flat or pure-noise image would compress far better or far worse than a phone photo, and
both the ML service (decode + resize) and the upload path (bytes on the wire, on NFS) care
about size. Smooth gradients plus soft shapes plus mild sensor-like noise land a 12 MP image
at a few MB, as a phone's JPEG does. Pillow encodes; numpy (already pulled in by pandas)
draws the pixels. Images are generated once per process and cached.
"""

from __future__ import annotations

import hashlib
import io
import struct
from functools import lru_cache

# Sizes Immich itself produces or receives: a 12 MP phone photo, the 1440 px preview that the
# server sends to the ML service, and the 250 px thumbnail.
PHOTO_SIZE = (4000, 3000)
PREVIEW_SIZE = (1440, 1080)
THUMBNAIL_SIZE = (250, 250)
FACE_SIZE = (1024, 768)
IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "photo": PHOTO_SIZE,
    "preview": PREVIEW_SIZE,
    "thumbnail": THUMBNAIL_SIZE,
}
_QUALITY = 92  # typical phone camera JPEG quality


def _encode(image: object, quality: int = _QUALITY) -> bytes:
    """JPEG bytes of a Pillow image."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)  # type: ignore[attr-defined]
    return buffer.getvalue()


@lru_cache(maxsize=8)
def photo_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A photo-like JPEG: gradients, soft blobs and mild noise (12 MP -> about 2-5 MB)."""
    import numpy as np
    from PIL import Image

    generator = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    channels = []
    for channel in range(3):
        phase = generator.uniform(0, 6.28, size=3)
        base = (
            0.45
            + 0.25 * np.sin(3.0 * x + phase[0] + channel)
            + 0.20 * np.cos(2.0 * y + phase[1])
            + 0.10 * np.sin(9.0 * (x + y) + phase[2])
        )
        channels.append(base)
    pixels = np.stack(channels, axis=-1)
    # Texture at a few scales: low-resolution noise upscaled looks like foliage or fabric,
    # which is what keeps a real photo from compressing to nothing.
    for cells, amplitude in ((24, 0.12), (160, 0.06)):
        coarse = generator.normal(0.0, amplitude, size=(cells * height // width + 1, cells, 3))
        texture = Image.fromarray(((coarse + 0.5).clip(0, 1) * 255).astype(np.uint8)).resize(
            (width, height), Image.Resampling.BICUBIC
        )
        pixels += np.asarray(texture, dtype=np.float32) / 255.0 - 0.5
    pixels += generator.normal(0.0, 0.035, size=(height, width, 3)).astype(np.float32)
    image = Image.fromarray((pixels.clip(0.0, 1.0) * 255).astype(np.uint8), "RGB")
    return _encode(image)


@lru_cache(maxsize=2)
def face_jpeg(width: int = FACE_SIZE[0], height: int = FACE_SIZE[1]) -> bytes:
    """A portrait-like JPEG: a skin-toned face with eyes, brows, nose and mouth on a backdrop."""
    from PIL import Image, ImageDraw, ImageFilter

    image = Image.new("RGB", (width, height), (92, 118, 140))
    draw = ImageDraw.Draw(image)
    cx, cy = width // 2, height // 2
    face_w, face_h = int(height * 0.42), int(height * 0.56)
    draw.ellipse(
        (cx - face_w // 2 - 14, cy - face_h // 2 - 40, cx + face_w // 2 + 14, cy), fill=(48, 32, 24)
    )
    draw.ellipse(
        (cx - face_w // 2, cy - face_h // 2, cx + face_w // 2, cy + face_h // 2),
        fill=(224, 182, 150),
    )
    eye_y = cy - face_h // 10
    for side in (-1, 1):
        ex = cx + side * face_w // 5
        draw.ellipse((ex - 26, eye_y - 13, ex + 26, eye_y + 13), fill=(250, 250, 250))
        draw.ellipse((ex - 11, eye_y - 11, ex + 11, eye_y + 11), fill=(70, 45, 30))
        draw.ellipse((ex - 5, eye_y - 5, ex + 5, eye_y + 5), fill=(10, 10, 10))
        draw.line((ex - 32, eye_y - 34, ex + 30, eye_y - 38), fill=(60, 40, 30), width=8)
    draw.polygon(
        [(cx, eye_y + 10), (cx - 22, cy + face_h // 8), (cx + 22, cy + face_h // 8)],
        fill=(205, 160, 130),
    )
    mouth_y = cy + face_h // 4
    draw.chord((cx - 60, mouth_y - 22, cx + 60, mouth_y + 30), 0, 180, fill=(170, 70, 70))
    image = image.filter(ImageFilter.GaussianBlur(2))
    return _encode(image)


def unique_variant(jpeg: bytes, tag: str) -> bytes:
    """The same picture with a JPEG comment segment holding `tag`: new bytes, new checksum.

    Uploads must not be duplicates of each other, and re-encoding a 12 MP image per upload
    would cost more CPU than the upload; a comment changes the SHA-1 for free.
    """
    if not jpeg.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG")
    payload = tag.encode("utf-8")[:65000]
    segment = b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def sha1_hex(data: bytes) -> str:
    """SHA-1 of the bytes in hex, as Immich's x-immich-checksum header accepts."""
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()

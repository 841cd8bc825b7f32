"""Small image byte strings for tests: unique content, readable dimensions, no imaging library."""

from __future__ import annotations

import os
import struct
import zlib


def jpeg_bytes(width: int = 1440, height: int = 1080, *, payload: bytes | None = None) -> bytes:
    """A JPEG with a real frame header (SOF0) for the given size; payload makes it unique.

    The entropy-coded data is not a real picture: only the header is meant to be read, the
    way the fake ML service reads dimensions. Each call without a payload gives new bytes,
    so uploads are not duplicates of each other.
    """
    body = payload if payload is not None else os.urandom(32)
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    comment = b"immichcheck " + body
    return (
        b"\xff\xd8"
        + _segment(0xE0, app0)
        + _segment(0xFE, comment)
        + _segment(0xC0, sof0)
        + b"\xff\xd9"
    )


def png_bytes(width: int = 64, height: int = 48) -> bytes:
    """A valid grey PNG of the given size."""
    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def _segment(marker: int, data: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(data) + 2) + data


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )

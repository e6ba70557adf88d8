"""PNG encoding of evidence pictures (zlib and struct only), so reports need no imaging library."""

import struct
import zlib

import numpy as np

from harness.errors import ClaimError

__all__ = ["encode_png"]


def encode_png(image: np.ndarray) -> bytes:
    """Encode an ``(H, W, 3)`` uint8 RGB array as an 8-bit truecolour PNG (filter 0, zlib level 9)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or 0 in image.shape:
        raise ClaimError(
            f"a picture must be a non-empty (H, W, 3) uint8 RGB array, got {image.dtype} {image.shape}; "
            "convert floats with (x * 255).round().astype(np.uint8)"
        )
    height, width, _ = image.shape
    rows = np.concatenate([np.zeros((height, 1), np.uint8), image.reshape(height, width * 3)], axis=1)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(np.ascontiguousarray(rows).tobytes(), 9))
        + chunk(b"IEND", b"")
    )

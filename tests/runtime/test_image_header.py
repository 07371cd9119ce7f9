import struct
import zlib

import cv2
import numpy as np
import pytest

from brain_tumor_edge.runtime.errors import ImageError
from brain_tumor_edge.runtime.image_header import MAX_PIXELS, check_header, image_size


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp"])
def test_header_size_matches_real_images(ext):
    image = np.zeros((37, 53, 3), np.uint8)
    ok, data = cv2.imencode(ext, image)
    assert ok
    assert image_size(data.tobytes()) == (53, 37)


def test_decompression_bomb_is_refused_from_the_header():
    side = int(MAX_PIXELS**0.5) + 1000
    with pytest.raises(ImageError, match="too large"):
        check_header(png_header(side, side) + b"\x00" * 100)


def test_unknown_formats_pass_through():
    check_header(b"some other bytes")
    assert image_size(b"some other bytes") is None

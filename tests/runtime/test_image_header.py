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


def _bomb_bytes(extension: str, side: int = 9000) -> bytes:
    """A real file of side x side black pixels: a small file that decodes to `side`^2 pixels."""
    ok, encoded = cv2.imencode(extension, np.zeros((side, side), np.uint8))
    assert ok
    return encoded.tobytes()


@pytest.mark.parametrize("extension", [".tif", ".pgm"])
def test_tiff_and_pnm_bombs_are_refused_before_decoding(extension: str):
    """A 9000 x 9000 TIFF (1.4 MB, LZW) or PGM decodes to 81 MP, past the 64 MP cap: the
    header says so, so OpenCV never allocates it."""
    from brain_tumor_edge.runtime.preprocess import decode_image

    data = _bomb_bytes(extension)
    assert image_size(data) == (9000, 9000)
    with pytest.raises(ImageError, match="too large"):
        decode_image(data)
    small = _bomb_bytes(extension, side=300)
    assert image_size(small) == (300, 300) and decode_image(small).shape == (300, 300, 3)


def test_a_multi_page_tiff_is_judged_by_its_largest_page():
    pages = [np.zeros((64, 64), np.uint8), np.zeros((9000, 9000), np.uint8)]
    ok, encoded = cv2.imencodemulti(".tif", pages)
    assert ok and image_size(encoded.tobytes()) == (9000, 9000)


@pytest.mark.parametrize(
    ("dtype", "planar", "refused"),
    [
        (np.uint8, "separate", False),  # OpenCV reads 8-bit planes right
        (np.uint16, "contig", False),
        (np.uint16, "separate", True),
        (np.float32, "separate", True),
    ],
)
def test_a_tiff_whose_deep_colour_planes_opencv_misreads_is_refused(dtype, planar: str, refused: bool):
    """OpenCV decodes RGB planes stored apart at more than 8 bits per sample into wrong
    pixels that change from one read to the next (found on scikit-image's
    multipage_rgb.tif in the out-of-scope set); such a file is refused, never classified."""
    tifffile = pytest.importorskip(
        "tifffile", reason="tifffile (with scikit-image, the dev extra) writes the planes"
    )
    import io

    from brain_tumor_edge.runtime.preprocess import decode_pages

    rgb = (np.random.default_rng(0).random((32, 40, 3)) * 200).astype(dtype)
    buffer = io.BytesIO()
    pages = rgb if planar == "contig" else rgb.transpose(2, 0, 1)
    tifffile.imwrite(buffer, pages, photometric="rgb", planarconfig=planar)
    data = buffer.getvalue()
    assert image_size(data) == (40, 32)
    if refused:
        with pytest.raises(ImageError, match="colour planes stored apart"):
            decode_pages(data)
    else:
        (page,) = decode_pages(data)
        assert page.shape == (32, 40, 3)

"""Cheap checks on raw image bytes before OpenCV sees them.

OpenCV allocates the full image before decoding, and some of its builds decode a
truncated JPEG "successfully" with a grey bottom. Both are caught here from the header
and trailer, with a reason the user can act on.
"""

from __future__ import annotations

import struct

from .errors import ImageError

# 8000 x 8000: far above any MRI slice or scanned film, far below memory trouble.
MAX_PIXELS = 64_000_000

_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """The largest page's (width, height) over a TIFF's image file directories (at most 64)."""
    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", data[4:8])[0]
    best: tuple[int, int] | None = None
    for _ in range(64):
        if offset == 0 or offset + 2 > len(data):
            break
        (count,) = struct.unpack(order + "H", data[offset : offset + 2])
        size = {}
        for entry in range(count):
            start = offset + 2 + 12 * entry
            if start + 12 > len(data):
                break
            tag, kind = struct.unpack(order + "HH", data[start : start + 4])
            if tag in (256, 257):  # ImageWidth, ImageLength: SHORT (3) or LONG (4)
                fmt = "H" if kind == 3 else "I"
                size[tag] = struct.unpack(order + fmt, data[start + 8 : start + 8 + struct.calcsize(fmt)])[0]
        if 256 in size and 257 in size and (best is None or size[256] * size[257] > best[0] * best[1]):
            best = (size[256], size[257])
        end = offset + 2 + 12 * count
        if end + 4 > len(data):
            break
        offset = struct.unpack(order + "I", data[end : end + 4])[0]
    return best


def _pnm_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PBM/PGM/PPM header (comments allowed)."""
    fields: list[int] = []
    for line in data[2:4096].split(b"\n"):
        for token in line.split(b"#", 1)[0].split():
            if not token.isdigit():
                return None
            fields.append(int(token))
            if len(fields) == 2:
                return fields[0], fields[1]
    return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header of JPEG, PNG, BMP, GIF, WebP, TIFF (the largest page)
    or PNM bytes; None if unknown."""
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    if data[:4] in (b"II*\x00", b"MM\x00*") and len(data) >= 8:
        return _tiff_size(data)
    if data[:1] == b"P" and data[1:2] in b"123456" and data[2:3].isspace():
        return _pnm_size(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] == b"BM" and len(data) >= 26:
        width, height = struct.unpack("<ii", data[18:26])
        return abs(width), abs(height)
    if data[:4] in (b"GIF8",) and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        chunk = data[12:16]
        if chunk == b"VP8X":
            width = 1 + int.from_bytes(data[24:27], "little")
            height = 1 + int.from_bytes(data[27:30], "little")
            return width, height
        if chunk == b"VP8 ":
            width, height = struct.unpack("<HH", data[26:30])
            return width & 0x3FFF, height & 0x3FFF
        if chunk == b"VP8L" and len(data) >= 25:
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    return None


def check_header(data: bytes) -> None:
    """Raise ImageError for a decompression bomb or a truncated JPEG."""
    size = image_size(data)
    if size is not None:
        width, height = size
        if width * height > MAX_PIXELS:
            raise ImageError(f"image too large ({width}x{height} pixels)")
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-1024:]:
        # A JPEG's last marker is EOI; a file cut short (half-copied) lacks it.
        raise ImageError("truncated JPEG (no end-of-image marker)")

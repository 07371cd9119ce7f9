"""Cheap checks on raw image bytes before OpenCV sees them.

OpenCV allocates the full image before decoding, and some of its builds decode a
truncated JPEG "successfully" with a grey bottom. Both are caught here from the header
and trailer, with a reason the user can act on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import ImageError

# 8000 x 8000: far above any MRI slice or scanned film, far below memory trouble.
MAX_PIXELS = 64_000_000
# A multi-page TIFF is read page by page into rows, like a DICOM's frames: its pages
# together may hold a few slices' worth of the budget, and no more than this many pages.
MAX_PAGES = 1024

# ImageWidth, ImageLength, BitsPerSample, SamplesPerPixel, PlanarConfiguration
_TIFF_TAGS = (256, 257, 258, 277, 284)

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


@dataclass(frozen=True)
class _TiffPage:
    width: int
    height: int
    samples: int  # samples per pixel (3 for RGB)
    bits: int  # bits per sample (the first sample's)
    planar: int  # PlanarConfiguration: 1 samples interleaved, 2 each sample a plane of its own


def _tiff_pages(data: bytes) -> list[_TiffPage]:
    """The size and sample layout of each page (image file directory) of a TIFF, at most MAX_PAGES."""
    if data[:4] not in (b"II*\x00", b"MM\x00*") or len(data) < 8:
        return []
    order = "<" if data[:2] == b"II" else ">"
    offset = struct.unpack(order + "I", data[4:8])[0]
    pages: list[_TiffPage] = []
    seen: set[int] = set()
    while len(pages) < MAX_PAGES and offset not in seen:
        if offset == 0 or offset + 2 > len(data):
            break
        seen.add(offset)  # a directory chain that loops back ends here
        (count,) = struct.unpack(order + "H", data[offset : offset + 2])
        tags = {}
        for entry in range(count):
            start = offset + 2 + 12 * entry
            if start + 12 > len(data):
                break
            tag, kind, values = struct.unpack(order + "HHI", data[start : start + 8])
            if tag in _TIFF_TAGS and kind in (3, 4):  # SHORT or LONG
                fmt = order + ("H" if kind == 3 else "I")
                step = struct.calcsize(fmt)
                # The first value: in the entry when all values fit in 4 bytes, else at an offset.
                at = (
                    start + 8
                    if values * step <= 4
                    else struct.unpack(order + "I", data[start + 8 : start + 12])[0]
                )
                if at + step <= len(data):
                    tags[tag] = struct.unpack(fmt, data[at : at + step])[0]
        page = _TiffPage(
            tags.get(256, 0), tags.get(257, 0), tags.get(277, 1), tags.get(258, 1), tags.get(284, 1)
        )
        pages.append(page)
        end = offset + 2 + 12 * count
        if end + 4 > len(data):
            break
        offset = struct.unpack(order + "I", data[end : end + 4])[0]
    return pages


def _largest(pages: list[_TiffPage]) -> tuple[int, int] | None:
    """The largest page's (width, height) of a TIFF."""
    sized = [(page.width, page.height) for page in pages if page.width and page.height]
    return max(sized, key=lambda size: size[0] * size[1]) if sized else None


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
        return _largest(_tiff_pages(data))
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


def check_header(data: bytes) -> int:
    """Raise ImageError for a decompression bomb, a truncated JPEG or a TIFF layout OpenCV
    misreads; return the number of pages of a TIFF (0 for any other format), so the caller
    knows it without parsing again."""
    pages = _tiff_pages(data)
    size = _largest(pages) if pages else image_size(data)
    if size is not None:
        width, height = size
        if width * height > MAX_PIXELS:
            raise ImageError(f"image too large ({width}x{height} pixels)")
    if len(pages) >= MAX_PAGES:
        raise ImageError(f"TIFF with too many pages (over {MAX_PAGES - 1})")
    if sum(page.width * page.height for page in pages) > MAX_PIXELS * 4:
        raise ImageError(f"TIFF too large ({len(pages)} pages)")
    # OpenCV (5.1) decodes colour planes stored apart at more than 8 bits per sample into
    # pixels that are wrong and differ from one read to the next: refused, never classified.
    if any(page.planar == 2 and page.samples > 1 and page.bits > 8 for page in pages):
        raise ImageError(
            "TIFF with its colour planes stored apart at more than 8 bits per sample, which "
            "OpenCV decodes wrongly: save it with interleaved samples (or as 8-bit or PNG)"
        )
    if data[:2] == b"\xff\xd8" and not _jpeg_ends(data):
        raise ImageError("truncated JPEG (no end-of-image marker)")
    return len(pages)


def _jpeg_ends(data: bytes) -> bool:
    """Whether the JPEG's image data reaches its end-of-image marker. A file cut short
    (half-copied) lacks it; bytes after it (padding some writers and cameras add) do not
    matter, since viewers stop at the marker. Inside entropy-coded data an 0xFF byte is
    always stuffed (FF 00) or a restart marker, so an FF D9 after the last start-of-scan
    is the real end, not one inside an EXIF thumbnail."""
    scan = data.rfind(b"\xff\xda")
    return scan >= 0 and data.find(b"\xff\xd9", scan) >= 0

"""Ordinary image files (PNG, JPEG, TIFF, ...): the image format's entry in runtime/formats.py.

Claimed by extension. Read whole (bounded, `reading.read_input`) and decoded by OpenCV
(runtime/preprocess.py); a multi-page TIFF gives one row per page ("#N").
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .preprocess import PreprocessConfig, decode_pages, resize_chw
from .reading import read_input
from .reasons import image_reasons
from .results import Decoded, Item, frame_name

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"}
)


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def decode_array(image: np.ndarray, config: PreprocessConfig, name: str = "<array>") -> Item:
    """A decoded HxWx3 uint8 image (in the model's channel order) -> an Item with its input checks."""
    return Item(name, resize_chw(image, config), reasons=tuple(image_reasons(image)))


def decode_image_file(path: Path, config: PreprocessConfig, dicom_fields: tuple[str, ...] = ()) -> Decoded:
    """An image file -> one item, or one per page of a multi-page TIFF."""
    name = str(path)
    # Read bytes ourselves: cv2.imread cannot open non-ASCII paths on every platform.
    pages = decode_pages(read_input(path), config.channel_order)
    if len(pages) == 1:
        return Decoded([decode_array(pages[0], config, name)])
    return Decoded([decode_array(page, config, frame_name(name, index)) for index, page in enumerate(pages)])

"""The input formats, one entry each: which files a format claims, and how it decodes them.

The walk (`is_input_file`), the classifier (`decode`) and training (`image_from_bytes`) ask
this table, and nothing else knows the formats apart. A format is claimed by its file's
name (a suffix) or by the first bytes of its content (DICOM: whatever the writer named
the file). Asked in order: the first format to claim a file decodes it; a
file no format claims is not walked, and decoded as an image if it is asked for (its row
says why that failed).

Adding a format = one module with its `claims` and `decode` (see image_files.py,
dicom.py, volumes.py) and one `Format` entry in `FORMATS` below. Names of rows below a
file ("#N" frames and pages, "#z=K" slices) are runtime/results.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import dicom, image_files, volumes
from .errors import ImageError
from .preprocess import PreprocessConfig, decode_image
from .reading import read_head
from .results import Decoded


@dataclass(frozen=True)
class Format:
    name: str
    by_name: Callable[[Path], bool]  # claims a file by its name alone (no read)
    decode: Callable[[Path, PreprocessConfig, tuple[str, ...]], Decoded]
    # Claims a file by its first `head_bytes` bytes, whatever its name (None: by name only).
    by_content: Callable[[bytes], bool] | None = None
    head_bytes: int = 0
    # The file's bytes -> one 2-D image at full resolution, HxWx3 uint8, for training
    # (None: the format holds many slices, which training takes as extracted images).
    image_from_bytes: Callable[[bytes, str], np.ndarray] | None = None

    def claims(self, path: Path, head: bytes = b"") -> bool:
        return self.by_name(path) or (self.by_content is not None and bool(head) and self.by_content(head))


NIFTI = Format("NIfTI", volumes.is_nifti, volumes.decode_volume_file)
DICOM = Format(
    "DICOM",
    dicom.is_dicom_name,
    dicom.decode_dicom_file,
    by_content=dicom.looks_like_dicom,
    head_bytes=dicom.PREAMBLE_LENGTH,
    image_from_bytes=dicom.dicom_image_from_bytes,
)
IMAGE = Format(
    "image", image_files.is_image_name, image_files.decode_image_file, image_from_bytes=decode_image
)
FORMATS = (NIFTI, DICOM, IMAGE)
HEAD_BYTES = max(entry.head_bytes for entry in FORMATS)


def format_of(path: Path, head: bytes | None = None) -> Format | None:
    """The first format, in order, to claim a file by its name or its content (`head`, or
    read once when a format asks); None when none does. Raises OSError or ImageError when
    the content must be read and cannot be."""
    for entry in FORMATS:
        if entry.by_name(path):
            return entry
        if entry.by_content is not None:
            head = read_head(path, HEAD_BYTES) if head is None else head
            if entry.by_content(head):
                return entry
    return None


def is_input_file(path: Path) -> bool:
    """Whether the walk yields this file: a format claims it by name (no read), or by content."""
    if any(entry.by_name(path) for entry in FORMATS):
        return True
    try:
        head = read_head(path, HEAD_BYTES)
    except (OSError, ImageError):
        return False
    return any(entry.claims(path, head) for entry in FORMATS)


def decode(path: Path, config: PreprocessConfig, dicom_fields: tuple[str, ...] = ()) -> Decoded:
    """A file -> its items, by the format that claims it (an image when none does).
    Raises what its reader raises: `classify.decode_file` turns that into the file's row."""
    chosen = format_of(path) or IMAGE
    return chosen.decode(path, config, dicom_fields)


def image_from_bytes(path: Path, data: bytes, channel_order: str = "RGB") -> np.ndarray:
    """A file's image at full resolution from its bytes, for training (which hashes the bytes
    too); ImageError for a format of many slices."""
    chosen = format_of(path, data[:HEAD_BYTES]) or IMAGE
    if chosen.image_from_bytes is None:
        raise ImageError(f"a {chosen.name} file holds many slices: extract them as images to train on")
    return chosen.image_from_bytes(data, channel_order)

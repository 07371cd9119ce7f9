"""DICOM input (optional extra: `pip install .[dicom]`): pixels as a radiologist's viewer shows them.

Pipeline per frame: modality LUT (rescale slope/intercept), then the VOI LUT or the first
window centre/width when present (else the frame's own range), MONOCHROME1 inverted,
then 8 bits, three channels, and the shared preprocessing. pydicom is imported only when
a DICOM file is met, so the runtime works without it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np

from runtime.errors import ImageError
from runtime.image_header import MAX_PIXELS

PREAMBLE_LENGTH = 132
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic"})
INSTALL_HINT = "DICOM support is not installed (pip install 'brain-tumor-edge[dicom]')"

# Fields `--dicom-fields` may copy into the CSV: identifiers for joining results back to
# the archive and acquisition facts, none of them identifying a patient.
SAFE_FIELDS = frozenset(
    {
        "SOPInstanceUID",
        "SeriesInstanceUID",
        "StudyInstanceUID",
        "SOPClassUID",
        "InstanceNumber",
        "SeriesNumber",
        "AcquisitionNumber",
        "Modality",
        "SliceLocation",
        "SliceThickness",
        "Rows",
        "Columns",
    }
)


class NotAnImage(Exception):
    """A DICOM object without pixels to classify (DICOMDIR, structured report, ...)."""


def looks_like_dicom(head: bytes) -> bool:
    """True for Part 10 files: 128 bytes of preamble, then `DICM`."""
    return len(head) >= PREAMBLE_LENGTH and head[128:132] == b"DICM"


@dataclass
class DicomImage:
    frames: list[np.ndarray]  # HxW uint8 each
    fields: dict[str, str] = field(default_factory=dict)


def _first(value) -> float:
    """Window centre/width may hold several alternatives; the first is the default view."""
    from pydicom.multival import MultiValue

    return float(value[0]) if isinstance(value, MultiValue | list | tuple) else float(value)


def _to_uint8(frame: np.ndarray, dataset) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut, apply_voi

    values = apply_modality_lut(frame, dataset).astype(np.float64)
    if "VOILUTSequence" in dataset:
        values = apply_voi(values, dataset, index=0).astype(np.float64)
        unit = _min_max(values)
    elif "WindowCenter" in dataset and "WindowWidth" in dataset:
        # DICOM PS3.3 C.11.2.1.2, linear: centre c, width w map [c - w/2, c + w/2] to [0, 1].
        centre = _first(dataset.WindowCenter)
        width = max(_first(dataset.WindowWidth), 1.0)
        unit = np.clip((values - (centre - 0.5)) / (width - 1 if width > 1 else 1) + 0.5, 0.0, 1.0)
    else:
        unit = _min_max(values)
    image = np.round(unit * 255.0).astype(np.uint8)
    if str(dataset.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        image = 255 - image  # MONOCHROME1: low values are white
    return image


def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return np.zeros(values.shape) if high <= low else (values - low) / (high - low)


def read_dicom(data: bytes, fields: tuple[str, ...] = ()) -> DicomImage:
    """Decode every frame of a DICOM file; raises NotAnImage or ImageError."""
    try:
        import pydicom
        from pydicom.errors import InvalidDicomError
    except ImportError:
        raise ImageError(INSTALL_HINT) from None
    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, ValueError, EOFError, OSError) as exc:
        raise ImageError(f"unreadable DICOM ({type(exc).__name__})") from exc
    if "DirectoryRecordSequence" in dataset:
        raise NotAnImage("DICOMDIR")
    if "PixelData" not in dataset:
        raise NotAnImage(f"DICOM without pixel data ({dataset.get('Modality', 'unknown modality')})")
    rows, columns = int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))
    frame_count = int(dataset.get("NumberOfFrames", 1) or 1)
    # A whole series may be several slices' worth of one image's pixel budget.
    if rows * columns * frame_count > MAX_PIXELS * 4:
        raise ImageError(f"DICOM too large ({frame_count} frames of {columns}x{rows})")
    try:
        pixels = dataset.pixel_array
    except Exception as exc:  # missing codec, corrupt stream: each a different type
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ImageError(f"DICOM pixel data not decodable: {reason}") from exc
    samples = int(dataset.get("SamplesPerPixel", 1))
    if frame_count == 1:
        pixels = pixels[None]
    if samples == 3:
        # Colour DICOM (rare for MRI): keep it as a grey image, the model's input domain.
        pixels = pixels.mean(axis=-1)
    frames = [_to_uint8(frame, dataset) for frame in pixels]
    kept = {name: str(dataset.get(name, "")) for name in fields}
    return DicomImage(frames, kept)

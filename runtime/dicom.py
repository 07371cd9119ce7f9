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

from .errors import ImageError
from .image_header import MAX_PIXELS
from .series import SlicePlace

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
    """Part 10 files (128 bytes of preamble, then `DICM`), and the forms older exports
    write: `DICM` without the preamble, or a bare data set starting with a group 0008
    element (little endian) and no file meta at all."""
    if len(head) >= PREAMBLE_LENGTH and head[128:132] == b"DICM":
        return True
    return head[:4] == b"DICM" or (len(head) >= 8 and head[:2] == b"\x08\x00" and head[3] == 0)


def _with_preamble(data: bytes) -> bytes:
    """pydicom looks for `DICM` after a preamble; give one to files written without it."""
    return bytes(128) + data if data[:4] == b"DICM" else data


@dataclass
class DicomImage:
    frames: list[np.ndarray]  # HxW uint8 each
    fields: dict[str, str] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # out-of-scope reasons from the header
    # The series this object belongs to and where it lies in it (runtime/series.py);
    # None without a SeriesInstanceUID.
    place: SlicePlace | None = None


def plane_of(orientation: list[float]) -> str:
    """axial, coronal or sagittal from ImageOrientationPatient (row and column cosines):
    the patient axis the slice normal lies closest to; "" when not given."""
    if len(orientation) != 6:
        return ""
    normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))
    return ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]


def _numbers(dataset, name: str) -> list[float]:
    try:
        value = dataset.get(name)
        return [float(v) for v in value] if value is not None else []
    except Exception:  # malformed: treat as absent
        return []


def slice_place(dataset) -> SlicePlace | None:
    """Series UID, plane and position (ImagePositionPatient along the normal, else InstanceNumber)."""
    uid = _text(dataset, "SeriesInstanceUID")
    if not uid:
        return None
    orientation = _numbers(dataset, "ImageOrientationPatient")
    position = _numbers(dataset, "ImagePositionPatient")
    if len(orientation) == 6 and len(position) == 3:
        normal = np.cross(np.asarray(orientation[:3]), np.asarray(orientation[3:]))
        where = float(np.dot(normal, np.asarray(position)))
    else:
        where = float(_number(dataset, "InstanceNumber", 0))
    return SlicePlace(uid, plane_of(orientation), where)


def _pydicom():
    try:
        import pydicom
    except ImportError:
        raise ImageError(INSTALL_HINT) from None
    # Archives hold values that break the standard's rules (text in numbers, odd UIDs):
    # read them without a warning per element; what cannot be used becomes an error row.
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    return pydicom


def _read_dataset(source, stop_before_pixels: bool = False):
    """Part 10 with or without preamble or file meta, as real archives hold them (force=True)."""
    pydicom = _pydicom()
    try:
        # defer_size: a header read never loads a huge element (a malformed length) whole.
        defer = "1 MB" if stop_before_pixels else None
        return pydicom.dcmread(source, force=True, stop_before_pixels=stop_before_pixels, defer_size=defer)
    except Exception as exc:  # pydicom raises many types for malformed files
        raise ImageError(f"unreadable DICOM ({type(exc).__name__})") from exc


def _number(dataset, name: str, default: int) -> int:
    """An integer element; text or junk in it is a short error, not a traceback."""
    try:
        value = dataset.get(name, default)
        return default if value in (None, "") else int(value)
    except (TypeError, ValueError, OverflowError):
        raise ImageError(f"malformed DICOM element {name}") from None


def _declared_pixels(dataset) -> tuple[int, int, int, int]:
    return (
        _number(dataset, "Rows", 0),
        _number(dataset, "Columns", 0),
        _number(dataset, "NumberOfFrames", 1) or 1,
        _number(dataset, "SamplesPerPixel", 1) or 1,
    )


def dicom_byte_limit(path) -> int:
    """The largest file size the header makes plausible: the raw pixel bytes it declares
    (uncompressed; compressed data is smaller) plus 1 MiB of elements. Read from the
    header alone, so a multi-gigabyte file is refused before it is read."""
    with open(path, "rb") as handle:
        if handle.read(4) == b"DICM":
            # No preamble: parse the first MiB with one added (headers are far smaller).
            dataset = _read_dataset(io.BytesIO(bytes(128) + b"DICM" + handle.read(1 << 20)), True)
        else:
            handle.seek(0)
            dataset = _read_dataset(handle, stop_before_pixels=True)
    rows, columns, frames, samples = _declared_pixels(dataset)
    _check_pixel_budget(rows, columns, frames)
    bits = _number(dataset, "BitsAllocated", 16) or 16
    return rows * columns * frames * samples * max(1, bits // 8) + (1 << 20)


def _check_pixel_budget(rows: int, columns: int, frames: int) -> None:
    # A whole series may be several slices' worth of one image's pixel budget.
    if rows * columns * frames > MAX_PIXELS * 4:
        raise ImageError(f"DICOM too large ({frames} frames of {columns}x{rows})")


def _ensure_transfer_syntax(dataset) -> None:
    """Files without file meta lack a transfer syntax; infer it from how they were read."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(dataset, "file_meta", None)
    if meta is None:
        meta = dataset.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" in meta:
        return
    implicit, little = dataset.original_encoding
    if implicit:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian


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
        if width <= 1.0:  # the standard's own case: a threshold at c - 0.5
            unit = (values > centre - 0.5).astype(np.float64)
        else:
            unit = np.clip((values - (centre - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)
    else:
        unit = _min_max(values)
    image = np.round(unit * 255.0).astype(np.uint8)
    if str(dataset.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        image = 255 - image  # MONOCHROME1: low values are white
    return image


def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return np.zeros(values.shape) if high <= low else (values - low) / (high - low)


def _text(dataset, name: str) -> str:
    try:
        return str(dataset.get(name, "") or "")
    except Exception:  # a malformed value: treat as absent
        return ""


def read_dicom(data: bytes, fields: tuple[str, ...] = ()) -> DicomImage:
    """Decode every frame of a DICOM file; raises NotAnImage or ImageError."""
    from .reasons import channel_difference, colour_reason, dicom_reasons

    dataset = _read_dataset(io.BytesIO(_with_preamble(data)))
    if len(dataset) == 0:  # "DICM" and nothing after it: a cut-off file, not a non-image object
        raise ImageError("truncated DICOM (no elements)")
    if "DirectoryRecordSequence" in dataset:
        raise NotAnImage("DICOMDIR")
    if "PixelData" not in dataset:
        raise NotAnImage(f"DICOM without pixel data ({_text(dataset, 'Modality') or 'unknown modality'})")
    rows, columns, frame_count, samples = _declared_pixels(dataset)
    _check_pixel_budget(rows, columns, frame_count)
    _ensure_transfer_syntax(dataset)
    try:
        pixels = dataset.pixel_array
    except Exception as exc:  # missing codec, corrupt stream: each a different type
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ImageError(f"DICOM pixel data not decodable: {reason}") from exc
    if frame_count == 1:
        pixels = pixels[None]
    reasons = dicom_reasons(_text(dataset, "Modality"), _text(dataset, "SOPClassUID"))
    if samples == 3 and pixels.ndim == 4:
        # Colour DICOM (ultrasound, screenshots): grey for the model, flagged when truly colour.
        reasons += colour_reason(channel_difference(pixels))
        pixels = pixels.astype(np.float32).mean(axis=-1)
    frames = [_to_uint8(frame, dataset) for frame in pixels]
    kept = {name: _text(dataset, name) for name in fields}
    return DicomImage(frames, kept, reasons, slice_place(dataset) if frame_count == 1 else None)

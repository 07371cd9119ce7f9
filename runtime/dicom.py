"""DICOM input (the `dicom` extra): pixels as a radiologist's viewer shows them.

Pipeline per frame: modality LUT (rescale slope/intercept), then the VOI LUT or the first
window centre/width when present (else the frame's own range), MONOCHROME1 inverted,
then 8 bits, three channels, and the shared preprocessing. pydicom is imported only when
a DICOM file is met, so the runtime works without it.

Frames are decoded one at a time (pydicom's `iter_pixels`), each brought to 8 bits and
handed on before the next, so memory per file is its pixel data plus one frame; a frame
that fails to decode becomes that frame's error row and the others stand. No text from
a file's elements reaches an error message: errors name the problem, not the values.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import ImageError, install_hint
from .image_header import MAX_PIXELS
from .preprocess import PreprocessConfig, resize_chw
from .readers import import_pydicom
from .reading import open_regular
from .reasons import DICOM_NOTE, image_reasons
from .results import Decoded, Item, SlicePlace, frame_name

PREAMBLE_LENGTH = 132
DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".dic"})
INSTALL_HINT = f"DICOM support is not installed ({install_hint('dicom')})"

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
        # What was acquired, and on what: results differ by sequence (the model card), so a
        # reader needs these to weigh a row. None names or dates a person.
        "SeriesDescription",
        "ProtocolName",
        "SequenceName",
        "ScanningSequence",
        "SequenceVariant",
        "MRAcquisitionType",
        "ImageType",
        "EchoTime",
        "RepetitionTime",
        "InversionTime",
        "FlipAngle",
        "MagneticFieldStrength",
        "Manufacturer",
        "ManufacturerModelName",
        "ContrastBolusAgent",
        "PixelSpacing",
        "SpacingBetweenSlices",
        "ImageOrientationPatient",
        "ImagePositionPatient",
    }
)


class NotAnImage(Exception):
    """A DICOM object without pixels to classify (DICOMDIR, structured report, ...)."""


def is_dicom_name(path: Path) -> bool:
    return path.suffix.lower() in DICOM_SUFFIXES


def looks_like_dicom(head: bytes) -> bool:
    """Part 10 files (128 bytes of preamble, then `DICM`), and the forms older exports
    write: `DICM` without the preamble, or a bare data set starting with a group 0008
    element (little endian) and no file meta at all."""
    if len(head) >= PREAMBLE_LENGTH and head[128:132] == b"DICM":
        return True
    return head[:4] == b"DICM" or (len(head) >= 8 and head[:2] == b"\x08\x00" and head[3] == 0)


@dataclass
class Frame:
    """One decoded frame (HxW uint8, with its own review reasons), or why it could not be."""

    index: int
    pixels: np.ndarray | None
    reasons: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class DicomImage:
    dataset: object  # the pydicom Dataset, its pixel data read frame by frame by `frames()`
    frame_count: int
    view: View  # how its stored values become grey levels
    fields: dict[str, str] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)  # out-of-scope reasons from the header
    # The series this object belongs to and where it lies in it (runtime/series.py);
    # None without a SeriesInstanceUID.
    place: SlicePlace | None = None

    def frames(self) -> Iterator[Frame]:
        """Each frame in order, decoded when asked for; a failed frame is an error Frame."""
        from pydicom.pixels import iter_pixels

        start = 0
        while start < self.frame_count:
            try:
                # iter_pixels decodes one frame per step; after a failure it is restarted
                # past the bad frame, so one corrupt frame costs one row, not the file.
                for pixels in iter_pixels(self.dataset, indices=range(start, self.frame_count)):
                    yield self.view.frame(start, pixels)
                    start += 1
                break  # the iterator stopped early (fewer frames than declared)
            except Exception as exc:  # a codec's failure: each library raises its own type
                yield Frame(start, None, error=f"DICOM frame not decodable ({library_words(exc)})")
                start += 1
        for missing in range(start, self.frame_count):
            yield Frame(missing, None, error="DICOM frame missing (pixel data shorter than declared)")


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
    """Series UID, plane and position (ImagePositionPatient along the normal, else InstanceNumber).

    The UID is written to the series CSV and the page, so only a UID's form (digits and
    dots) is shown as it is; anything else a writer put there (a name, a record number) is
    replaced by a short hash that still tells series apart. A position that is not a finite
    number (NaN, 1e999) falls back to the instance number: the page's data must parse."""
    text = _text(dataset, "SeriesInstanceUID").strip()
    if not text:
        return None
    uid = text if _UID.fullmatch(text) else "series-" + hashlib.sha256(text.encode()).hexdigest()[:12]
    orientation = _numbers(dataset, "ImageOrientationPatient")
    position = _numbers(dataset, "ImagePositionPatient")
    where = float("nan")
    if len(orientation) == 6 and len(position) == 3:
        with np.errstate(all="ignore"):
            normal = np.cross(np.asarray(orientation[:3]), np.asarray(orientation[3:]))
            where = float(np.dot(normal, np.asarray(position)))
    if not math.isfinite(where):
        where = float(_number(dataset, "InstanceNumber", 0))
    plane = plane_of(orientation) if all(map(math.isfinite, orientation)) else ""
    # What the scanner called the series ("AX FLAIR"): says which sequence the model saw.
    description = " ".join(_text(dataset, "SeriesDescription").split())[:64]
    return SlicePlace(uid, plane, where, description)


def _pydicom():
    try:
        pydicom = import_pydicom()
    except ImportError:
        raise ImageError(INSTALL_HINT) from None
    # Archives hold values that break the standard's rules (text in numbers, odd UIDs):
    # read them without a warning per element; what cannot be used becomes an error row.
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    # pydicom logs a failed frame's details itself; the row's error cell says it, and a
    # library's log line on a user's terminal is noise (Python prints unhandled ones).
    logging.getLogger("pydicom").addHandler(logging.NullHandler())
    return pydicom


def _read_dataset(source, defer: bool = False, stop_before_pixels: bool = False):
    """Part 10 with or without preamble or file meta, as real archives hold them (force=True)."""
    pydicom = _pydicom()
    try:
        return pydicom.dcmread(
            source, force=True, defer_size="1 MB" if defer else None, stop_before_pixels=stop_before_pixels
        )
    except Exception as exc:  # pydicom raises many types for malformed files
        raise ImageError(f"unreadable DICOM ({library_words(exc)})") from exc


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


def _decimal(value) -> float:
    """A DS value's first number; a decimal comma ("40,5", as some writers in comma locales
    store it) is read as a point; anything else unreadable raises ValueError."""
    from pydicom.multival import MultiValue

    first = value[0] if isinstance(value, MultiValue | list | tuple) else value
    try:
        return float(first)
    except (TypeError, ValueError):
        text = str(first).strip()
        if re.fullmatch(r"[+-]?\d+,\d*", text):
            return float(text.replace(",", "."))
        raise ValueError("not a number") from None


@dataclass
class View:
    """How a frame's stored values become the grey levels a viewer shows, decided once per
    file from its header; what could not be read falls back (to no rescale, to the frame's
    own range) with a review note saying so, instead of failing the file."""

    dataset: object
    photometric: str = ""  # PhotometricInterpretation, read once
    window: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, dataset) -> View:
        view = cls(dataset, _text(dataset, "PhotometricInterpretation").strip().upper())
        if "VOILUTSequence" in dataset:
            return view
        if "WindowCenter" in dataset and "WindowWidth" in dataset:
            try:
                centre, width = _decimal(dataset.WindowCenter), _decimal(dataset.WindowWidth)
                view.window = (centre, max(width, 1.0))
                if any("," in str(v) for v in (dataset.WindowCenter, dataset.WindowWidth)):
                    view.notes.append(
                        f"{DICOM_NOTE.prefix}window written with a decimal comma, read as a point"
                    )
            except Exception:
                view.notes.append(f"{DICOM_NOTE.prefix}window unreadable, the frame's own range shown")
        return view

    def frame(self, index: int, pixels: np.ndarray) -> Frame:
        from .reasons import channel_difference, colour_reason

        reasons = list(self.notes)
        if self.photometric == "PALETTE COLOR":
            from pydicom.pixels import apply_color_lut

            pixels = apply_color_lut(pixels, self.dataset)  # indices -> the colours they stand for
            reasons += colour_reason(channel_difference(pixels))
            return Frame(index, _min_max_uint8(pixels.astype(np.float64).mean(axis=-1)), reasons)
        if pixels.ndim == 3:
            # Colour DICOM (ultrasound, screenshots): grey for the model, flagged when truly colour.
            reasons += colour_reason(channel_difference(pixels))
            pixels = pixels.astype(np.float32).mean(axis=-1)
        return Frame(index, self._grey(pixels, reasons), reasons)

    def _grey(self, frame: np.ndarray, reasons: list[str]) -> np.ndarray:
        from pydicom.pixels import apply_modality_lut, apply_voi

        dataset = self.dataset
        try:
            values = apply_modality_lut(frame, dataset).astype(np.float64)
        except Exception:  # a malformed slope or intercept
            values = frame.astype(np.float64)
            reasons.append(f"{DICOM_NOTE.prefix}rescale unreadable, stored values shown")
        if "VOILUTSequence" in dataset:
            try:
                unit = _min_max(apply_voi(values, dataset, index=0).astype(np.float64))
            except Exception:
                reasons.append(f"{DICOM_NOTE.prefix}VOI LUT unreadable, the frame's own range shown")
                unit = _min_max(values)
        elif self.window is not None:
            # DICOM PS3.3 C.11.2.1.2, linear: centre c, width w map [c - w/2, c + w/2] to [0, 1].
            centre, width = self.window
            if width <= 1.0:  # the standard's own case: a threshold at c - 0.5
                unit = (values > centre - 0.5).astype(np.float64)
            else:
                unit = np.clip((values - (centre - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)
        else:
            unit = _min_max(values)
        image = np.round(unit * 255.0).astype(np.uint8)
        if self.photometric == "MONOCHROME1":
            image = 255 - image  # MONOCHROME1: low values are white
        return image


def _min_max_uint8(values: np.ndarray) -> np.ndarray:
    return np.round(_min_max(values) * 255.0).astype(np.uint8)


def _min_max(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    return np.zeros(values.shape) if high <= low else (values - low) / (high - low)


def _text(dataset, name: str) -> str:
    """An element as text; "" when absent or malformed (a value of 0 is "0", not absent)."""
    try:
        value = dataset.get(name)
        return "" if value is None else str(value)
    except Exception:  # a malformed value: treat as absent
        return ""


_CODE = re.compile(r"[A-Z0-9_ ]{1,16}")  # a Code String (CS), as Modality holds
_UID = re.compile(r"[0-9.]{1,64}")


_QUOTED = re.compile(r"'([^']*)'|\"([^\"]*)\"")


def library_words(exc: BaseException, limit: int = 160) -> str:
    """The library's own message ("Missing required element: (0028,0004) 'Photometric
    Interpretation'"), with every quoted text that is not a DICOM element's name replaced by
    '...': a value a writer put in an element (a name, an ID) never reaches a message."""
    from pydicom.datadict import keyword_dict

    names = _element_names()
    keywords = set(keyword_dict)

    def scrub(match: re.Match) -> str:
        inner = match.group(1) if match.group(1) is not None else match.group(2)
        return match.group(0) if inner in names or inner in keywords else "'...'"

    text = " ".join(str(exc).split())
    text = _QUOTED.sub(scrub, text)[:limit]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@functools.cache
def _element_names() -> frozenset[str]:
    """Every DICOM element's name ("Photometric Interpretation"), from pydicom's dictionary."""
    from pydicom.datadict import DicomDictionary

    return frozenset(entry[2] for entry in DicomDictionary.values())


def _code(dataset, name: str, pattern: re.Pattern = _CODE) -> str:
    """An element that a message or reason may quote: only if it has its VR's form (a code,
    a UID), so free text a writer put there (a name, a note) never reaches a message."""
    text = _text(dataset, name).strip()
    return text if pattern.fullmatch(text) else ("unrecognised" if text else "")


# A header larger than this (vendor per-frame data, private elements) is refused: the
# pixels are bounded by MAX_PIXELS, the rest of a file by this.
HEADER_ALLOWANCE = 64 * 1024 * 1024


def read_dicom(source: bytes | BinaryIO, fields: tuple[str, ...] = ()) -> DicomImage:
    """A DICOM file's header, checked, with its frames ready to decode one by one
    (`DicomImage.frames()`; keep `source` open until they are read). Raises NotAnImage or
    ImageError; the messages quote no element's text."""
    from .reasons import dicom_reasons

    if isinstance(source, bytes):
        source = io.BytesIO(source)
    # pydicom looks for `DICM` after a 128-byte preamble: give one to files written without.
    if source.read(4) == b"DICM":  # (older exports; read whole, within the pixel budget)
        source = io.BytesIO(bytes(128) + b"DICM" + source.read(MAX_PIXELS * 4))
    source.seek(0)
    # The header first (it stops before the pixel data): the file's size is checked against
    # the pixels it declares before the rest is parsed, so a file padded to gigabytes is
    # refused unread. defer_size: no huge element (a malformed length) is loaded whole.
    header = _read_dataset(source, defer=True, stop_before_pixels=True)
    if len(header) == 0:  # "DICM" and nothing after it: a cut-off file, not a non-image object
        raise ImageError("truncated DICOM (no elements)")
    if "DirectoryRecordSequence" in header:
        raise NotAnImage("DICOMDIR")
    rows, columns, frame_count, samples = _declared_pixels(header)
    _check_pixel_budget(rows, columns, frame_count)
    bits = _number(header, "BitsAllocated", 16) or 16
    size = source.seek(0, os.SEEK_END)
    pixel_bytes = rows * columns * frame_count * samples * max(1, bits // 8)
    if size > 2 * pixel_bytes + HEADER_ALLOWANCE:  # the pixels are bounded, not the header
        raise ImageError(
            f"DICOM file too large for the image it declares ({size / 2**20:.0f} MiB "
            f"for {frame_count} frames of {columns}x{rows})"
        )
    source.seek(0)
    # Now whole; the pixel data stays on disk until a frame is decoded.
    dataset = _read_dataset(source, defer=True)
    # Deferred values are read from this open file, never reopened by name (a file object
    # from a descriptor has none, and a name could point at another file by then).
    dataset.filename = source
    if "PixelData" not in dataset:
        if rows and columns:  # it declares an image: cut short before its pixels, not a report
            raise ImageError(f"truncated DICOM (declares a {columns}x{rows} image, no pixel data)")
        raise NotAnImage(f"DICOM without pixel data ({_code(dataset, 'Modality') or 'unknown modality'})")
    _ensure_transfer_syntax(dataset)
    _check_decoder(dataset)
    reasons = dicom_reasons(_code(dataset, "Modality"), _code(dataset, "SOPClassUID", _UID))
    kept = {name: _text(dataset, name) for name in fields}
    place = slice_place(dataset) if frame_count == 1 else None
    return DicomImage(dataset, frame_count, View.of(dataset), kept, reasons, place)


def _check_decoder(dataset) -> None:
    """A compressed transfer syntax without an installed decoder: say which is missing."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    syntax = UID(dataset.file_meta.TransferSyntaxUID)
    try:
        available = get_decoder(syntax).is_available
    except Exception:  # not a transfer syntax pydicom knows
        available = False
    if not available:
        name = syntax.name if syntax.is_transfer_syntax else "an unknown transfer syntax"
        raise ImageError(f"DICOM pixel data not decodable: no decoder installed for {name}")


def decode_dicom_file(path: Path, config: PreprocessConfig, dicom_fields: tuple[str, ...] = ()) -> Decoded:
    """A DICOM file -> one item per frame ("#N" when there are several), decoded one by one
    while the file is open; an object without pixels is skipped (counted, no row)."""
    name = str(path)
    with open_regular(path) as handle:
        try:
            dicom = read_dicom(handle, dicom_fields)
        except NotAnImage as exc:
            return Decoded([], skipped=str(exc))
        items = []
        for frame in dicom.frames():
            label = name if dicom.frame_count == 1 else frame_name(name, frame.index)
            if frame.pixels is None:
                items.append(Item(label, None, frame.error, dicom.fields, place=dicom.place))
                continue
            rgb = np.repeat(frame.pixels[:, :, None], 3, axis=2)
            reasons = (*dicom.reasons, *frame.reasons, *image_reasons(rgb))
            items.append(Item(label, resize_chw(rgb, config), "", dicom.fields, reasons, dicom.place))
    return Decoded(items)


def dicom_image_from_bytes(data: bytes, channel_order: str = "RGB") -> np.ndarray:
    """A single-frame DICOM's image at full resolution, HxWx3 uint8 (for training)."""
    try:
        dicom = read_dicom(data)
    except NotAnImage as exc:
        raise ImageError(f"no image to train on ({exc})") from None
    if dicom.frame_count != 1:
        raise ImageError(f"{dicom.frame_count} frames: extract them as images to train on")
    frame = next(dicom.frames())
    if frame.pixels is None:
        raise ImageError(frame.error)
    return np.repeat(frame.pixels[:, :, None], 3, axis=2)  # grey: the same in either channel order

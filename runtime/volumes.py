"""NIfTI volumes (optional extra: `pip install 'brain-tumor-edge[volumes]'`, nibabel): axial slices as
radiologists see them, one row each (`path#z=K`).

Orientation: the volume is reoriented to the closest canonical orientation (RAS+: x to the
patient's right, y anterior, z superior), then each axial slice is shown in the
radiological convention: anterior at the top, the patient's right on the image's left,
K counting from the feet (z = 0) up. `extra/brats` was cut the same way
(tests/runtime/test_volumes.py compares them slice for slice).

Intensities: one rule per volume, `volume_window`: 0 maps to black and the 99.5th
percentile of the foreground to white (clipped), the foreground being the voxels above
the volume's mean (the head; in a skull-stripped volume, whose background is 0, this is
the brain without its darkest fluid). The training slices cut from BraTS volumes follow
the same rule.

Memory: a volume is read slab by slab along the axis it is stored in (three passes: the
mean, a histogram for the percentile, then the slices), so a 512 x 512 x 300 volume never
sits in memory whole when it is stored axially, as almost all are. A volume stored in
another plane is read whole in its stored type (a note says so in the docs).

Bounds, before anything is read: the header's declared sizes (`check_header`) must fit
the same pixel cap as an image per slice, a cap on the voxels of the (first) volume, and a
cap on header extensions, so a small file cannot declare its way to gigabytes. A `.nii.gz`
is inflated once, as a stream, into a temporary `.nii` of at most the declared bytes (its
first volume only), and read from there: gzip cannot seek, and reading slab by slab from
the compressed stream re-inflated it from the start for every slab (quadratic in size).
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
import weakref
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np

from .errors import ImageError, MissingExtraError, short_error
from .image_header import MAX_PIXELS
from .preprocess import PreprocessConfig, resize_chw
from .readers import import_nibabel
from .reasons import VOLUME_NOTE, image_reasons
from .results import Decoded, Item, SlicePlace, slice_name

# `.hdr` is a NIfTI (or Analyze) pair: the header, with its voxels in the `.img` beside it.
NIFTI_SUFFIXES = (".nii", ".nii.gz", ".hdr")
MAX_VOLUME_VOXELS = 4 * MAX_PIXELS  # the (first) volume: 512 x 512 x 976, say
HEADER_ALLOWANCE = 64 * 1024 * 1024  # header and extensions before the voxels (as DICOM's)
SLAB = 8  # axial slices read at once: a few copies of a slab stay under one batch of slices
PERCENTILE = 99.5
HISTOGRAM_BINS = 4096
FIRST_VOLUME_ONLY = VOLUME_NOTE.prefix + "a 4-D file; only its first volume was read"


def is_nifti(path: Path) -> bool:
    return path.name.lower().endswith(NIFTI_SUFFIXES)


@dataclass(frozen=True)
class VolumeInfo:
    slices: int
    window: tuple[float, float]  # the values shown as black and white
    reasons: tuple[str, ...]  # review notes for every slice (a 4-D file)
    stored_axially: bool


def _nibabel():
    try:
        nibabel = import_nibabel()
    except ImportError:
        raise MissingExtraError("reading NIfTI volumes", "volumes") from None
    return nibabel


@dataclass(frozen=True)
class Declared:
    """What a NIfTI header says the voxels take, read before nibabel or any inflating."""

    shape: tuple[int, ...]
    bytes_per_voxel: float
    data_offset: int  # where the voxels start (in the .img for a pair)

    @property
    def first_volume_bytes(self) -> int:
        return int(np.prod(self.shape[:3], dtype=np.int64) * self.bytes_per_voxel)


def check_header(head: bytes) -> Declared:
    """Parse a NIfTI-1, NIfTI-2 or Analyze header's sizes and refuse what is too big."""
    if len(head) < 348:
        raise ImageError("not a NIfTI file (header shorter than 348 bytes)")
    for order in "<>":
        size = struct.unpack_from(order + "i", head)[0]
        if size == 348:
            dims = struct.unpack_from(order + "8h", head, 40)
            bitpix = struct.unpack_from(order + "h", head, 72)[0]
            offset = struct.unpack_from(order + "f", head, 108)[0]
            break
        if size == 540 and len(head) >= 540:
            bitpix = struct.unpack_from(order + "h", head, 14)[0]
            dims = struct.unpack_from(order + "8q", head, 16)
            offset = struct.unpack_from(order + "q", head, 168)[0]
            break
    else:
        raise ImageError("not a NIfTI file (no NIfTI-1 or NIfTI-2 header size)")
    rank = dims[0]
    if not 1 <= rank <= 7 or any(d < 0 for d in dims[1 : rank + 1]) or not np.isfinite(offset):
        raise ImageError(f"not a readable NIfTI file (dimensions {list(dims[1 : max(rank, 0) + 1])})")
    shape = tuple(int(d) for d in dims[1 : rank + 1])
    spatial = sorted([*shape[:3], 1, 1][:3])
    if spatial[1] * spatial[2] > MAX_PIXELS:
        raise ImageError(
            f"a slice of {spatial[2]}x{spatial[1]} pixels declared: too large (limit {MAX_PIXELS:,} pixels)"
        )
    declared = Declared(shape, max(int(bitpix), 8) / 8, int(offset))
    if np.prod(shape[:3], dtype=np.int64) > MAX_VOLUME_VOXELS:
        raise ImageError(
            f"a volume of {'x'.join(map(str, shape[:3]))} voxels declared: too large "
            f"(limit {MAX_VOLUME_VOXELS:,} voxels)"
        )
    if declared.data_offset > HEADER_ALLOWANCE:
        raise ImageError(
            f"header extensions of {declared.data_offset:,} bytes declared: too large "
            f"(limit {HEADER_ALLOWANCE:,} bytes)"
        )
    return declared


def _head(path: Path) -> bytes:
    try:
        if path.name.lower().endswith(".gz"):
            with gzip.open(path) as stream:
                return stream.read(540)
        with open(path, "rb") as handle:
            return handle.read(540)
    except (OSError, EOFError, zlib.error) as exc:
        raise ImageError(f"not a readable NIfTI file ({type(exc).__name__})") from None


def _inflated(path: Path, declared: Declared) -> Path:
    """The `.nii.gz` as a temporary `.nii`: its header and first volume, inflated as a stream
    and never past the declared size (what follows, a later volume or a bomb's tail, is left)."""
    budget = declared.data_offset + declared.first_volume_bytes
    handle, name = tempfile.mkstemp(suffix=".nii", prefix="bt-volume-")
    try:
        with os.fdopen(handle, "wb") as out, gzip.open(path) as stream:
            while budget > 0:
                chunk = stream.read(min(budget, 1 << 20))
                if not chunk:
                    break
                out.write(chunk)
                budget -= len(chunk)
    except (OSError, EOFError, zlib.error) as exc:
        os.unlink(name)
        raise ImageError(f"not a readable NIfTI file ({type(exc).__name__}: a damaged gzip stream)") from None
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


class Volume:
    """One NIfTI file, reoriented; `slices()` yields (K, H x W uint8) from the feet up.

    `close()` (or `with`) removes the temporary file a `.nii.gz` is inflated into."""

    def __init__(self, path: Path) -> None:
        nibabel = _nibabel()
        path = Path(path)
        declared = check_header(_head(path))
        self._temporary: Path | None = None
        if path.name.lower().endswith(".hdr") and not path.with_suffix(".img").exists():
            raise ImageError(
                f"a NIfTI pair's header without its voxels: {path.with_suffix('.img').name} is missing"
            )
        if path.name.lower().endswith(".gz"):
            self._temporary = _inflated(path, declared)
            # Removed when the volume is, if nobody called close().
            weakref.finalize(self, Path.unlink, self._temporary, missing_ok=True)
        try:
            image = nibabel.load(str(self._temporary or path), keep_file_open=True)
        except Exception as exc:  # nibabel raises many types for a broken header
            self.close()
            raise ImageError(f"not a readable NIfTI file ({type(exc).__name__})") from None
        if len(image.shape) < 3 or min(image.shape[:3]) < 1:
            raise ImageError(f"not a 3-D volume (shape {image.shape})")
        self.reasons: tuple[str, ...] = ()
        if len(image.shape) > 3 and int(np.prod(image.shape[3:])) > 1:
            self.reasons = (FIRST_VOLUME_ONLY,)
        # Which stored axis becomes each canonical axis, and whether it is flipped.
        orientation = nibabel.orientations.io_orientation(image.affine)
        self._proxy = image.dataobj
        self._fourth = len(image.shape) > 3
        # orientation[i] = (canonical axis of stored axis i, direction); inverted here.
        self._stored_of = [0, 0, 0]
        self._flip_of = [False, False, False]
        for stored, (canonical, direction) in enumerate(orientation):
            self._stored_of[int(canonical)] = stored
            self._flip_of[int(canonical)] = bool(direction < 0)
        self.shape = tuple(int(image.shape[self._stored_of[axis]]) for axis in range(3))
        zooms = image.header.get_zooms()
        # Voxel size in mm along canonical x, y, z (1.0 where the header gives none).
        self.spacing = tuple(float(zooms[self._stored_of[axis]] or 1.0) for axis in range(3))
        self.stored_axially = self._stored_of[2] == 2
        self._whole: np.ndarray | None = None

    def close(self) -> None:
        self._proxy = None
        self._whole = None
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)
            self._temporary = None

    def __enter__(self) -> Volume:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stored_slab(self, start: int, stop: int) -> np.ndarray:
        """Canonical axial slices start..stop-1 as a canonical x, y, z float32 array."""
        depth = self.shape[2]
        if self._flip_of[2]:  # canonical z runs against the stored axis
            first, last = depth - stop, depth - start
        else:
            first, last = start, stop
        if self.stored_axially:
            index: list = [slice(None), slice(None), slice(first, last)]
            if self._fourth:
                index.append(0)
            data = np.asarray(self._proxy[tuple(index)])
            data = data.reshape(data.shape[:3])
        else:
            if self._whole is None:  # stored in another plane: read it once, in its own type
                index = [slice(None)] * 3 + ([0] if self._fourth else [])
                self._whole = np.asarray(self._proxy[tuple(index)])
                self._whole = self._whole.reshape(self._whole.shape[:3])
            taker: list = [slice(None)] * 3
            taker[self._stored_of[2]] = slice(first, last)
            data = self._whole[tuple(taker)]
        # Stored axes -> canonical order, then flips.
        data = np.transpose(data, [self._stored_of[axis] for axis in range(3)])
        for axis in range(3):
            if self._flip_of[axis]:
                data = np.flip(data, axis)
        return np.nan_to_num(data.astype(np.float32), copy=False, nan=0.0, posinf=0.0, neginf=0.0)

    def _slabs(self) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.shape[2], SLAB):
            yield start, self._stored_slab(start, min(start + SLAB, self.shape[2]))

    def info(self) -> VolumeInfo:
        return VolumeInfo(self.shape[2], volume_window(self._slabs), self.reasons, self.stored_axially)

    def slices(self, window: tuple[float, float]) -> Iterator[tuple[int, np.ndarray]]:
        for start, slab in self._slabs():
            for offset in range(slab.shape[2]):
                yield start + offset, to_display(radiological(slab[:, :, offset]), window)


def radiological(axial: np.ndarray) -> np.ndarray:
    """A canonical (x, y) axial slice -> rows anterior to posterior, columns patient's right
    to left (the radiological view)."""
    return axial[::-1, ::-1].T


def volume_window(slabs) -> tuple[float, float]:
    """(0, the 99.5th percentile of the voxels above the volume's mean), from slabs read in
    two passes (`slabs` is a callable giving a fresh iterator of (start, slab))."""
    total, count, peak = 0.0, 0, -np.inf
    for _, slab in slabs():
        total += float(slab.sum(dtype=np.float64))
        count += slab.size
        peak = max(peak, float(slab.max()))
    mean = total / max(count, 1)
    if not np.isfinite(peak) or peak <= max(mean, 0.0):
        return 0.0, max(peak, 1.0)
    low = max(mean, 0.0)
    histogram = np.zeros(HISTOGRAM_BINS, np.int64)
    for _, slab in slabs():
        foreground = slab[slab > low]
        histogram += np.histogram(foreground, HISTOGRAM_BINS, (low, peak))[0]
    cumulative = np.cumsum(histogram)
    if cumulative[-1] == 0:
        return 0.0, peak
    bin_index = int(np.searchsorted(cumulative, cumulative[-1] * PERCENTILE / 100.0))
    high = low + (bin_index + 1) * (peak - low) / HISTOGRAM_BINS
    return 0.0, max(high, 1e-6)


def to_display(values: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """The one windowing rule: window[0] -> 0, window[1] -> 255, clipped, rounded."""
    low, high = window
    scaled = (values - low) * (255.0 / max(high - low, 1e-12))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def decode_volume_file(path: Path, config: PreprocessConfig, dicom_fields: tuple[str, ...] = ()) -> Decoded:
    """A NIfTI volume -> one item per axial slice ("#z=K"), read slab by slab as they are
    consumed. The header and the window are read here (the first slice is taken now), so
    a file that is no volume fails inside the caller's error boundary."""
    items = _slice_items(path, config)
    first = next(items)
    return Decoded(chain([first], items))


def _slice_items(path: Path, config: PreprocessConfig) -> Iterator[Item]:
    """A failure part-way through becomes one error row naming the slice it stopped at."""
    name = str(path)
    with Volume(path) as volume:
        info = volume.info()
        done = -1
        try:
            for index, grey in volume.slices(info.window):
                rgb = np.repeat(grey[:, :, None], 3, axis=2)
                done = index
                reasons = info.reasons + tuple(image_reasons(rgb))
                place = SlicePlace(name, "axial", float(index), slices=info.slices)
                yield Item(slice_name(name, index), resize_chw(rgb, config), reasons=reasons, place=place)
        except Exception as exc:  # a truncated or corrupt volume: the rows so far stand
            message = f"volume read failed at slice {done + 1} ({short_error(exc)})"
            yield Item(slice_name(name, done + 1), None, message)

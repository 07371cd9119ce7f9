"""NIfTI volumes (optional extra: `pip install '.[volumes]'`, nibabel): axial slices as
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
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ImageError, MissingExtraError
from .reasons import VOLUME_NOTE

NIFTI_SUFFIXES = (".nii", ".nii.gz")
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
        import nibabel
    except ImportError:
        raise MissingExtraError("reading NIfTI volumes", "volumes") from None
    return nibabel


class Volume:
    """One NIfTI file, reoriented; `slices()` yields (K, H x W uint8) from the feet up."""

    def __init__(self, path: Path) -> None:
        nibabel = _nibabel()
        try:
            image = nibabel.load(str(path))
        except Exception as exc:  # nibabel raises many types for a broken header
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

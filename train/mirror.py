"""Tumour-free slices at tumour levels: the healthy half of a slice mirrored over the midline.

In a manifest of registered volumes (BraTS: skull-stripped, one atlas, midline at a known
column) tumour-free slices lie at the top and bottom of the brain, so the brain's
cross-section alone tells the labels apart, and a network can learn "small = healthy".
A slice whose tumour lies wholly in one half gives a tumour-free slice at the same level
by reflecting its other half over the midline; every sequence of that slice gives one.
The mask decides the side (the sequence's image never does), and a margin keeps a tumour
that touches the midline out.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .mix import Entry, Mix, MixError, group_key, read_manifest

MARGIN = 3  # pixels of tumour-free band either side of the midline


def tumour_side(mask: np.ndarray, midline: float, margin: int = MARGIN) -> str | None:
    """ "left" or "right" (image columns) when every tumour pixel lies in that half, else None."""
    columns = np.flatnonzero(mask.reshape(mask.shape[0], -1).max(axis=0) > 0)
    if len(columns) == 0:
        return None
    if columns.max() < midline - margin:
        return "left"
    if columns.min() > midline + margin:
        return "right"
    return None


def mirror_healthy_half(image: np.ndarray, side: str, midline: float) -> np.ndarray:
    """The image with its `side` half replaced by the other half reflected over `midline`."""
    width = image.shape[1]
    out = image.copy()
    columns = np.arange(width)
    source = np.clip(np.rint(2 * midline - columns).astype(int), 0, width - 1)
    replaced = columns < midline if side == "left" else columns > midline
    out[:, replaced] = image[:, source[replaced]]
    return out


def mask_path(masks: Path, image_path: str) -> Path:
    """PATIENT/NNN_SEQ.jpg -> masks/PATIENT/NNN.png (one mask for every sequence of a slice)."""
    relative = Path(image_path)
    return masks / relative.parent / f"{relative.name.split('_')[0]}.png"


def mirror_entries(mix: Mix, source_index: int) -> list[Entry]:
    """A mirrored entry for every tumour row of the manifest whose mask lies in one half."""
    source = mix.sources[source_index]
    assert source.manifest is not None and source.mirror_masks is not None
    base = source.manifest.parent
    sides: dict[Path, str | None] = {}
    entries = []
    for row in read_manifest(source.manifest):
        if source.mapped(row[source.label_column]) in (mix.negative_class, "skip"):
            continue
        mask_file = mask_path(source.mirror_masks, row["path"])
        if mask_file not in sides:
            mask = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise MixError(f"source {source.name!r}: mask not readable: {mask_file}")
            sides[mask_file] = tumour_side(mask, source.midline)
        if sides[mask_file] is None:
            continue
        entries.append(
            Entry(
                base / row["path"],
                mix.negative_class,
                source_index,
                row[source.sequence_column] if source.sequence_column else source.sequence,
                group_key(source, row),
                mirror_mask=mask_file,
            )
        )
    return entries


def build_mirrored(image: np.ndarray, mask_file: Path, midline: float) -> np.ndarray:
    """Decode-time step for a mirrored entry (the mask is at the image's own resolution)."""
    mask = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE)
    if mask is None or mask.shape[:2] != image.shape[:2]:
        raise MixError(f"mask {mask_file} is missing or not the image's size")
    side = tumour_side(mask, midline)
    if side is None:
        raise MixError(f"mask {mask_file} does not lie in one half")
    return mirror_healthy_half(image, side, midline)

"""Mirrored tumour-free slices (train/mirror.py)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from brain_tumor_edge.runtime.preprocess import PreprocessConfig
from brain_tumor_edge.train.data import files_from_mix, load_images
from brain_tumor_edge.train.mirror import mirror_healthy_half, tumour_side
from brain_tumor_edge.train.mix import Mix


def test_the_tumour_half_is_replaced_by_the_healthy_half_reflected():
    image = np.tile(np.arange(10, dtype=np.uint8), (4, 1))[..., None].repeat(3, 2)
    out = mirror_healthy_half(image, "left", midline=5)
    assert out[0, :, 0].tolist() == [9, 9, 8, 7, 6, 5, 6, 7, 8, 9]  # column 0 clips to the edge
    assert np.array_equal(out[:, 5:], image[:, 5:])  # the healthy half is untouched
    right = mirror_healthy_half(image, "right", midline=5)
    assert right[0, :, 0].tolist() == [0, 1, 2, 3, 4, 5, 4, 3, 2, 1]


def test_only_a_tumour_wholly_in_one_half_counts():
    mask = np.zeros((20, 40), np.uint8)
    mask[5:8, 2:10] = 255
    assert tumour_side(mask, midline=20) == "left"
    mask[5:8, 18:22] = 255  # now it touches the midline band
    assert tumour_side(mask, midline=20) is None
    assert tumour_side(np.zeros((4, 4), np.uint8), midline=2) is None
    mask = np.zeros((20, 40), np.uint8)
    mask[:, 30:] = 255
    assert tumour_side(mask, midline=20) == "right"


def test_a_mirror_source_builds_negatives_in_every_sequence_with_the_patient_group(tmp_path: Path):
    rows = []
    masks = tmp_path / "masks" / "p1"
    masks.mkdir(parents=True)
    for slice_index, tumour_columns in ((1, slice(5, 15)), (2, slice(28, 36))):
        mask = np.zeros((48, 48), np.uint8)
        mask[10:20, tumour_columns] = 255
        cv2.imwrite(str(masks / f"{slice_index:03d}.png"), mask)
        for sequence in ("flair", "t1"):
            image = np.full((48, 48), 40, np.uint8)
            image[10:20, tumour_columns] = 250  # the bright lesion
            path = tmp_path / "vol" / "p1" / f"{slice_index:03d}_{sequence}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), image)
            rows.append({"path": f"p1/{slice_index:03d}_{sequence}.png", "label": "glioma",
                         "sequence": sequence, "patient": "p1"})  # fmt: skip
    rows.append({"path": "p1/001_flair.png", "label": "notumor", "sequence": "flair", "patient": "p1"})
    with open(tmp_path / "vol" / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    mix = Mix.from_dict(
        {
            "classes": ["glioma", "notumor"],
            "source": [
                {"name": "vol", "manifest": "vol/manifest.csv", "group_column": "patient",
                 "sequence_column": "sequence"},
                {"name": "mirrored", "manifest": "vol/manifest.csv", "mirror_masks": "masks", "midline": 24,
                 "group_column": "patient", "sequence_column": "sequence"},
            ],
        },
        base=tmp_path,
    )  # fmt: skip
    files = files_from_mix(mix)
    mirrored = np.flatnonzero(files.provenance.sources == 1)
    assert len(mirrored) == 4  # two one-sided slices x two sequences; the notumor row is not a source
    assert set(files.labels[mirrored]) == {1}
    assert {files.provenance.sequences[i] for i in mirrored} == {"flair", "t1"}
    assert len({files.provenance.groups[i] for i in range(len(files.paths))}) == 1  # one patient
    images, skipped = load_images(files, PreprocessConfig(size=48), threads=1, show_progress=False)
    assert not skipped
    for index in mirrored:
        assert images.images[index].max() == 40, "the lesion is gone from the mirrored slice"
    assert images.hashes[mirrored[0]] != images.hashes[0]  # not the source file's byte twin

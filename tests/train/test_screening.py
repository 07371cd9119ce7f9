"""Screening figures: each row's outcome, and per-sequence figures on a slice collection."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from brain_tumor_edge import load_model
from brain_tumor_edge.runtime.results import ImageResult
from brain_tumor_edge.train.screening import outcome, screen_folder, screen_slices
from tests.conftest import sample_files

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def _result(top: str, *reasons: str, error: str = "") -> ImageResult:
    probabilities = np.full(4, 0.1)
    probabilities[CLASSES.index(top)] = 0.7
    return ImageResult(
        "x.jpg", None if error else probabilities, error=error, reasons=reasons, class_names=CLASSES
    )


@pytest.mark.parametrize(
    ("result", "positive", "expected"),
    [
        (_result("notumor"), True, "missed"),
        (_result("notumor", "tumour not ruled out (notumor 0.700 < 0.900)"), True, "flagged"),
        (_result("glioma"), True, "detected"),
        # A doubt about the type is not a doubt about the tumour.
        (_result("glioma", "low confidence (0.45 < 0.50)"), True, "detected"),
        (
            _result("glioma", "out of scope: unlike the training images (score 30.0, limit 20.0)"),
            True,
            "flagged",
        ),
        (_result("glioma", error="not a decodable image"), True, "failed"),
        (_result("notumor"), False, "cleared"),
        (_result("pituitary"), False, "false_alarm"),
        (_result("pituitary", "low confidence (0.45 < 0.50)"), False, "flagged"),
        (_result("notumor", "tumour not ruled out (notumor 0.700 < 0.900)"), False, "flagged"),
    ],
)
def test_each_row_has_one_outcome(result, positive, expected):
    assert outcome(result, "notumor", positive) == expected


def test_slice_collection_figures_per_sequence(tmp_path: Path):
    """A made-up collection: two 'sequences', tumour slices (>= 300 px) and tumour-free ones
    (0 px); slices with a few tumour pixels count as neither."""
    model = load_model()
    folder = tmp_path / "collection"
    rows = []
    for index, source in enumerate(sample_files()):
        sequence = "a" if index % 2 else "b"
        pixels = {"notumor": 0}.get(source.parent.name, 500 if index % 3 else 40)
        relative = f"P{index}/{index:03d}_{sequence}.jpg"
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, folder / relative)
        rows.append({"path": relative, "patient": f"P{index}", "slice": index, "sequence": sequence,
                     "tumour_pixels": pixels})  # fmt: skip
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    figures, results = screen_slices(model, folder)
    assert set(figures["sequences"]) == {"a", "b"} and len(results) == len(rows)
    for sequence, part in figures["sequences"].items():
        mine = [r for r in rows if r["sequence"] == sequence]
        tumour = [r for r in mine if r["tumour_pixels"] >= 300]
        healthy = [r for r in mine if r["tumour_pixels"] == 0]
        assert part["tumour_slices"]["images"] == len(tumour)
        assert part["tumour_free_slices"]["images"] == len(healthy)
        expected = sum(outcome(results[r["path"]], "notumor", True) == "missed" for r in tumour)
        assert part["tumour_slices"]["missed"] == expected
        counted = part["tumour_slices"]
        assert counted["missed"] + counted["detected"] + counted["flagged"] + counted["failed"] == len(tumour)


def test_a_tumour_positive_folder_counts_every_image_once(samples: Path):
    report = screen_folder(load_model(), samples / "glioma", positive=True)
    assert report["images"] == len(list((samples / "glioma").glob("*.jpg")))
    assert report["missed"] + report["detected"] + report["flagged"] + report["failed"] == report["images"]
    assert report["missed_rate"] == pytest.approx(report["missed"] / report["images"], abs=1e-4)

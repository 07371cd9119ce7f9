import csv

import numpy as np
import pytest

from runtime.classify import ImageResult
from runtime.report import CsvReport, csv_columns, partial_path, spreadsheet_safe

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def test_formula_cells_are_neutralised():
    for text in ["=HYPERLINK(1)", "+1", "-2", "@SUM(A1)"]:
        assert spreadsheet_safe(text) == "'" + text
    assert spreadsheet_safe("scan 1.jpg") == "scan 1.jpg"


def test_rows_follow_the_schema(tmp_path):
    target = tmp_path / "out.csv"
    with CsvReport(target, CLASSES) as report:
        report.write(ImageResult("=evil.jpg", np.array([0.1, 0.7, 0.1, 0.1], np.float32)))
        report.write(ImageResult("bad.jpg", None, "empty file"))
    rows = list(csv.reader(target.open(encoding="utf-8")))
    assert rows[0] == csv_columns(CLASSES)
    assert rows[1][:3] == ["'=evil.jpg", "meningioma", "0.700000"]
    assert rows[2] == ["bad.jpg", "", "", "", "", "", "", "empty file"]
    assert not partial_path(target).exists()


def test_rows_below_the_minimum_confidence_are_marked_for_review(tmp_path):
    target = tmp_path / "out.csv"
    with CsvReport(target, CLASSES, min_confidence=0.7) as report:
        report.write(ImageResult("sure.jpg", np.array([0.05, 0.8, 0.1, 0.05], np.float32)))
        report.write(ImageResult("unsure.jpg", np.array([0.3, 0.6, 0.05, 0.05], np.float32)))
        report.write(ImageResult("bad.jpg", None, "empty file"))
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert list(rows[0]) == csv_columns(CLASSES, review=True)
    assert [(row["needs_review"], row["prediction"]) for row in rows] == [
        ("", "meningioma"),
        ("yes", "meningioma"),
        ("", ""),
    ]


def test_an_interrupted_report_leaves_no_target_but_keeps_the_rows(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt), CsvReport(target, CLASSES) as report:
        report.write(ImageResult("a.jpg", np.array([1, 0, 0, 0], np.float32)))
        raise KeyboardInterrupt
    assert not target.exists()
    assert "a.jpg" in partial_path(target).read_text(encoding="utf-8")

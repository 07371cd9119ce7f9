import csv
from pathlib import Path

import numpy as np
import pytest

from brain_tumor_edge.runtime.csv_report import CsvReport, csv_columns, partial_path, spreadsheet_safe
from brain_tumor_edge.runtime.results import ImageResult

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def result(name: str, probabilities=None, error: str = "", reasons: tuple[str, ...] = ()) -> ImageResult:
    array = None if probabilities is None else np.asarray(probabilities, np.float32)
    return ImageResult(name, array, error, reasons=reasons, class_names=CLASSES)


def test_formula_cells_are_neutralised():
    # Every leading character a spreadsheet reads as a formula (OWASP's list, all six).
    for text in ["=HYPERLINK(1)", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]:
        assert spreadsheet_safe(text) == "'" + text, repr(text)
    # A plain number is no formula: "-12.5" (a SliceLocation) stays a number.
    for number in ["-12.5", "+3", "-0", "0.25", "-1e-3"]:
        assert spreadsheet_safe(number) == number
    assert spreadsheet_safe("scan 1.jpg") == "scan 1.jpg"


def test_rows_follow_the_schema(tmp_path):
    target = tmp_path / "out.csv"
    with CsvReport(target, CLASSES) as report:
        report.write(result("=evil.jpg", [0.1, 0.7, 0.1, 0.1]))
        report.write(result("bad.jpg", error="empty file"))
    rows = list(csv.reader(target.open(encoding="utf-8")))
    assert rows[0] == csv_columns(CLASSES)
    assert rows[1][:3] == ["'=evil.jpg", "meningioma", "0.700000"]
    assert rows[2] == ["bad.jpg", "", "", "", "", "", "", "", "empty file"]
    assert not partial_path(target).exists()


def test_review_reasons_and_out_of_scope_rows(tmp_path):
    target = tmp_path / "out.csv"
    low = "low confidence (0.60 < 0.70)"
    away = "out of scope: not an MR image (Modality CT)"
    not_ruled_out = "tumour not ruled out (notumor 0.900 < 0.990)"
    with CsvReport(target, CLASSES) as report:
        report.write(result("sure.jpg", [0.05, 0.8, 0.1, 0.05]))
        report.write(result("unsure.jpg", [0.3, 0.6, 0.05, 0.05], reasons=(low,)))
        report.write(result("healthy?.jpg", [0.05, 0.03, 0.9, 0.02], reasons=(not_ruled_out,)))
        report.write(result("ct.dcm", [0.9, 0.05, 0.03, 0.02], reasons=(away,)))
        report.write(result("bad.jpg", error="empty file"))
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert list(rows[0]) == csv_columns(CLASSES)
    assert [(row["review"], row["prediction"]) for row in rows] == [
        ("", "meningioma"),
        (low, "meningioma"),  # low confidence still carries its prediction
        (not_ruled_out, "notumor"),  # and so does an unsure "no tumour"
        (away, ""),  # out of scope: no class, and no class evidence in the class columns
        ("", ""),
    ]
    assert rows[3]["confidence"] == "" and rows[3]["p_glioma"] == ""
    assert (report.flagged, report.out_of_scope, report.failed, report.rows) == (3, 1, 1, 5)
    assert (report.kinds["low_confidence"], report.kinds["not_ruled_out"]) == (1, 1)
    assert report.predicted == {"meningioma": 2, "notumor": 1}


def test_resumed_counts_include_the_kept_rows(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt), CsvReport(target, CLASSES) as report:
        report.write(result("a.jpg", [0.9, 0.05, 0.03, 0.02]))
        report.write(result("ct.dcm", [0.9, 0.05, 0.03, 0.02], reasons=("out of scope: x",)))
        raise KeyboardInterrupt
    with CsvReport(target, CLASSES, resume=True) as report:
        assert (report.kept, report.rows, report.out_of_scope) == (2, 2, 1)
        report.write(result("b.jpg", [0.9, 0.05, 0.03, 0.02]))
    assert report.predicted == {"glioma": 2} and report.rows == 3


def test_an_interrupted_report_leaves_no_target_but_keeps_the_rows(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(KeyboardInterrupt), CsvReport(target, CLASSES) as report:
        report.write(result("a.jpg", [1, 0, 0, 0]))
        raise KeyboardInterrupt
    assert not target.exists()
    assert "a.jpg" in partial_path(target).read_text(encoding="utf-8")


def _resume_after(folder: Path, out: Path, kept: int) -> tuple[bytes, str]:
    """Classify `folder` into `out`; then leave what an interrupted run leaves (the header and
    `kept` finished rows, as the run writes them), resume, and return the complete CSV's bytes
    and the resumed run's output."""
    from typer.testing import CliRunner

    from brain_tumor_edge.runtime.cli import app
    from brain_tumor_edge.runtime.csv_report import RowWriter

    assert CliRunner().invoke(app, [str(folder), "--csv", str(out)]).exit_code == 0
    complete = out.read_bytes()
    with out.open(encoding="utf-8", newline="") as handle:
        records = list(csv.reader(handle))
    with open(str(out) + ".partial", "w", encoding="utf-8", newline="") as handle:
        writer = RowWriter(handle)
        for record in records[: 1 + kept]:
            writer.writerow(record)
    out.unlink()
    result = CliRunner().invoke(app, [str(folder), "--csv", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    return complete, result.output


def test_names_with_line_breaks_are_quoted_and_round_trip_through_resume(tmp_path: Path):
    """A file name holding "\r" or "\n" (legal on Linux shares) is one quoted cell, the CSV
    parses back to one record per file, and a resume keeps such rows without redoing them."""
    import shutil

    from tests.conftest import sample_files

    folder = tmp_path / "in"
    folder.mkdir()
    names = ["a\rb.jpg", "c\nd.jpg", "e\r\nf.jpg", "plain.jpg"]
    for index, name in enumerate(names):
        shutil.copy(sample_files()[index], folder / name)
    out = tmp_path / "out.csv"
    complete, output = _resume_after(folder, out, kept=2)
    records = list(csv.reader(complete.decode("utf-8").splitlines(keepends=True)))
    assert len(records) == 1 + len(names)
    assert sorted(Path(record[0]).name for record in records[1:]) == sorted(names)
    assert "plus 2 kept" in output and out.read_bytes() == complete


def test_a_name_that_is_not_utf8_is_escaped_and_resume_goes_past_it(tmp_path: Path):
    """A Latin-1 byte in a file name (old Windows shares, ZIPs): the run writes a UTF-8 CSV
    with the byte escaped, and a resume keeps that row instead of crashing or redoing it."""
    import os
    import shutil

    from tests.conftest import sample_files

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(sample_files()[0], folder / os.fsdecode(b"caf\xe9.jpg"))  # not UTF-8: a surrogate
    shutil.copy(sample_files()[1], folder / "zeta.jpg")
    out = tmp_path / "out.csv"
    complete, output = _resume_after(folder, out, kept=1)
    text = complete.decode("utf-8")  # valid UTF-8 throughout
    assert str(folder / "caf\\udce9.jpg") in text  # the documented escape
    assert "plus 1 kept" in output and out.read_bytes() == complete

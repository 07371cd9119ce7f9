"""Outputs own only what they create: every output path is checked against the others and
against the inputs before any work, and nothing the user did not give is deleted or replaced."""

import shutil
from pathlib import Path

from typer.testing import CliRunner

from brain_tumor_edge.runtime.cli import app
from brain_tumor_edge.runtime.lock import FileLock, lock_path
from tests.conftest import sample_files
from tests.runtime.test_run import folder_of, page_rows, rows_of

runner = CliRunner()


def refused(*args: str, message: str) -> None:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_a_report_folder_holding_the_users_files_is_refused_and_left_alone(tmp_path: Path):
    folder = folder_of(tmp_path / "scans", 2)
    report = tmp_path / "holiday"
    (report / "thumbs").mkdir(parents=True)
    shutil.copy(sample_files()[0], report / "thumbs" / "holiday.jpg")
    shutil.copy(sample_files()[1], report / "xray.jpg")
    before = {p: p.read_bytes() for p in report.rglob("*") if p.is_file()}
    for extra in ([], ["--overwrite"]):
        refused(str(folder), "--csv", str(tmp_path / "o.csv"), "--report", str(report), *extra,
                message="holds files bt-classify did not write")  # fmt: skip
    assert {p: p.read_bytes() for p in report.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "o.csv").exists()


def test_the_input_folder_or_a_folder_of_scans_inside_it_is_never_the_report_folder(tmp_path: Path):
    folder = folder_of(tmp_path / "scans", 4)
    (folder / "thumbs").mkdir()
    shutil.copy(sample_files()[0], folder / "thumbs" / "scan.jpg")
    out = tmp_path / "o.csv"
    refused(str(folder), "--csv", str(out), "--report", str(folder), message="is the input folder")
    refused(str(folder), "--csv", str(out), "--report", str(folder / "a"), message="did not write (1.jpg")
    assert (folder / "thumbs" / "scan.jpg").is_file()
    result = runner.invoke(app, [str(folder), "--csv", str(out)])
    assert result.exit_code == 0 and len(rows_of(out)) == 5  # every scan a row, thumbs/ too


def test_two_outputs_that_are_one_file_are_refused_before_anything_is_written(tmp_path: Path):
    folder = folder_of(tmp_path / "scans", 4)
    out = tmp_path / "o.csv"
    assert runner.invoke(app, [str(folder), "--csv", str(out)]).exit_code == 0
    kept = out.read_bytes()
    record = Path(str(out) + ".run.json").read_bytes()
    refused(str(folder), "--csv", str(out), "--series-csv", str(out), "--overwrite",
            message="--series-csv and --csv are the same file")  # fmt: skip
    refused(str(folder), "--csv", str(out), "--series-csv", str(out), "--report", str(tmp_path / "r"),
            "--overwrite", message="are the same file")  # fmt: skip
    refused(str(folder), "--csv", str(out), "--series-csv", str(out) + ".run.json", "--overwrite",
            message="--series-csv and --csv's run record are the same file")  # fmt: skip
    assert out.read_bytes() == kept and Path(str(out) + ".run.json").read_bytes() == record
    assert not (tmp_path / "r").exists()


def test_the_csv_inside_the_report_folder_is_refused(tmp_path: Path):
    folder = folder_of(tmp_path / "scans", 2)
    report = tmp_path / "report"
    report.mkdir()
    refused(str(folder), "--csv", str(report / "index.html"), "--report", str(report),
            message="--csv (")  # fmt: skip
    refused(str(folder), "--csv", str(tmp_path / "o.csv"), "--report", str(report),
            "--series-csv", str(report / "s.csv"), message="lies inside the --report folder")  # fmt: skip
    assert list(report.iterdir()) == []


def test_a_series_csv_another_run_is_writing_is_refused(tmp_path: Path):
    folder = folder_of(tmp_path / "scans", 2)
    series = tmp_path / "series.csv"
    with FileLock(lock_path(series)).acquire():
        refused(str(folder), "--csv", str(tmp_path / "o.csv"), "--series-csv", str(series),
                message=f"another bt-classify is writing {series}")  # fmt: skip
    assert not series.exists()


def test_a_new_run_into_its_own_page_folder_replaces_only_its_thumbnails(tmp_path: Path):
    folder = folder_of(tmp_path / "scans", 4)
    report = tmp_path / "report"
    out = tmp_path / "o.csv"
    assert runner.invoke(app, [str(folder), "--csv", str(out), "--report", str(report)]).exit_code == 0
    assert len(list((report / "thumbs").iterdir())) == 8
    folder_of(tmp_path / "fewer", 1)
    again = [str(tmp_path / "fewer"), "--csv", str(out), "--report", str(report), "--overwrite"]
    result = runner.invoke(app, again)
    assert result.exit_code == 0, result.output
    assert len(list((report / "thumbs").iterdir())) == 2 and len(page_rows(report)) == 1


def test_the_cli_the_page_and_the_run_record_give_the_same_counts(tmp_path: Path):
    """Files seen, rows, classified, out of scope, failed, and every kind of file passed over:
    one set of counts, the same in the summary, the page and the run record. (The summary said
    "classified 8 images" for 1 classified and 5 failed; the page said "skipped: none".)"""
    import json
    import os

    import cv2
    import numpy as np
    import pydicom

    from tests.runtime.dicom_files import dataset

    folder = folder_of(tmp_path / "scans", 2)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    cv2.imwrite(str(folder / "blank.png"), np.zeros((100, 100), np.uint8))  # out of scope
    (folder / "notes.txt").write_text("x")
    (folder / "._clutter.jpg").write_bytes(b"x")
    os.mkfifo(folder / "pipe.jpg")
    report_object = dataset(np.zeros((8, 8), np.uint8), Modality="SR")
    for name in ("PixelData", "Rows", "Columns"):
        delattr(report_object, name)
    report_object.save_as(folder / "report.dcm", enforce_file_format=True)
    assert pydicom.dcmread(folder / "report.dcm").Modality == "SR"
    out, page = tmp_path / "o.csv", tmp_path / "page"
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--report", str(page)])
    assert result.exit_code == 1, result.output
    record = json.loads(Path(str(out) + ".run.json").read_text(encoding="utf-8"))["counts"]
    figures = ("files", "rows", "classified", "out_of_scope", "failed")
    assert [record[name] for name in figures] == [4, 4, 2, 1, 1]
    assert record["passed_over"] == {
        "non-image files": 1,
        "pipes, sockets or devices": 1,
        "entries excluded (--exclude)": 1,
        "skipped: DICOM without pixel data (SR)": 1,
    }
    assert (
        "4 rows from 4 files in" in result.output
        and ": 2 classified, 1 out of scope, 1 failed" in result.output
    )
    assert (
        "1 non-image file skipped" in result.output
        and "1 skipped: DICOM without pixel data (SR)" in result.output
    )
    assert "1 pipe, socket or device skipped" in result.output and "1 entry excluded" in result.output
    text = (page / "index.html").read_text(encoding="utf-8")
    data = json.loads(
        text.partition('<script id="data" type="application/json">')[2].partition("</script>")[0]
    )
    assert data["summary"]["skipped"] == record["passed_over"]
    assert (data["summary"]["rows"], data["summary"]["failed"], data["summary"]["out_of_scope"]) == (4, 1, 1)
    assert len(rows_of(out)) == record["rows"]

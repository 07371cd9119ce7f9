"""A run that knows itself: its record, resume and retry, its outputs checked and never walked."""

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brain_tumor_edge.runtime import files, reading
from brain_tumor_edge.runtime.cli import app
from tests.conftest import as_nobody, sample_files

runner = CliRunner()


def rows_of(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def page_rows(report: Path) -> list[dict]:
    text = (report / "index.html").read_text(encoding="utf-8")
    data = text.partition('<script id="data" type="application/json">')[2].partition("</script>")[0]
    return json.loads(data)["rows"]


def folder_of(root: Path, count: int = 6) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for index, source in enumerate(sample_files()[:count]):
        sub = root / ("a" if index % 2 else "b")
        sub.mkdir(exist_ok=True)
        shutil.copy(source, sub / f"{index}.jpg")
    return root


def interrupt(out: Path, keep_rows: int) -> None:
    """What a killed run leaves: the partial CSV with its first rows, the record, no CSV."""
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    Path(str(out) + ".partial").write_text("".join(lines[: 1 + keep_rows]), encoding="utf-8")
    out.unlink()


def test_resume_with_the_folder_spelled_another_way_continues_the_same_rows(tmp_path: Path, monkeypatch):
    folder = folder_of(tmp_path / "scans")
    out = tmp_path / "o.csv"
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["scans", "--csv", str(out)]).exit_code == 0
    whole = out.read_bytes()
    interrupt(out, 3)
    result = runner.invoke(app, [str(folder.resolve()) + "/", "--csv", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert "plus 3 kept" in result.output
    assert out.read_bytes() == whole  # no row twice, every path spelled as the run spelled it


def test_resume_from_another_working_folder_adds_no_row_twice(tmp_path: Path, monkeypatch):
    """The run said `scans` from one folder; the resume says `.` from inside it: the same
    folder, so it goes on, and every file is in the CSV once."""
    folder = folder_of(tmp_path / "scans")
    out = tmp_path / "o.csv"
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["scans", "--csv", str(out)]).exit_code == 0
    interrupt(out, 3)
    monkeypatch.chdir(folder)
    result = runner.invoke(app, [".", "--csv", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    named = [(folder / row["path"].removeprefix("scans/")).resolve() for row in rows_of(out)]
    assert len(named) == len(set(named)) == 6


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["--min-confidence", "0.9"], "min_confidence"),
        (["--exclude", "*.png"], "exclude"),
        (["--no-recursive"], "recursive"),
    ],
)
def test_resume_refuses_a_different_run_and_says_what_differs(tmp_path: Path, change, named):
    folder = folder_of(tmp_path / "scans")
    out = tmp_path / "o.csv"
    assert runner.invoke(app, [str(folder), "--csv", str(out)]).exit_code == 0
    interrupt(out, 2)
    partial = Path(str(out) + ".partial").read_bytes()
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--resume", *change])
    assert result.exit_code == 2 and "not the same run" in result.output and named in result.output
    assert Path(str(out) + ".partial").read_bytes() == partial  # nothing lost or mixed in


def test_resume_refuses_another_folder_and_another_model(tmp_path: Path):
    folder, other = folder_of(tmp_path / "scans"), folder_of(tmp_path / "other", 2)
    out = tmp_path / "o.csv"
    assert runner.invoke(app, [str(folder), "--csv", str(out)]).exit_code == 0
    interrupt(out, 2)
    result = runner.invoke(app, [str(other), "--csv", str(out), "--resume"])
    assert result.exit_code == 2 and f"folder {other.resolve()}" in result.output
    model = tmp_path / "copy.onnx"
    from brain_tumor_edge.runtime.model import default_model_path

    model.write_bytes(default_model_path().read_bytes() + b"")  # same bytes: the same model
    assert (
        runner.invoke(app, [str(folder), "--csv", str(out), "--resume", "--model", str(model)]).exit_code == 0
    )
    interrupt(out, 2)
    # The run was made with another model: its record holds that model's checksum.
    record = Path(str(out) + ".run.json")
    written = json.loads(record.read_text(encoding="utf-8"))
    record.write_text(json.dumps({**written, "model_sha256": "0" * 64}), encoding="utf-8")
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--resume"])
    assert result.exit_code == 2 and "model (its checksum differs" in result.output


def test_retry_errors_redoes_only_the_failed_rows_in_place(tmp_path: Path, monkeypatch):
    """A share that came back: a folder that could not be listed and a file that could not be
    read are classified on --retry-errors; every other row stays byte for byte, in walk order."""
    folder = folder_of(tmp_path / "share")
    blocked = folder / "b" / "0.jpg"
    real_listdir, real_open = os.listdir, reading._open_regular

    def dropped(path):
        if Path(path).name == "a":
            raise OSError(5, "Input/output error", str(path))
        return real_listdir(path)

    def unreadable(path):
        if Path(path) == blocked:
            raise OSError(13, "Permission denied", str(path))
        return real_open(path)

    out = tmp_path / "o.csv"
    assert runner.invoke(app, [str(folder), "--csv", str(out)]).exit_code == 0
    clean = rows_of(out)
    monkeypatch.setattr(files.os, "listdir", dropped)
    monkeypatch.setattr(reading, "_open_regular", unreadable)
    failed = runner.invoke(app, [str(folder), "--csv", str(out), "--overwrite"])
    assert failed.exit_code == 1
    before = rows_of(out)
    assert sum(bool(row["error"]) for row in before) == 2  # the folder "a" and the file b/0.jpg
    still = runner.invoke(app, [str(folder), "--csv", str(out), "--retry-errors"])
    assert still.exit_code == 1 and rows_of(out) == before  # still down: the same rows
    monkeypatch.undo()
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--retry-errors"])
    assert result.exit_code == 0, result.output
    assert "retried the 2 files that had failed" in result.output
    assert rows_of(out) == clean  # as if nothing had failed: every row, in walk order


def test_retry_errors_needs_a_finished_csv_of_the_same_run(tmp_path: Path):
    folder = folder_of(tmp_path / "scans", 2)
    out = tmp_path / "o.csv"
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--retry-errors"])
    assert result.exit_code == 2 and "nothing to retry" in result.output
    assert runner.invoke(app, [str(folder), "--csv", str(out)]).exit_code == 0
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--retry-errors", "--min-confidence", "0.9"])
    assert result.exit_code == 2 and "not the same run" in result.output
    both = runner.invoke(app, [str(folder), "--csv", str(out), "--retry-errors", "--resume"])
    assert both.exit_code == 2 and "choose one" in both.output


def test_the_review_page_after_a_resume_shows_every_row_of_the_csv(tmp_path: Path):
    folder = folder_of(tmp_path / "scans")
    out, report = tmp_path / "o.csv", tmp_path / "review"
    assert runner.invoke(app, [str(folder), "--csv", str(out), "--report", str(report)]).exit_code == 0
    interrupt(out, 3)
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--report", str(report), "--resume"])
    assert result.exit_code == 0, result.output
    csv_rows, shown = rows_of(out), page_rows(report)
    assert [row["path"] for row in shown] == [row["path"] for row in csv_rows]
    assert [row["prediction"] for row in shown] == [row["prediction"] for row in csv_rows]
    assert all(row["thumb"] and (report / row["thumb"]).is_file() for row in shown)  # kept ones too


def test_the_review_folder_and_csv_inside_the_input_folder_are_never_classified(tmp_path: Path):
    folder = folder_of(tmp_path / "scans")
    out, report = folder / "results.csv", folder / "review"
    for options in ([], ["--overwrite"]):
        result = runner.invoke(app, [str(folder), "--csv", str(out), "--report", str(report), *options])
        assert result.exit_code == 0, result.output
        assert "6 rows from 6 files" in result.output
    assert {Path(row["path"]).relative_to(folder).parts[0] for row in rows_of(out)} == {"a", "b"}
    assert len(page_rows(report)) == 6


def test_a_review_folder_shows_only_its_own_runs_rows(tmp_path: Path):
    first, second = folder_of(tmp_path / "one", 4), folder_of(tmp_path / "two", 2)
    report = tmp_path / "review"
    assert (
        runner.invoke(app, [str(first), "--csv", str(tmp_path / "1.csv"), "--report", str(report)]).exit_code
        == 0
    )
    before = (report / "index.html").read_bytes()
    other = [str(second), "--csv", str(tmp_path / "2.csv"), "--report", str(report)]
    refused = runner.invoke(app, other)
    assert refused.exit_code == 2 and f"holds the page of {(tmp_path / '1.csv').resolve()}" in refused.output
    assert (report / "index.html").read_bytes() == before and not (tmp_path / "2.csv").exists()
    assert runner.invoke(app, [*other, "--overwrite"]).exit_code == 0
    shown = page_rows(report)
    assert [row["path"] for row in shown] == [row["path"] for row in rows_of(tmp_path / "2.csv")]
    assert len(list((report / "thumbs").glob("*.jpg"))) == 2 * 2  # a slice and a map per row, no more


def test_output_path_problems_are_one_line_messages_before_any_work(tmp_path: Path):
    folder = folder_of(tmp_path / "scans", 2)
    cases = {
        "--csv must name a file, not a folder": ["--csv", str(tmp_path / "newname") + "/"],
        "does not exist": ["--csv", str(tmp_path / "missing" / "o.csv")],
        "too long": ["--csv", str(tmp_path / ("x" * 250 + ".csv"))],
        "--report must name a folder": ["--csv", str(tmp_path / "o.csv"), "--report", str(sample_files()[0])],
        "--report: the folder": [
            "--csv",
            str(tmp_path / "o.csv"),
            "--report",
            str(tmp_path / "no" / "review"),
        ],
        "needs Ray's client": [
            "--csv",
            str(tmp_path / "o.csv"),
            "--ray",
            "--ray-address",
            "ray://head:10001",
        ],
    }
    for message, options in cases.items():
        result = runner.invoke(app, [str(folder), *options])
        assert result.exit_code == 2, (message, result.output)
        assert message in result.output and "Traceback" not in result.output, (message, result.output)
        assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "newname").exists() and not (tmp_path / "o.csv").exists()


def test_a_read_only_output_folder_is_a_message(tmp_path: Path):
    """A CSV in a folder its user may not write: as an ordinary user directly; as root (CI),
    in a forked child that drops to `nobody`, since root writes whatever the mode."""
    import tempfile

    from brain_tumor_edge.runtime.errors import RunError
    from brain_tumor_edge.runtime.run import classify_to_csv

    base = Path(tempfile.mkdtemp(prefix="bt-readonly-"))
    base.chmod(0o755)
    folder = folder_of(base / "scans", 2)
    locked = base / "locked"
    locked.mkdir()
    locked.chmod(0o555)

    def attempt() -> str:
        try:
            classify_to_csv(folder, locked / "o.csv")
        except RunError as exc:
            return str(exc)
        return "no error"

    message = as_nobody(attempt)
    shutil.rmtree(base, ignore_errors=True)
    assert message.startswith("--csv: cannot write in") and "Permission denied" in message, message


def test_a_failed_ray_connection_leaves_nothing_that_blocks_the_next_run(tmp_path: Path, monkeypatch):
    """The connection is refused (simulated: a real unreachable address makes Ray retry
    for minutes): a message, exit 2, and no header-only partial in the next run's way."""
    ray = pytest.importorskip("ray", reason="the cluster extra is not installed")
    folder = folder_of(tmp_path / "scans", 2)
    out = tmp_path / "o.csv"

    def refused(*args, **kwargs):
        raise ConnectionError("Could not connect to 10.0.0.9:6379")

    monkeypatch.setattr(ray, "init", refused)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--ray", "--ray-address", "10.0.0.9:6379"])
    assert result.exit_code == 2 and "cannot start or join Ray at 10.0.0.9:6379" in result.output
    assert "Traceback" not in result.output
    assert not Path(str(out) + ".partial").exists()
    monkeypatch.undo()
    assert runner.invoke(app, [str(folder), "--csv", str(out)]).exit_code == 0


def test_the_progress_bar_advances_inside_a_volume_slice_by_slice():
    """The bar counts files; a volume's slices each move it by their share of the volume."""
    import numpy as np

    from brain_tumor_edge.runtime.results import ImageResult, SlicePlace
    from brain_tumor_edge.runtime.run import _files_done

    def row(place):
        return ImageResult("v.nii.gz#z=0", np.ones(4) / 4, place=place)

    # The third file is a 100-slice volume: after its 50th slice, 2.5 files are done.
    assert _files_done(3, row(SlicePlace("v.nii.gz", "axial", 49.0, slices=100))) == 2.5
    assert _files_done(3, row(SlicePlace("v.nii.gz", "axial", 99.0, slices=100))) == 3
    assert _files_done(3, row(SlicePlace("1.2.3", "axial", 12.5))) == 3  # a DICOM file: one file
    assert _files_done(3, row(None)) == 3

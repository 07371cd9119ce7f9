import csv
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from brain_tumor_edge.runtime.cli import app
from brain_tumor_edge.runtime.csv_report import csv_columns
from brain_tumor_edge.runtime.model import Classifier, default_model_path
from tests.conftest import sample_files

runner = CliRunner()
CLASSES = Classifier(default_model_path()).class_names  # the model's metadata is their home


def classify(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def read_rows(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_bundled_model_classifies_the_samples_correctly(samples: Path, tmp_path: Path):
    out = tmp_path / "samples.csv"
    result = classify(samples, "--csv", out)
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == csv_columns(CLASSES)
    rows = read_rows(out)
    assert [row["path"] for row in rows] == [str(p) for p in sample_files()]
    for row in rows:
        probabilities = [float(row[f"p_{name}"]) for name in CLASSES]
        assert abs(sum(probabilities) - 1.0) < 1e-3
        assert float(row["confidence"]) == max(probabilities)
        assert row["error"] == "", row
    wrong = [row for row in rows if row["prediction"] != Path(row["path"]).parent.name]
    # Never a confident miss or false alarm: a wrong answer either carries a review reason,
    # or confuses one tumour type with another (a second look is still the radiologist's).
    tumour_classes = set(CLASSES) - {"notumor"}
    for row in wrong:
        truth = Path(row["path"]).parent.name
        assert row["review"] or {truth, row["prediction"]} <= tumour_classes, row
    # Which samples the bundled model flags or gets wrong is stated in samples/README.md
    # (a line "Flagged or wrong with the bundled model: ..."); a change of model updates it.
    flagged = sorted(Path(row["path"]).name for row in rows if row["review"] or row in wrong)
    readme = (samples / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"^Flagged or wrong with the bundled model: (.*)$", readme, re.M)
    assert stated, "samples/README.md does not say which samples the bundled model flags"
    assert flagged == sorted(
        n.strip(" `.") for n in stated.group(1).split(",") if n.strip(" `.") not in ("", "none")
    )
    # The bundled model carries the scope output, so the whole out-of-scope check ran.
    assert "out-of-scope detection is unavailable" not in result.output
    assert "0 out of scope" in result.output


def test_min_confidence_adds_the_low_confidence_reason(samples: Path, tmp_path: Path):
    classify(samples, "--csv", tmp_path / "plain.csv", "--min-confidence", "0")
    confidences = sorted(float(row["confidence"]) for row in read_rows(tmp_path / "plain.csv"))
    if confidences[5] == confidences[6]:
        pytest.skip("the bundled model is equally confident on the 6th and 7th samples")
    threshold = (confidences[5] + confidences[6]) / 2  # between the 6th and 7th least confident
    out = tmp_path / "flagged.csv"
    result = classify(samples, "--csv", out, "--min-confidence", threshold)
    assert result.exit_code == 0, result.output
    rows = read_rows(out)
    for row in rows:
        low = float(row["confidence"]) < threshold
        assert row["review"].startswith("low confidence (") == low, row
        assert row["prediction"] in CLASSES  # a flagged row still carries its prediction
    assert "6 low confidence" in result.output
    assert classify(samples, "--csv", tmp_path / "x.csv", "--min-confidence", "1.5").exit_code == 2


def test_files_a_shell_glob_or_files_and_folders_are_classified_as_given(tmp_path: Path, monkeypatch):
    """As rembg and `yolo predict` do: one file, a glob's files, or files and folders; only
    what was given becomes rows, in the walk's order, and a resume keeps to the same ones."""
    scans = tmp_path / "scans"
    (scans / "more").mkdir(parents=True)
    for index, path in enumerate(sample_files()[:6]):
        (scans / ("more" if index >= 4 else ".") / f"{index}.jpg").write_bytes(path.read_bytes())
    monkeypatch.chdir(tmp_path)
    one = classify("scans/0.jpg", "--csv", "one.csv")
    assert one.exit_code == 0, one.output
    assert [row["path"] for row in csv.DictReader(Path("one.csv").read_text().splitlines())] == [
        "scans/0.jpg"
    ]
    glob = CliRunner().invoke(app, ["scans/1.jpg", "scans/3.jpg", "scans/more", "--csv", "glob.csv"])
    assert glob.exit_code == 0, glob.output
    paths = [row["path"] for row in csv.DictReader(Path("glob.csv").read_text().splitlines())]
    assert paths == ["scans/1.jpg", "scans/3.jpg", "scans/more/4.jpg", "scans/more/5.jpg"]
    lines = Path("glob.csv").read_text().splitlines(keepends=True)
    Path("glob.csv.partial").write_text("".join(lines[:3]))  # interrupted after two rows
    Path("glob.csv").unlink()
    resumed = CliRunner().invoke(
        app, ["scans/1.jpg", "scans/3.jpg", "scans/more", "--csv", "glob.csv", "--resume"]
    )
    assert resumed.exit_code == 0 and "plus 2 kept" in resumed.output, resumed.output
    assert [row["path"] for row in csv.DictReader(Path("glob.csv").read_text().splitlines())] == paths
    other = CliRunner().invoke(app, ["scans/1.jpg", "--csv", "glob.csv", "--retry-errors"])
    assert other.exit_code == 2 and "not the same run" in other.output
    ray = CliRunner().invoke(app, ["scans/1.jpg", "scans/3.jpg", "--csv", "r.csv", "--ray"])
    assert ray.exit_code == 2 and "--ray takes one folder" in ray.output


def test_resume_on_a_finished_csv_says_the_run_is_complete(samples: Path, tmp_path: Path):
    out = tmp_path / "o.csv"
    assert classify(samples, "--csv", out).exit_code == 0
    result = classify(samples, "--csv", out, "--resume")
    assert result.exit_code == 2 and "is complete" in result.output and "already finished" in result.output


def test_summary_uses_singular_and_plural(tmp_path: Path):
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(sample_files()[0].read_bytes())
    (folder / "notes.txt").write_text("x")
    result = classify(folder, "--csv", tmp_path / "o.csv")
    assert "1 row from 1 file in" in result.output and "1 non-image file skipped" in result.output
    (folder / "b.jpg").write_bytes(sample_files()[1].read_bytes())
    (folder / "more.txt").write_text("x")
    result = classify(folder, "--csv", tmp_path / "o.csv", "--overwrite")
    assert "2 rows from 2 files in" in result.output and "2 non-image files skipped" in result.output


def test_summary_after_resume_counts_the_kept_rows(samples: Path, tmp_path: Path):
    out = tmp_path / "o.csv"
    whole = classify(samples, "--csv", out)
    assert whole.exit_code == 0
    counts = next(line for line in whole.output.splitlines() if line.startswith("glioma "))
    rows = out.read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "o.csv.partial").write_text("".join(rows[:6]), encoding="utf-8")  # header + 5 rows
    out.unlink()
    result = classify(samples, "--csv", out, "--resume")
    assert result.exit_code == 0, result.output
    assert "12 rows from 12 files" in result.output and "plus 5 kept" in result.output
    # The same per-class counts as the run that was never interrupted.
    assert counts in result.output.splitlines()


def test_some_bad_files_give_error_rows_and_exit_1(samples: Path, tmp_path: Path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = sample_files()[0]
    (folder / "good.jpg").write_bytes(good.read_bytes())
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    (folder / "half.jpg").write_bytes(good.read_bytes()[:4000])
    (folder / "notes.txt").write_text("ignored")
    out = tmp_path / "out.csv"
    result = classify(folder, "--csv", out)
    assert result.exit_code == 1, result.output
    rows = {Path(row["path"]).name: row for row in read_rows(out)}
    assert set(rows) == {"good.jpg", "empty.jpg", "text.png", "half.jpg"}
    assert rows["good.jpg"]["error"] == "" and rows["good.jpg"]["prediction"] in CLASSES
    assert rows["empty.jpg"]["error"] == "empty file"
    assert rows["text.png"]["error"] == "not a decodable image"
    assert "truncated" in rows["half.jpg"]["error"]
    assert rows["half.jpg"]["prediction"] == "" and rows["half.jpg"]["p_glioma"] == ""


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda tmp: ["/no/such/folder", "--csv", tmp / "o.csv"], "no such file or folder"),
        (lambda tmp: [tmp, "--csv", tmp / "o.csv"], "no images found"),
        (lambda tmp: [tmp, "--csv", tmp / "o.csv", "--model", tmp / "none.onnx"], "model file not found"),
        (lambda tmp: [tmp, "--csv", tmp / "missing" / "o.csv"], "does not exist"),
    ],
)
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, make_args, message):
    result = classify(*make_args(tmp_path))
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "o.csv.partial").exists()


def test_corrupt_or_foreign_model_is_refused(samples: Path, tmp_path: Path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(default_model_path().read_bytes()[:5000])
    result = classify(samples, "--csv", tmp_path / "o.csv", "--model", corrupt)
    assert result.exit_code == 2 and "cannot load model" in result.output


def test_existing_csv_needs_overwrite(samples: Path, tmp_path: Path):
    out = tmp_path / "o.csv"
    out.write_text("keep me")
    result = classify(samples, "--csv", out)
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert out.read_text() == "keep me"
    assert classify(samples, "--csv", out, "--overwrite").exit_code == 0


def _predictions(folder: Path, tmp_path: Path, name: str) -> dict[str, str]:
    out = tmp_path / f"{name}.csv"
    result = classify(folder, "--csv", out, "--quiet")
    assert result.exit_code == 0, result.output
    return {Path(row["path"]).stem: row["prediction"] for row in read_rows(out)}


def test_grey_rgba_and_16_bit_give_the_8_bit_prediction(tmp_path: Path):
    variants = {name: tmp_path / name for name in ("original", "grey", "rgba", "sixteen", "twelve")}
    for folder in variants.values():
        folder.mkdir()
    for path in sample_files():
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        cv2.imwrite(str(variants["original"] / f"{path.stem}.png"), bgr)
        cv2.imwrite(str(variants["grey"] / f"{path.stem}.png"), grey)
        cv2.imwrite(str(variants["rgba"] / f"{path.stem}.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
        cv2.imwrite(str(variants["sixteen"] / f"{path.stem}.png"), bgr.astype(np.uint16) * 257)
        cv2.imwrite(str(variants["twelve"] / f"{path.stem}.tif"), grey.astype(np.uint16) * 16)
    colour = _predictions(variants["original"], tmp_path, "original")
    grey = _predictions(variants["grey"], tmp_path, "grey")
    assert len(colour) == len(sample_files())
    assert grey == colour
    assert _predictions(variants["rgba"], tmp_path, "rgba") == colour
    assert _predictions(variants["sixteen"], tmp_path, "sixteen") == colour
    assert _predictions(variants["twelve"], tmp_path, "twelve") == grey


def test_non_ascii_names_and_nested_folders(tmp_path: Path):
    nested = tmp_path / "Patient Ünïcødé" / "série 1"
    nested.mkdir(parents=True)
    (nested / "coupe à 1.jpg").write_bytes(sample_files()[0].read_bytes())
    out = tmp_path / "o.csv"
    assert classify(tmp_path, "--csv", out).exit_code == 0
    (row,) = read_rows(out)
    assert row["path"].endswith("série 1/coupe à 1.jpg") and row["error"] == ""
    assert classify(tmp_path, "--csv", out, "--overwrite", "--no-recursive").exit_code == 2


def test_an_onnx_model_that_is_not_ours_is_refused(samples: Path, tmp_path: Path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "foreign",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 150, 150])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 150, 150])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), foreign)
    result = classify(samples, "--csv", tmp_path / "o.csv", "--model", foreign)
    assert result.exit_code == 2 and "not a brain-tumour model" in result.output


def test_a_library_that_cannot_load_is_a_one_line_message_not_a_traceback():
    """Under `ulimit -v 500M` onnxruntime's shared object fails to map inside an import,
    before the command's own handling exists: that was a traceback; now one line and exit 2."""
    import subprocess
    import sys

    script = (
        "import sys; sys.modules['onnxruntime'] = None; sys.argv = ['bt-classify', 'x', '--csv', 'o.csv']; "
        "from brain_tumor_edge.runtime.start import classify; classify()"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: bt-classify cannot start: ") and len(done.stderr.splitlines()) == 1


def test_every_commands_help_keeps_its_install_hints_whole():
    """Rich markup took "[cluster]" in `--ray`'s help for a style tag and dropped it."""
    from brain_tumor_edge.export.cli import app as export_app
    from brain_tumor_edge.train.cli import audit_app, evaluate_app, train_app

    def unwrapped(command) -> str:  # help is wrapped at hyphens and spaces: undo both
        shown = CliRunner().invoke(command, ["--help"])
        assert shown.exit_code == 0, shown.output
        return re.sub(r"-\s+", "-", re.sub(r"\s+", " ", shown.output))

    for command in (app, train_app, evaluate_app, audit_app, export_app):
        text = unwrapped(command)
        assert "pip install '.'" not in text and "pip install '.[" not in text
    assert "pip install 'brain-tumor-edge[cluster]'" in unwrapped(app)


def test_without_csv_the_results_go_to_the_folders_name_here_and_it_is_said(tmp_path: Path, monkeypatch):
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(sample_files()[0].read_bytes())
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = CliRunner().invoke(app, [str(folder)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("writing scans.csv (--csv to choose another name)")
    assert (work / "scans.csv").is_file()


def test_csv_dash_streams_rows_to_standard_output_and_writes_no_file(tmp_path: Path, monkeypatch):
    folder = tmp_path / "scans"
    folder.mkdir()
    for path in sample_files()[:3]:
        (folder / path.name).write_bytes(path.read_bytes())
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [str(folder), "--csv", "-", "--series-csv", "s.csv"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert [Path(row["path"]).name for row in rows] == sorted(path.name for path in sample_files()[:3])
    assert "CSV: standard output" in result.stderr and "path,prediction" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.csv", "scans"]  # no -, no lock, no record
    refused = CliRunner().invoke(app, [str(folder), "--csv", "-", "--resume"])
    assert refused.exit_code == 2 and "not with --resume" in refused.output

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from runtime.cli import app
from runtime.model import default_model_path
from runtime.report import csv_columns
from tests.conftest import sample_files

runner = CliRunner()
CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


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
        assert row["error"] == "" and "needs_review" not in row
    wrong = [row["path"] for row in rows if row["prediction"] != Path(row["path"]).parent.name]
    assert not wrong, f"misclassified samples: {wrong}"


def test_min_confidence_flags_the_less_certain_rows_for_review(samples: Path, tmp_path: Path):
    classify(samples, "--csv", tmp_path / "plain.csv")
    confidences = sorted(float(row["confidence"]) for row in read_rows(tmp_path / "plain.csv"))
    threshold = (confidences[5] + confidences[6]) / 2  # between the 6th and 7th least confident
    if confidences[5] == confidences[6]:
        pytest.skip("the bundled model is equally confident on the 6th and 7th samples")
    out = tmp_path / "flagged.csv"
    result = classify(samples, "--csv", out, "--min-confidence", threshold)
    assert result.exit_code == 0, result.output
    rows = read_rows(out)
    assert sum(row["needs_review"] == "yes" for row in rows) == 6
    for row in rows:
        assert row["needs_review"] == ("yes" if float(row["confidence"]) < threshold else "")
        assert row["prediction"] in CLASSES  # a flagged row still carries its prediction
    assert "6 below --min-confidence" in result.output
    assert classify(samples, "--csv", tmp_path / "x.csv", "--min-confidence", "1.5").exit_code == 2


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
        (lambda tmp: ["/no/such/folder", "--csv", tmp / "o.csv"], "no such folder"),
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

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")

from brain_tumor_edge.train.average import interpolate  # noqa: E402
from brain_tumor_edge.train.cli import average_app  # noqa: E402
from tests.conftest import train_one_epoch  # noqa: E402

runner = CliRunner()


def test_interpolation_is_parameter_by_parameter_and_keeps_counters():
    first = {"w": torch.zeros(2, 2), "bn.num_batches_tracked": torch.tensor(3)}
    second = {"w": torch.full((2, 2), 4.0), "bn.num_batches_tracked": torch.tensor(9)}
    assert torch.equal(interpolate(first, second, 0.0)["w"], first["w"])
    assert torch.equal(interpolate(first, second, 1.0)["w"], second["w"])
    middle = interpolate(first, second, 0.25)
    assert torch.allclose(middle["w"], torch.full((2, 2), 1.0))
    assert middle["bn.num_batches_tracked"].item() == 9
    with pytest.raises(ValueError, match="different tensors"):
        interpolate(first, {"w": second["w"]}, 0.5)


def test_a_run_and_its_second_stage_average_into_a_finished_run(trained_run: Path, labelled, tmp_path: Path):
    """The averaged weights are the midpoint of the two runs' (before the type prior is folded
    into the classifier's bias), finished on the same validation split: a temperature, the
    figures and the provenance recorded."""
    stage = train_one_epoch(labelled, tmp_path / "stage2", "--seed", "5", "--init-from", str(trained_run))
    assert stage.exit_code == 0, stage.output
    out = tmp_path / "averaged"
    result = runner.invoke(
        average_app, [str(trained_run), str(tmp_path / "stage2"), "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    first = torch.load(trained_run / "model.pt", weights_only=True)
    second = torch.load(tmp_path / "stage2" / "model.pt", weights_only=True)
    averaged = torch.load(out / "model.pt", weights_only=True)
    for name, tensor in averaged["state_dict"].items():
        if tensor.is_floating_point() and name != "classifier.bias":
            expected = (first["state_dict"][name] + second["state_dict"][name]) / 2
            assert torch.allclose(tensor, expected, atol=1e-6), name
    assert averaged["temperature"] > 0 and averaged["temperature"] != 1.0
    assert averaged["metrics"]["average"]["weight"] == 0.5
    metrics = json.loads((out / "metrics.json").read_text())
    assert (
        metrics["validation"]["images"]
        == json.loads((trained_run / "metrics.json").read_text())["validation"]["images"]
    )
    assert (out / "confusion_matrix.png").stat().st_size > 0
    assert metrics["runs"]["first"]["best_epoch"] == first["epoch"]


def test_a_shipped_checkpoint_averages_with_its_record(trained_run: Path, labelled, tmp_path: Path):
    """The bundled model ships as default.pt beside default.train.json, not in a run folder:
    averaging from it keeps its record (its epochs, its own runs) in the new metrics.json."""
    shipped = tmp_path / "models"
    shipped.mkdir()
    shutil.copy(trained_run / "model.pt", shipped / "default.pt")
    shutil.copy(trained_run / "metrics.json", shipped / "default.train.json")
    stage = train_one_epoch(
        labelled, tmp_path / "stage", "--seed", "5", "--init-from", str(shipped / "default.pt")
    )
    assert stage.exit_code == 0, stage.output
    out = tmp_path / "averaged"
    result = runner.invoke(
        average_app, [str(shipped / "default.pt"), str(tmp_path / "stage"), "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    runs = json.loads((out / "metrics.json").read_text())["runs"]
    assert runs["first"] == json.loads((trained_run / "metrics.json").read_text())
    assert runs["second"]["best_epoch"] == 1 and runs["second"]["train_config"]["init_from"].endswith(
        "default.pt"
    )


def test_runs_of_different_splits_are_not_averaged(trained_run: Path, labelled, tmp_path: Path):
    other = train_one_epoch(labelled, tmp_path / "other", "--seed", "6")
    assert other.exit_code == 0, other.output
    result = runner.invoke(
        average_app, [str(trained_run), str(tmp_path / "other"), "--out", str(tmp_path / "a")]
    )
    assert result.exit_code == 2
    assert "differ in split" in result.output and not (tmp_path / "a" / "model.pt").exists()

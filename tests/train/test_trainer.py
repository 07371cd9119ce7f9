import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brain_tumor_edge.train.cli import evaluate_app, train_app

runner = CliRunner()


def test_short_real_run_writes_every_artifact(trained_run: Path):
    for name in ["model.pt", "history.csv", "metrics.json", "curves.png", "confusion_matrix.png"]:
        assert (trained_run / name).stat().st_size > 0, name
    history = list(csv.DictReader((trained_run / "history.csv").open()))
    assert [int(row["epoch"]) for row in history] == [1, 2, 3]
    metrics = json.loads((trained_run / "metrics.json").read_text())
    validation = metrics["validation"]
    assert validation["class_names"] == ["glioma", "meningioma", "notumor", "pituitary"]
    assert sum(map(sum, validation["confusion_matrix"])) == validation["images"] > 0
    assert set(validation["per_class"]["glioma"]) == {"precision", "recall", "f1", "support"}
    # The kept epoch is the best on validation (accuracy, then loss).
    best = max(history, key=lambda row: (float(row["val_acc"]), -float(row["val_loss"])))
    assert metrics["best_epoch"] == int(best["epoch"]) and metrics["parameters"] == 3_454_660


def test_evaluate_writes_metrics_for_another_folder(trained_run: Path, labelled, tmp_path: Path):
    result = runner.invoke(
        evaluate_app, [str(trained_run), "--data", str(labelled.testing), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "metrics.json").read_text())
    assert report["images"] == len(list(labelled.testing.glob("*/*.jpg")))
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "/no/such/folder", "--out", "{tmp}/o"], "data folder not found"),
        (["--data", "{tmp}", "--out", "{tmp}/o"], "no labelled images"),
        (["--data", "{tmp}", "--out", "{tmp}/o", "--arch", "nope"], "unknown architecture"),
    ],
)
def test_bad_training_input_gives_one_line_and_exit_2(tmp_path: Path, args, message):
    result = runner.invoke(train_app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_evaluate_with_missing_checkpoint_fails_cleanly(tmp_path: Path):
    result = runner.invoke(evaluate_app, [str(tmp_path), "--data", str(tmp_path)])
    assert result.exit_code == 2 and "checkpoint not found" in result.output


def test_evaluate_report_puts_misclassified_images_first(tmp_path: Path):
    from tests.conftest import sample_files, samples_the_bundled_model_gets_right

    data = tmp_path / "labelled"
    for path in sample_files():
        (data / path.parent.name).mkdir(parents=True, exist_ok=True)
        (data / path.parent.name / path.name).write_bytes(path.read_bytes())
    wrong = data / "notumor" / "really-a-glioma.jpg"  # a glioma slice filed as notumor
    wrong.write_bytes(sample_files()[0].read_bytes())
    result = runner.invoke(evaluate_app, ["--data", str(data), "--report", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    # The misfiled copy is never right; the samples as often as the bundled model gets them.
    assert f"{samples_the_bundled_model_gets_right()} of {len(sample_files()) + 1} correct" in result.output
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert '"truth": "notumor"' in page and "really-a-glioma.jpg" in page


def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(
    labelled, tmp_path: Path, monkeypatch
):
    """Stopped after epoch 1 of 3 (Ctrl-C), `bt-train --resume RUN` ends where a run that
    was never stopped ends: the same weights, the same history."""
    torch = pytest.importorskip("torch")
    from brain_tumor_edge.train import trainer

    args = ["--data", str(labelled.training), "--arch", "compact", "--epochs", "3", "--max-images", "160",
            "--seed", "9", "--quiet"]  # fmt: skip
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    assert runner.invoke(train_app, [*args, "--out", str(whole)]).exit_code == 0
    assert not (whole / "last.pt").exists()  # a finished run leaves nothing to resume

    one_epoch = trainer._train_one_epoch

    def stop_at_epoch_two(*positional, **keywords):
        if positional[6] == 2:
            raise KeyboardInterrupt
        return one_epoch(*positional, **keywords)

    monkeypatch.setattr(trainer, "_train_one_epoch", stop_at_epoch_two)
    result = runner.invoke(train_app, [*args, "--out", str(stopped)])
    assert result.exit_code == 130 and (stopped / "last.pt").exists()
    monkeypatch.setattr(trainer, "_train_one_epoch", one_epoch)
    refused = runner.invoke(train_app, ["--resume", str(stopped), "--epochs", "5"])
    assert refused.exit_code == 2 and "its own settings" in refused.output
    resumed = runner.invoke(train_app, ["--resume", str(stopped)])
    assert resumed.exit_code == 0, resumed.output

    def weights(run: Path) -> dict:
        return torch.load(run / "model.pt", weights_only=True)["state_dict"]

    a, b = weights(whole), weights(stopped)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    timing = {"epoch_seconds", "train_images_per_second"}
    rows = [
        [
            {k: v for k, v in row.items() if k not in timing}
            for row in csv.DictReader((run / "history.csv").open())
        ]
        for run in (whole, stopped)
    ]
    assert rows[0] == rows[1] and len(rows[0]) == 3


def test_resume_without_a_resume_state_says_so(tmp_path: Path):
    result = runner.invoke(train_app, ["--resume", str(tmp_path)])
    assert result.exit_code == 2 and "nothing to resume" in result.output

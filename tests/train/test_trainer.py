import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brain_tumor_edge.train.cli import evaluate_app, train_app
from tests.conftest import train_one_epoch

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
    was never stopped ends: the same weights, the same history. The compact recipe keeps
    averaged weights and resizes progressively, so both survive the interruption too."""
    torch = pytest.importorskip("torch")
    from brain_tumor_edge.train import trainer
    from brain_tumor_edge.train.architectures import get_architecture

    recipe = get_architecture("compact").recipe
    assert recipe.ema_decay > 0 and recipe.balance_types and recipe.early_size  # what is resumed

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
    for changed in (["--epochs", "5"], ["--size", "96"]):
        refused = runner.invoke(train_app, ["--resume", str(stopped), *changed])
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


def test_the_averaged_weights_are_what_is_validated_and_saved(labelled, tmp_path: Path, monkeypatch):
    """With `ema_decay`, every validation scores the averaged network, and the checkpoint holds
    its weights (the classifier's bias may carry the fitted type prior), not the trained ones."""
    torch = pytest.importorskip("torch")
    from dataclasses import replace

    from brain_tumor_edge.train import trainer
    from brain_tumor_edge.train.architectures import get_architecture
    from brain_tumor_edge.train.config import TrainConfig

    made, scored = [], []
    for_recipe, predict = trainer._Optimisation.for_recipe, trainer.predict_probabilities

    def remember_steps(*args, **kwargs):
        made.append(for_recipe(*args, **kwargs))
        return made[-1]

    def remember_scored(model, *args, **kwargs):
        scored.append(model)
        return predict(model, *args, **kwargs)

    monkeypatch.setattr(trainer._Optimisation, "for_recipe", remember_steps)
    monkeypatch.setattr(trainer, "predict_probabilities", remember_scored)
    recipe = replace(get_architecture("compact").recipe, epochs=2, early_size=0, ema_decay=0.9)
    config = TrainConfig(
        out=tmp_path / "run", data=labelled.training, arch="compact", recipe=recipe,
        max_images=160, seed=3, show_progress=False,
    )  # fmt: skip
    trainer.train(config)
    averaged = made[0].ema.module
    assert len(scored) == 2 and all(model is averaged for model in scored)
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)["state_dict"]
    kept = {k: v for k, v in averaged.state_dict().items() if k != "classifier.bias"}
    assert all(torch.equal(saved[k], v) for k, v in kept.items())
    trained = made[0].optimizer.param_groups[0]["params"][0]  # the first conv's trained weights
    assert not torch.equal(saved["body.0.0.weight"], trained.detach())


def test_one_noisy_epoch_cannot_choose_itself():
    """The criterion is averaged over a window of epochs at the final size: a lone peak loses to
    a steady run, and the history says how far the figure moved within each window."""
    from brain_tumor_edge.train.trainer import _Best, _is_better, _smooth

    figures = {4: 0.80, 5: 0.97, 6: 0.81, 7: 0.90, 8: 0.91, 9: 0.92}  # epoch 5 is a spike
    history: list[dict] = [{"epoch": e, "train_loss": 1.0} for e in (1, 2, 3)]  # early, not validated
    best = None
    for epoch, figure in figures.items():
        row = {"epoch": epoch, "val_loss": 0.5, "val_worst_balanced": figure}
        if _smooth(row, history, window=3, first_candidate=4, last=9) and _is_better(row, best):
            best = _Best(row, {})
        history.append(row)
    assert best is not None and best.row["epoch"] == 9
    assert best.row["val_smoothed"] == round((0.90 + 0.91 + 0.92) / 3, 5)
    spike_window = next(r for r in history if r["epoch"] == 6)
    assert spike_window["val_window_spread"] == round(0.97 - 0.80, 5)
    assert all("val_smoothed" not in r for r in history[:3])


def test_a_second_stage_starts_from_the_first_runs_weights(trained_run: Path, labelled, tmp_path: Path):
    """--init-from loads the finished run's weights: at learning rate 0 one epoch keeps them."""
    import torch

    result = train_one_epoch(
        labelled,
        tmp_path / "stage2",
        "--init-from",
        str(trained_run),
        "--seed",
        "5",
        "--set",
        "learning_rate=0",
    )
    assert result.exit_code == 0, result.output
    assert f"starting from {trained_run}" in result.output
    first = torch.load(trained_run / "model.pt", weights_only=True)["state_dict"]
    second = torch.load(tmp_path / "stage2" / "model.pt", weights_only=True)
    assert all(torch.equal(first[key], value) for key, value in second["state_dict"].items())
    assert second["train_config"]["init_from"] == str(trained_run.resolve())
    assert second["train_config"]["recipe"]["learning_rate"] == 0.0


def test_a_second_stage_on_another_split_is_refused(trained_run: Path, labelled, tmp_path: Path):
    """Another seed splits the patients differently: the first run's validation images could
    be trained on, so the weights are not taken."""
    result = train_one_epoch(labelled, tmp_path / "other", "--init-from", str(trained_run), "--seed", "6")
    assert result.exit_code == 2
    assert "differs in split" in result.output and not (tmp_path / "other" / "model.pt").exists()


def test_a_stage_at_another_input_size_starts_from_weights_that_run_at_any_size(labelled, tmp_path: Path):
    """The compact network pools globally, so a stage may train at a new input size from a
    run at another (the split does not depend on the size), and be averaged with it; the new
    size is the model's. A network built for one size refuses `--size`."""
    import torch

    from brain_tumor_edge.train.cli import average_app

    small = ["--arch", "compact", "--seed", "5", "--set", "early_size=0"]
    first = train_one_epoch(labelled, tmp_path / "at64", *small, "--size", "64")
    assert first.exit_code == 0, first.output
    result = train_one_epoch(
        labelled,
        tmp_path / "at96",
        "--init-from",
        str(tmp_path / "at64"),
        *small,
        "--size",
        "96",
        "--set",
        "learning_rate=0",
    )
    assert result.exit_code == 0, result.output
    assert "trained at 64 px" in result.output
    before = torch.load(tmp_path / "at64" / "model.pt", weights_only=True)
    after = torch.load(tmp_path / "at96" / "model.pt", weights_only=True)
    assert (before["preprocess"]["size"], after["preprocess"]["size"]) == (64, 96)
    # Learning rate 0: the convolutions are the first run's (batch-norm statistics and the
    # classifier's bias, where the type prior is folded, are refitted).
    convolutions = [
        k for k in before["state_dict"] if k.endswith("weight") and before["state_dict"][k].dim() == 4
    ]
    assert convolutions and all(
        torch.equal(before["state_dict"][k], after["state_dict"][k]) for k in convolutions
    )

    # The stage averages with the run it started from; the result runs at the stage's size.
    averaged = runner.invoke(
        average_app, [str(tmp_path / "at64"), str(tmp_path / "at96"), "--out", str(tmp_path / "avg")]
    )
    assert averaged.exit_code == 0, averaged.output
    mean = torch.load(tmp_path / "avg" / "model.pt", weights_only=True)
    assert mean["preprocess"]["size"] == 96
    assert mean["metrics"]["average"]["input_sizes"] == [64, 96]
    paper = train_one_epoch(labelled, tmp_path / "paper", "--size", "96")
    assert paper.exit_code == 2 and "built for 150 px only" in paper.output


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("bogus=1", "FIELD one of"),
        ("epochs=two", "'two' is not a int"),
        ("balance_types=maybe", "not a bool"),
    ],
)
def test_recipe_settings_are_checked_against_the_recipe(setting: str, message: str):
    from brain_tumor_edge.train.recipe import Recipe

    assert Recipe().with_settings(["epochs=3", "ema_decay=0.99", "balance_types=true"]) == Recipe(
        epochs=3, ema_decay=0.99, balance_types=True
    )
    with pytest.raises(ValueError, match=message):
        Recipe().with_settings([setting])

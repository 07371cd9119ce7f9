"""bt-train under torchrun: two gloo processes on this CPU train one model, written once."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import DATASET, REPO

torch = pytest.importorskip("torch")


def small_training_folder(root: Path) -> tuple[Path, int | None]:
    """A slice of the real Training folder, or generated images when the data is absent."""
    if (DATASET / "Training").is_dir():
        return DATASET / "Training", 160
    rng = np.random.default_rng(0)
    for label, name in enumerate(("glioma", "meningioma", "notumor", "pituitary")):
        (root / name).mkdir(parents=True)
        for index in range(40):
            image = rng.integers(0, 40, (160, 160), dtype=np.uint8)
            cv2.circle(image, (40 + label * 25, 80), 12 + label * 4, 220, -1)  # a class-shaped blob
            cv2.imwrite(str(root / name / f"{index}.png"), image)
    return root, None


def test_two_process_training_matches_one_model(tmp_path: Path):
    data, max_images = small_training_folder(tmp_path / "data")
    out = tmp_path / "run"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "brain_tumor_edge.train",
        "--data", str(data), "--out", str(out), "--arch", "compact", "--epochs", "2",
        "--threads", "1", "--quiet", "--val-fraction", "0.25",
    ]  # fmt: skip
    if max_images:
        command += ["--max-images", str(max_images)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2
    assert metrics["ranks_in_sync"] is True  # DDP kept the weights identical on both ranks
    # Artefacts once: one history row per epoch (not one per rank), one "best epoch" line.
    assert len((out / "history.csv").read_text().strip().splitlines()) == 1 + 2
    assert result.stdout.count("best epoch") == 1
    assert sorted(p.name for p in out.iterdir()) == [
        "confusion_matrix.png", "curves.png", "history.csv", "history_sources.jsonl", "metrics.json",
        "model.pt",
    ]  # fmt: skip

    # The validation figures recompute from the saved checkpoint.
    from brain_tumor_edge.runtime.metrics import classification_report
    from brain_tumor_edge.train.checkpoint import load_checkpoint
    from brain_tumor_edge.train.predict import predict_probabilities
    from brain_tumor_edge.train.split import SplitConfig, load_split, recorded_mix

    checkpoint = load_checkpoint(out)
    recorded = checkpoint.train_config
    val_set = load_split(
        recorded_mix(recorded), checkpoint.preprocess, SplitConfig.from_record(recorded["split"])
    ).validation
    probabilities = predict_probabilities(
        checkpoint.build_model(), val_set.images, checkpoint.preprocess, checkpoint.temperature
    )
    report = classification_report(val_set.labels, probabilities, checkpoint.class_names)
    assert report["accuracy"] == metrics["validation"]["accuracy"]
    assert report["confusion_matrix"] == metrics["validation"]["confusion_matrix"]

    # And it exports like a one-process checkpoint.
    from brain_tumor_edge.export.config import ExportConfig
    from brain_tumor_edge.export.pipeline import run_export

    exported = run_export(ExportConfig(checkpoint=out, out=tmp_path / "m.onnx", check_images=40))
    assert exported.parity.passed, exported.parity.table()

"""The checkpoint in the repository is the one the bundled model was exported from.

`runtime/models/default.pt` (and its settings, `default.train.json`) lets a fresh clone
re-export, re-calibrate or fine-tune without a 45-minute retrain; these tests hold it to
the shipped file.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from brain_tumor_edge.export.config import ExportConfig
from brain_tumor_edge.export.pipeline import run_export
from brain_tumor_edge.runtime.integrity import file_sha256
from brain_tumor_edge.runtime.model import Classifier, default_model_path
from brain_tumor_edge.runtime.preprocess import load_image
from brain_tumor_edge.train.checkpoint import load_checkpoint
from brain_tumor_edge.train.predict import predict_probabilities
from tests.conftest import REPO, sample_files

CHECKPOINT = REPO / "runtime" / "models" / "default.pt"
SETTINGS = REPO / "runtime" / "models" / "default.train.json"


def test_the_bundled_model_names_the_committed_checkpoint():
    bundled = Classifier(default_model_path()).metadata
    assert bundled.checkpoint_sha256 == file_sha256(CHECKPOINT)
    checkpoint = load_checkpoint(CHECKPOINT)
    assert bundled.class_names == checkpoint.class_names
    assert bundled.preprocess == checkpoint.preprocess
    assert bundled.architecture == checkpoint.architecture
    assert bundled.temperature == pytest.approx(checkpoint.temperature)
    settings = json.loads(SETTINGS.read_text(encoding="utf-8"))
    assert settings["train_config"]["seed"] == checkpoint.seed
    assert settings["best_epoch"] == checkpoint.epoch


def test_the_checkpoint_and_the_bundled_model_agree_on_the_samples():
    checkpoint = load_checkpoint(CHECKPOINT)
    bundled = Classifier(default_model_path())
    images = np.stack([load_image(p.read_bytes(), checkpoint.preprocess) for p in sample_files()])
    torch_probabilities = predict_probabilities(
        checkpoint.build_model(), images, checkpoint.preprocess, checkpoint.temperature
    )
    int8_probabilities = bundled.predict(images)
    assert (torch_probabilities.argmax(1) == int8_probabilities.argmax(1)).all()
    # int8 rounding: the export's parity gate measured at most ~0.1 on its check images.
    assert np.abs(torch_probabilities - int8_probabilities).max() < 0.15


@pytest.mark.slow
def test_bt_export_on_the_checkpoint_reproduces_the_bundled_model(dataset: Path, tmp_path: Path, monkeypatch):
    """From the repository root, as README shows it: the same fits, the same answers."""
    monkeypatch.chdir(REPO)  # the checkpoint records its data folders relative to the root
    result = run_export(ExportConfig(checkpoint=CHECKPOINT, out=tmp_path / "model.onnx", quantize=True))
    assert result.parity.passed, result.parity.table()
    bundled = Classifier(default_model_path())
    again = Classifier(result.int8_path)
    assert again.metadata.checkpoint_sha256 == bundled.metadata.checkpoint_sha256
    assert again.metadata.scope["limit"] == pytest.approx(bundled.metadata.scope["limit"], rel=1e-3)
    assert again.metadata.rule_out["level"] == pytest.approx(bundled.metadata.rule_out["level"], abs=1e-3)
    images = np.stack([load_image(p.read_bytes(), bundled.metadata.preprocess) for p in sample_files()])
    assert np.allclose(again.predict(images), bundled.predict(images), atol=0.05)

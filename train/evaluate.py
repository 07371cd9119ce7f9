"""Evaluating a checkpoint on any labelled folder (for example the Testing split)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..runtime.metrics import classification_report, expected_calibration_error
from .audit import audit
from .checkpoint import load_checkpoint, resolve_checkpoint_path
from .data import load_images, scan_labelled_folder
from .plots import plot_confusion_matrix
from .predict import predict_probabilities


def evaluate_checkpoint(
    checkpoint_path: Path,
    data: Path,
    out: Path,
    threads: int,
    show_progress: bool = True,
    leak_reference: Path | None = None,
) -> dict:
    """Writes `out/metrics.json` and `out/confusion_matrix.png`; returns the metrics.

    With `leak_reference` (the training folder), the metrics are also given for the
    images that have no exact or near twin there (`leak_free`).
    """
    torch.set_num_threads(threads)
    checkpoint = load_checkpoint(checkpoint_path)
    files = scan_labelled_folder(data, checkpoint.class_names)
    images, skipped = load_images(files, checkpoint.preprocess, threads, show_progress)
    probabilities = predict_probabilities(
        checkpoint.build_model(), images.images, checkpoint.preprocess, checkpoint.temperature
    )
    report = classification_report(images.labels, probabilities, checkpoint.class_names)
    report["ece"] = round(expected_calibration_error(probabilities, images.labels), 4)
    report["data"] = str(data)
    report["checkpoint"] = str(resolve_checkpoint_path(checkpoint_path))
    report["skipped_files"] = skipped
    if leak_reference is not None:
        leaked = set(audit(data, leak_reference, threads).leaked)
        clean = np.asarray([str(path) not in leaked for path in images.paths])
        report["leak_free"] = classification_report(
            images.labels[clean], probabilities[clean], checkpoint.class_names
        )
        report["leak_free"]["reference"] = str(leak_reference)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    plot_confusion_matrix(
        np.asarray(report["confusion_matrix"]),
        checkpoint.class_names,
        checkpoint.class_names,
        out / "confusion_matrix.png",
        f"{Path(data).name}: accuracy {report['accuracy']:.3f} ({report['images']} images)",
    )
    return report

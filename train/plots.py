"""The paper's figures: accuracy/loss curves (Figs. 4-5) and the confusion matrix (Fig. 6)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; training machines have no display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator


def plot_curves(history: Sequence[dict], path: Path) -> None:
    """Training figures every epoch; validation's on the epochs that were validated (the
    averaged weights, when the recipe keeps them), with the smoothed choice criterion."""
    epochs = [row["epoch"] for row in history]
    validated = [row for row in history if "val_loss" in row]
    val_epochs = [row["epoch"] for row in validated]
    figure, (accuracy_axis, loss_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, key, title in ((accuracy_axis, "acc", "Accuracy"), (loss_axis, "loss", "Loss")):
        axis.plot(epochs, [row[f"train_{key}"] for row in history], "o-", label="train")
        axis.plot(val_epochs, [row[f"val_{key}"] for row in validated], "s-", label="validation")
        if key == "acc" and validated and "val_tumour_unknown_sensitivity" in validated[0]:
            sensitivity = [row["val_tumour_unknown_sensitivity"] for row in validated]
            axis.plot(val_epochs, sensitivity, "^-", label="validation tumour (type unknown) sensitivity")
        if key == "acc" and validated and "val_smoothed" in validated[0]:
            smoothed = [row["val_smoothed"] for row in validated]
            axis.plot(val_epochs, smoothed, "--", label="choice criterion, smoothed")
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_confusion_matrix(
    matrix: np.ndarray,
    class_names: Sequence[str],
    row_names: Sequence[str],
    path: Path,
    title: str,
) -> None:
    """Rows: true classes (plus e.g. "tumour (type unknown)"); columns: predicted classes."""
    matrix = np.asarray(matrix)
    # Room for the longest row name ("tumour (type unknown)") beside the matrix.
    width = 4.4 + 0.08 * max(len(name) for name in row_names)
    figure, axis = plt.subplots(figsize=(width, 4.8))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis)
    axis.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    axis.set_yticks(range(len(row_names)), row_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        colour = "white" if count > threshold else "black"
        axis.text(column, row, str(count), ha="center", va="center", color=colour)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)

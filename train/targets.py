"""Labels of two grains: a class, or "a tumour, type unknown".

Most training images carry one class. Some sources only say that a slice shows a tumour
(`bt-train --tumour-unknown DIR`): such an image's label is `TUMOUR_UNKNOWN`, and its
target is the *set* of every class except the negative one. Its loss is the negative
log of the probability the network gives that set,

    -log(sum of p(c) over the tumour classes) = -log(1 - p(negative)),

which is plain cross-entropy when the set holds one class (`train/loss.py`).

Everything that scores a validation image (accuracy, loss, sensitivity) goes through
`label_sets` and `in_set`, so the two grains are defined here once. No torch here: the
data loading and the audit import the label without loading torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Label index of a "tumour, type unknown" image (never a class index).
TUMOUR_UNKNOWN = -1
TUMOUR_UNKNOWN_NAME = "tumour (type unknown)"


def label_sets(labels: np.ndarray, num_classes: int, negative: int) -> np.ndarray:
    """N x classes bool: the classes each label allows (one, or every tumour class)."""
    labels = np.asarray(labels)
    allowed = np.zeros((len(labels), num_classes), bool)
    known = labels >= 0
    allowed[np.flatnonzero(known), labels[known]] = True
    allowed[~known] = True
    allowed[~known, negative] = False
    return allowed


def negative_index(class_names: Sequence[str], negative_class: str) -> int:
    if negative_class not in class_names:
        raise ValueError(f"negative class {negative_class!r} is not one of {tuple(class_names)}")
    return list(class_names).index(negative_class)


def in_set(labels: np.ndarray, predictions: np.ndarray, negative: int) -> np.ndarray:
    """Whether each prediction lies in its label's set (an unknown tumour: any tumour class)."""
    labels = np.asarray(labels)
    return np.where(labels >= 0, predictions == labels, predictions != negative)


def set_log_loss(probabilities: np.ndarray, labels: np.ndarray, negative: int) -> float:
    """Mean -log p(label set): the validation counterpart of `TwoGrainLoss` (no smoothing)."""
    allowed = label_sets(labels, probabilities.shape[1], negative)
    mass = (probabilities * allowed).sum(1)
    return float(-np.log(np.clip(mass, 1e-12, None)).mean())


def validation_scores(probabilities: np.ndarray, labels: np.ndarray, negative: int) -> dict:
    """Four-class accuracy on labelled images, tumour sensitivity on unknown-type ones, and the
    share of all images whose prediction lies in its label set (the best-epoch criterion)."""
    labels = np.asarray(labels)
    predictions = probabilities.argmax(1)
    hits = in_set(labels, predictions, negative)
    known = labels >= 0
    scores = {
        "acc": float(hits[known].mean()) if known.any() else float("nan"),
        "set_acc": float(hits.mean()),
        "loss": set_log_loss(probabilities, labels, negative),
    }
    if (~known).any():
        scores["tumour_unknown_sensitivity"] = float(hits[~known].mean())
    return scores

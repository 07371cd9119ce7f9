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

from ..runtime.metrics import auroc

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


def source_scores(
    probabilities: np.ndarray,
    labels: np.ndarray,
    sources: np.ndarray,
    source_names: Sequence[str],
    sequences: Sequence[str],
    negative: int,
) -> dict[str, dict]:
    """Validation figures per source and, where a source has several, per source/sequence.

    For each: images; `acc`, four-class accuracy where the type is known; `sensitivity`,
    tumours (known type or not) given a tumour class; `specificity`, negatives called
    negative; `auroc`, how 1 - p(negative) ranks tumours above negatives; `balanced`, the
    mean in-set rate over the label kinds present (each class, and unknown-type tumours),
    which the best epoch is chosen on (the worst source's)."""
    labels, sources = np.asarray(labels), np.asarray(sources)
    sequences = np.asarray(sequences)
    predictions = probabilities.argmax(1)
    hits = in_set(labels, predictions, negative)
    report: dict[str, dict] = {}
    for index, name in enumerate(source_names):
        in_source = sources == index
        if not in_source.any():
            continue
        kinds = sorted(set(sequences[in_source]))
        parts = [(name, in_source)]
        if len(kinds) > 1:
            parts += [(f"{name}/{kind}", in_source & (sequences == kind)) for kind in kinds]
        for key, mask in parts:
            report[key] = _scores(probabilities[mask], labels[mask], hits[mask], negative)
    return report


def _scores(probabilities: np.ndarray, labels: np.ndarray, hits: np.ndarray, negative: int) -> dict:
    known = labels >= 0
    is_negative = labels == negative
    tumour = ~is_negative
    scores: dict = {"images": len(labels)}
    if known.any():
        scores["acc"] = round(float(hits[known].mean()), 5)
    if tumour.any():
        scores["sensitivity"] = round(float((probabilities[tumour].argmax(1) != negative).mean()), 5)
    if is_negative.any():
        scores["specificity"] = round(float(hits[is_negative].mean()), 5)
    if tumour.any() and is_negative.any():
        tumour_score = 1.0 - probabilities[:, negative]
        scores["auroc"] = round(auroc(tumour_score[is_negative], tumour_score[tumour]), 5)
    scores["balanced"] = round(float(np.mean([hits[labels == k].mean() for k in np.unique(labels)])), 5)
    return scores

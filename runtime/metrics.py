"""Classification metrics in numpy, shared by training, export checks and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns are predicted classes."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def accuracy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Share of rows whose most probable class is the label (0.0 for no rows)."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return 0.0
    return float((np.asarray(probabilities).argmax(axis=1) == labels).mean())


def classification_report(labels: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str]) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix, JSON-ready."""
    labels = np.asarray(labels)
    predictions = np.asarray(probabilities).argmax(axis=1)
    matrix = confusion_matrix(labels, predictions, len(class_names))
    per_class = {}
    for index, name in enumerate(class_names):
        true_positive = int(matrix[index, index])
        predicted = int(matrix[:, index].sum())
        support = int(matrix[index, :].sum())
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(f1, 4),
            "support": support,
        }
    total = int(matrix.sum())
    return {
        "images": total,
        "accuracy": round(float(np.trace(matrix)) / total, 4) if total else 0.0,
        "per_class": per_class,
        "class_names": list(class_names),
        "confusion_matrix": matrix.tolist(),
    }


# Probabilities are softmax(logits / temperature); a model whose temperature was never
# fitted (or that predates calibration) uses this one.
UNCALIBRATED = 1.0


def softmax(logits: np.ndarray, temperature: float = UNCALIBRATED) -> np.ndarray:
    scaled = np.asarray(logits, np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    picked = np.asarray(probabilities)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by bin size."""
    confidence = np.asarray(probabilities).max(axis=1)
    correct = np.asarray(probabilities).argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for index in range(bins):
        members = which == index
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney U);
    NaN when either side is empty."""
    negatives, positives = np.asarray(negatives, np.float64), np.asarray(positives, np.float64)
    if len(negatives) == 0 or len(positives) == 0:
        return float("nan")
    scores = np.concatenate([negatives, positives])
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Average rank of each distinct value (1-based), so ties share their mean rank.
    upper = np.cumsum(counts)
    ranks = (upper - (counts - 1) / 2.0)[inverse]
    n_pos = len(positives)
    return float((ranks[len(negatives) :].sum() - n_pos * (n_pos + 1) / 2) / (len(negatives) * n_pos))

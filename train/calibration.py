"""Temperature scaling (Guo et al., 2017): one scalar that makes confidences honest."""

from __future__ import annotations

import math

import numpy as np

from ..runtime.metrics import negative_log_likelihood, softmax


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature in [0.05, 20] minimising validation NLL (golden-section on log T).

    NLL is unimodal in log T, so a 1-D search is exact enough and needs no optimiser.
    """

    def loss(log_t: float) -> float:
        return negative_log_likelihood(softmax(logits, math.exp(log_t)), labels)

    low, high = math.log(0.05), math.log(20.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(60):
        if loss_a < loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    return round(math.exp((low + high) / 2), 4)


def fit_type_bias(logits: np.ndarray, labels: np.ndarray, negative: int, steps: int = 500) -> np.ndarray:
    """Logit offsets for the tumour types (the negative class's stays 0) that correct the prior
    among them: the offsets minimising the type-balanced negative log-likelihood of
    p(type | a tumour type) over the validation images of known tumour type.

    Only the types' logits move, and by offsets of mean zero, so the tumour-versus-no-tumour
    decision barely changes; what changes is which type wins when the network is unsure,
    which a training mix rich in one type tilts towards that type. The loss is convex in the
    offsets: plain gradient descent finds them.
    """
    types = np.array([c for c in range(logits.shape[1]) if c != negative])
    chosen = np.isin(labels, types)
    z, y = logits[chosen][:, types], np.searchsorted(types, labels[chosen])
    one_hot = np.eye(len(types))[y]
    present = [c for c in range(len(types)) if (y == c).any()]
    offsets = np.zeros(len(types))
    for _ in range(steps):
        p = softmax(z + offsets)
        # Each type's mean gradient, then their mean: every type weighs the same.
        offsets -= np.mean([(p[y == c] - one_hot[y == c]).mean(0) for c in present], axis=0)
        offsets -= offsets.mean()
    bias = np.zeros(logits.shape[1])
    bias[types] = offsets
    return bias


def balanced_recall(logits: np.ndarray, labels: np.ndarray) -> float:
    """The mean over the classes present of each one's recall (argmax)."""
    predictions = logits.argmax(1)
    return float(np.mean([(predictions[labels == c] == c).mean() for c in np.unique(labels)]))

"""The training loss for labels of two grains (train/targets.py).

An image of unknown tumour type is trained on the negative log of the probability the
network gives the set of tumour classes, -log(1 - p(negative)). It depends on the tumour
classes only through their sum, so it never says which type the tumour is: a gradient
step raises every tumour logit in proportion to that class's share of the set, which
keeps their order (tests/train/test_targets.py).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional


class TwoGrainLoss(nn.Module):
    """Cross-entropy (with label smoothing) on class labels; -log p(tumour set) on unknown ones.

    The batch loss is the mean over all images, an unknown-type image weighing
    `unknown_weight` times a labelled one.
    """

    def __init__(self, negative: int, label_smoothing: float = 0.0, unknown_weight: float = 1.0) -> None:
        super().__init__()
        self.negative = negative
        self.label_smoothing = label_smoothing
        self.unknown_weight = unknown_weight

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        known = labels >= 0
        per_image = torch.zeros(len(labels), dtype=logits.dtype, device=logits.device)
        if known.any():
            per_image[known] = functional.cross_entropy(
                logits[known], labels[known], reduction="none", label_smoothing=self.label_smoothing
            )
        if (~known).any():
            unknown = logits[~known]
            tumour = torch.ones(logits.shape[1], dtype=torch.bool, device=logits.device)
            tumour[self.negative] = False
            set_log_probability = torch.logsumexp(unknown[:, tumour], 1) - torch.logsumexp(unknown, 1)
            per_image[~known] = -set_log_probability * self.unknown_weight
        return per_image.mean()

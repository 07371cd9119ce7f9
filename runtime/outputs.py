"""The named outputs an exported model may have; the runtime finds them by these names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROBABILITIES = "probabilities"  # N x classes, calibrated
SCOPE = "scope"  # N, distance to the training images' features; compared with metadata's limit
CAM = "cam"  # N x classes x h x w class-activation maps

KNOWN = (PROBABILITIES, SCOPE, CAM)


@dataclass(frozen=True)
class ModelOutput:
    """One batch's outputs; `scope` and `cam` are None for models exported without them."""

    probabilities: np.ndarray
    scope: np.ndarray | None = None
    cam: np.ndarray | None = None

    def __getitem__(self, index: int) -> ModelOutput:
        return ModelOutput(
            self.probabilities[index],
            None if self.scope is None else self.scope[index],
            None if self.cam is None else self.cam[index],
        )

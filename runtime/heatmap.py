"""Activation maps at image size: the one definition the review page and the map benchmarks use.

The model's `cam` output holds one coarse map per class (the last feature maps weighted by
that class's classifier weights). A map is shown and scored over the image it explains,
so it is resized to that image here, with the same interpolation everywhere.
"""

from __future__ import annotations

import cv2
import numpy as np


def upsample(cam: np.ndarray, width: int, height: int) -> np.ndarray:
    """One class's h x w map, resized to height x width (float32, bicubic)."""
    return cv2.resize(cam.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)


def normalised(heat: np.ndarray) -> np.ndarray:
    """The map scaled to 0..1 (a constant map gives zeros)."""
    heat = heat - heat.min()
    return heat / max(float(heat.max()), 1e-6)

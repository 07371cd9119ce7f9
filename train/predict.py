"""Inference in torch on cached uint8 images: what training's validation and export's fits share."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..runtime.metrics import UNCALIBRATED, softmax
from ..runtime.preprocess import PreprocessConfig, normalize


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def to_network_input(batch: torch.Tensor, preprocess: PreprocessConfig, device: torch.device) -> torch.Tensor:
    """uint8 N x 3 x S x S -> float input, through the runtime's own `normalize`."""
    normalised = torch.from_numpy(normalize(batch.numpy(), preprocess))
    return normalised.to(device).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: np.ndarray,
    preprocess: PreprocessConfig,
    batch_size: int = 128,
    features: bool = False,
) -> np.ndarray:
    """Logits (or, with `features`, the vectors the classifier reads) for uint8 images."""
    model.eval()
    device = model_device(model)
    forward = (
        (lambda x: model.forward_head(model.forward_features(x), pre_logits=True)) if features else model
    )
    outputs = [
        forward(to_network_input(torch.from_numpy(images[start : start + batch_size]), preprocess, device))
        .cpu()
        .numpy()
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.empty((0, 0), np.float32)


def predict_probabilities(
    model: nn.Module, images: np.ndarray, preprocess: PreprocessConfig, temperature: float = UNCALIBRATED
) -> np.ndarray:
    return softmax(predict_logits(model, images, preprocess), temperature)

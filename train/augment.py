"""The paper's augmentation (rotation, shift, zoom, flips, fill) on uint8 tensors, training only."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.transforms import v2


@dataclass(frozen=True)
class AugmentConfig:
    rotation_degrees: float = 20.0
    shift_fraction: float = 0.1
    zoom_fraction: float = 0.1
    horizontal_flip: bool = True
    vertical_flip: bool = True
    # Keras' default fill is "nearest"; torchvision fills with a constant. MRI slices
    # have a black background, so black is the faithful constant.
    fill: int = 0


def build_augmentation(config: AugmentConfig) -> v2.Transform:
    zoom = config.zoom_fraction
    steps: list[v2.Transform] = [
        v2.RandomAffine(
            degrees=config.rotation_degrees,
            translate=(config.shift_fraction, config.shift_fraction),
            scale=(1.0 - zoom, 1.0 + zoom),
            interpolation=v2.InterpolationMode.BILINEAR,
            fill=config.fill,
        )
    ]
    if config.horizontal_flip:
        steps.append(v2.RandomHorizontalFlip())
    if config.vertical_flip:
        steps.append(v2.RandomVerticalFlip())
    return v2.Compose(steps)


def augment_batch(batch: torch.Tensor, transform: v2.Transform) -> torch.Tensor:
    """Apply `transform` to each image of an N x 3 x S x S uint8 batch with its own random draw.

    torchvision applies one draw to a whole batch tensor, which would make every image
    in a batch rotate the same way, hence the loop (cheap next to the network).
    """
    return torch.stack([transform(image) for image in batch])

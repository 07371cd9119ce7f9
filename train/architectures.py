"""The networks `bt-train --arch NAME` can build; a new architecture is one more registry entry."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from train.augment import AugmentConfig
from train.recipe import Recipe


@dataclass(frozen=True)
class Architecture:
    name: str
    input_size: int
    build: Callable[[int], nn.Module]
    description: str
    recipe: Recipe  # the defaults `bt-train --arch NAME` trains with


def paper_cnn(num_classes: int) -> nn.Module:
    """The paper's network: 4 x (3x3 valid conv + ReLU + 2x2 max-pool), dense 512, dropout 0.5.

    Valid (unpadded) convolutions as in Keras' default give 150 -> 148 -> 74 -> 72 -> 36
    -> 34 -> 17 -> 15 -> 7, so the flattened feature vector has 7 * 7 * 128 = 6272 values.
    """
    layers: list[nn.Module] = []
    in_channels = 3
    for out_channels in (32, 64, 128, 128):
        layers += [nn.Conv2d(in_channels, out_channels, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
        in_channels = out_channels
    layers += [
        nn.Flatten(),
        nn.Linear(7 * 7 * 128, 512),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(512, num_classes),  # logits; softmax is in the loss and the exported graph
    ]
    return nn.Sequential(*layers)


def _conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """Two 3x3 conv + batch-norm layers with an identity shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(channels, channels),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.body(x))


def compact_resnet(num_classes: int) -> nn.Module:
    """A small residual network: strided convs halve the map four times (160 -> 10).

    About the paper network's compute (~0.25 GMAC) with a tenth of its parameters:
    batch norm and shortcuts train fast from scratch, and global average pooling
    replaces the 3.2M-parameter dense layer that overfits this small dataset.
    """
    return nn.Sequential(
        _conv_bn(3, 24, 2),
        _conv_bn(24, 48, 2),
        ResidualBlock(48),
        _conv_bn(48, 96, 2),
        ResidualBlock(96),
        _conv_bn(96, 192, 2),
        ResidualBlock(192),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(192, num_classes),
    )


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("paper", 150, paper_cnn, "the paper's 4-conv CNN, 150x150 input", Recipe()),
        Architecture(
            "compact",
            160,
            compact_resnet,
            "residual CNN with batch norm for CPU inference, 160x160 input",
            Recipe(
                epochs=40,
                learning_rate=2e-3,
                weight_decay=0.05,
                label_smoothing=0.1,
                schedule="cosine",
                warmup_epochs=1,
                # Axial slices are not upside-down in practice; the flip only costs epochs.
                augment=AugmentConfig(rotation_degrees=15, zoom_fraction=0.15, vertical_flip=False),
            ),
        ),
    )
}


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {name!r} (known: {known})") from None


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())

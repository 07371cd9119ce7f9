"""The networks `bt-train --arch NAME` can build; a new architecture is one more registry entry.

Each entry carries its whole input definition (a `PreprocessConfig`, as timm's per-model
`_cfg()` does) and its training recipe, so the input size is written once, here.

Every network implements `Network` (timm's split of a forward pass): `forward_features`
and `forward_head`, with `pre_logits=True` giving the vector the classifier reads. Export
builds its extra outputs (scope score, activation maps) from these parts and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn import functional

from ..runtime.preprocess import PreprocessConfig
from .augment import AugmentConfig
from .recipe import Recipe


@runtime_checkable
class Network(Protocol):
    """What every architecture offers, and all that training and export ask of one."""

    classifier: nn.Linear  # logits from the pre-logits vector (softmax is in the loss and the graph)
    # True where `forward_features` gives spatial maps that the head only pools: then the
    # classifier is linear in them, and class-activation maps are exact.
    spatial: bool
    # True where `fine_feature_maps` gives the maps at twice the resolution, same weights.
    fine_maps: bool

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last features before the head: N x C x H x W maps where `spatial`."""
        ...

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Features -> logits, or with `pre_logits` the vector the classifier reads."""
        ...

    def fine_feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """Where `fine_maps`: the spatial maps at twice the resolution."""
        ...


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[int], nn.Module]  # number of classes -> network
    preprocess: PreprocessConfig  # the input this network is trained and run on
    recipe: Recipe  # the defaults `bt-train --arch NAME` trains with
    # True where the network pools its maps globally, so its weights run at any input size:
    # `bt-train --size` may change the size, and `--init-from` a run at another size.
    any_size: bool = False


class PaperCNN(nn.Module):
    """The paper's network: 4 x (3x3 valid conv + ReLU + 2x2 max-pool), dense 512, dropout 0.5.

    Valid (unpadded) convolutions as in Keras' default; the flattened size follows from
    the input size (150 -> 7 x 7 x 128) and is measured with a dummy forward pass.
    """

    def __init__(self, num_classes: int, input_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for out_channels in (32, 64, 128, 128):
            layers += [nn.Conv2d(in_channels, out_channels, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            in_channels = out_channels
        self.body = nn.Sequential(*layers, nn.Flatten())
        with torch.no_grad():
            flat = self.body(torch.zeros(1, 3, input_size, input_size)).shape[1]
        self.dense = nn.Sequential(nn.Linear(flat, 512), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(0.5)
        self.classifier = nn.Linear(512, num_classes)  # logits; softmax is in loss and graph

    spatial = False  # flatten + dense: no class-activation maps
    fine_maps = False

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)  # flattened: the dense layer reads every position

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        vector = self.dense(features)
        return vector if pre_logits else self.classifier(self.dropout(vector))

    def fine_feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("the paper's network has no spatial maps")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


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


class CompactResNet(nn.Module):
    """A small residual network: strided convs halve the map four times (160 -> 10).

    About the paper network's compute (~0.25 GMAC) with a tenth of its parameters:
    batch norm and shortcuts train fast from scratch, and global average pooling
    replaces the 3.2M-parameter dense layer that overfits this small dataset. Pooling
    last also makes class-activation maps exact: the classifier is linear in the maps.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _conv_bn(3, 24, 2),
            _conv_bn(24, 48, 2),
            ResidualBlock(48),
            _conv_bn(48, 96, 2),
            ResidualBlock(96),
            _conv_bn(96, 192, 2),
            ResidualBlock(192),
        )
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(192, num_classes)

    spatial = True
    fine_maps = True

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        vector = features.mean(dim=(2, 3))  # global average pooling
        return vector if pre_logits else self.classifier(self.dropout(vector))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def fine_feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature maps at twice the resolution (20 x 20 for a 160 input), same weights.

        The last stage is evaluated at every position of its input instead of every other
        one: its strided conv at stride 1, and the residual block's convs dilated by 2 so
        they still reach the neighbours they were trained on (shift-and-stitch, or the
        "a trous" trick). Every other row and column is exactly `forward_features(x)`; the rest
        are the same network applied with the input grid shifted by half a cell, so a map
        built on them localises twice as finely with no retraining.
        """
        x = self.body[:-2](x)
        down, block = self.body[-2], self.body[-1]
        convolution, norm, relu = down
        x = relu(norm(functional.conv2d(x, convolution.weight, None, 1, 1)))
        (first, first_norm, first_relu), second, second_norm = block.body
        y = first_relu(first_norm(functional.conv2d(x, first.weight, None, 1, 2, 2)))
        y = second_norm(functional.conv2d(y, second.weight, None, 1, 2, 2))
        return block.relu(x + y)


_PAPER_INPUT = PreprocessConfig(size=150)
# RGB, pixels / 255. Grey input with per-image percentile scaling, and the style
# augmentations in train/augment.py, were tried for the bundled model and not kept: on
# 2 CPU cores they cost 4.5 points of Testing accuracy and moved the external miss rate
# by 3 points only (model card, "Generalisation"); bench/generalisation_train.py trains them.
_COMPACT_INPUT = PreprocessConfig(size=160)

ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("paper", lambda n: PaperCNN(n, _PAPER_INPUT.size), _PAPER_INPUT, Recipe()),
        Architecture(
            "compact",
            CompactResNet,
            _COMPACT_INPUT,
            Recipe(
                epochs=24,
                learning_rate=2e-3,
                weight_decay=0.05,
                label_smoothing=0.1,
                schedule="cosine",
                warmup_epochs=1,
                # Axial slices are not upside-down in practice; the flip only costs epochs.
                augment=AugmentConfig(rotation_degrees=15, zoom_fraction=0.15, vertical_flip=False),
                balance_types=True,
                ema_decay=0.998,  # ~500 steps: about one epoch of the bundled mix
                smoothing_epochs=3,
                # 112 px costs 0.44x the compute of 160 px (bench/train_speed.py); the last
                # 30% of the epochs at 160 px settle the weights at the size that ships.
                early_size=112,
                early_fraction=0.7,
                early_validate_every=6,
            ),
            any_size=True,
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

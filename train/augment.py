"""Training augmentation on uint8 C x S x S tensors: the paper's geometry, plus style changes.

The geometric part is the paper's (rotation, shift, zoom, flips). The style part exists
because this dataset's classes come from different collections: tumour slices mostly
from one source of contrast-enhanced T1 images, `notumor` mostly from others. A network
can then separate classes by acquisition style (contrast, sharpness, noise, JPEG history,
framing) instead of anatomy. Each style step below randomises one such cue; all are off
by default so the paper's recipe stays the paper's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


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
    # Style (0 = off). crop_scale: random resized crop keeping at least this share of
    # the area, with aspect 3:4..4:3 (framing and the source's stretch).
    crop_scale: float = 0.0
    gamma: float = 0.0  # gamma drawn log-uniformly from [exp(-g), exp(g)]
    contrast: float = 0.0  # brightness and contrast factors in [1 - c, 1 + c]
    blur_probability: float = 0.0  # Gaussian blur, sigma 0.1..1.5
    noise_std: float = 0.0  # Gaussian noise, std up to this many grey levels
    jpeg_probability: float = 0.0  # re-compress at a random quality 30..95
    invert_probability: float = 0.0  # invert the head's grey levels (T1-like <-> T2-like)
    # Remap the head's grey levels through a random smooth curve (monotonic or not), so
    # which tissue is bright, i.e. the MR sequence, stops being a cue; a tumour stays a
    # region that differs from its surroundings under any such curve.
    curve_probability: float = 0.0


class _RandomGamma:
    def __init__(self, strength: float) -> None:
        self.strength = strength

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        gamma = float(torch.empty(1).uniform_(-self.strength, self.strength).exp())
        return F.adjust_gamma(image, gamma)


class _RandomNoise:
    def __init__(self, max_std: float) -> None:
        self.max_std = max_std

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        std = float(torch.empty(1).uniform_(0.0, self.max_std))
        # One noise field for all channels: the image stays grey.
        noise = torch.randn(image.shape[-2:]) * std
        return (image.float() + noise).round().clamp(0, 255).to(torch.uint8)


class _RandomJpeg:
    """Re-compress at a random JPEG quality, through OpenCV (the runtime's decoder).

    torchvision's own JPEG transform rides on its image codecs, deprecated since 0.29.
    """

    def __init__(self, quality: tuple[int, int]) -> None:
        self.quality = quality

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        quality = int(torch.randint(self.quality[0], self.quality[1] + 1, (1,)))
        pixels = image.permute(1, 2, 0).contiguous().numpy()  # C x H x W -> H x W x C
        ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            return image
        flag = cv2.IMREAD_GRAYSCALE if pixels.shape[2] == 1 else cv2.IMREAD_COLOR
        decoded = cv2.imdecode(encoded, flag).reshape(pixels.shape)
        return torch.from_numpy(decoded).permute(2, 0, 1).contiguous()


class _InvertTissue:
    """Invert the grey levels inside the head, keeping the background black.

    Inverting the whole frame would give a white background that no scan has; inverting
    the tissue turns dark-fluid (T1-like) contrast into bright-fluid (T2-like) and back.
    """

    def __init__(self, probability: float) -> None:
        self.probability = probability

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if float(torch.rand(1)) >= self.probability:
            return image
        tissue = image > 10
        return torch.where(tissue, 255 - image, image)


class _RandomIntensityCurve:
    """Map grey levels through a random piecewise-linear curve; the background stays black.

    The curve passes through (0, 0) and five random control points spread over 1..255,
    each output drawn uniformly from 0..255, so it may invert or fold the contrast. Ideas
    from random-intensity augmentation for cross-sequence MRI (e.g. GIN, SynthSeg).
    """

    def __init__(self, probability: float, points: int = 5) -> None:
        self.probability = probability
        self.points = points

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if float(torch.rand(1)) >= self.probability:
            return image
        inputs = torch.linspace(0, 255, self.points + 1)
        outputs = torch.cat([torch.zeros(1), torch.rand(self.points) * 255])
        # Piecewise-linear lookup table over the 256 grey levels.
        levels = torch.arange(256, dtype=torch.float32)
        segment = torch.clamp(torch.bucketize(levels, inputs[1:-1]), max=self.points - 1)
        start, end = inputs[segment], inputs[segment + 1]
        weight = (levels - start) / (end - start)
        table = outputs[segment] * (1 - weight) + outputs[segment + 1] * weight
        table[:11] = levels[:11]  # keep the background (<= 10, as _InvertTissue) as it was
        return table.round().to(torch.uint8)[image.long()]


def build_augmentation(config: AugmentConfig, size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    zoom = config.zoom_fraction
    steps: list[Callable[[torch.Tensor], torch.Tensor]] = [
        v2.RandomAffine(
            degrees=config.rotation_degrees,
            translate=(config.shift_fraction, config.shift_fraction),
            scale=(1.0 - zoom, 1.0 + zoom),
            interpolation=v2.InterpolationMode.BILINEAR,
            fill=config.fill,
        )
    ]
    if config.crop_scale:
        steps.append(v2.RandomResizedCrop(size, scale=(config.crop_scale, 1.0), ratio=(0.75, 4 / 3)))
    if config.horizontal_flip:
        steps.append(v2.RandomHorizontalFlip())
    if config.vertical_flip:
        steps.append(v2.RandomVerticalFlip())
    if config.invert_probability:
        steps.append(_InvertTissue(config.invert_probability))
    if config.curve_probability:
        steps.append(_RandomIntensityCurve(config.curve_probability))
    if config.gamma:
        steps.append(_RandomGamma(config.gamma))
    if config.contrast:
        steps.append(v2.ColorJitter(brightness=config.contrast, contrast=config.contrast))
    if config.blur_probability:
        steps.append(v2.RandomApply([v2.GaussianBlur(5, sigma=(0.1, 1.5))], p=config.blur_probability))
    if config.noise_std:
        steps.append(v2.RandomApply([_RandomNoise(config.noise_std)], p=0.5))
    if config.jpeg_probability:
        # Last: whatever the source's compression history was, this one is the newest.
        steps.append(v2.RandomApply([_RandomJpeg((30, 95))], p=config.jpeg_probability))
    return v2.Compose(steps)


def augment_batch(
    batch: torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor], grey: bool = False
) -> torch.Tensor:
    """Apply `transform` to each image of an N x 3 x S x S uint8 batch with its own random draw.

    torchvision applies one draw to a whole batch tensor, which would make every image
    in a batch rotate the same way, hence the loop. Grey batches (three equal channels)
    are transformed on one channel and copied back to three: a third of the work, same result.
    """
    if grey:
        return torch.stack([transform(image[:1]) for image in batch]).expand(-1, 3, -1, -1).contiguous()
    return torch.stack([transform(image) for image in batch])

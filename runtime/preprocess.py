"""The one preprocessing definition: bytes -> decoded RGB -> resized uint8 -> network input.

Training (via its in-memory cache), the export parity checks and `bt-classify` all call
these functions, so a model sees at inference exactly what it saw in training. The
settings travel inside each ONNX model's metadata (see `runtime.metadata`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .errors import ImageError
from .image_header import check_header

_INTERPOLATIONS = {"area": cv2.INTER_AREA, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


@dataclass(frozen=True)
class PreprocessConfig:
    """How an image becomes a network input; stored in the model so the runtime hard-codes nothing."""

    size: int = 150
    channel_order: str = "RGB"
    interpolation: str = "area"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    # MR slices are grey: converting to grey (luma, copied to three channels) removes the
    # colour tints some exports carry, a cue of the source rather than of the anatomy.
    grayscale: bool = False
    # "fixed": pixel * scale. "percentile": per image, the low..high percentiles of its own
    # values map to 0..1 (clipped), so a scanner's or exporter's intensity range and
    # windowing stop being a cue; `scale` is then unused.
    intensity: str = "fixed"
    percentiles: tuple[float, float] = (0.5, 99.5)

    def __post_init__(self) -> None:
        if self.channel_order not in ("RGB", "BGR"):
            raise ValueError(f"channel_order must be RGB or BGR, not {self.channel_order!r}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {sorted(_INTERPOLATIONS)}")
        if self.size < 8:
            raise ValueError("size must be at least 8 pixels")
        if self.intensity not in ("fixed", "percentile"):
            raise ValueError(f"intensity must be fixed or percentile, not {self.intensity!r}")
        low, high = self.percentiles
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, not {self.percentiles}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> PreprocessConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, raw: dict) -> PreprocessConfig:
        """Older models lack the newer keys: their defaults reproduce what those models saw."""
        raw = dict(raw)
        for key in ("mean", "std", "percentiles"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        # 16-bit containers often hold 10- or 12-bit data: scale by the smallest bit
        # depth that holds the brightest pixel, not by 65535 (which would give a
        # near-black image) and not by min-max (which would brighten dim scans).
        peak = int(image.max())
        if peak == 0:
            return np.zeros(image.shape, np.uint8)
        full_scale = (1 << peak.bit_length()) - 1
        return np.round(image.astype(np.float32) * (255.0 / full_scale)).astype(np.uint8)
    if image.dtype in (np.float32, np.float64):
        finite = np.nan_to_num(image.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(finite.min()), float(finite.max())
        if high <= low:
            return np.zeros(image.shape, np.uint8)
        return np.round((finite - low) * (255.0 / (high - low))).astype(np.uint8)
    raise ImageError(f"unsupported pixel type {image.dtype}")


def decode_image(data: bytes, channel_order: str = "RGB") -> np.ndarray:
    """Decode file bytes into an HxWx3 uint8 image in `channel_order`.

    Grayscale is replicated to three channels, alpha is dropped, 16-bit and float
    images are brought to 8 bits. Raises ImageError with a short reason on bad input.
    """
    if not data:
        raise ImageError("empty file")
    check_header(data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise ImageError("not a decodable image")
    image = _to_uint8(image)
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    if channels == 2:  # grey + alpha
        return np.ascontiguousarray(np.repeat(image[:, :, :1], 3, axis=2))
    if channels not in (3, 4):
        raise ImageError(f"unsupported channel count {channels}")
    # OpenCV decodes colour as BGR(A).
    code = cv2.COLOR_BGR2RGB if channels == 3 else cv2.COLOR_BGRA2RGB
    if channel_order == "BGR":
        return np.ascontiguousarray(image[:, :, :3])
    return cv2.cvtColor(image, code)


def resize_chw(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Resize an HxWx3 uint8 image to the network's square input, as 3xSxS uint8 (grey if asked).

    Non-square images are stretched, not padded: the training copy of the dataset
    was made by stretching the originals to 224x224, so stretching matches it.
    """
    resized = cv2.resize(
        image, (config.size, config.size), interpolation=_INTERPOLATIONS[config.interpolation]
    )
    if config.grayscale:
        code = cv2.COLOR_RGB2GRAY if config.channel_order == "RGB" else cv2.COLOR_BGR2GRAY
        grey = cv2.cvtColor(resized, code)
        return np.ascontiguousarray(np.broadcast_to(grey, (3, *grey.shape)))
    return np.ascontiguousarray(resized.transpose(2, 0, 1))


def load_image(data: bytes, config: PreprocessConfig) -> np.ndarray:
    """File bytes -> 3xSxS uint8, the form training caches and the runtime batches."""
    return resize_chw(decode_image(data, config.channel_order), config)


def image_percentiles(batch: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """N x 2 float32: the low and high percentile of each uint8 image's values.

    Counted from a 256-bin histogram per image (exact for uint8, and far cheaper than
    sorting): low = the lowest value whose cumulative share exceeds the low percentile,
    high = the lowest value whose cumulative share reaches the high one, so (0, 100) gives
    the image's own minimum and maximum.
    """
    count = len(batch)
    flat = batch.reshape(count, -1)
    offsets = (np.arange(count, dtype=np.int64) * 256)[:, None]
    histogram = np.bincount((flat + offsets).ravel(), minlength=count * 256).reshape(count, 256)
    cumulative = np.cumsum(histogram, axis=1) / flat.shape[1]
    low, high = percentiles
    lows = (cumulative <= low / 100.0).sum(axis=1)
    highs = (cumulative < high / 100.0).sum(axis=1)
    return np.stack([lows, highs], axis=1).clip(0, 255).astype(np.float32)


def normalize(batch: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Nx3xSxS uint8 -> float32 network input: intensity scaling, then (x - mean) / std."""
    mean = np.asarray(config.mean, np.float32).reshape(1, 3, 1, 1)
    inv_std = 1.0 / np.asarray(config.std, np.float32).reshape(1, 3, 1, 1)
    out = batch.astype(np.float32)
    if config.intensity == "percentile":
        bounds = image_percentiles(batch, config.percentiles)
        low = bounds[:, 0].reshape(-1, 1, 1, 1)
        span = np.maximum(bounds[:, 1] - bounds[:, 0], 1.0).reshape(-1, 1, 1, 1)
        out -= low
        out /= span
        np.clip(out, 0.0, 1.0, out=out)
    else:
        out *= np.float32(config.scale)
    out -= mean
    out *= inv_std
    return out

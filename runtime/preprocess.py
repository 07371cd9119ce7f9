"""The one preprocessing definition: bytes -> decoded RGB -> resized uint8 -> network input.

Training (via its in-memory cache), the export parity checks and `bt-classify` all call
these functions, so a model sees at inference exactly what it saw in training. The
settings travel inside each ONNX model's metadata (see `runtime.metadata`).
"""

from __future__ import annotations

import json
import struct
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


# EXIF orientation (tag 0x0112) -> the OpenCV operations that show the image as a viewer
# does: rotate (90 clockwise, 180, 90 counter-clockwise) after an optional left-right flip.
_ORIENTATIONS = {
    2: (True, None),
    3: (False, cv2.ROTATE_180),
    4: (True, cv2.ROTATE_180),
    5: (True, cv2.ROTATE_90_COUNTERCLOCKWISE),
    6: (False, cv2.ROTATE_90_CLOCKWISE),
    7: (True, cv2.ROTATE_90_CLOCKWISE),
    8: (False, cv2.ROTATE_90_COUNTERCLOCKWISE),
}
_EXIF = getattr(cv2, "IMAGE_METADATA_EXIF", 0)


def exif_orientation(exif: bytes) -> int:
    """The Orientation tag of an EXIF block (a small TIFF structure); 1 (as stored) when absent."""
    exif = exif.removeprefix(b"Exif\x00\x00")
    if len(exif) < 8 or exif[:2] not in (b"II", b"MM"):
        return 1
    order = "<" if exif[:2] == b"II" else ">"
    (offset,) = struct.unpack(order + "I", exif[4:8])
    if offset + 2 > len(exif):
        return 1
    (count,) = struct.unpack(order + "H", exif[offset : offset + 2])
    for entry in range(min(count, 512)):
        start = offset + 2 + 12 * entry
        if start + 12 > len(exif):
            break
        tag, kind = struct.unpack(order + "HH", exif[start : start + 4])
        if tag == 0x0112 and kind == 3:  # SHORT
            return struct.unpack(order + "H", exif[start + 8 : start + 10])[0]
    return 1


def _imdecode(data: bytes) -> tuple[np.ndarray | None, int]:
    """OpenCV's decode with every channel and bit depth kept (alpha, 16 bits), and the EXIF
    orientation read alongside: IMREAD_UNCHANGED alone would keep alpha but ignore it."""
    buffer = np.frombuffer(data, np.uint8)
    with_metadata = getattr(cv2, "imdecodeWithMetadata", None)  # OpenCV >= 4.12
    if with_metadata is None:
        return cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED), 1
    image, kinds, blobs = with_metadata(buffer, flags=cv2.IMREAD_UNCHANGED)
    kinds = [int(kind) for kind in np.ravel(kinds)] if kinds is not None else []
    orientation = exif_orientation(bytes(np.ravel(blobs[kinds.index(_EXIF)]))) if _EXIF in kinds else 1
    return image, orientation


def _orient(image: np.ndarray, orientation: int) -> np.ndarray:
    flip, rotation = _ORIENTATIONS.get(orientation, (False, None))
    if flip:
        image = cv2.flip(image, 1)
    return image if rotation is None else cv2.rotate(image, rotation)


def _on_black(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Transparent pixels composited on black, as MR viewers show them (a white, fully
    transparent background stays black instead of turning the slice into a white page)."""
    weight = alpha.astype(np.float32) / 255.0
    return np.round(colour.astype(np.float32) * weight[:, :, None]).astype(np.uint8)


def to_rgb(image: np.ndarray, channel_order: str = "RGB") -> np.ndarray:
    """A decoded OpenCV image (grey, grey + alpha, BGR, BGRA; any bit depth) -> HxWx3 uint8
    in `channel_order`, alpha composited on black."""
    image = _to_uint8(image)
    if image.ndim == 2:
        image = image[:, :, None]
    channels = image.shape[2]
    if channels == 2:  # grey + alpha
        image = _on_black(image[:, :, :1], image[:, :, 1])
        channels = 1
    if channels == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    if channels not in (3, 4):
        raise ImageError(f"unsupported channel count {channels}")
    if channels == 4:
        image = _on_black(image[:, :, :3], image[:, :, 3])
    # OpenCV decodes colour as BGR.
    if channel_order == "BGR":
        return np.ascontiguousarray(image)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def decode_image(data: bytes, channel_order: str = "RGB") -> np.ndarray:
    """Decode file bytes into an HxWx3 uint8 image in `channel_order`, as a viewer shows it.

    Grayscale is replicated to three channels, alpha is composited on black, 16-bit and
    float images are brought to 8 bits, EXIF orientation is applied; a multi-page TIFF
    gives its first page here (`decode_pages` gives them all). Raises ImageError with a
    short reason on bad input.
    """
    if not data:
        raise ImageError("empty file")
    check_header(data)
    return _decode_checked(data, channel_order)


def _decode_checked(data: bytes, channel_order: str) -> np.ndarray:
    image, orientation = _imdecode(data)
    if image is None or image.size == 0:
        raise ImageError("not a decodable image")
    return to_rgb(_orient(image, orientation), channel_order)


def decode_pages(data: bytes, channel_order: str = "RGB") -> list[np.ndarray]:
    """Every page of a multi-page TIFF (one image for any other file), each as `decode_image`
    gives it; the header check bounds the pages' pixels together."""
    if not data:
        raise ImageError("empty file")
    if check_header(data) <= 1:
        return [_decode_checked(data, channel_order)]
    ok, pages = cv2.imdecodemulti(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if not ok or not pages:
        raise ImageError("not a decodable image")
    return [to_rgb(page, channel_order) for page in pages]


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

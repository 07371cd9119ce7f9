import io
import json

import cv2
import numpy as np
import pytest

from brain_tumor_edge.runtime.errors import ImageError
from brain_tumor_edge.runtime.preprocess import (
    PreprocessConfig,
    decode_image,
    load_image,
    normalize,
    resize_chw,
)
from tests.conftest import sample_files


def encode(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, buffer = cv2.imencode(ext, image)
    assert ok
    return buffer.tobytes()


def test_config_round_trips_through_json():
    config = PreprocessConfig(size=96, channel_order="BGR", mean=(0.1, 0.2, 0.3), std=(1.0, 2.0, 3.0))
    assert PreprocessConfig.from_json(config.to_json()) == config


def test_config_rejects_nonsense():
    with pytest.raises(ValueError):
        PreprocessConfig(channel_order="CMYK")
    with pytest.raises(ValueError):
        PreprocessConfig(interpolation="magic")


def test_colour_is_returned_in_rgb_order():
    bgr = np.zeros((10, 12, 3), np.uint8)
    bgr[:, :, 0] = 200  # blue in OpenCV's order
    rgb = decode_image(encode(bgr))
    assert rgb.shape == (10, 12, 3)
    assert rgb[0, 0].tolist() == [0, 0, 200]
    assert decode_image(encode(bgr), "BGR")[0, 0].tolist() == [200, 0, 0]


def test_grayscale_and_rgba_become_three_channel_rgb():
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8)
    out = decode_image(encode(grey))
    assert out.shape == (8, 8, 3)
    assert (out[:, :, 0] == grey).all() and (out[:, :, 2] == grey).all()
    rgba = np.dstack([np.full((8, 8, 3), 90, np.uint8), np.full((8, 8), 255, np.uint8)])
    assert decode_image(encode(rgba)).shape == (8, 8, 3)


def test_sixteen_bit_is_scaled_by_its_actual_bit_depth():
    original = np.array([[0, 17, 128, 255]], np.uint8)
    twelve_bit = original.astype(np.uint16) * 16  # 12-bit data in a 16-bit container
    full_16_bit = original.astype(np.uint16) * 257
    for image in (twelve_bit, full_16_bit):
        decoded = decode_image(encode(image))[:, :, 0]
        assert np.abs(decoded.astype(int) - original.astype(int)).max() <= 1


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"hello, I am text", "not a decodable image"),
        (b"<html><body>404</body></html>", "not a decodable image"),
    ],
)
def test_bad_bytes_raise_a_short_reason(data, reason):
    with pytest.raises(ImageError, match=reason):
        decode_image(data)


def test_truncated_jpeg_is_refused_with_its_own_reason():
    data = sample_files()[0].read_bytes()
    truncated = data[: len(data) // 2]
    with pytest.raises(ImageError, match="truncated"):
        decode_image(truncated)


def test_load_image_gives_the_network_layout():
    config = PreprocessConfig(size=150)
    image = load_image(sample_files()[0].read_bytes(), config)
    assert image.shape == (3, 150, 150) and image.dtype == np.uint8


def test_normalize_scales_to_unit_range_and_applies_mean_std():
    batch = np.full((2, 3, 4, 4), 255, np.uint8)
    assert np.allclose(normalize(batch, PreprocessConfig()), 1.0)
    config = PreprocessConfig(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    out = normalize(batch, config)
    assert out.dtype == np.float32 and np.allclose(out, 2.0)


def test_grey_and_percentile_settings_survive_the_metadata_round_trip():
    from brain_tumor_edge.runtime.metadata import ModelMetadata

    config = PreprocessConfig(size=160, grayscale=True, intensity="percentile", percentiles=(1.0, 99.0))
    meta = ModelMetadata(class_names=("a", "b"), preprocess=config)
    assert ModelMetadata.from_props(meta.to_props()).preprocess == config
    # A model written before these settings existed reads back with the old behaviour.
    old = json.loads(config.to_json())
    for key in ("grayscale", "intensity", "percentiles"):
        del old[key]
    assert PreprocessConfig.from_json(json.dumps(old)) == PreprocessConfig(size=160)


def test_percentile_scaling_maps_each_image_by_its_own_range():
    config = PreprocessConfig(size=8, intensity="percentile", percentiles=(0.0, 100.0))
    dim = np.linspace(10, 60, 3 * 8 * 8).reshape(1, 3, 8, 8).round().astype(np.uint8)
    bright = (dim.astype(np.int32) * 4).clip(0, 255).astype(np.uint8)
    out = normalize(np.concatenate([dim, bright]), config)
    assert out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out[0], out[1], atol=0.03)  # a 4x brighter copy looks the same


def test_grayscale_input_has_three_equal_channels():
    config = PreprocessConfig(size=16, grayscale=True)
    colour = np.zeros((20, 20, 3), np.uint8)
    colour[:, :, 0] = 200
    chw = resize_chw(colour, config)
    assert chw.shape == (3, 16, 16) and (chw[0] == chw[1]).all() and (chw[1] == chw[2]).all()


# Round 3: images as viewers show them.


def _with_exif_orientation(image: np.ndarray, orientation: int, fmt: str) -> bytes:
    pil = pytest.importorskip("PIL.Image")
    picture = pil.fromarray(image)
    exif = picture.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    picture.save(buffer, fmt, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_is_applied_as_a_viewer_does(fmt):
    """A phone photo of a film is stored sideways with an orientation tag: 6 turns it a
    quarter clockwise, 3 a half, 8 a quarter back, 2 mirrors it."""
    image = np.zeros((40, 80, 3), np.uint8)
    image[:10, :20] = 255  # a bright top-left corner
    turned = {
        1: image,
        2: image[:, ::-1],
        3: image[::-1, ::-1],
        6: np.rot90(image, k=-1),
        8: np.rot90(image, k=1),
    }
    for orientation, expected in turned.items():
        decoded = decode_image(_with_exif_orientation(image, orientation, fmt))
        assert decoded.shape == expected.shape, (orientation, decoded.shape)
        corner = np.unravel_index(np.argmax(decoded[:, :, 0].astype(int) > 128), decoded.shape[:2])
        expected_corner = np.unravel_index(np.argmax(expected[:, :, 0] > 128), expected.shape[:2])
        assert corner == expected_corner, orientation


def test_bytes_after_a_jpegs_end_marker_are_accepted_and_a_cut_one_is_not():
    jpeg = sample_files()[0].read_bytes()
    padded = jpeg + b"\x00" * 4096 + b"camera trailer"
    assert np.array_equal(decode_image(padded), decode_image(jpeg))
    with pytest.raises(ImageError, match="truncated JPEG"):
        decode_image(jpeg[: len(jpeg) // 2])


def test_alpha_is_composited_on_black():
    """A slice on a transparent white background reads as a slice on black (as MR viewers
    show it), not as a white page."""
    slice_ = cv2.imread(str(sample_files()[0]), cv2.IMREAD_GRAYSCALE)
    rgba = np.full((*slice_.shape, 4), 255, np.uint8)
    brain = slice_ > 20
    rgba[:, :, 3] = np.where(brain, 255, 0)
    rgba[brain, :3] = slice_[brain, None]
    decoded = decode_image(encode(rgba))
    assert decoded[~brain].max() == 0
    assert np.array_equal(decoded[brain, 0], slice_[brain])
    pil = pytest.importorskip("PIL.Image")
    grey_alpha = np.dstack([np.full(slice_.shape, 255, np.uint8), rgba[:, :, 3]])
    buffer = io.BytesIO()
    pil.fromarray(grey_alpha, "LA").save(buffer, "PNG")  # grey + alpha (OpenCV cannot write it)
    assert decode_image(buffer.getvalue())[~brain].max() == 0


def test_every_page_of_a_multi_page_tiff_is_an_image():
    from brain_tumor_edge.runtime.preprocess import decode_pages

    pages = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in sample_files()[:3]]
    ok, data = cv2.imencodemulti(".tiff", pages)
    assert ok
    decoded = decode_pages(data.tobytes())
    assert len(decoded) == 3
    for page, image in zip(pages, decoded, strict=True):
        assert np.array_equal(image[:, :, 0], page)

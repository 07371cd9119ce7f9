from dataclasses import replace

import pytest
import torch

from brain_tumor_edge.train.augment import AugmentConfig, augment_batch, build_augmentation

STYLE = AugmentConfig(
    crop_scale=0.6,
    gamma=0.4,
    contrast=0.3,
    blur_probability=0.5,
    noise_std=8.0,
    jpeg_probability=0.5,
    invert_probability=0.5,
    curve_probability=0.5,
)


@pytest.mark.parametrize("config", [AugmentConfig(), STYLE], ids=["paper", "style"])
def test_augmentation_keeps_shape_dtype_and_range_and_varies_per_image(config):
    torch.manual_seed(0)
    batch = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8).repeat(8, 1, 1, 1)
    out = augment_batch(batch, build_augmentation(config, 64))
    assert out.shape == batch.shape and out.dtype == torch.uint8
    assert int(out.min()) >= 0 and int(out.max()) <= 255
    # Identical inputs get different random draws.
    assert len({bytes(image.numpy()) for image in out}) > 1


def test_grey_batches_stay_grey_through_every_style_step():
    torch.manual_seed(1)
    grey = torch.randint(0, 256, (4, 1, 48, 48), dtype=torch.uint8).expand(-1, 3, -1, -1).contiguous()
    out = augment_batch(grey, build_augmentation(STYLE, 48), grey=True)
    assert out.shape == grey.shape
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])


NO_GEOMETRY = AugmentConfig(
    rotation_degrees=0, shift_fraction=0, zoom_fraction=0, horizontal_flip=False, vertical_flip=False
)


def test_disabled_augmentation_is_identity_apart_from_the_affine():
    config = NO_GEOMETRY
    batch = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(augment_batch(batch, build_augmentation(config, 32)), batch)


def test_intensity_curve_is_one_grey_level_mapping_that_keeps_the_background():
    torch.manual_seed(2)
    image = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    curve = build_augmentation(replace(NO_GEOMETRY, curve_probability=1.0), 16)
    outs = [curve(image) for _ in range(20)]
    for out in outs:
        assert out.dtype == torch.uint8 and out.shape == image.shape
        # A lookup table: equal inputs give equal outputs, and the background (<= 10) is untouched.
        assert torch.equal(out.flatten()[:11], image.flatten()[:11])
    # The draws differ, and some reverse the order of the grey levels somewhere (not only
    # brighten or darken): that is what lets T1-like and T2-like contrast swap.
    assert len({bytes(out.numpy()) for out in outs}) == 20
    assert any(bool((out.flatten()[11:].to(torch.int16).diff() < 0).any()) for out in outs)

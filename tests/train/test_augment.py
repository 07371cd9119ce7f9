import torch

from brain_tumor_edge.train.augment import AugmentConfig, augment_batch, build_augmentation


def test_augmentation_keeps_shape_dtype_and_range_and_varies_per_image():
    torch.manual_seed(0)
    batch = torch.randint(0, 256, (1, 3, 64, 64), dtype=torch.uint8).repeat(8, 1, 1, 1)
    out = augment_batch(batch, build_augmentation(AugmentConfig()))
    assert out.shape == batch.shape and out.dtype == torch.uint8
    assert int(out.min()) >= 0 and int(out.max()) <= 255
    # Identical inputs get different random draws.
    assert len({bytes(image.numpy()) for image in out}) > 1


def test_disabled_augmentation_is_identity_apart_from_the_affine():
    config = AugmentConfig(
        rotation_degrees=0, shift_fraction=0, zoom_fraction=0, horizontal_flip=False, vertical_flip=False
    )
    batch = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(augment_batch(batch, build_augmentation(config)), batch)

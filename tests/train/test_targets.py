"""Labels of two grains: the loss of a "tumour, type unknown" image and the validation scores."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from brain_tumor_edge.train.loss import TwoGrainLoss  # noqa: E402
from brain_tumor_edge.train.targets import (  # noqa: E402
    TUMOUR_UNKNOWN,
    in_set,
    label_sets,
    validation_scores,
)

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")
NEGATIVE = 2


def _unknown_loss(logits: torch.Tensor) -> torch.Tensor:
    labels = torch.full((len(logits),), TUMOUR_UNKNOWN)
    return TwoGrainLoss(NEGATIVE)(logits, labels)


def test_unknown_type_loss_is_minus_log_one_minus_p_negative():
    logits = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    expected = -torch.log(1 - torch.softmax(logits, 1)[:, NEGATIVE]).mean()
    assert torch.allclose(_unknown_loss(logits), expected, atol=1e-6)


def test_class_labels_get_plain_cross_entropy_with_smoothing():
    logits = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    assert torch.allclose(TwoGrainLoss(NEGATIVE, 0.1)(logits, labels), expected, atol=1e-6)


def test_unknown_type_loss_does_not_depend_on_which_tumour_class():
    logits = torch.randn(32, 4, generator=torch.Generator().manual_seed(2))
    for order in ([3, 1, 2, 0], [1, 0, 2, 3], [0, 3, 2, 1]):
        assert torch.allclose(_unknown_loss(logits), _unknown_loss(logits[:, order]), atol=1e-6)


def test_an_unknown_type_image_never_pushes_one_tumour_class_over_another():
    """Gradient descent on the unknown-type loss raises every tumour logit in proportion to its
    share: tied tumour classes stay tied, and their order never changes, over many steps."""
    generator = torch.Generator().manual_seed(3)
    logits = torch.randn(64, 4, generator=generator)
    logits[:8, 1] = logits[:8, 0]  # some ties between glioma and meningioma
    start = logits.clone()
    logits.requires_grad_(True)
    for _ in range(50):
        loss = _unknown_loss(logits)
        (gradient,) = torch.autograd.grad(loss, logits)
        tumour = gradient[:, [0, 1, 3]]
        assert (tumour <= 0).all(), "every tumour class goes up"
        assert gradient[:, NEGATIVE].ge(0).all(), "the negative class goes down"
        with torch.no_grad():
            logits -= 5.0 * gradient
    final = logits.detach()
    tumour_columns = [0, 1, 3]
    assert torch.equal(start[:, tumour_columns].argsort(1), final[:, tumour_columns].argsort(1))
    assert torch.allclose(final[:8, 0], final[:8, 1])
    assert (torch.softmax(final, 1)[:, NEGATIVE] < torch.softmax(start, 1)[:, NEGATIVE]).all()


def test_mixed_batch_weights_unknown_images():
    logits = torch.randn(4, 4, generator=torch.Generator().manual_seed(4))
    labels = torch.tensor([0, TUMOUR_UNKNOWN, 3, TUMOUR_UNKNOWN])
    light, heavy = TwoGrainLoss(NEGATIVE, unknown_weight=0.5), TwoGrainLoss(NEGATIVE, unknown_weight=2.0)
    known_part = torch.nn.functional.cross_entropy(logits[[0, 2]], labels[[0, 2]], reduction="sum")
    unknown_part = -torch.log(1 - torch.softmax(logits[[1, 3]], 1)[:, NEGATIVE]).sum()
    assert torch.allclose(light(logits, labels), (known_part + 0.5 * unknown_part) / 4, atol=1e-6)
    assert torch.allclose(heavy(logits, labels), (known_part + 2.0 * unknown_part) / 4, atol=1e-6)


def test_label_sets_and_validation_scores():
    labels = np.array([0, 2, TUMOUR_UNKNOWN, TUMOUR_UNKNOWN])
    assert label_sets(labels, 4, NEGATIVE).tolist() == [
        [True, False, False, False],
        [False, False, True, False],
        [True, True, False, True],
        [True, True, False, True],
    ]
    probabilities = np.array(
        [
            [0.7, 0.1, 0.1, 0.1],  # glioma, right
            [0.6, 0.1, 0.2, 0.1],  # notumor called glioma: wrong
            [0.1, 0.1, 0.2, 0.6],  # unknown tumour called pituitary: in its set
            [0.1, 0.1, 0.7, 0.1],  # unknown tumour called notumor: missed
        ]
    )
    assert in_set(labels, probabilities.argmax(1), NEGATIVE).tolist() == [True, False, True, False]
    scores = validation_scores(probabilities, labels, NEGATIVE)
    assert scores["acc"] == 0.5
    assert scores["tumour_unknown_sensitivity"] == 0.5
    assert scores["set_acc"] == 0.5
    expected_loss = -np.mean(np.log([0.7, 0.2, 0.8, 0.3]))
    assert scores["loss"] == pytest.approx(expected_loss)

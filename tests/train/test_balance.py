"""Balanced tumour types: the shares each epoch's draw ends up with (train/balance.py)."""

import numpy as np

from brain_tumor_edge.train.balance import Balance, class_shares
from brain_tumor_edge.train.split import epoch_draw
from brain_tumor_edge.train.targets import TUMOUR_UNKNOWN

GLIOMA, MENINGIOMA, NOTUMOR, PITUITARY = range(4)
CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def _mix() -> tuple[np.ndarray, np.ndarray]:
    """Two sources like the bundled mix's: one balanced (Kaggle-like), one of gliomas and
    healthy slices only (BraTS-like), plus tumours of unknown type."""
    labels = np.concatenate(
        [
            np.repeat([GLIOMA, MENINGIOMA, NOTUMOR, PITUITARY], [100, 100, 120, 100]),
            np.repeat([GLIOMA, NOTUMOR], [500, 300]),
            np.full(80, TUMOUR_UNKNOWN),
        ]
    )
    sources = np.repeat([0, 1, 2], [420, 800, 80])
    return labels, sources


def test_a_balanced_draw_gives_every_tumour_type_the_same_share():
    labels, sources = _mix()
    plain = epoch_draw(sources, (1.0, 1.0, 1.0), seed=1, epoch=3)
    assert class_shares(plain, labels, CLASSES)["glioma"] > 0.45  # the prior shift the issue names
    balanced = epoch_draw(sources, (1.0, 1.0, 1.0), seed=1, epoch=3, labels=labels, balance=Balance(NOTUMOR))
    counts = np.bincount(labels[balanced][labels[balanced] >= 0], minlength=4)
    assert counts[GLIOMA] == counts[MENINGIOMA] == counts[PITUITARY] == round((600 + 100 + 100) / 3)
    assert counts[NOTUMOR] == 420  # negatives as the sources drew them
    assert (labels[balanced] == TUMOUR_UNKNOWN).sum() == 80  # unknown-type tumours untouched
    shares = class_shares(balanced, labels, CLASSES)
    assert shares["glioma"] == shares["meningioma"] == shares["pituitary"]
    assert shares["tumour (type unknown)"] == round(80 / len(balanced), 4)


def test_the_balanced_draw_keeps_source_proportions_within_a_class_and_is_reproducible():
    labels, sources = _mix()
    balance = Balance(NOTUMOR)
    draw = epoch_draw(sources, (1.0, 1.0, 1.0), seed=1, epoch=3, labels=labels, balance=balance)
    gliomas = draw[labels[draw] == GLIOMA]
    # Gliomas are thinned, not replaced: 267 of 600, about a sixth from the first source.
    assert len(set(gliomas)) == len(gliomas) == 267
    assert abs((sources[gliomas] == 0).mean() - 100 / 600) < 0.06
    meningiomas = draw[labels[draw] == MENINGIOMA]
    assert len(set(meningiomas)) == 100  # repeated whole, then a random share
    assert np.array_equal(draw, epoch_draw(sources, (1.0, 1.0, 1.0), 1, 3, labels, balance))
    assert not np.array_equal(draw, epoch_draw(sources, (1.0, 1.0, 1.0), 1, 4, labels, balance))


def test_negative_weight_scales_the_healthy_share_and_source_weights_still_apply():
    labels, sources = _mix()
    weights = (1.0, 0.5, 2.0)
    plain = labels[epoch_draw(sources, weights, 2, 1)]
    drawn = labels[epoch_draw(sources, weights, 2, 1, labels, Balance(NOTUMOR, negative_weight=1.5))]
    assert (drawn == NOTUMOR).sum() == round((plain == NOTUMOR).sum() * 1.5)
    assert (drawn == TUMOUR_UNKNOWN).sum() == 160  # the source's weight 2
    tumour_types = np.bincount(drawn[(drawn >= 0) & (drawn != NOTUMOR)], minlength=4)
    known_tumours = ((plain >= 0) & (plain != NOTUMOR)).sum()
    each = round(known_tumours / 3)
    assert tumour_types[GLIOMA] == tumour_types[MENINGIOMA] == tumour_types[PITUITARY] == each

"""Balanced tumour types in each epoch's draw, and the class shares it ends up with.

The mix's sources do not carry the tumour types in equal measure: BraTS, LGG and Feltrin
add gliomas, only Kaggle and Feltrin add the other types, so a plain draw is about 35%
glioma, 10% meningioma, 8% pituitary, and the network learns "a tumour I am unsure of is
a glioma". Balancing is done by *sampling*, not by loss weights: the draw's shares are
then what the network sees (printed each epoch and kept in the run's history), a
weighted loss would scale the gradient of a few rare images instead, and the tumour-
unknown images, whose loss is over the set of tumour types, stay exactly as they were.

Within a class the redraw keeps the sources' proportions (it repeats or thins the class's
own draw), so each source's weight still says how much of that source an epoch sees.
No torch here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .targets import TUMOUR_UNKNOWN, TUMOUR_UNKNOWN_NAME


@dataclass(frozen=True)
class Balance:
    negative: int  # the negative class's index (never a tumour type)
    negative_weight: float = 1.0


def balance_types(
    order: np.ndarray, labels: np.ndarray, balance: Balance, rng: np.random.Generator
) -> np.ndarray:
    """`order` (indices, repeats allowed) with every tumour type drawn equally often.

    The type-known tumour images keep their total; each type gets an equal part of it,
    its own drawn images repeated whole and then a random share without repetition.
    Negatives are scaled by `negative_weight` the same way; tumour-unknown images are
    left as drawn. The result is shuffled.
    """
    drawn = labels[order]
    types = [c for c in np.unique(drawn) if c >= 0 and c != balance.negative]
    tumour_total = int(np.isin(drawn, types).sum())
    parts = [order[drawn == TUMOUR_UNKNOWN]]
    for label in np.unique(drawn):
        if label == TUMOUR_UNKNOWN:
            continue
        members = order[drawn == label]
        if label == balance.negative:
            target = round(len(members) * balance.negative_weight)
        else:
            target = round(tumour_total / len(types))
        parts.append(_resize(members, target, rng))
    return rng.permutation(np.concatenate(parts))


def _resize(members: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    whole, rest = divmod(target, len(members))
    return np.concatenate([np.tile(members, whole), rng.choice(members, size=rest, replace=False)])


def class_shares(order: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """Each class's share of an epoch's draw (and the tumour-unknown images', when any)."""
    drawn = labels[order]
    shares = {name: float((drawn == index).mean()) for index, name in enumerate(class_names)}
    if (drawn == TUMOUR_UNKNOWN).any():
        shares[TUMOUR_UNKNOWN_NAME] = float((drawn == TUMOUR_UNKNOWN).mean())
    return {name: round(share, 4) for name, share in shares.items()}

"""The rule-out level: how sure the model must be before a row says "no tumour" unflagged.

Calling a tumour's type wrongly costs a second look; calling a tumour "no tumour" can
cost a missed diagnosis. So the negative class gets a stricter bar than the others: a
`notumor` answer whose calibrated probability is under the level keeps its prediction
but gets the review reason "tumour not ruled out" (runtime/reasons.py).

The level is chosen on the validation split (images the network never trained on) as
the `healthy_review_rate` quantile of the negative class's probability on the validation
images that truly are negative: by design about that share of healthy in-scope images
get the reason. Nothing from outside the training folder is used to fit or choose it.
The figures it was chosen on travel in the model's metadata beside the level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_HEALTHY = 20  # fewer healthy validation images give no usable 5th percentile


@dataclass(frozen=True)
class RuleOutConfig:
    negative_class: str = "notumor"
    # Share of healthy validation images sent for review: the price paid, on in-scope
    # healthy scans, for not saying "no tumour" on the uncertain ones.
    healthy_review_rate: float = 0.05

    def __post_init__(self) -> None:
        if not 0.0 < self.healthy_review_rate < 0.5:
            raise ValueError(f"healthy_review_rate must be in (0, 0.5), not {self.healthy_review_rate}")


def fit_rule_out(
    probabilities: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...], config: RuleOutConfig
) -> dict:
    """The metadata record: the level and what it does on the validation split (no level
    when the split holds too few healthy images to choose one)."""
    if config.negative_class not in class_names:
        raise ValueError(f"negative class {config.negative_class!r} is not one of {class_names}")
    negative = class_names.index(config.negative_class)
    healthy = labels == negative
    if healthy.sum() < MIN_HEALTHY:
        # A small run (a smoke test, a subset) still exports; it just carries no level.
        return {
            "class": config.negative_class,
            "not_fitted": f"only {int(healthy.sum())} {config.negative_class} validation images "
            f"(at least {MIN_HEALTHY} needed)",
        }
    negative_probability = probabilities[:, negative]
    level = float(np.quantile(negative_probability[healthy], config.healthy_review_rate))
    said_negative = probabilities.argmax(1) == negative
    tumour = ~healthy
    missed_before = said_negative & tumour
    missed_after = missed_before & (negative_probability >= level)
    reviewed = (negative_probability[healthy] < level).mean()
    return {
        "class": config.negative_class,
        "level": round(level, 6),
        "healthy_review_rate": config.healthy_review_rate,
        "chosen_on_images": len(labels),
        "validation_healthy_reviewed": round(float(reviewed), 4),
        "validation_tumours_missed": int(missed_before.sum()),
        "validation_tumours_missed_after": int(missed_after.sum()),
        "validation_tumours": int(tumour.sum()),
    }

"""The rule-out level: how sure the model must be before a row says "no tumour" unflagged.

Calling a tumour's type wrongly costs a second look; calling a tumour "no tumour" can
cost a missed diagnosis. So the negative class gets a stricter bar than the others: a
`notumor` answer whose calibrated probability is under the level keeps its prediction
but gets the review reason "tumour not ruled out" (runtime/reasons.py).

The level is chosen on the validation split (images the network never trained on), as
the higher of two bars:

- the `healthy_review_rate` quantile of the negative class's probability on the
  validation images that truly are negative (pooled): by design about that share of
  healthy in-scope images get the reason;
- with `max_missed_rate` and the sources of a mix: for each source, the lowest level at
  which at most that share of its tumour images is called negative *without* the
  reason; the highest of those. A bar that holds on the hardest source, not on the
  pooled figure the easy sources dominate.

The runtime does not know an image's source or sequence, so there is one level. The
figures it was chosen on, per source, travel in the model's metadata beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_HEALTHY = 20  # fewer healthy validation images give no usable 5th percentile


@dataclass(frozen=True)
class RuleOutConfig:
    # Share of healthy validation images sent for review: the price paid, on in-scope
    # healthy scans, for not saying "no tumour" on the uncertain ones.
    healthy_review_rate: float = 0.05
    # Share of each source's tumour validation images that may be called negative with no
    # reason; None: the pooled healthy quantile alone.
    max_missed_rate: float | None = 0.05
    # The level never goes above this (a level of 1 would send every "no tumour" to review).
    max_level: float = 0.98

    def __post_init__(self) -> None:
        if not 0.0 < self.healthy_review_rate < 0.5:
            raise ValueError(f"healthy_review_rate must be in (0, 0.5), not {self.healthy_review_rate}")


def fit_rule_out(
    probabilities: np.ndarray,
    labels: np.ndarray,
    class_names: tuple[str, ...],
    negative_class: str,
    config: RuleOutConfig,
    sources: np.ndarray | None = None,
    source_names: tuple[str, ...] = (),
) -> dict:
    """The metadata record: the level and what it does on the validation split, overall and
    per source (no level when the split holds too few healthy images to choose one)."""
    if negative_class not in class_names:
        raise ValueError(f"negative class {negative_class!r} is not one of {class_names}")
    negative = class_names.index(negative_class)
    healthy = labels == negative
    if healthy.sum() < MIN_HEALTHY:
        # A small run (a smoke test, a subset) still exports; it just carries no level.
        return {
            "class": negative_class,
            "not_fitted": f"only {int(healthy.sum())} {negative_class} validation images "
            f"(at least {MIN_HEALTHY} needed)",
        }
    negative_probability = probabilities[:, negative]
    said_negative = probabilities.argmax(1) == negative
    tumour = ~healthy
    level = float(np.quantile(negative_probability[healthy], config.healthy_review_rate))
    chosen_by = "healthy_review_rate"
    sources = np.zeros(len(labels), np.int64) if sources is None else np.asarray(sources)
    names = source_names or tuple(f"source {i}" for i in range(int(sources.max()) + 1))
    if config.max_missed_rate is not None:
        for index, name in enumerate(names):
            mine = sources == index
            needed = _level_for_misses(negative_probability[mine & tumour & said_negative],
                                       int((mine & tumour).sum()), config.max_missed_rate)  # fmt: skip
            if needed > level:
                level, chosen_by = needed, f"max_missed_rate on {name}"
    level = min(level, config.max_level)
    per_source = {}
    for index, name in enumerate(names):
        mine = sources == index
        per_source[name] = {
            "healthy": int((mine & healthy).sum()),
            "healthy_reviewed": _share((negative_probability < level)[mine & healthy]),
            "tumours": int((mine & tumour).sum()),
            "tumours_missed_before": _share((said_negative)[mine & tumour]),
            "tumours_missed_after": _share((said_negative & (negative_probability >= level))[mine & tumour]),
        }
    missed_before = said_negative & tumour
    missed_after = missed_before & (negative_probability >= level)
    return {
        "class": negative_class,
        "level": round(level, 6),
        "healthy_review_rate": config.healthy_review_rate,
        "max_missed_rate": config.max_missed_rate,
        "chosen_by": chosen_by,
        "chosen_on_images": len(labels),
        "validation_healthy_reviewed": round(float((negative_probability[healthy] < level).mean()), 4),
        "validation_tumours_missed": int(missed_before.sum()),
        "validation_tumours_missed_after": int(missed_after.sum()),
        "validation_tumours": int(tumour.sum()),
        "per_source": per_source,
    }


def _level_for_misses(missed_scores: np.ndarray, tumours: int, rate: float) -> float:
    """The lowest level at which at most `rate` of `tumours` stay called negative unflagged,
    given the negative-class probabilities of those called negative."""
    allowed = int(np.floor(rate * tumours))
    if len(missed_scores) <= allowed:
        return 0.0
    # Flag all but the `allowed` most confident: the level sits just above the next one.
    ordered = np.sort(missed_scores)[::-1]
    return float(np.nextafter(ordered[allowed], 1.0))


def _share(mask: np.ndarray) -> float | None:
    return round(float(mask.mean()), 4) if len(mask) else None

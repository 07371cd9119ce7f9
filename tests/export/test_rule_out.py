import numpy as np
import pytest

from brain_tumor_edge.export.rule_out import RuleOutConfig, fit_rule_out

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def _validation(rng: np.random.Generator, healthy: int = 200, tumours: int = 300):
    """Healthy images mostly sure of notumor, a few tumours that the model calls notumor."""
    labels = np.concatenate([np.full(healthy, 2), rng.integers(0, 2, tumours) * 3])
    sure = rng.uniform(0.9, 1.0, len(labels))
    probabilities = np.zeros((len(labels), 4))
    probabilities[np.arange(len(labels)), labels] = sure
    probabilities[np.arange(len(labels)), (labels + 1) % 4] = 1 - sure
    fooled = np.flatnonzero(labels != 2)[:6]  # six tumours called notumor, not very surely
    probabilities[fooled] = [0.0, 0.0, 0.85, 0.15]
    return probabilities, labels


def test_level_sends_the_stated_share_of_healthy_images_for_review():
    probabilities, labels = _validation(np.random.default_rng(0))
    record = fit_rule_out(probabilities, labels, CLASSES, "notumor", RuleOutConfig(healthy_review_rate=0.1))
    healthy = probabilities[labels == 2, 2]
    assert record["class"] == "notumor" and record["chosen_on_images"] == len(labels)
    assert abs((healthy < record["level"]).mean() - 0.1) <= 0.01
    reviewed = (healthy < record["level"]).mean()
    assert record["validation_healthy_reviewed"] == pytest.approx(reviewed, abs=1e-4)
    # The six unsure "no tumour" answers on tumours fall under the level: none stays missed.
    assert (record["validation_tumours_missed"], record["validation_tumours_missed_after"]) == (6, 0)


def test_a_stricter_rate_gives_a_higher_level():
    probabilities, labels = _validation(np.random.default_rng(1))
    low = fit_rule_out(probabilities, labels, CLASSES, "notumor", RuleOutConfig(healthy_review_rate=0.02))
    high = fit_rule_out(probabilities, labels, CLASSES, "notumor", RuleOutConfig(healthy_review_rate=0.2))
    assert low["level"] < high["level"]


def test_bad_settings_are_refused():
    probabilities, labels = _validation(np.random.default_rng(2))
    with pytest.raises(ValueError, match="not one of"):
        fit_rule_out(probabilities, labels, CLASSES, "healthy", RuleOutConfig())
    # Too few healthy validation images: the export goes on, with no level.
    record = fit_rule_out(probabilities[-50:], labels[-50:], CLASSES, "notumor", RuleOutConfig())
    assert "level" not in record and "needed" in record["not_fitted"]
    with pytest.raises(ValueError, match="healthy_review_rate"):
        RuleOutConfig(healthy_review_rate=0.0)


def test_the_level_rises_until_the_hardest_source_misses_few_enough_tumours():
    """Source 0 is easy; in source 1, ten tumours are called notumor at p = 0.60..0.69. With
    at most 5% of its 40 tumours missed unflagged, all but 2 of those ten must fall under
    the level, whatever the pooled healthy quantile says."""
    rng = np.random.default_rng(0)
    spread = np.linspace(0.55, 0.99, 200)  # healthy: p(notumor) from 0.55 up
    healthy = np.column_stack([(1 - spread) / 3, (1 - spread) / 3, spread, (1 - spread) / 3])
    tumours = np.tile([0.9, 0.04, 0.03, 0.03], (80, 1))
    missed = np.column_stack(
        [np.full(10, 0.1), np.full(10, 0.0), np.linspace(0.60, 0.69, 10), np.full(10, 0.0)]
    )
    missed[:, 0] = 1 - missed[:, 2]
    probabilities = np.vstack([healthy, tumours, missed]) + rng.uniform(0, 1e-6, (290, 4))
    labels = np.array([2] * 200 + [0] * 80 + [0] * 10)
    sources = np.array([0] * 100 + [1] * 100 + [0] * 50 + [1] * 30 + [1] * 10)
    pooled_only = fit_rule_out(probabilities, labels, CLASSES, "notumor", RuleOutConfig(max_missed_rate=None))
    record = fit_rule_out(
        probabilities, labels, CLASSES, "notumor", RuleOutConfig(), sources, ("easy", "hard")
    )
    assert pooled_only["level"] < 0.6 and pooled_only["chosen_by"] == "healthy_review_rate"
    # The two most confident misses (0.69, 0.68) may stay: the level sits just above 0.67.
    assert 0.67 <= record["level"] < 0.68 and record["chosen_by"] == "max_missed_rate on hard"
    hard = record["per_source"]["hard"]
    assert (
        hard["tumours"] == 40
        and hard["tumours_missed_before"] == 0.25
        and hard["tumours_missed_after"] == 0.05
    )
    assert record["per_source"]["easy"]["tumours_missed_after"] == 0.0

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
    record = fit_rule_out(probabilities, labels, CLASSES, RuleOutConfig(healthy_review_rate=0.1))
    healthy = probabilities[labels == 2, 2]
    assert record["class"] == "notumor" and record["chosen_on_images"] == len(labels)
    assert abs((healthy < record["level"]).mean() - 0.1) <= 0.01
    reviewed = (healthy < record["level"]).mean()
    assert record["validation_healthy_reviewed"] == pytest.approx(reviewed, abs=1e-4)
    # The six unsure "no tumour" answers on tumours fall under the level: none stays missed.
    assert (record["validation_tumours_missed"], record["validation_tumours_missed_after"]) == (6, 0)


def test_a_stricter_rate_gives_a_higher_level():
    probabilities, labels = _validation(np.random.default_rng(1))
    low = fit_rule_out(probabilities, labels, CLASSES, RuleOutConfig(healthy_review_rate=0.02))
    high = fit_rule_out(probabilities, labels, CLASSES, RuleOutConfig(healthy_review_rate=0.2))
    assert low["level"] < high["level"]


def test_bad_settings_are_refused():
    probabilities, labels = _validation(np.random.default_rng(2))
    with pytest.raises(ValueError, match="not one of"):
        fit_rule_out(probabilities, labels, CLASSES, RuleOutConfig(negative_class="healthy"))
    # Too few healthy validation images: the export goes on, with no level.
    record = fit_rule_out(probabilities[-50:], labels[-50:], CLASSES, RuleOutConfig())
    assert "level" not in record and "needed" in record["not_fitted"]
    with pytest.raises(ValueError, match="healthy_review_rate"):
        RuleOutConfig(healthy_review_rate=0.0)

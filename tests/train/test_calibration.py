import numpy as np

from brain_tumor_edge.runtime.metrics import expected_calibration_error, softmax
from brain_tumor_edge.train.calibration import fit_temperature


def overconfident_logits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), logits reported as 3 z: a network three times too sure."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, size=(count, 4))
    true = softmax(z)
    labels = np.array([rng.choice(4, p=p / p.sum()) for p in true.astype(np.float64)])
    return 3.0 * z, labels


def test_temperature_fitted_on_one_split_lowers_ece_on_another():
    fit_logits, fit_labels = overconfident_logits(3000, seed=1)
    held_logits, held_labels = overconfident_logits(3000, seed=2)
    temperature = fit_temperature(fit_logits, fit_labels)
    assert 2.5 < temperature < 3.5
    before = expected_calibration_error(softmax(held_logits), held_labels)
    after = expected_calibration_error(softmax(held_logits, temperature), held_labels)
    assert after < before / 3


def test_ece_is_zero_for_perfectly_calibrated_certainty():
    probabilities = np.eye(4)[[0, 1, 2, 3]]
    assert expected_calibration_error(probabilities, np.array([0, 1, 2, 3])) == 0.0

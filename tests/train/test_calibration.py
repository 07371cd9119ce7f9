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


def test_the_fitted_type_prior_undoes_a_shift_towards_one_type():
    """Logits tilted towards glioma (index 0) for every tumour image: the offsets fitted on them
    move the tumour types only (notumor's stays 0) and raise the balanced recall."""
    from brain_tumor_edge.train.calibration import balanced_recall, fit_type_bias

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2, 3], 200)
    logits = rng.normal(0, 1, (800, 4))
    logits[np.arange(800), labels] += 2.0
    logits[labels != 2, 0] += 1.5  # the prior shift: unsure tumours drift to glioma
    bias = fit_type_bias(logits, labels, negative=2)
    assert bias[2] == 0 and bias[0] < -0.5 and abs(bias[[0, 1, 3]].sum()) < 1e-9
    assert balanced_recall(logits + bias, labels) > balanced_recall(logits, labels) + 0.05

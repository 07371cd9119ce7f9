"""The parity gate's verdicts, on probabilities whose disagreements are known."""

import numpy as np

from brain_tumor_edge.export.parity import NEAR_TIE_MARGIN, ParityThresholds, compare
from brain_tumor_edge.runtime.outputs import ModelOutput


def _output(probabilities: np.ndarray) -> ModelOutput:
    return ModelOutput(probabilities=probabilities.astype(np.float32))


def test_int8_disagreements_are_explained_as_near_ties():
    rng = np.random.default_rng(0)
    fp32 = rng.dirichlet(np.ones(4) * 0.3, size=100)
    # Seven images where int8 picks another class: six near-ties, one confident flip.
    for row in range(7):
        margin = NEAR_TIE_MARGIN / 2 if row < 6 else 0.6
        fp32[row] = [0.5 + margin / 2, 0.5 - margin / 2, 0.0, 0.0]
    int8 = fp32.copy()
    int8[:7, [0, 1]] = int8[:7, [1, 0]]
    report = compare(fp32, _output(fp32), _output(int8), None, ParityThresholds())
    assert report.fp32_passed and not report.int8_passed
    assert report.int8_agreement == 0.93
    assert report.int8_disagreements == 7 and report.int8_near_ties == 6
    assert (
        report.near_tie_note()
        == f"6 of 7 disagreements are near-ties (fp32 top-2 margin < {NEAR_TIE_MARGIN})"
    )
    assert report.int8_failures == ["int8 top-1 agreement 0.9300 < 0.99"]
    assert "6 of 7 disagreements are near-ties" in report.table()


def test_a_changed_threshold_is_reported_with_its_default():
    assert ParityThresholds().changed() == {}
    assert ParityThresholds(int8_min_agreement=0.98).changed() == {
        "int8_min_agreement": {"used": 0.98, "default": 0.99}
    }


def test_an_fp32_failure_also_fails_the_int8_model():
    fp32 = np.eye(4)[np.arange(8) % 4] * 0.9 + 0.025
    torch_probs = fp32.copy()
    torch_probs[0] = [0.025, 0.9, 0.05, 0.025]  # the fp32 export changed a decision
    report = compare(torch_probs, _output(fp32), _output(fp32), None, ParityThresholds())
    assert not report.fp32_passed and not report.int8_passed and not report.int8_failures


def test_int8_scope_flags_that_differ_from_fp32_fail_the_gate():
    probabilities = np.eye(4)[np.arange(100) % 4] * 0.9 + 0.025
    fp32_scope = np.linspace(0, 40, 100).astype(np.float32)  # limit 20: half flagged
    int8_scope = fp32_scope.copy()
    int8_scope[45:50] += 10  # five images now cross the limit in int8 only
    fp32 = ModelOutput(probabilities.astype(np.float32), scope=fp32_scope)
    int8 = ModelOutput(probabilities.astype(np.float32), scope=int8_scope)
    report = compare(probabilities, fp32, int8, None, ParityThresholds(), scope_limit=20.0)
    assert report.int8_scope_agreement == 0.95 and not report.int8_passed
    assert report.int8_failures == ["int8 scope flag agreement 0.9500 < 0.99"]
    same = compare(probabilities, fp32, fp32, None, ParityThresholds(), scope_limit=20.0)
    assert same.int8_scope_agreement == 1.0 and same.int8_passed


def test_int8_maps_unlike_fp32_maps_fail_the_gate():
    rng = np.random.default_rng(1)
    probabilities = np.eye(4)[np.arange(20) % 4] * 0.9 + 0.025
    maps = rng.normal(size=(20, 4, 5, 5)).astype(np.float32)
    fp32 = ModelOutput(probabilities.astype(np.float32), cam=maps)
    close = ModelOutput(probabilities.astype(np.float32), cam=maps + rng.normal(scale=0.05, size=maps.shape))
    unrelated = ModelOutput(
        probabilities.astype(np.float32), cam=rng.normal(size=maps.shape).astype(np.float32)
    )
    assert compare(probabilities, fp32, close, None, ParityThresholds()).int8_passed
    report = compare(probabilities, fp32, unrelated, None, ParityThresholds())
    assert not report.int8_passed and report.int8_cam_correlation < 0.2
    assert any("activation-map correlation" in failure for failure in report.int8_failures)

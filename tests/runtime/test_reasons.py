"""The review column's reasons: one test per input-check rule and per reason text, on the
real samples (in scope) and on inputs built from them (out of scope)."""

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from brain_tumor_edge.runtime.cli import app
from brain_tumor_edge.runtime.reasons import (
    INPUT_CHECK,
    LOW_CONFIDENCE_KIND,
    MR_SOP_CLASSES,
    NOT_RULED_OUT_KIND,
    OTHER,
    OUT_OF_SCOPE,
    SCOPE_SCORE,
    VOLUME_NOTE,
    InputRules,
    confidence_reason,
    dicom_reasons,
    image_reasons,
    is_out_of_scope,
    kind_of,
    rule_out_reason,
    scope_reason,
)
from tests.conftest import sample_files

RULES = InputRules()
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def rgb_sample(index: int = 0) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(sample_files()[index])), cv2.COLOR_BGR2RGB)


@pytest.mark.parametrize("index", range(len(sample_files())))
def test_every_sample_passes_the_input_checks(index: int):
    assert image_reasons(rgb_sample(index)) == []


def test_too_small_for_a_slice():
    small = cv2.resize(rgb_sample(), (RULES.min_side - 1, 50))
    assert image_reasons(small) == [f"{OUT_OF_SCOPE}too small for a slice (63x50, limit 64 px)"]
    at_limit = cv2.resize(rgb_sample(), (RULES.min_side, RULES.min_side))
    assert not any("too small" in reason for reason in image_reasons(at_limit))


def test_colour_image():
    tinted = rgb_sample().astype(np.int16)
    tinted[..., 0] += 40  # a red cast: the channels differ, as in a photograph or a map
    reasons = image_reasons(np.clip(tinted, 0, 255).astype(np.uint8))
    assert len(reasons) == 1 and reasons[0].startswith(f"{OUT_OF_SCOPE}colour image (channels differ by ")
    assert reasons[0].endswith(", limit 8)")


def test_blank_or_nearly_constant():
    flat = np.full((200, 200, 3), 90, np.uint8)
    assert image_reasons(flat) == [f"{OUT_OF_SCOPE}blank or nearly constant (contrast 0.0, limit 8)"]
    faint = flat.copy()
    faint[::2] += 4  # stripes of 4 grey levels: still below the contrast limit
    assert "blank or nearly constant" in image_reasons(faint)[0]


@pytest.mark.parametrize(
    ("modality", "sop_class", "expected"),
    [
        *[("MR", sop_class, []) for sop_class in sorted(MR_SOP_CLASSES)],
        ("mr ", "1.2.840.10008.5.1.4.1.1.4.1", []),  # Enhanced MR, loosely written modality
        ("CT", CT_IMAGE_STORAGE, [f"{OUT_OF_SCOPE}not an MR image (Modality CT)"]),
        ("RTDOSE", "1.2.840.10008.5.1.4.1.1.481.2", [f"{OUT_OF_SCOPE}not an MR image (Modality RTDOSE)"]),
        ("", SECONDARY_CAPTURE, [f"{OUT_OF_SCOPE}secondary capture without a modality"]),
        ("MR", SECONDARY_CAPTURE, []),  # a capture that says it is MR is judged by its pixels
        ("", CT_IMAGE_STORAGE, [f"{OUT_OF_SCOPE}not an MR image object (SOP class {CT_IMAGE_STORAGE})"]),
    ],
)
def test_dicom_header_rules(modality: str, sop_class: str, expected: list[str]):
    assert dicom_reasons(modality, sop_class) == expected


def test_scope_score_reason():
    assert scope_reason(41.23, 23.5) == [f"{OUT_OF_SCOPE}unlike the training images (score 41.2, limit 23.5)"]
    assert scope_reason(23.5, 23.5) == []  # the limit itself is in scope


def test_low_confidence_reason_is_not_out_of_scope():
    reasons = confidence_reason(0.62, 0.9)
    assert reasons == ["low confidence (0.62 < 0.90)"]
    # The threshold as it was given: 0.999 is not "1.00", and 0.92 is below it.
    assert confidence_reason(0.92, 0.999) == ["low confidence (0.920 < 0.999)"]
    assert not is_out_of_scope(reasons)
    assert confidence_reason(0.95, 0.9) == [] and confidence_reason(0.1, None) == []


def test_rule_out_reason_only_for_an_unsure_negative_answer():
    rule = ("notumor", 0.99)
    reasons = rule_out_reason("notumor", 0.9612, rule)
    assert reasons == ["tumour not ruled out (notumor 0.961 < 0.990)"]
    assert not is_out_of_scope(reasons)
    assert rule_out_reason("notumor", 0.99, rule) == []  # the level itself rules a tumour out
    assert rule_out_reason("glioma", 0.40, rule) == []  # only the negative class is held to it
    assert rule_out_reason("notumor", 0.40, None) == []  # a model without a level


def test_out_of_scope_inputs_end_to_end(tmp_path: Path):
    """Through bt-classify: out-of-scope rows keep probabilities but get no class."""
    pytest.importorskip("pydicom", reason="the dicom extra is not installed (pip install '.[dicom]')")
    from tests.runtime.dicom_files import dataset

    folder = tmp_path / "mixed"
    folder.mkdir()
    grey = cv2.imread(str(sample_files()[0]), cv2.IMREAD_GRAYSCALE)
    ct = dataset(grey, Modality="CT", SOPClassUID=CT_IMAGE_STORAGE)
    ct.save_as(folder / "ct.dcm", enforce_file_format=True)
    tinted = cv2.imread(str(sample_files()[1])).astype(np.int16)
    tinted[..., 2] += 40
    cv2.imwrite(str(folder / "tinted.png"), np.clip(tinted, 0, 255).astype(np.uint8))
    cv2.imwrite(str(folder / "blank.png"), np.zeros((128, 128), np.uint8))
    cv2.imwrite(str(folder / "ok.jpg"), cv2.imread(str(sample_files()[2])))
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, [str(folder), "--csv", str(out)])
    assert result.exit_code == 0, result.output
    rows = {Path(row["path"]).name: row for row in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows["ct.dcm"]["review"] == f"{OUT_OF_SCOPE}not an MR image (Modality CT)"
    assert rows["tinted.png"]["review"].startswith(f"{OUT_OF_SCOPE}colour image")
    assert rows["blank.png"]["review"].startswith(f"{OUT_OF_SCOPE}blank or nearly constant")
    for name in ("ct.dcm", "tinted.png", "blank.png"):
        assert rows[name]["prediction"] == rows[name]["confidence"] == ""
        assert rows[name]["p_notumor"] == ""  # no class given: no class evidence either
    assert rows["ok.jpg"]["review"] == "" and rows["ok.jpg"]["prediction"]
    assert "3 out of scope" in result.output


def _unlike_any_slice() -> dict[str, np.ndarray]:
    """Grey, large, high-contrast inputs that pass every input check but are no brain slice."""
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (224, 224), dtype=np.uint8)
    checkerboard = (np.indices((224, 224)).sum(axis=0) // 16 % 2 * 255).astype(np.uint8)
    stripes = np.tile((np.arange(224) % 32 < 16).astype(np.uint8) * 220, (224, 1))
    return {"noise": noise, "checkerboard": checkerboard, "stripes": stripes}


def test_the_scope_score_flags_inputs_unlike_the_training_images_through_the_runtime():
    """The model's own score, not an input check, sends these out of scope: each input whose
    score passes the model's limit gets the reason and no class, and at least one does (so
    removing the comparison in runtime/classify.py fails here)."""
    from brain_tumor_edge import classify_array, load_model

    model = load_model()
    limit = model.metadata.scope_limit
    assert model.has_scope and limit is not None
    over = 0
    for name, grey in _unlike_any_slice().items():
        image = np.repeat(grey[:, :, None], 3, axis=2)
        assert image_reasons(image) == [], name  # the input checks let it through
        result = classify_array(image, model)
        flagged = any(kind_of(reason) is SCOPE_SCORE for reason in result.reasons)
        assert flagged == (result.scope > limit), (name, result.scope, limit)
        if flagged:
            over += 1
            assert result.prediction == "" and result.confidence is None, name
    assert over >= 1
    # And an in-scope slice stays in: the score sits under the limit.
    in_scope = classify_array(rgb_sample(), model)
    assert in_scope.scope < limit and not in_scope.out_of_scope


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (scope_reason(30.0, 20.0)[0], SCOPE_SCORE),
        (image_reasons(np.zeros((128, 128, 3), np.uint8))[0], INPUT_CHECK),
        (confidence_reason(0.4, 0.5)[0], LOW_CONFIDENCE_KIND),
        (rule_out_reason("notumor", 0.5, ("notumor", 0.9))[0], NOT_RULED_OUT_KIND),
        ("volume: a 4-D file; only its first volume was read", VOLUME_NOTE),
        ("something a newer version says", OTHER),
    ],
)
def test_every_reason_text_reads_back_as_its_kind(text: str, kind):
    assert kind_of(text) is kind
    assert is_out_of_scope([text]) == kind.out_of_scope

"""When a row needs a person's eye, and why: the `review` column's reasons, in one place.

Every reason is text (its public form, in the CSV and on the page) made here, and read
back here: `kind_of` names the `ReasonKind` of any reason text, so the CSV's counts, a
resumed CSV, the Ray path, the review page, screening and the benchmarks all ask this
module what a reason means instead of matching strings of their own. A new kind of
reason is one more `ReasonKind` in `KINDS` (and an option in the page's filter).

Two kinds of reason. "out of scope: ..." means the input is not a brain MR slice of the
kind the model was trained on, so no class is given: cheap checks on the input itself
(below, each with its threshold) and the model's own scope score (export/scope.py).
"low confidence" means the model is in scope but less sure than the user asked for;
"tumour not ruled out" means it answered "no tumour" less surely than the model's
rule-out level (fitted at export on the validation split, carried in the metadata).

Thresholds for the input checks were set on the training images alone (2026-11, 5,708
Training images): their colour difference is at most 1.7 grey levels (limit 8), their
contrast at least 19 grey levels (limit 8), their shorter side at least 173 pixels (limit 64).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SEPARATOR = "; "


@dataclass(frozen=True)
class ReasonKind:
    name: str  # a key for counts and the page's filter
    prefix: str  # every reason of this kind starts with it
    out_of_scope: bool  # no class is given for such a row
    summary: str  # how the run's summary counts such rows ("3 low confidence")


OUT_OF_SCOPE = "out of scope: "
SCOPE_SCORE = ReasonKind(
    "scope_score", OUT_OF_SCOPE + "unlike the training images", True, "unlike the training images"
)
INPUT_CHECK = ReasonKind("input_check", OUT_OF_SCOPE, True, "out of scope")
BLANK = OUT_OF_SCOPE + "blank or "  # an input check's reason: a slice with nothing in it
LOW_CONFIDENCE_KIND = ReasonKind("low_confidence", "low confidence", False, "low confidence")
NOT_RULED_OUT_KIND = ReasonKind("not_ruled_out", "tumour not ruled out", False, "with a tumour not ruled out")
VOLUME_NOTE = ReasonKind("volume_note", "volume: ", False, "with a volume note")
# A DICOM header value that could not be used as written (a decimal comma, a malformed
# rescale): the image is shown with a fallback, and a person should know.
DICOM_NOTE = ReasonKind("dicom_note", "dicom: ", False, "with a DICOM note")
# Most specific prefix first: kind_of takes the first that matches.
KINDS = (SCOPE_SCORE, INPUT_CHECK, LOW_CONFIDENCE_KIND, NOT_RULED_OUT_KIND, VOLUME_NOTE, DICOM_NOTE)
OTHER = ReasonKind("other", "", False, "with another review reason")
LOW_CONFIDENCE = LOW_CONFIDENCE_KIND.prefix
NOT_RULED_OUT = NOT_RULED_OUT_KIND.prefix


def kind_of(reason: str) -> ReasonKind:
    """The kind of one reason text (OTHER for text no kind here made, e.g. a newer version's)."""
    return next((kind for kind in KINDS if reason.startswith(kind.prefix)), OTHER)


def split_review(review: str) -> list[str]:
    """The reasons of a `review` cell."""
    return [reason for reason in review.split(SEPARATOR) if reason]


def kinds_in(review: str) -> set[str]:
    """The kind names in a `review` cell."""
    return {kind_of(reason).name for reason in split_review(review)}


# DICOM SOP classes that hold MR images (PS3.4 B.5): MR, Enhanced MR, Enhanced MR Colour,
# Legacy Converted Enhanced MR.
MR_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.4",
        "1.2.840.10008.5.1.4.1.1.4.1",
        "1.2.840.10008.5.1.4.1.1.4.3",
        "1.2.840.10008.5.1.4.1.1.4.4",
    }
)
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


@dataclass(frozen=True)
class InputRules:
    min_side: int = 64  # pixels: smaller cannot hold a slice worth classifying
    max_colour: float = 8.0  # mean |channel - grey| on a 64x64 thumbnail, in grey levels
    min_contrast: float = 8.0  # standard deviation of grey levels: blank or nearly constant below


def image_reasons(image: np.ndarray, rules: InputRules = InputRules()) -> list[str]:
    """Checks on a decoded HxWx3 uint8 image, before the model sees it."""
    height, width = image.shape[:2]
    if min(height, width) < rules.min_side:
        return [f"{OUT_OF_SCOPE}too small for a slice ({width}x{height}, limit {rules.min_side} px)"]
    thumbnail = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    grey = thumbnail.mean(axis=2)
    reasons = colour_reason(channel_difference(thumbnail), rules)
    contrast = float(grey.std())
    if contrast < rules.min_contrast:
        limit = rules.min_contrast
        reasons.append(f"{BLANK}nearly constant (contrast {contrast:.1f}, limit {limit:g})")
    return reasons


def channel_difference(pixels: np.ndarray) -> float:
    """Mean |channel - grey| of ... x 3 pixels, in grey levels of an 8-bit range."""
    values = pixels.astype(np.float32)
    span = float(values.max() - values.min()) or 1.0
    scale = 255.0 / span if values.max() > 255 else 1.0  # 16-bit colour: to 8-bit levels
    return float(np.abs(values - values.mean(axis=-1, keepdims=True)).mean() * scale)


def colour_reason(difference: float, rules: InputRules = InputRules()) -> list[str]:
    if difference > rules.max_colour:
        limit = rules.max_colour
        return [f"{OUT_OF_SCOPE}colour image (channels differ by {difference:.1f}, limit {limit:g})"]
    return []


def dicom_reasons(modality: str, sop_class: str) -> list[str]:
    """Checks on a DICOM object's header: only MR images are in scope."""
    modality = modality.strip().upper()
    if modality and modality != "MR":
        return [f"{OUT_OF_SCOPE}not an MR image (Modality {modality})"]
    if sop_class.startswith(SECONDARY_CAPTURE_PREFIX) and not modality:
        return [f"{OUT_OF_SCOPE}secondary capture without a modality"]
    if sop_class and sop_class not in MR_SOP_CLASSES and not sop_class.startswith(SECONDARY_CAPTURE_PREFIX):
        return [f"{OUT_OF_SCOPE}not an MR image object (SOP class {sop_class})"]
    return []


def scope_reason(score: float, limit: float) -> list[str]:
    if score > limit:
        return [f"{OUT_OF_SCOPE}unlike the training images (score {score:.1f}, limit {limit:.1f})"]
    return []


def confidence_reason(confidence: float, min_confidence: float | None) -> list[str]:
    if min_confidence is not None and confidence < min_confidence:
        # As many decimals as the threshold was given with (at least two): 0.999 is not 1.00.
        digits = max(2, len(f"{min_confidence:g}".partition(".")[2]))
        return [f"{LOW_CONFIDENCE} ({confidence:.{digits}f} < {min_confidence:.{digits}f})"]
    return []


def rule_out_reason(prediction: str, probability: float, rule_out: tuple[str, float] | None) -> list[str]:
    """A "no tumour" answer under the model's rule-out level (export/rule_out.py) keeps its
    prediction but is flagged: missing a tumour costs more than a second look."""
    if rule_out is None:
        return []
    negative, level = rule_out
    if prediction == negative and probability < level:
        return [f"{NOT_RULED_OUT} ({negative} {probability:.3f} < {level:.3f})"]
    return []


def is_out_of_scope(reasons: list[str] | tuple[str, ...]) -> bool:
    return any(kind_of(reason).out_of_scope for reason in reasons)


def is_blank(reasons: list[str] | tuple[str, ...]) -> bool:
    """A blank slice (the empty ends of a volume, a padding frame): nothing to look at."""
    return any(reason.startswith(BLANK) for reason in reasons)

"""Screening figures on folders without class labels: tumour-positive, healthy, or a
patient collection whose slices say how much tumour they show. Development figures
(bt-evaluate, bench/): they need only the runtime, never torch.

A clinician's question about a folder of images that all show a tumour (of unrecorded
type) is "how many would the tool have missed?"; about a healthy series it is "how many
false alarms?". Both are answered from the exported model, through the same runtime path
as `bt-classify` with its default settings, so the review reasons (out of scope, low
confidence, tumour not ruled out) count as they would for a user. One row is one of:

- tumour-positive: *missed* = `notumor` with no review reason (the dangerous outcome);
  *detected* = a tumour class with no out-of-scope reason (a low-confidence reason may
  stand beside it: the type is in doubt, not the tumour); the rest are *flagged*: out of
  scope, or `notumor` with a reason (a person looks).
- healthy: *false alarm* = a tumour class with no review reason; *flagged* = any
  reason; *cleared* = `notumor` with no reason.

`screen_slices` applies both to a collection with a `manifest.csv` (path, sequence,
tumour_pixels), such as `external/lgg`: slices with enough tumour pixels are
tumour-positive, slices with none are healthy, per sequence.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..runtime.api import ImageResult, Settings, classify_folder
from ..runtime.metrics import auroc
from ..runtime.model import Classifier

# A slice "shows the tumour" from this many expert-mask pixels (as the data's README says).
SHOWS_TUMOUR_PIXELS = 300
AREA_LEVEL = 20  # grey level (of 255) above which a pixel counts as head or brain


def negative_class(model: Classifier) -> str:
    """The class that means "no tumour", as the model's metadata names it."""
    return model.metadata.negative


def outcome(result: ImageResult, negative: str, positive: bool) -> str:
    """One row's outcome: failed, missed, detected or flagged (positive); failed,
    false_alarm, cleared or flagged (healthy)."""
    if result.error:
        return "failed"
    tumour_class = result.prediction not in ("", negative)
    if positive:
        if result.prediction == negative and not result.reasons:
            return "missed"
        return "detected" if tumour_class and not result.out_of_scope else "flagged"
    if result.reasons:
        return "flagged"
    return "false_alarm" if tumour_class else "cleared"


def _tally(results: Iterable[ImageResult], negative: str, positive: bool) -> dict:
    names = ("missed", "detected") if positive else ("false_alarm", "cleared")
    counts = dict.fromkeys(("images", "failed", "flagged", "out_of_scope", *names), 0)
    listed: list[str] = []
    for result in results:
        counts["images"] += 1
        counts["out_of_scope"] += result.out_of_scope
        kind = outcome(result, negative, positive)
        counts[kind] += 1
        if kind in ("missed", "false_alarm"):
            listed.append(result.name)
    usable = max(1, counts["images"] - counts["failed"])
    rates = {f"{name}_rate": round(counts[name] / usable, 4) for name in (*names, "flagged")}
    return {**counts, **rates, ("missed_files" if positive else "false_alarm_files"): listed}


def screen_folder(model: Classifier, folder: Path, positive: bool, settings: Settings | None = None) -> dict:
    """Counts and rates for a folder known to be all tumour-positive (or all healthy)."""
    results = classify_folder(folder, model, settings)
    return {
        "folder": str(folder),
        "kind": "tumour-positive" if positive else "healthy",
        "model": str(model.path),
        **_tally(results, negative_class(model), positive),
    }


def read_manifest(folder: Path) -> list[dict]:
    """`manifest.csv` rows (path relative to the folder, sequence, tumour_pixels)."""
    with open(Path(folder) / "manifest.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def screen_slices(
    model: Classifier, folder: Path, settings: Settings | None = None
) -> tuple[dict, dict[str, ImageResult]]:
    """Per sequence: tumour slices (>= SHOWS_TUMOUR_PIXELS) as tumour-positive, 0-pixel
    slices as healthy. Returns the figures and each slice's result by manifest path."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    results = {
        Path(result.name).relative_to(folder).as_posix(): result
        for result in classify_folder(folder, model, settings)
    }
    negative = negative_class(model)
    figures: dict = {"folder": str(folder), "model": str(model.path), "sequences": {}}
    for sequence in sorted({row["sequence"] for row in manifest}):
        rows = [row for row in manifest if row["sequence"] == sequence]
        tumour = [results[r["path"]] for r in rows if int(r["tumour_pixels"]) >= SHOWS_TUMOUR_PIXELS]
        healthy = [results[r["path"]] for r in rows if int(r["tumour_pixels"]) == 0]
        figures["sequences"][sequence] = {
            "tumour_slices": _tally(tumour, negative, positive=True),
            "tumour_free_slices": _tally(healthy, negative, positive=False),
            "patients": len({row["patient"] for row in rows}),
        }
    return figures, results


def describe(report: dict) -> str:
    if report["kind"] == "tumour-positive":
        return (
            f"{report['images']} tumour-positive images: {report['missed']} missed "
            f"({report['missed_rate']:.1%}: notumor, no review reason), {report['detected']} detected "
            f"({report['detected_rate']:.1%}: a tumour class, not out of scope), {report['flagged']} "
            f"flagged ({report['out_of_scope']} out of scope), {report['failed']} failed"
        )
    return (
        f"{report['images']} healthy images: {report['false_alarm']} false alarms "
        f"({report['false_alarm_rate']:.1%}: a tumour class, no review reason), {report['flagged']} "
        f"flagged, {report['cleared']} cleared, {report['failed']} failed"
    )


def brain_area(grey: np.ndarray) -> float:
    """The share of a slice above a fixed grey level (20 of 255): the head's (or, skull-stripped,
    the brain's) cross-section, the cue that tells tumour-free slice levels from tumour ones."""
    small = cv2.resize(grey, (128, 128), interpolation=cv2.INTER_AREA)
    return float((small > AREA_LEVEL).mean())


def area_matched_auroc(scores: np.ndarray, positive: np.ndarray, areas: np.ndarray, bins: int = 5) -> float:
    """AUROC of `scores` within bins of equal brain area (quantiles), pooled over the pairs
    each bin holds: how well the scores rank tumour slices above tumour-free ones of the
    same cross-section, where the area itself tells nothing."""
    edges = np.quantile(areas, np.linspace(0, 1, bins + 1)[1:-1])
    which = np.searchsorted(edges, areas, side="right")
    total, weight = 0.0, 0
    for b in range(bins):
        inside = which == b
        pos, neg = scores[inside & positive], scores[inside & ~positive]
        if len(pos) and len(neg):
            total += auroc(neg, pos) * len(pos) * len(neg)
            weight += len(pos) * len(neg)
    return total / weight if weight else float("nan")


@dataclass
class SlicePart:
    """The slices of one sequence of a manifest set, with their results."""

    results: list[ImageResult]
    positive: np.ndarray  # shows a tumour (or a lesion), else tumour-free
    areas: np.ndarray
    rows: list[dict]


def slice_figures(part: SlicePart, negative: str) -> dict:
    """Missed / detected on tumour slices, false alarms on tumour-free ones, AUROC of
    1 - p(negative), the brain area's own AUROC (the slice-level trap), and the AUROC
    within brain-area bins."""
    results, positive = part.results, part.positive
    usable = np.array([r.probabilities is not None for r in results])
    figures: dict = {
        "tumour_slices": _tally([r for r, p in zip(results, positive, strict=True) if p], negative, True),
        "tumour_free_slices": _tally(
            [r for r, p in zip(results, positive, strict=True) if not p], negative, False
        ),
    }
    if usable.any() and positive[usable].any() and (~positive[usable]).any():
        index = results[int(np.flatnonzero(usable)[0])].class_names.index(negative)
        scores = np.array([1.0 - r.probabilities[index] for r, u in zip(results, usable, strict=True) if u])
        pos, areas = positive[usable], part.areas[usable]
        figures["auroc"] = round(auroc(scores[~pos], scores[pos]), 4)
        figures["brain_area_auroc"] = round(auroc(areas[~pos], areas[pos]), 4)
        figures["area_matched_auroc"] = round(area_matched_auroc(scores, pos, areas), 4)
    return figures

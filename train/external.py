"""Screening figures on folders without class labels: tumour-positive or healthy.

A clinician's question about a folder of images that all show a tumour (of unrecorded
type) is "how many would the tool have missed?"; about a healthy series it is "how many
false alarms?". Both are answered from the exported model, through the same runtime path
as `bt-classify`, so the review flags (out of scope, low confidence, tumour not ruled
out) count as they would for a user:

- tumour-positive: *missed* = `notumor` with no review reason (the dangerous outcome);
  *flagged* = any review reason (a person looks); *detected* = a tumour class, unflagged.
- healthy: *false alarm* = a tumour class with no review reason; *flagged*; *cleared*.
"""

from __future__ import annotations

from pathlib import Path

from brain_tumor_edge.runtime.api import Settings, classify_folder
from brain_tumor_edge.runtime.model import Classifier

NEGATIVE = "notumor"  # for models whose metadata names no negative class (no rule-out level)


def negative_class(model: Classifier) -> str:
    """The class that means "no tumour": from the model's rule-out record when it has one."""
    return str(model.metadata.rule_out.get("class", NEGATIVE))


def screen_folder(model: Classifier, folder: Path, positive: bool, settings: Settings | None = None) -> dict:
    """Counts and rates for a folder known to be all tumour-positive (or all healthy)."""
    counts = {"images": 0, "failed": 0, "flagged": 0, "out_of_scope": 0, "missed": 0, "detected": 0}
    missed: list[str] = []
    negative = negative_class(model)
    for result in classify_folder(folder, model, settings):
        counts["images"] += 1
        if result.error:
            counts["failed"] += 1
        elif result.review:
            counts["flagged"] += 1
            counts["out_of_scope"] += result.out_of_scope
        elif (result.prediction == negative) == positive:
            counts["missed"] += 1
            missed.append(result.name)
        else:
            counts["detected"] += 1
    usable = max(1, counts["images"] - counts["failed"])
    kind = "tumour-positive" if positive else "healthy"
    report = {
        "folder": str(folder),
        "kind": kind,
        "model": str(model.path),
        **counts,
        # For a healthy folder, "missed" is a false alarm and "detected" a correct all-clear.
        ("miss_rate" if positive else "false_alarm_rate"): round(counts["missed"] / usable, 4),
        "flag_rate": round(counts["flagged"] / usable, 4),
        "missed_files" if positive else "false_alarm_files": missed,
    }
    return report


def describe(report: dict) -> str:
    if report["kind"] == "tumour-positive":
        return (
            f"{report['images']} tumour-positive images: {report['missed']} missed "
            f"({report['miss_rate']:.1%}: notumor, not flagged), {report['flagged']} flagged for review "
            f"({report['out_of_scope']} out of scope), {report['detected']} detected, "
            f"{report['failed']} failed"
        )
    return (
        f"{report['images']} healthy images: {report['missed']} false alarms "
        f"({report['false_alarm_rate']:.1%}: a tumour class, not flagged), {report['flagged']} flagged, "
        f"{report['detected']} cleared, {report['failed']} failed"
    )

"""Figures per source and sequence, for bench/model_report.py: slice collections with a
manifest, and NIfTI volumes.

A slice set is a folder with `manifest.csv` (path, sequence, and a `label` column or
`tumour_pixels`): a slice shows a tumour when its label is not the negative class (any
tumour class, or a lesion of another kind), else when it has >= 300 mask pixels; it is
tumour-free when labelled negative, or with 0 mask pixels. Masks, where a sibling folder
`NAME-masks/PATIENT/NNN.png` exists, give the pointing game (bench/cam_pointing.py).

With `--checkpoint`, a slice set the checkpoint trained on (one of its mix's manifests)
is cut to the patients or groups of its validation split, as recomputed from the
checkpoint (train/split.py): those are the only ones of its sources it never saw.

A volume folder holds NIfTI files: `PATIENT/SEQ.nii.gz` beside `seg.nii.gz` (BraTS:
tumour slices have >= 300 tumour voxels, tumour-free ones lie >= 10 mm from any), or
`SUBJECT_SEQ.nii.gz` with no segmentation (a healthy volume: every brain-level slice is
tumour-free). Brain levels: from 10 mm to 100 mm below the highest slice whose head
cross-section covers 5% of the frame (the vertex); the skull base, face and neck lie
below. Each volume also gets its series verdict (runtime/series.py), over all its slices,
as `bt-classify --series-csv` gives it, and, since the verdict counts every slice, the
healthy volumes' false alarms per band of depth below the vertex (`levels`: above the
brain levels, at them, the 30 mm of skull base below them, and lower).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from cam_pointing import score_slice  # bench/ sibling

from brain_tumor_edge.runtime.classify import Classification, Settings
from brain_tumor_edge.runtime.series import summarise
from brain_tumor_edge.runtime.volumes import Volume
from brain_tumor_edge.train.screening import (
    SHOWS_TUMOUR_PIXELS,
    SlicePart,
    brain_area,
    negative_class,
    outcome,
    read_manifest,
    slice_figures,
)

VERTEX_AREA = 0.05
BRAIN_LEVELS_MM = (10.0, 100.0)
# The skull base (temporal lobes, cerebellum, sella: where the pituitary class lives) below
# the brain levels, for the healthy volumes' false alarms at every level (`_level_bands`).
SKULL_BASE_MM = 30.0
TUMOUR_FREE_MM = 10.0


def validation_paths(checkpoint: Path) -> set[str]:
    """Resolved paths of the checkpoint's validation images (mirrored slices left out)."""
    from brain_tumor_edge.train.checkpoint import load_checkpoint
    from brain_tumor_edge.train.split import SplitConfig, load_split, recorded_mix

    recorded = load_checkpoint(checkpoint).train_config
    split = load_split(
        recorded_mix(recorded),
        load_checkpoint(checkpoint).preprocess,
        SplitConfig.from_train_record(recorded),
    )
    origin = split.validation.origin
    return {
        str(Path(path).resolve())
        for index, path in enumerate(split.validation.paths)
        if origin.mirror_masks[index] is None
    }


def _is_positive(row: dict, negative: str) -> bool | None:
    if row.get("label"):
        return row["label"] != negative
    pixels = int(row["tumour_pixels"])
    return True if pixels >= SHOWS_TUMOUR_PIXELS else False if pixels == 0 else None


def slice_set_figures(model, folder: Path, validation: set[str] | None = None) -> dict:
    """Per sequence: slice_figures (missed, detected, false alarms, AUROC, area-matched
    AUROC) and, with masks and a map output, the pointing game."""
    folder = Path(folder)
    negative = negative_class(model)
    rows = []
    for row in read_manifest(folder):
        if validation is not None and str((folder / row["path"]).resolve()) not in validation:
            continue
        positive = _is_positive(row, negative)
        if positive is not None:
            rows.append({**row, "positive": positive})
    masks = folder.with_name(folder.name + "-masks")
    settings = Settings(maps=model.has_maps)
    results = Classification(model, settings).run(folder / row["path"] for row in rows)
    parts: dict[str, list] = defaultdict(list)
    by_source = len({row.get("source", "") for row in rows}) > 1  # a set of several sources
    for row, result in zip(rows, results, strict=True):
        parts[row["sequence"]].append((row, result))
        if by_source:  # and each source's own figures, sequence by sequence
            parts[f"{row['source']}/{row['sequence']}"].append((row, result))
    report: dict = {
        "folder": str(folder),
        "restricted_to_validation": validation is not None,
        "patients_or_groups": len({row.get("patient") or row.get("group") for row in rows}),
        "sequences": {},
    }
    for sequence, pairs in sorted(parts.items()):
        part = SlicePart(
            [result for _, result in pairs],
            np.array([row["positive"] for row, _ in pairs]),
            np.array(
                [brain_area(result.image[0]) if result.image is not None else 0.0 for _, result in pairs]
            ),
            [row for row, _ in pairs],
        )
        figures = slice_figures(part, negative)
        if masks.is_dir() and model.has_maps:
            figures["pointing_game"] = _pointing(pairs, folder, masks, negative)
        report["sequences"][sequence] = figures
    return report


def _pointing(pairs: list, folder: Path, masks: Path, negative: str) -> dict:
    scored = []
    for row, result in pairs:
        if not row["positive"] or result.error or result.out_of_scope or result.prediction in ("", negative):
            continue
        relative = Path(row["path"])
        mask_file = masks / relative.parent / f"{relative.name.split('_')[0]}.png"
        mask = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            continue
        grey = cv2.imread(str(folder / row["path"]), cv2.IMREAD_GRAYSCALE)
        scored.append(score_slice(result, grey, mask > 127))
    rate = lambda name: round(float(np.mean([s[name] for s in scored])), 4) if scored else None  # noqa: E731
    return {
        "scored": len(scored),
        "map": rate("map"),
        "centre": rate("centre"),
        "brightest": rate("brightest"),
    }


def _area(result) -> float:
    return brain_area(result.image[0]) if result.image is not None else 0.0


def _sequence_of(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz").removesuffix(".nii")
    return name.split("_")[-1]


def volume_figures(model, folder: Path) -> dict:
    """Per sequence: slice-level figures at brain levels (healthy volumes) or on tumour and
    tumour-free slices (volumes with a segmentation), and the series verdicts."""
    negative = negative_class(model)
    rule = model.metadata.series_rule
    classification = Classification(model, Settings(maps=False))
    per_sequence: dict[str, dict] = defaultdict(
        lambda: {"results": [], "positive": [], "areas": [], "verdicts": [], "depths": [], "alarms": []}
    )
    for path in sorted(Path(folder).rglob("*.nii*")):
        if path.name.startswith("seg."):
            continue
        sequence = _sequence_of(path)
        results = list(classification.run([path]))
        with Volume(path) as volume:
            spacing = volume.spacing[2]
        seg = path.with_name("seg.nii.gz")
        areas = np.array([_area(result) for result in results])
        depths = None if seg.exists() else _depths(areas, spacing)
        labels = _tumour_slices(seg, spacing) if seg.exists() else _brain_levels(depths, len(areas))
        summary = summarise(str(path), "axial", results, negative, rule)
        entry = per_sequence[sequence]
        if depths is not None:
            entry["depths"] += list(depths)
            entry["alarms"] += [outcome(result, negative, False) == "false_alarm" for result in results]
        entry["verdicts"].append({"volume": str(path), "tumour": seg.exists(), **_summary_dict(summary)})
        for result, label, area in zip(results, labels, areas, strict=True):
            if label is not None:
                entry["results"].append(result)
                entry["positive"].append(label)
                entry["areas"].append(area)
    report: dict = {"folder": str(folder), "series_rule": rule.as_record(), "sequences": {}}
    for sequence, entry in sorted(per_sequence.items()):
        part = SlicePart(entry["results"], np.array(entry["positive"], bool), np.array(entry["areas"]), [])
        figures = slice_figures(part, negative)
        verdicts = entry["verdicts"]
        tumour = [v for v in verdicts if v["tumour"]]
        healthy = [v for v in verdicts if not v["tumour"]]
        figures["series"] = {
            "volumes": len(verdicts),
            "tumour_volumes_called_tumour_likely": sum(v["verdict"] == "tumour likely" for v in tumour),
            "tumour_volumes": len(tumour),
            "healthy_volumes_no_tumour_found": sum(v["verdict"] == "no tumour found" for v in healthy),
            "healthy_volumes_review": sum(v["verdict"] == "review" for v in healthy),
            "healthy_volumes_tumour_likely": sum(v["verdict"] == "tumour likely" for v in healthy),
            "healthy_volumes": len(healthy),
            "each": verdicts,
        }
        if entry["depths"]:
            figures["levels"] = _level_bands(np.array(entry["depths"]), np.array(entry["alarms"], bool))
        report["sequences"][sequence] = figures
    return report


def _summary_dict(summary) -> dict:
    return {
        "verdict": summary.verdict,
        "slices": summary.slices,
        "tumour_slices": summary.tumour_slices,
        "longest_run": summary.longest_run,
    }


def _tumour_slices(seg: Path, spacing: float) -> list[bool | None]:
    """Per axial slice: True (>= 300 tumour voxels), False (>= 10 mm from any), else None."""
    with Volume(seg) as volume:
        counts = [int((grey > 0).sum()) for _, grey in volume.slices((0.0, 1e-6))]
    tumour_z = np.flatnonzero(np.array(counts) > 0)
    labels: list[bool | None] = []
    for z, count in enumerate(counts):
        if count >= SHOWS_TUMOUR_PIXELS:
            labels.append(True)
        elif len(tumour_z) and np.min(np.abs(tumour_z - z)) * spacing < TUMOUR_FREE_MM:
            labels.append(None)
        else:
            labels.append(False)
    return labels


def _depths(areas: np.ndarray, spacing: float) -> np.ndarray | None:
    """Each slice's depth below the vertex in mm (None when no slice shows a head)."""
    above = np.flatnonzero(areas >= VERTEX_AREA)
    if not len(above):
        return None
    return (int(above.max()) - np.arange(len(areas))) * spacing


def _brain_levels(depths: np.ndarray | None, slices: int) -> list[bool | None]:
    """False (tumour-free) for slices at brain levels of a healthy volume, None elsewhere."""
    if depths is None:
        return [None] * slices
    low, high = BRAIN_LEVELS_MM
    return [False if low <= d <= high else None for d in depths]


def _level_bands(depths: np.ndarray, alarms: np.ndarray) -> dict:
    """False alarms (a tumour class, no review reason) above the brain levels, at them, at the
    skull base below them, and lower (face, neck): the series verdict counts all of them."""
    low, high = BRAIN_LEVELS_MM
    base = high + SKULL_BASE_MM
    bands = {  # name: (mm below the vertex, from and to; None: open), the slices in it
        "above": ((None, low), depths < low),
        "brain": ((low, high), (depths >= low) & (depths <= high)),
        "skull_base": ((high, base), (depths > high) & (depths <= base)),
        "below": ((base, None), depths > base),
    }
    return {
        name: {"mm": list(mm), "slices": int(inside.sum()), "false_alarms": int(alarms[inside].sum()),
               "false_alarm_rate": round(float(alarms[inside].mean()), 4) if inside.any() else None}
        for name, (mm, inside) in bands.items()
    }  # fmt: skip

"""Do the activation maps point at the tumour? The pointing game on slices with expert masks.

On a collection with a `manifest.csv` and masks (external/lgg and external/lgg-masks,
measurement only), per sequence:

- scored slices: those that show the tumour (>= 300 mask pixels) and that the model
  calls a tumour class with no out-of-scope reason (as `bt-classify` with its defaults);
- a hit: the maximum of the predicted class's map, resized onto the slice as the review
  page resizes it (runtime/heatmap.py), lies within 8 pixels of a mask pixel;
- two baselines with no model behind them, on the same slices: the image centre, and the
  brightest point of the slice blurred (Gaussian, sigma 8 px);
- mass: the share of the map's positive part inside the mask dilated by 8 pixels, next
  to the share of the slice that dilated mask covers (what a flat map would score).

    python bench/cam_pointing.py --model runtime/models/default.int8.onnx \
        --slices ../shared/data/external/lgg --masks ../shared/data/external/lgg-masks
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from brain_tumor_edge.runtime.api import ImageResult, Settings, classify_folder, load_model
from brain_tumor_edge.runtime.heatmap import upsample
from brain_tumor_edge.train.screening import SHOWS_TUMOUR_PIXELS, negative_class, read_manifest

TOLERANCE = 8  # pixels on the slice
BLUR_SIGMA = 8.0


def peak(heat: np.ndarray) -> tuple[int, int]:
    row, column = np.unravel_index(int(np.argmax(heat)), heat.shape)
    return int(row), int(column)


def score_slice(result: ImageResult, slice_grey: np.ndarray, mask: np.ndarray) -> dict:
    """Hits (map, centre, brightest) and the map's mass inside the dilated mask."""
    height, width = mask.shape
    best = int(result.probabilities.argmax())
    heat = upsample(result.cam[best], width, height)
    # Distance of every pixel to the nearest mask pixel.
    distance = cv2.distanceTransform((mask == 0).astype(np.uint8), cv2.DIST_L2, 5)
    near = distance <= TOLERANCE
    blurred = cv2.GaussianBlur(slice_grey.astype(np.float32), (0, 0), BLUR_SIGMA)
    positive = np.clip(heat, 0, None)
    total = float(positive.sum())
    return {
        "map": bool(near[peak(heat)]),
        "centre": bool(near[height // 2, width // 2]),
        "brightest": bool(near[peak(blurred)]),
        "mass": float(positive[near].sum() / total) if total > 0 else 0.0,
        "area": float(near.mean()),
    }


def pointing_game(model, slices: Path, masks: Path) -> dict:
    if not model.has_maps:
        raise SystemExit(f"{model.path} has no activation-map output")
    manifest = [r for r in read_manifest(slices) if int(r["tumour_pixels"]) >= SHOWS_TUMOUR_PIXELS]
    negative = negative_class(model)
    results = {
        Path(result.name).relative_to(slices).as_posix(): result
        for result in classify_folder(slices, model, Settings(maps=True))
    }
    report: dict = {"tolerance_px": TOLERANCE, "sequences": {}}
    for sequence in sorted({row["sequence"] for row in manifest}):
        rows = [row for row in manifest if row["sequence"] == sequence]
        scored = []
        for row in rows:
            result = results[row["path"]]
            if result.error or result.out_of_scope or result.prediction in ("", negative):
                continue
            slice_number = Path(row["path"]).name.split("_")[0]
            mask = cv2.imread(str(masks / row["patient"] / f"{slice_number}.png"), cv2.IMREAD_GRAYSCALE)
            grey = cv2.imread(str(slices / row["path"]), cv2.IMREAD_GRAYSCALE)
            scored.append(score_slice(result, grey, mask > 127))
        report["sequences"][sequence] = {
            "tumour_slices": len(rows),
            "scored": len(scored),
            **{
                f"{name}_hit_rate": round(float(np.mean([s[name] for s in scored])), 4) if scored else None
                for name in ("map", "centre", "brightest")
            },
            "map_mass_in_mask": round(float(np.mean([s["mass"] for s in scored])), 4) if scored else None,
            "mask_area_share": round(float(np.mean([s["area"] for s in scored])), 4) if scored else None,
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--slices", type=Path, required=True, help="folder with manifest.csv")
    parser.add_argument("--masks", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = load_model(args.model)
    report = pointing_game(model, args.slices, args.masks)
    report["model"] = str(model.path)
    print(f"pointing game, {model.path.name}: hit = peak within {TOLERANCE} px of the expert mask")
    print("| sequence | scored slices (of tumour slices) | map | centre | brightest (blurred) | "
          "map mass in mask+8px | mask+8px area |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for sequence, row in report["sequences"].items():
        figures = [row[k] for k in ("map_hit_rate", "centre_hit_rate", "brightest_hit_rate",
                                    "map_mass_in_mask", "mask_area_share")]  # fmt: skip
        cells = " | ".join("-" if f is None else f"{f:.1%}" for f in figures)
        print(f"| {sequence} | {row['scored']} ({row['tumour_slices']}) | {cells} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Are the class-activation maps faithful? A deletion test on a labelled folder.

For each image: blank (set to black) the 20% of pixels the map of the predicted class
ranks highest, and separately a random 20%; compare how much each lowers the predicted
class's probability. A faithful map points at what the decision rests on, so blanking
its top pixels should hurt more than blanking random ones.

    python bench/cam_deletion.py --model runtime/models/default.int8.onnx \
        --data ../shared/data/brain-tumor-mri/Testing
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from brain_tumor_edge.runtime.classify import decode_file
from brain_tumor_edge.runtime.files import FolderWalk
from brain_tumor_edge.runtime.model import Classifier, default_model_path


def deletion_test(model: Classifier, folder: Path, fraction: float = 0.2, seed: int = 0) -> dict:
    if not model.has_maps:
        raise SystemExit(f"{model.path} has no activation-map output")
    rng = np.random.default_rng(seed)
    preprocess = model.metadata.preprocess
    rows: list[tuple[str, float, float]] = []
    for path in FolderWalk(folder):
        (item,) = decode_file(path, preprocess).items
        if item.image is None:
            continue
        output = model.run(item.image[None])
        best = int(output.probabilities[0].argmax())
        base = float(output.probabilities[0, best])
        side = preprocess.size
        heat = cv2.resize(output.cam[0, best].astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
        count = int(fraction * side * side)
        top = np.argsort(heat.ravel())[::-1][:count]
        random = rng.choice(side * side, count, replace=False)
        drops = []
        for chosen in (top, random):
            image = item.image.copy().reshape(3, -1)
            image[:, chosen] = 0
            blanked = model.run(image.reshape(item.image.shape)[None]).probabilities[0, best]
            drops.append(base - float(blanked))
        rows.append((model.class_names[best], drops[0], drops[1]))
    report: dict = {"images": len(rows), "fraction": fraction, "per_class": {}}
    for name in (*model.class_names, "all"):
        chosen = [r for r in rows if name in ("all", r[0])]
        if not chosen:
            continue
        cam_drop = np.array([r[1] for r in chosen])
        random_drop = np.array([r[2] for r in chosen])
        report["per_class"][name] = {
            "images": len(chosen),
            "map_hurts_more": round(float((cam_drop > random_drop).mean()), 4),
            "mean_drop_map": round(float(cam_drop.mean()), 4),
            "mean_drop_random": round(float(random_drop.mean()), 4),
        }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    report = deletion_test(Classifier(args.model or default_model_path(), threads=None), args.data)
    print(f"deletion test, {report['images']} images, blanking {report['fraction']:.0%} of pixels:")
    print("| predicted class | images | map blanking hurts more | mean drop (map) | mean drop (random) |")
    print("|---|---|---|---|---|")
    for name, row in report["per_class"].items():
        print(
            f"| {name} | {row['images']} | {row['map_hurts_more']:.1%} | "
            f"{row['mean_drop_map']:.3f} | {row['mean_drop_random']:.3f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

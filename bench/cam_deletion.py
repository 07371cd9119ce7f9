"""Are the activation maps faithful? Deletion and insertion (Petsiuk et al. 2018, RISE).

For each image of a labelled folder and the class the model predicts:

- deletion: replace the image's pixels, in the order a map ranks them (highest first), by
  a blurred copy of the image, in `STEPS` equal steps, and follow the predicted class's
  probability; the area under that curve (AUC, 0..1) is low when the map found what the
  decision rests on;
- insertion: start from the blurred copy and put the original pixels back in the same
  order; the AUC is high when the map is right.

A blurred copy, not black or noise: blanking adds edges and textures the network never
saw, which lowers any class's probability whatever the map says (the old salt-and-pepper
test's flaw). Three orderings are compared on the same images:

- the model's map for the predicted class (runtime/heatmap.py, as the review page shows it);
- random contiguous blocks (16 x 16 input pixels, a random order of blocks);
- a centre prior (pixels nearest the image centre first).

The map beats a baseline for a class when its deletion AUC is lower and its insertion
AUC higher, averaged over the images predicted as that class.

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
from brain_tumor_edge.runtime.heatmap import upsample
from brain_tumor_edge.runtime.model import Classifier, default_model_path

STEPS = 16
BLOCK = 16  # input pixels per side of a random block
BLUR_SIGMA = 10.0  # input pixels (of 160): fine detail gone, the head's shape still there
ORDERS = ("map", "random_blocks", "centre")


def blurred(image: np.ndarray) -> np.ndarray:
    """The 3 x S x S uint8 image blurred channel by channel."""
    return np.stack([cv2.GaussianBlur(channel, (0, 0), BLUR_SIGMA) for channel in image])


def orders(heat: np.ndarray, side: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Pixel indices (of side x side), most important first, for each way of ranking."""
    blocks = -(-side // BLOCK)
    block_rank = rng.permutation(blocks * blocks).reshape(blocks, blocks)
    random_map = -np.kron(block_rank, np.ones((BLOCK, BLOCK)))[:side, :side]
    random_map += rng.random((side, side)) * 1e-3  # ties broken at random inside a block
    rows, columns = np.mgrid[:side, :side]
    centre_map = -np.hypot(rows - (side - 1) / 2, columns - (side - 1) / 2)
    ranked = {"map": heat, "random_blocks": random_map, "centre": centre_map}
    return {name: np.argsort(-values.ravel(), kind="stable") for name, values in ranked.items()}


def curves(model: Classifier, image: np.ndarray, order: np.ndarray, target: int) -> tuple[float, float]:
    """Deletion and insertion AUCs for one image and one ordering."""
    side = image.shape[-1]
    soft = blurred(image).reshape(3, -1)
    sharp = image.reshape(3, -1)
    cuts = np.linspace(0, side * side, STEPS + 1).astype(int)
    deleted, inserted = [], []
    for cut in cuts:
        chosen = order[:cut]
        gone = sharp.copy()
        gone[:, chosen] = soft[:, chosen]
        back = soft.copy()
        back[:, chosen] = sharp[:, chosen]
        deleted.append(gone.reshape(image.shape))
        inserted.append(back.reshape(image.shape))
    probabilities = model.predict(np.stack(deleted + inserted))[:, target]
    deletion, insertion = probabilities[: len(cuts)], probabilities[len(cuts) :]
    return float(np.trapezoid(deletion, dx=1 / STEPS)), float(np.trapezoid(insertion, dx=1 / STEPS))


def deletion_insertion(model: Classifier, folder: Path, seed: int = 0, limit: int | None = None) -> dict:
    if not model.has_maps:
        raise SystemExit(f"{model.path} has no activation-map output")
    rng = np.random.default_rng(seed)
    preprocess = model.metadata.preprocess
    side = preprocess.size
    rows: list[dict] = []
    for path in FolderWalk(folder):
        if limit is not None and len(rows) >= limit:
            break
        (item,) = decode_file(path, preprocess).items
        if item.image is None:
            continue
        output = model.run(item.image[None])
        best = int(output.probabilities[0].argmax())
        heat = upsample(output.cam[0, best], side, side)
        row = {"class": model.class_names[best]}
        for name, order in orders(heat, side, rng).items():
            row[name] = curves(model, item.image, order, best)
        rows.append(row)
    report: dict = {"images": len(rows), "steps": STEPS, "blur_sigma": BLUR_SIGMA, "per_class": {}}
    for name in (*model.class_names, "all"):
        chosen = [r for r in rows if name in ("all", r["class"])]
        if not chosen:
            continue
        figures: dict = {"images": len(chosen)}
        for order in ORDERS:
            figures[f"deletion_{order}"] = round(float(np.mean([r[order][0] for r in chosen])), 4)
            figures[f"insertion_{order}"] = round(float(np.mean([r[order][1] for r in chosen])), 4)
        for baseline in ORDERS[1:]:
            figures[f"beats_{baseline}"] = bool(
                figures["deletion_map"] < figures[f"deletion_{baseline}"]
                and figures["insertion_map"] > figures[f"insertion_{baseline}"]
            )
        report["per_class"][name] = figures
    return report


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None, help="at most this many images")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = Classifier(args.model or default_model_path(), threads=None)
    report = deletion_insertion(model, args.data, limit=args.limit)
    print(
        f"deletion / insertion AUC ({report['images']} images, {STEPS} steps, pixels replaced by a "
        f"blur of sigma {BLUR_SIGMA:g} px); deletion: lower is better, insertion: higher is better"
    )
    print("| predicted class | images | deletion map / blocks / centre | insertion map / blocks / centre "
          "| map beats blocks | map beats centre |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, row in report["per_class"].items():
        deletion = " / ".join(f"{row[f'deletion_{o}']:.3f}" for o in ORDERS)
        insertion = " / ".join(f"{row[f'insertion_{o}']:.3f}" for o in ORDERS)
        yes = {True: "yes", False: "no"}
        print(
            f"| {name} | {row['images']} | {deletion} | {insertion} | "
            f"{yes[row['beats_random_blocks']]} | {yes[row['beats_centre']]} |"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Train the generalisation variants, one style change at a time (issue: external sensitivity).

Each variant is the compact recipe with one group of changes; they train in parallel
processes (a GPU runs them side by side; on 2 CPU cores run one at a time). Evaluate
each with `bt-export RUN --out RUN/export/model.onnx --quantize` and then
`bench/model_report.py --model RUN/export/model.int8.onnx --testing ... --external ...`.

    python bench/generalisation_train.py --data ../shared/data/brain-tumor-mri/Training \
        --out runs/generalisation --device cuda --parallel 6
"""

from __future__ import annotations

import argparse
import multiprocessing
from dataclasses import replace
from pathlib import Path

from brain_tumor_edge.runtime.preprocess import PreprocessConfig
from brain_tumor_edge.train.architectures import get_architecture
from brain_tumor_edge.train.augment import AugmentConfig

COMPACT = get_architecture("compact")
OLD_INPUT = COMPACT.preprocess  # RGB, pixel / 255
GREY_INPUT = replace(OLD_INPUT, grayscale=True)
OLD_AUGMENT = COMPACT.recipe.augment
NEW_INPUT = PreprocessConfig(size=160, grayscale=True, intensity="percentile")
INTENSITY = {"gamma": 0.4, "contrast": 0.3, "invert_probability": 0.1}
DEGRADE = {"blur_probability": 0.3, "noise_std": 8.0, "jpeg_probability": 0.5, "crop_scale": 0.6}
NEW_AUGMENT = replace(OLD_AUGMENT, **INTENSITY, **DEGRADE)

# name -> (input definition, augmentation)
VARIANTS: dict[str, tuple[PreprocessConfig, AugmentConfig]] = {
    "old": (OLD_INPUT, OLD_AUGMENT),  # the compact recipe as shipped
    "grey": (GREY_INPUT, OLD_AUGMENT),
    "input": (NEW_INPUT, OLD_AUGMENT),  # grey + per-image percentile scaling
    "input+intensity": (NEW_INPUT, replace(OLD_AUGMENT, **INTENSITY)),
    "input+degrade": (NEW_INPUT, replace(OLD_AUGMENT, **DEGRADE)),
    "grey+augment": (GREY_INPUT, NEW_AUGMENT),
    "input+curve": (NEW_INPUT, replace(OLD_AUGMENT, curve_probability=0.5)),
    "all": (NEW_INPUT, NEW_AUGMENT),  # every style change at once (tried, not shipped)
}


def train_variant(name: str, data: Path, out: Path, device: str, threads: int, epochs: int | None) -> None:
    from brain_tumor_edge.train.config import TrainConfig
    from brain_tumor_edge.train.trainer import train

    preprocess, augment = VARIANTS[name]
    recipe = replace(COMPACT.recipe, augment=augment, **({"epochs": epochs} if epochs else {}))
    config = TrainConfig(
        data=data,
        out=out / name,
        arch="compact",
        recipe=recipe,
        preprocess=preprocess,
        val_fraction=0.1,
        threads=threads,
        show_progress=False,
        device=device,
    )
    metrics = train(config)
    print(f"{name}: validation accuracy {metrics['validation']['accuracy']:.4f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", default=",".join(v for v in VARIANTS if v != "old"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--parallel", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per variant")
    parser.add_argument("--epochs", type=int, default=None, help="default: the compact recipe's")
    args = parser.parse_args()
    names = [n for n in args.variants.split(",") if n]
    jobs = [(n, args.data, args.out, args.device, args.threads, args.epochs) for n in names]
    context = multiprocessing.get_context("spawn")  # CUDA does not survive fork
    with context.Pool(args.parallel) as pool:
        pool.starmap(train_variant, jobs)


if __name__ == "__main__":
    main()

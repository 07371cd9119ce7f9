"""Training speed of the bundled recipe and of each lever, side by side in one run, with the CPU's flags.

    python bench/train_speed.py [--steps 12] [--batch 32] [--validation-images 3470] [--json out.json]

Each row times the same loop `bt-train` runs (augmentation, forward, loss, backward,
AdamW step, and the averaged weights' update where the recipe keeps them) on a batch of
cached uint8 images, so figures are training images per second of the network alone
(data is decoded once before training and never again). Synthetic images: the content
does not change the compute. The last lines turn the rows into the time of a whole run of
each recipe, validation included, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace

import numpy as np
import torch

from brain_tumor_edge.train.architectures import get_architecture
from brain_tumor_edge.train.augment import augment_batch, build_augmentation
from brain_tumor_edge.train.hardware import Cpu
from brain_tumor_edge.train.loss import TwoGrainLoss
from brain_tumor_edge.train.predict import predict_logits, to_network_input
from brain_tumor_edge.train.recipe import Recipe
from brain_tumor_edge.train.trainer import _ema_update

# The recipe the bundled model had before these levers: 36 epochs at 160 px, validated
# every epoch, no averaged weights (runtime/models/HISTORY.md).
BEFORE = replace(
    get_architecture("compact").recipe, epochs=36, ema_decay=0.0, early_size=0, smoothing_epochs=1
)


def images_per_second(size: int, batch: int, steps: int, ema: bool, bf16: bool) -> dict:
    """Median images/s over `steps` training steps (after two warm-up steps), with the
    augmentation's share of a step."""
    architecture = get_architecture("compact")
    model = architecture.build(4).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    averaged = (
        torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=_ema_update(0.998), use_buffers=True)
        if ema
        else None
    )
    augmentation = build_augmentation(architecture.recipe.augment, size)
    loss_function = TwoGrainLoss(2, 0.1)
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, (batch, 3, size, size), dtype=np.uint8))
    labels = torch.from_numpy(rng.integers(-1, 4, batch))
    step_seconds, augment_seconds = [], []
    for step in range(steps + 2):
        started = time.perf_counter()
        augmented = augment_batch(images, augmentation, grey=True)
        augmented_at = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(to_network_input(augmented, architecture.preprocess, torch.device("cpu")))
        loss_function(logits.float(), labels).backward()
        optimizer.step()
        if averaged is not None:
            averaged.update_parameters(model)
        if step >= 2:
            step_seconds.append(time.perf_counter() - started)
            augment_seconds.append(augmented_at - started)
    median = statistics.median(step_seconds)
    return {
        "images_per_second": round(batch / median, 1),
        "augmentation_share": round(statistics.median(augment_seconds) / median, 3),
    }


def validation_images_per_second(images: int) -> float:
    architecture = get_architecture("compact")
    model = architecture.build(4).to(memory_format=torch.channels_last)
    cached = np.random.default_rng(1).integers(0, 256, (images, 3, 160, 160), dtype=np.uint8)
    started = time.perf_counter()
    predict_logits(model, cached, architecture.preprocess)
    return images / (time.perf_counter() - started)


def run_seconds(recipe: Recipe, epoch_images: int, speed: dict[int, float], validation: float) -> float:
    """A whole run's seconds: each epoch's images at its size, plus each validation."""
    early = recipe.early_epochs()
    seconds = 0.0
    for epoch in range(1, recipe.epochs + 1):
        size = recipe.early_size if epoch <= early else 160
        seconds += epoch_images / speed[size]
        if epoch > early or epoch % recipe.early_validate_every == 0 or epoch == recipe.epochs:
            seconds += validation
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--epoch-images", type=int, default=18051, help="one epoch's draw (the bundled mix)")
    parser.add_argument("--validation-images", type=int, default=3470)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = Cpu.read()
    print(f"CPU: {cpu.describe()}; {args.threads} threads; torch {torch.__version__}")
    native = "yes" if cpu.native_bf16 else "no (autocast would be emulated: the recipe keeps it off)"
    print(f"native bf16: {native}")

    levers = {
        "bundled recipe before (160 px, fp32)": (160, False, False),
        "+ averaged weights (EMA every step)": (160, True, False),
        "+ bf16 autocast": (160, True, True),
        "progressive resizing, early epochs (112 px)": (112, True, False),
        "smaller still (96 px), not used": (96, True, False),
    }
    rows = {}
    for name, (size, ema, bf16) in levers.items():
        # Emulated bf16 is ~10x slower: a few steps show it.
        steps = 3 if bf16 and not cpu.native_bf16 else args.steps
        rows[name] = images_per_second(size, args.batch, steps, ema, bf16)
        figures = rows[name]
        print(
            f"{name:<46} {figures['images_per_second']:>7.1f} img/s"
            f"   augmentation {100 * figures['augmentation_share']:.0f}% of a step"
        )
    validation = validation_images_per_second(min(args.validation_images, 1024))
    validation_seconds = args.validation_images / validation
    print(f"validation: {validation:.0f} img/s, {validation_seconds:.0f} s per validation")

    speed_before = {160: rows["bundled recipe before (160 px, fp32)"]["images_per_second"]}
    speed_now = {
        160: rows["+ averaged weights (EMA every step)"]["images_per_second"],
        112: rows["progressive resizing, early epochs (112 px)"]["images_per_second"],
    }
    now = get_architecture("compact").recipe
    before_s = run_seconds(BEFORE, args.epoch_images, speed_before, validation_seconds)
    now_s = run_seconds(now, args.epoch_images, speed_now, validation_seconds)
    per_epoch_before = before_s / BEFORE.epochs
    per_epoch_now = now_s / now.epochs
    print(
        f"a whole run: before {BEFORE.epochs} epochs, {before_s / 60:.0f} min "
        f"({args.epoch_images / per_epoch_before:.0f} img/s with validation); "
        f"now {now.epochs} epochs ({now.early_epochs()} at {now.early_size} px), {now_s / 60:.0f} min "
        f"({args.epoch_images / per_epoch_now:.0f} img/s with validation): "
        f"{per_epoch_before / per_epoch_now:.2f}x cheaper per epoch, {before_s / now_s:.2f}x per run"
    )
    if args.json:
        result = {
            "cpu": cpu.describe(),
            "threads": args.threads,
            "levers": rows,
            "validation_images_per_second": round(validation, 1),
            "run_minutes_before": round(before_s / 60, 1),
            "run_minutes_now": round(now_s / 60, 1),
            "epoch_speedup": round(per_epoch_before / per_epoch_now, 2),
        }
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()

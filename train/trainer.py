"""The training loop: Adam(W) + two-grain cross-entropy, best epoch by validation, and its reports.

Labels come in two grains (train/targets.py): a class, or "a tumour, type unknown". The
best epoch is the one whose validation predictions most often lie in their label's set
(four-class accuracy and tumour sensitivity in one figure), then the lowest loss.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from brain_tumor_edge.runtime.metrics import (
    UNCALIBRATED,
    classification_report,
    expected_calibration_error,
    negative_log_likelihood,
    softmax,
)
from brain_tumor_edge.runtime.preprocess import PreprocessConfig, normalize
from brain_tumor_edge.train.architectures import get_architecture, parameter_count
from brain_tumor_edge.train.augment import augment_batch, build_augmentation
from brain_tumor_edge.train.calibration import fit_temperature
from brain_tumor_edge.train.checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from brain_tumor_edge.train.config import TrainConfig
from brain_tumor_edge.train.data import (
    DataError,
    ImageSet,
    duplicate_safe_split,
    load_images,
    scan_labelled_folder,
    stratified_subset,
    with_tumour_unknown,
)
from brain_tumor_edge.train.distributed import Ranks, unwrap
from brain_tumor_edge.train.loss import TwoGrainLoss
from brain_tumor_edge.train.plots import plot_confusion_matrix, plot_curves
from brain_tumor_edge.train.recipe import Recipe
from brain_tumor_edge.train.targets import (
    TUMOUR_UNKNOWN_NAME,
    in_set,
    negative_index,
    validation_scores,
)
from brain_tumor_edge.train.twins import twin_groups

console = Console(stderr=True, soft_wrap=True)


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def to_network_input(batch: torch.Tensor, preprocess: PreprocessConfig, device: torch.device) -> torch.Tensor:
    """uint8 N x 3 x S x S -> float input, through the runtime's own `normalize`."""
    normalised = torch.from_numpy(normalize(batch.numpy(), preprocess))
    return normalised.to(device).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: np.ndarray,
    preprocess: PreprocessConfig,
    batch_size: int = 128,
    features: bool = False,
) -> np.ndarray:
    """Logits (or, with `features`, the vectors the classifier reads) for uint8 images."""
    model.eval()
    device = model_device(model)
    forward = model.features if features else model
    outputs = [
        forward(to_network_input(torch.from_numpy(images[start : start + batch_size]), preprocess, device))
        .cpu()
        .numpy()
        for start in range(0, len(images), batch_size)
    ]
    return np.concatenate(outputs) if outputs else np.empty((0, 0), np.float32)


def predict_probabilities(
    model: nn.Module, images: np.ndarray, preprocess: PreprocessConfig, temperature: float = UNCALIBRATED
) -> np.ndarray:
    return softmax(predict_logits(model, images, preprocess), temperature)


def _learning_rate_factor(recipe: Recipe, steps_per_epoch: int) -> Callable[[int], float]:
    total = max(1, recipe.epochs * steps_per_epoch)
    warmup = recipe.warmup_epochs * steps_per_epoch

    def factor(step: int) -> float:
        if recipe.schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


@dataclass
class _Optimisation:
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss: nn.Module
    augmentation: Callable[[torch.Tensor], torch.Tensor]

    @classmethod
    def for_recipe(
        cls, model: nn.Module, recipe: Recipe, steps_per_epoch: int, size: int, negative: int
    ) -> _Optimisation:
        if recipe.weight_decay:
            optimizer = torch.optim.AdamW(
                model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
            )
        else:
            optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _learning_rate_factor(recipe, steps_per_epoch)
        )
        loss = TwoGrainLoss(negative, recipe.label_smoothing, recipe.tumour_unknown_weight)
        return cls(optimizer, scheduler, loss, build_augmentation(recipe.augment, size))


def _train_one_epoch(
    model: nn.Module,
    steps: _Optimisation,
    data: ImageSet,
    recipe: Recipe,
    preprocess: PreprocessConfig,
    progress: Progress,
    epoch: int,
    ranks: Ranks,
    seed: int,
    negative: int,
) -> tuple[float, float]:
    model.train()
    device = model_device(model)
    order = ranks.epoch_order(len(data.labels), seed, epoch)
    batch_size = ranks.local_batch(recipe.batch_size)
    task = progress.add_task(f"epoch {epoch}/{recipe.epochs}", total=len(order), stats="")
    loss_sum, correct, seen = 0.0, 0, 0
    for start in range(0, len(order), batch_size):
        indices = np.sort(order[start : start + batch_size])
        images = augment_batch(
            torch.from_numpy(data.images[indices]), steps.augmentation, preprocess.grayscale
        )
        labels = torch.from_numpy(data.labels[indices]).to(device)
        steps.optimizer.zero_grad(set_to_none=True)
        logits = model(to_network_input(images, preprocess, device))
        loss = steps.loss(logits, labels)
        loss.backward()
        steps.optimizer.step()
        steps.scheduler.step()
        loss_sum += loss.item() * len(indices)
        predictions = logits.argmax(1).cpu().numpy()
        correct += int(in_set(data.labels[indices], predictions, negative).sum())
        seen += len(indices)
        progress.update(
            task, advance=len(indices), stats=f"loss {loss_sum / seen:.3f} acc {correct / seen:.3f}"
        )
    progress.remove_task(task)
    loss_sum, correct, seen = ranks.sum(loss_sum, correct, seen)
    return loss_sum / seen, correct / seen


def load_split(
    data: Path,
    preprocess: PreprocessConfig,
    val_fraction: float,
    seed: int,
    max_images: int | None = None,
    threads: int = 2,
    show_progress: bool = False,
    tumour_unknown: Path | None = None,
) -> tuple[ImageSet, ImageSet, ImageSet, list[str]]:
    """Decode a labelled folder (and a tumour-unknown one) and split them as training does:
    (all, train, validation, skipped).

    Export calls this too, with the checkpoint's recorded settings, to fit the scope
    score on the very images the network trained on and set its limit on validation.
    """
    files = scan_labelled_folder(data)
    if tumour_unknown is not None:
        files = with_tumour_unknown(files, tumour_unknown)
    if max_images:
        files = stratified_subset(files, max_images, seed)
    dataset, skipped = load_images(files, preprocess, threads, show_progress)
    groups = twin_groups(dataset.hashes, dataset.phash)
    train_idx, val_idx = duplicate_safe_split(dataset.labels, groups, val_fraction, seed)
    return dataset, dataset.subset(train_idx), dataset.subset(val_idx), skipped


def _write_history(history: list[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def train(config: TrainConfig) -> dict:
    """Train, keep the best epoch, write every artifact into `config.out`; returns metrics."""
    architecture = get_architecture(config.arch)
    preprocess = config.resolved_preprocess()
    ranks = Ranks.start(config.resolved_device())
    try:
        return _train(config, architecture, preprocess, ranks)
    finally:
        ranks.stop()


def _train(config: TrainConfig, architecture, preprocess: PreprocessConfig, ranks: Ranks) -> dict:
    device = ranks.device
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    torch.set_num_threads(config.threads)
    say = console.print if ranks.is_main else (lambda *args, **kwargs: None)

    started = time.perf_counter()
    dataset, train_set, val_set, skipped = load_split(
        config.data,
        preprocess,
        config.val_fraction,
        config.seed,
        config.max_images,
        config.threads,
        config.show_progress,
        config.tumour_unknown,
    )
    for problem in skipped:
        say(f"[yellow]skipped[/] {problem}")
    try:
        negative = negative_index(dataset.class_names, config.negative_class)
    except ValueError as exc:
        if config.tumour_unknown is not None:
            raise DataError(f"--tumour-unknown needs the negative class: {exc}") from None
        negative = -1  # no unknown-type images: the loss is plain cross-entropy
    unknown = int((dataset.labels < 0).sum())
    say(
        f"{len(dataset.labels)} images ({', '.join(dataset.class_names)}"
        + (f", {unknown} {TUMOUR_UNKNOWN_NAME}" if unknown else "")
        + f") decoded in {time.perf_counter() - started:.1f}s: {len(train_set.labels)} train, "
        f"{len(val_set.labels)} validation (exact and near twins kept on one side)"
    )

    model = architecture.build(len(dataset.class_names)).to(device, memory_format=torch.channels_last)
    processes = f", {ranks.world} processes" if ranks.distributed else ""
    say(f"architecture {architecture.name}: {parameter_count(model):,} parameters, on {device}{processes}")
    model = ranks.wrap(model)
    torch.manual_seed(config.seed + ranks.rank)  # each rank its own augmentation and dropout draws
    recipe = config.resolved_recipe()
    per_rank = math.ceil(len(train_set.labels) / ranks.world)
    steps_per_epoch = math.ceil(per_rank / ranks.local_batch(recipe.batch_size))
    steps = _Optimisation.for_recipe(model, recipe, steps_per_epoch, preprocess.size, negative)
    if ranks.is_main:
        config.out.mkdir(parents=True, exist_ok=True)

    history: list[dict] = []
    best: dict | None = None
    interrupted = False
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} {task.fields[stats]}"),
        TimeRemainingColumn(),
        console=console,
        disable=not (config.show_progress and ranks.is_main),
        transient=True,
    )
    try:
        with progress:
            for epoch in range(1, recipe.epochs + 1):
                epoch_start = time.perf_counter()
                train_loss, train_acc = _train_one_epoch(
                    model,
                    steps,
                    train_set,
                    recipe,
                    preprocess,
                    progress,
                    epoch,
                    ranks,
                    config.seed,
                    negative,
                )
                train_seconds = time.perf_counter() - epoch_start
                # Every rank holds the same weights: each computes the same validation figures.
                probabilities = predict_probabilities(unwrap(model), val_set.images, preprocess)
                scores = validation_scores(probabilities, val_set.labels, negative)
                val_loss, val_acc = scores["loss"], scores["acc"]
                row = {
                    "epoch": epoch,
                    "train_loss": round(train_loss, 5),
                    "train_acc": round(train_acc, 5),
                    "val_loss": round(val_loss, 5),
                    "val_acc": round(val_acc, 5),
                    "epoch_seconds": round(time.perf_counter() - epoch_start, 2),
                    "train_images_per_second": round(len(train_set.labels) / train_seconds, 1),
                }
                if unknown:
                    row["val_set_acc"] = round(scores["set_acc"], 5)
                    row["val_tumour_unknown_sensitivity"] = round(scores["tumour_unknown_sensitivity"], 5)
                history.append(row)
                key = "val_set_acc" if unknown else "val_acc"
                improved = best is None or (row[key], -val_loss) > (best[key], -best["val_loss"])
                if improved:
                    best = row
                if not ranks.is_main:
                    continue
                _write_history(history, config.out / "history.csv")
                sensitivity = (
                    f" tumour-unknown sens {row['val_tumour_unknown_sensitivity']:.4f}" if unknown else ""
                )
                console.print(
                    f"epoch {epoch:>3}: train loss {train_loss:.4f} acc {train_acc:.4f} | "
                    f"val loss {val_loss:.4f} acc {val_acc:.4f}{sensitivity} | {row['epoch_seconds']:.0f}s, "
                    f"{row['train_images_per_second']:.0f} img/s{'  *best' if improved else ''}"
                )
                if improved:
                    save_checkpoint(
                        Checkpoint(
                            architecture=architecture.name,
                            class_names=dataset.class_names,
                            preprocess=preprocess,
                            state_dict={
                                k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()
                            },
                            epoch=epoch,
                            seed=config.seed,
                            train_config=config.as_record(),
                        ),
                        config.out / CHECKPOINT_NAME,
                    )
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: keeping the best checkpoint so far[/]")
    if best is None:
        raise KeyboardInterrupt  # nothing finished: nothing to report
    in_sync = ranks.in_sync(unwrap(model))
    metrics: dict = {}
    if ranks.is_main:
        metrics = _finish(
            config, architecture.name, dataset, val_set, history, best, skipped, interrupted, negative
        )
        metrics["processes"] = ranks.world
        metrics["ranks_in_sync"] = in_sync
        (config.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    ranks.barrier()
    return metrics


def _finish(
    config: TrainConfig,
    architecture: str,
    dataset: ImageSet,
    val_set: ImageSet,
    history: list[dict],
    best: dict,
    skipped: list[str],
    interrupted: bool,
    negative: int,
) -> dict:
    """Evaluate the best checkpoint on validation; write metrics, plots and the final checkpoint.

    Temperature, calibration and the confusion matrix use the labelled images; the
    unknown-type ones are reported as tumour sensitivity (and a row of the matrix figure).
    """
    checkpoint = load_checkpoint(config.out / CHECKPOINT_NAME)
    model = checkpoint.build_model()
    all_logits = predict_logits(model, val_set.images, checkpoint.preprocess)
    known = val_set.labels >= 0
    logits, labels = all_logits[known], val_set.labels[known]
    temperature = fit_temperature(logits, labels)
    raw, calibrated = softmax(logits), softmax(logits, temperature)
    report = classification_report(labels, calibrated, dataset.class_names)
    calibration = {
        "temperature": temperature,
        "ece_before": round(expected_calibration_error(raw, labels), 4),
        "ece_after": round(expected_calibration_error(calibrated, labels), 4),
        "nll_before": round(negative_log_likelihood(raw, labels), 4),
        "nll_after": round(negative_log_likelihood(calibrated, labels), 4),
    }
    matrix = np.asarray(report["confusion_matrix"])
    row_names = list(dataset.class_names)
    if not known.all():
        unknown_predictions = all_logits[~known].argmax(1)
        scores = validation_scores(softmax(all_logits), val_set.labels, negative)
        report["tumour_unknown"] = {
            "images": int((~known).sum()),
            "sensitivity": round(scores["tumour_unknown_sensitivity"], 4),
            "predicted": {
                name: int((unknown_predictions == index).sum())
                for index, name in enumerate(dataset.class_names)
            },
        }
        counts = np.bincount(unknown_predictions, minlength=len(row_names))
        matrix = np.vstack([matrix, counts])
        row_names.append(TUMOUR_UNKNOWN_NAME)
    seconds = [row["epoch_seconds"] for row in history]
    metrics = {
        "architecture": architecture,
        "parameters": parameter_count(model),
        "best_epoch": best["epoch"],
        "epochs_run": len(history),
        "interrupted": interrupted,
        "train_images": len(dataset.labels) - len(val_set.labels),
        "validation": report,
        "calibration": calibration,
        "mean_epoch_seconds": round(float(np.mean(seconds)), 2),
        "total_training_seconds": round(float(np.sum(seconds)), 1),
        "mean_train_images_per_second": round(
            float(np.mean([row["train_images_per_second"] for row in history])), 1
        ),
        "skipped_files": skipped,
        "train_config": config.as_record(),
    }
    checkpoint.temperature = temperature
    checkpoint.metrics = {
        "validation_accuracy": report["accuracy"],
        "best_epoch": best["epoch"],
        "validation_ece": calibration["ece_after"],
    }
    if "tumour_unknown" in report:
        checkpoint.metrics["validation_tumour_unknown_sensitivity"] = report["tumour_unknown"]["sensitivity"]
    save_checkpoint(checkpoint, config.out / CHECKPOINT_NAME)
    (config.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    plot_curves(history, config.out / "curves.png")
    plot_confusion_matrix(
        matrix,
        dataset.class_names,
        row_names,
        config.out / "confusion_matrix.png",
        f"validation (best epoch {best['epoch']}), accuracy {report['accuracy']:.3f}",
    )
    return metrics

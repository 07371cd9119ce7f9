"""The training loop: Adam(W) + two-grain cross-entropy, best epoch by validation, and its reports.

Labels come in two grains (train/targets.py): a class, or "a tumour, type unknown". With
one source the best epoch is the one whose validation predictions most often lie in
their label's set (then the lowest loss); with a mix (train/mix.py) it is the one whose
*worst* source does best (balanced over its labels), so no source is traded for the
pooled figure. Every epoch ends with a resume state (`last.pt`): `bt-train --resume RUN`
continues an interrupted run to the same weights an uninterrupted one reaches (each
epoch's draw and random augmentation are seeded from (seed, rank, epoch), not carried).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from ..runtime.metrics import (
    classification_report,
    expected_calibration_error,
    negative_log_likelihood,
    softmax,
)
from ..runtime.preprocess import PreprocessConfig
from .architectures import get_architecture, parameter_count
from .augment import augment_batch, build_augmentation
from .calibration import fit_temperature
from .checkpoint import CHECKPOINT_NAME, Checkpoint, save_checkpoint
from .config import TrainConfig
from .data import DataError, ImageSet
from .distributed import Ranks, unwrap
from .loss import TwoGrainLoss
from .plots import plot_confusion_matrix, plot_curves
from .predict import (
    model_device,
    predict_logits,
    predict_probabilities,
    to_network_input,
)
from .recipe import Recipe
from .split import epoch_draw, load_split
from .targets import (
    TUMOUR_UNKNOWN_NAME,
    in_set,
    negative_index,
    source_scores,
    validation_scores,
)

console = Console(stderr=True, soft_wrap=True)
RESUME_NAME = "last.pt"


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
    order: np.ndarray,
    negative: int,
) -> tuple[float, float]:
    model.train()
    device = model_device(model)
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


@dataclass
class _Best:
    row: dict
    state: dict[str, torch.Tensor]  # the weights of that epoch, on the CPU


def train(config: TrainConfig, resume: bool = False) -> dict:
    """Train, keep the best epoch, write every artifact into `config.out`; returns metrics.

    With `resume`, continue from `config.out / last.pt` (bt-train --resume RUN)."""
    architecture = get_architecture(config.arch)
    preprocess = config.resolved_preprocess()
    ranks = Ranks.start(config.resolved_device())
    try:
        return _train(config, architecture, preprocess, ranks, resume)
    finally:
        ranks.stop()


def _history_row(
    epoch: int, train_loss: float, train_acc: float, scores: dict, sources: dict, multi_source: bool
) -> dict:
    row = {
        "epoch": epoch,
        "train_loss": round(train_loss, 5),
        "train_acc": round(train_acc, 5),
        "val_loss": round(scores["loss"], 5),
        "val_acc": round(scores["acc"], 5),
    }
    if "tumour_unknown_sensitivity" in scores:
        row["val_set_acc"] = round(scores["set_acc"], 5)
        row["val_tumour_unknown_sensitivity"] = round(scores["tumour_unknown_sensitivity"], 5)
    if multi_source:
        top = {name: figures for name, figures in sources.items() if "/" not in name}
        worst = min(top, key=lambda name: top[name]["balanced"])
        row["val_worst_source"] = worst
        row["val_worst_balanced"] = top[worst]["balanced"]
        for name, figures in top.items():
            row[f"val_{name}_balanced"] = figures["balanced"]
            row[f"val_{name}_auroc"] = figures.get("auroc", "")
    return row


def _criterion(row: dict) -> tuple[float, float]:
    """Higher is better: the worst source's balanced figure (a mix), else the set accuracy."""
    key = next(k for k in ("val_worst_balanced", "val_set_acc", "val_acc") if k in row)
    return row[key], -row["val_loss"]


def _save_resume_state(path: Path, state: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)  # an interrupted save never replaces a good state


def _train(
    config: TrainConfig, architecture, preprocess: PreprocessConfig, ranks: Ranks, resume: bool
) -> dict:
    device = ranks.device
    torch.manual_seed(config.seed)  # the same initial weights on every rank
    torch.set_num_threads(config.threads)
    say = console.print if ranks.is_main else (lambda *args, **kwargs: None)

    started = time.perf_counter()
    mix = config.resolved_mix()
    split = load_split(mix, preprocess, config.split(), config.threads, config.show_progress)
    dataset, train_set, val_set = split.all, split.train, split.validation
    for problem in split.skipped:
        say(f"[yellow]skipped[/] {problem}")
    unknown = int((dataset.labels < 0).sum())
    try:
        negative = negative_index(dataset.class_names, mix.negative_class)
    except ValueError as exc:
        if unknown:
            raise DataError(f"tumour-unknown images need the negative class: {exc}") from None
        negative = -1  # no unknown-type images: the loss is plain cross-entropy
    multi_source = len(mix.sources) > 1
    say(
        f"{len(dataset.labels)} images ({', '.join(dataset.class_names)}"
        + (f", {unknown} {TUMOUR_UNKNOWN_NAME}" if unknown else "")
        + f"; {len(mix.sources)} source(s)) decoded in {time.perf_counter() - started:.1f}s: "
        f"{len(train_set.labels)} train, {len(val_set.labels)} validation "
        "(patients, groups and exact and near twins kept on one side)"
    )

    model = architecture.build(len(dataset.class_names)).to(device, memory_format=torch.channels_last)
    processes = f", {ranks.world} processes" if ranks.distributed else ""
    say(f"architecture {architecture.name}: {parameter_count(model):,} parameters, on {device}{processes}")
    model = ranks.wrap(model)
    recipe = config.resolved_recipe()
    weights = tuple(source.weight for source in mix.sources)
    epoch_size = len(epoch_draw(train_set.origin.sources, weights, config.seed, 1))
    steps_per_epoch = math.ceil(math.ceil(epoch_size / ranks.world) / ranks.local_batch(recipe.batch_size))
    steps = _Optimisation.for_recipe(model, recipe, steps_per_epoch, preprocess.size, negative)
    resume_path = config.out / RESUME_NAME
    history: list[dict] = []
    best: _Best | None = None
    first_epoch = 1
    if resume:
        state = torch.load(resume_path, map_location="cpu", weights_only=True)
        unwrap(model).load_state_dict(state["model"])
        steps.optimizer.load_state_dict(state["optimizer"])
        steps.scheduler.load_state_dict(state["scheduler"])
        history, first_epoch = state["history"], state["epoch"] + 1
        best = _Best(state["best_row"], state["best_state"])
        say(f"resuming {config.out} after epoch {state['epoch']} of {recipe.epochs}")
    if ranks.is_main:
        config.out.mkdir(parents=True, exist_ok=True)

    record = config.as_record()  # the same every epoch: made once
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
            for epoch in range(first_epoch, recipe.epochs + 1):
                epoch_start = time.perf_counter()
                # Augmentation and dropout draws: a function of (seed, rank, epoch), so a
                # resumed epoch is the epoch the interrupted run would have trained.
                torch.manual_seed(config.seed * 1_000_003 + ranks.rank * 10_007 + epoch)
                order = ranks.share(epoch_draw(train_set.origin.sources, weights, config.seed, epoch))
                train_loss, train_acc = _train_one_epoch(
                    model, steps, train_set, recipe, preprocess, progress, epoch, ranks, order, negative
                )
                train_seconds = time.perf_counter() - epoch_start
                # Every rank holds the same weights: each computes the same validation figures.
                probabilities = predict_probabilities(unwrap(model), val_set.images, preprocess)
                scores = validation_scores(probabilities, val_set.labels, negative)
                sources = source_scores(
                    probabilities,
                    val_set.labels,
                    val_set.origin.sources,
                    val_set.origin.source_names,
                    val_set.origin.sequences,
                    negative,
                )
                row = _history_row(epoch, train_loss, train_acc, scores, sources, multi_source)
                row["epoch_seconds"] = round(time.perf_counter() - epoch_start, 2)
                row["train_images_per_second"] = round(len(order) * ranks.world / train_seconds, 1)
                history.append(row)
                improved = best is None or _criterion(row) > _criterion(best.row)
                if improved:
                    best = _Best(
                        row, {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}
                    )
                if not ranks.is_main:
                    continue
                _write_history(history, config.out / "history.csv")
                with open(
                    config.out / "history_sources.jsonl", "a" if epoch > 1 else "w", encoding="utf-8"
                ) as log:
                    log.write(json.dumps({"epoch": epoch, "sources": sources}) + "\n")
                _print_epoch(row, sources if multi_source else {}, improved)
                assert best is not None
                _save_resume_state(
                    resume_path,
                    {
                        "epoch": epoch,
                        "model": unwrap(model).state_dict(),
                        "optimizer": steps.optimizer.state_dict(),
                        "scheduler": steps.scheduler.state_dict(),
                        "history": history,
                        "best_row": best.row,
                        "best_state": best.state,
                        "train_config": record,
                    },
                )
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: keeping the best epoch so far (resume with --resume)[/]")
    if best is None:
        raise KeyboardInterrupt  # nothing finished: nothing to report
    in_sync = ranks.in_sync(unwrap(model))
    metrics: dict = {}
    if ranks.is_main:
        metrics = _finish(
            config,
            architecture.name,
            dataset,
            val_set,
            history,
            best,
            split.skipped,
            interrupted,
            negative,
            preprocess,
        )
        metrics["processes"] = ranks.world
        metrics["ranks_in_sync"] = in_sync
        (config.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        if not interrupted:
            resume_path.unlink(missing_ok=True)  # finished: nothing left to resume
    ranks.barrier()
    return metrics


def _write_history(history: list[dict], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def _print_epoch(row: dict, sources: dict, improved: bool) -> None:
    sensitivity = (
        f" tumour-unknown sens {row['val_tumour_unknown_sensitivity']:.4f}"
        if "val_tumour_unknown_sensitivity" in row
        else ""
    )
    console.print(
        f"epoch {row['epoch']:>3}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} | "
        f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}{sensitivity} | "
        f"{row['epoch_seconds']:.0f}s, {row['train_images_per_second']:.0f} img/s"
        + ("  *best" if improved else "")
    )
    for name, figures in sources.items():
        shown = " ".join(
            f"{key} {figures[key]:.3f}"
            for key in ("acc", "sensitivity", "specificity", "auroc", "balanced")
            if key in figures
        )
        console.print(f"    {name:<24} n {figures['images']:>5} {shown}")


def _finish(
    config: TrainConfig,
    architecture: str,
    dataset: ImageSet,
    val_set: ImageSet,
    history: list[dict],
    best: _Best,
    skipped: list[str],
    interrupted: bool,
    negative: int,
    preprocess: PreprocessConfig,
) -> dict:
    """Evaluate the best epoch on validation; write the checkpoint, metrics and plots, once each.

    Temperature, calibration and the confusion matrix use the labelled images; the
    unknown-type ones are reported as tumour sensitivity (and a row of the matrix figure).
    """
    checkpoint = Checkpoint(
        architecture=architecture,
        class_names=dataset.class_names,
        preprocess=preprocess,
        state_dict=best.state,
        epoch=best.row["epoch"],
        seed=config.seed,
        train_config=config.as_record(),
        negative_class=config.resolved_mix().negative_class,
    )
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
    report["sources"] = source_scores(
        softmax(all_logits, temperature),
        val_set.labels,
        val_set.origin.sources,
        val_set.origin.source_names,
        val_set.origin.sequences,
        negative,
    )
    seconds = [row["epoch_seconds"] for row in history]
    metrics = {
        "architecture": architecture,
        "parameters": parameter_count(model),
        "best_epoch": best.row["epoch"],
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
        "best_epoch": best.row["epoch"],
        "validation_ece": calibration["ece_after"],
    }
    if "tumour_unknown" in report:
        checkpoint.metrics["validation_tumour_unknown_sensitivity"] = report["tumour_unknown"]["sensitivity"]
    save_checkpoint(checkpoint, config.out / CHECKPOINT_NAME)
    plot_curves(history, config.out / "curves.png")
    plot_confusion_matrix(
        matrix,
        dataset.class_names,
        row_names,
        config.out / "confusion_matrix.png",
        f"validation (best epoch {best.row['epoch']}), accuracy {report['accuracy']:.3f}",
    )
    return metrics

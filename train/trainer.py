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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ..runtime.atomic import replacing, write_text_atomically
from ..runtime.metrics import (
    classification_report,
    expected_calibration_error,
    negative_log_likelihood,
    softmax,
)
from ..runtime.preprocess import PreprocessConfig
from .architectures import get_architecture, parameter_count
from .augment import AugmentConfig, augment_batch, build_augmentation
from .balance import Balance, class_shares
from .calibration import balanced_recall, fit_temperature, fit_type_bias
from .checkpoint import CHECKPOINT_NAME, Checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig, lineage_differences
from .data import DataError, ImageSet
from .distributed import Ranks, unwrap
from .hardware import Cpu, use_bf16
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


def _ema_update(decay: float) -> Callable:
    """AveragedModel's update with timm's warm-up: the decay is min(decay, (1 + n) / (10 + n))
    after n updates, so a short run's average is not held at the random initial weights."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], updates: torch.Tensor) -> None:
        if not torch.is_floating_point(averaged[0]):  # batch-norm's step counters: the latest
            torch._foreach_copy_(averaged, current)
            return
        n = int(updates)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1 + n) / (10 + n)))

    return update


@dataclass
class _Optimisation:
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss: nn.Module
    augment: AugmentConfig
    # The averaged weights (recipe.ema_decay), or None: then the trained weights are scored.
    ema: AveragedModel | None
    bf16: bool

    @classmethod
    def for_recipe(
        cls, model: nn.Module, recipe: Recipe, steps_per_epoch: int, negative: int, bf16: bool
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
        ema = None
        if recipe.ema_decay:
            # Buffers (batch-norm statistics) averaged too, as timm's ModelEmaV3 does.
            ema = AveragedModel(unwrap(model), multi_avg_fn=_ema_update(recipe.ema_decay), use_buffers=True)
        return cls(optimizer, scheduler, loss, recipe.augment, ema, bf16)

    def scored(self, model: nn.Module) -> nn.Module:
        """The weights validation scores and the checkpoint keeps."""
        return self.ema.module if self.ema is not None else unwrap(model)


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
    images_at_size: np.ndarray,
) -> tuple[float, float]:
    """One pass over `order`, on `images_at_size` (the cache, or its progressive-resizing copy)."""
    model.train()
    device = model_device(model)
    batch_size = ranks.local_batch(recipe.batch_size)
    augmentation = build_augmentation(steps.augment, images_at_size.shape[-1])
    task = progress.add_task(f"epoch {epoch}/{recipe.epochs}", total=len(order), stats="")
    loss_sum, correct, seen = 0.0, 0, 0
    for start in range(0, len(order), batch_size):
        indices = np.sort(order[start : start + batch_size])
        images = augment_batch(torch.from_numpy(images_at_size[indices]), augmentation, preprocess.grayscale)
        labels = torch.from_numpy(data.labels[indices]).to(device)
        steps.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=steps.bf16):
            logits = model(to_network_input(images, preprocess, device))
        loss = steps.loss(logits.float(), labels)
        loss.backward()
        steps.optimizer.step()
        steps.scheduler.step()
        if steps.ema is not None:
            steps.ema.update_parameters(unwrap(model))
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
    state: dict[str, torch.Tensor]  # the scored weights of that epoch, on the CPU


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


def _start_from(model: nn.Module, config: TrainConfig, class_names: tuple[str, ...]) -> str:
    """Load a finished run's weights (config.init_from) into `model`; refused where that run's
    validation images could be this run's training images."""
    checkpoint = load_checkpoint(config.init_from)
    differences = lineage_differences(
        checkpoint.train_config, checkpoint.class_names, config.as_record(), class_names
    )
    if differences:
        raise DataError(
            f"--init-from {config.init_from}: that run differs in {', '.join(differences)}, so its "
            "validation images could be trained on here; start from random weights instead"
        )
    model.load_state_dict(checkpoint.state_dict)
    size = checkpoint.preprocess.size
    at = "" if size == config.resolved_preprocess().size else f", trained at {size} px"
    return f"starting from {config.init_from} (epoch {checkpoint.epoch} of that run{at})"


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


def _criterion(row: dict) -> float:
    """Higher is better: the worst source's balanced figure (a mix), else the set accuracy."""
    return row[next(k for k in ("val_worst_balanced", "val_set_acc", "val_acc") if k in row)]


def _smooth(row: dict, history: list[dict], window: int, first_candidate: int, last: int) -> bool:
    """Add the smoothed criterion to `row`; True when the epoch may be chosen.

    The figure is the mean of the criterion over this epoch and the validated epochs
    before it (`window` in all) that trained at the final size; `val_window_spread` says
    how far the figure moved within that window. An epoch is a candidate once its window
    is full, and the last epoch always (the final size may have fewer epochs than the window)."""
    validated = [r for r in history if "val_loss" in r and r["epoch"] >= first_candidate]
    figures = [_criterion(r) for r in [*validated, row][-window:]]
    row["val_criterion"] = round(_criterion(row), 5)
    row["val_smoothed"] = round(float(np.mean(figures)), 5)
    row["val_window_spread"] = round(max(figures) - min(figures), 5)
    return row["epoch"] >= first_candidate and (len(figures) == window or row["epoch"] == last)


def _is_better(row: dict, best: _Best | None) -> bool:
    if best is None:
        return True
    return (row["val_smoothed"], -row["val_loss"]) > (best.row["val_smoothed"], -best.row["val_loss"])


def _save_resume_state(path: Path, state: dict) -> None:
    with replacing(path) as partial:  # an interrupted save never replaces a good state
        torch.save(state, partial)


def _resized(images: np.ndarray, size: int) -> np.ndarray:
    """The cached N x 3 x S x S uint8 images at `size` pixels (progressive resizing)."""
    if images.shape[-1] == size:
        return images
    out = np.empty((len(images), 3, size, size), np.uint8)
    for index, image in enumerate(images):
        resized = cv2.resize(image.transpose(1, 2, 0), (size, size), interpolation=cv2.INTER_AREA)
        out[index] = resized.reshape(size, size, -1).transpose(2, 0, 1)
    return out


@dataclass
class _Data:
    """What a run trains and validates on, decoded once."""

    dataset: ImageSet
    train_set: ImageSet
    val_set: ImageSet
    skipped: list[str]
    negative: int  # the negative class's index, or -1 (no unknown-type images: plain cross-entropy)
    weights: tuple[float, ...]  # each source's draw weight
    multi_source: bool
    resized: dict[int, np.ndarray] = field(default_factory=dict)

    @classmethod
    def load(cls, config: TrainConfig, preprocess: PreprocessConfig, say: Callable) -> _Data:
        started = time.perf_counter()
        mix = config.resolved_mix()
        split = load_split(mix, preprocess, config.split(), config.threads, config.show_progress)
        for problem in split.skipped:
            say(f"[yellow]skipped[/] {problem}")
        unknown = int((split.all.labels < 0).sum())
        try:
            negative = negative_index(split.all.class_names, mix.negative_class)
        except ValueError as exc:
            if unknown:
                raise DataError(f"tumour-unknown images need the negative class: {exc}") from None
            negative = -1
        say(
            f"{len(split.all.labels)} images ({', '.join(split.all.class_names)}"
            + (f", {unknown} {TUMOUR_UNKNOWN_NAME}" if unknown else "")
            + f"; {len(mix.sources)} source(s)) decoded in {time.perf_counter() - started:.1f}s: "
            f"{len(split.train.labels)} train, {len(split.validation.labels)} validation "
            "(patients, groups and exact and near twins kept on one side)"
        )
        weights = tuple(source.weight for source in mix.sources)
        return cls(
            split.all, split.train, split.validation, split.skipped, negative, weights, len(mix.sources) > 1
        )

    def draw(self, config: TrainConfig, recipe: Recipe, epoch: int) -> np.ndarray:
        """This epoch's training indices (train/split.py: a function of seed and epoch)."""
        balance = (
            Balance(self.negative, recipe.negative_weight)
            if recipe.balance_types and self.negative >= 0
            else None
        )
        labels = self.train_set.labels
        return epoch_draw(self.train_set.origin.sources, self.weights, config.seed, epoch, labels, balance)

    def at_size(self, size: int) -> np.ndarray:
        """The training images at `size` pixels; each size's copy made once."""
        if size not in self.resized:
            self.resized.clear()  # the early size is done with once the final size begins
            self.resized[size] = _resized(self.train_set.images, size)
        return self.resized[size]


@dataclass
class _Run:
    """One training run's state: the network, its optimisation (with the averaged weights),
    the history and the best epoch so far; `epoch()` trains, validates and records one."""

    config: TrainConfig
    preprocess: PreprocessConfig
    ranks: Ranks
    data: _Data
    model: nn.Module
    steps: _Optimisation
    recipe: Recipe
    cpu: Cpu
    history: list[dict] = field(default_factory=list)
    best: _Best | None = None
    first_epoch: int = 1

    @classmethod
    def start(
        cls, config: TrainConfig, architecture, preprocess: PreprocessConfig, ranks: Ranks, resume: bool
    ) -> _Run:
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        torch.set_num_threads(config.threads)
        say = _say(ranks)
        data = _Data.load(config, preprocess, say)
        model = architecture.build(len(data.dataset.class_names))
        if config.init_from is not None and not resume:
            say(_start_from(model, config, data.dataset.class_names))
        device = ranks.device
        model = model.to(device, memory_format=torch.channels_last)
        processes = f", {ranks.world} processes" if ranks.distributed else ""
        say(
            f"architecture {architecture.name}: {parameter_count(model):,} parameters, on {device}{processes}"
        )
        model = ranks.wrap(model)
        recipe, cpu = config.resolved_recipe(), Cpu.read()
        bf16 = use_bf16(recipe.bf16, device.type, cpu)
        say(f"CPU {cpu.describe()}; bf16 autocast {'on' if bf16 else 'off'} (recipe: {recipe.bf16})")
        epoch_size = len(data.draw(config, recipe, 1))
        steps_per_epoch = math.ceil(
            math.ceil(epoch_size / ranks.world) / ranks.local_batch(recipe.batch_size)
        )
        steps = _Optimisation.for_recipe(model, recipe, steps_per_epoch, data.negative, bf16)
        run = cls(config, preprocess, ranks, data, model, steps, recipe, cpu)
        if resume:
            run._resume()
        if ranks.is_main:
            config.out.mkdir(parents=True, exist_ok=True)
        return run

    @property
    def resume_path(self) -> Path:
        return self.config.out / RESUME_NAME

    @property
    def early(self) -> int:
        return self.recipe.early_epochs()

    def _resume(self) -> None:
        state = torch.load(self.resume_path, map_location="cpu", weights_only=True)
        unwrap(self.model).load_state_dict(state["model"])
        self.steps.optimizer.load_state_dict(state["optimizer"])
        self.steps.scheduler.load_state_dict(state["scheduler"])
        if self.steps.ema is not None:
            self.steps.ema.load_state_dict(state["ema"])
        self.history, self.first_epoch = state["history"], state["epoch"] + 1
        self.best = _Best(state["best_row"], state["best_state"]) if state["best_row"] else None
        _say(self.ranks)(f"resuming {self.config.out} after epoch {state['epoch']} of {self.recipe.epochs}")

    def epoch(self, epoch: int, progress: Progress) -> None:
        """Train one epoch, validate it when the recipe says, record it and save the state."""
        started = time.perf_counter()
        recipe, data = self.recipe, self.data
        size = recipe.early_size if epoch <= self.early else self.preprocess.size
        # Augmentation and dropout draws: a function of (seed, rank, epoch), so a resumed
        # epoch is the epoch the interrupted run would have trained.
        torch.manual_seed(self.config.seed * 1_000_003 + self.ranks.rank * 10_007 + epoch)
        drawn = data.draw(self.config, recipe, epoch)
        order = self.ranks.share(drawn)
        train_loss, train_acc = _train_one_epoch(
            self.model, self.steps, data.train_set, recipe, self.preprocess, progress, epoch, self.ranks,
            order, data.negative, data.at_size(size),
        )  # fmt: skip
        train_seconds = time.perf_counter() - started
        row: dict = {"epoch": epoch, "train_loss": round(train_loss, 5), "train_acc": round(train_acc, 5)}
        sources: dict = {}
        improved = False
        if epoch > self.early or epoch % recipe.early_validate_every == 0 or epoch == recipe.epochs:
            row, sources, improved = self._validate(epoch, train_loss, train_acc)
        row["image_size"] = size
        shares = class_shares(drawn, data.train_set.labels, data.dataset.class_names)
        row.update({f"share_{name}": share for name, share in shares.items()})
        row["epoch_seconds"] = round(time.perf_counter() - started, 2)
        row["train_images_per_second"] = round(len(order) * self.ranks.world / train_seconds, 1)
        self.history.append(row)
        if self.ranks.is_main:
            self._record(epoch, row, sources, improved)

    def _validate(self, epoch: int, train_loss: float, train_acc: float) -> tuple[dict, dict, bool]:
        """Score the averaged weights on validation; the epoch becomes the best one if its
        smoothed figure beats the best so far (every rank computes the same figures)."""
        val, negative = self.data.val_set, self.data.negative
        probabilities = predict_probabilities(self.steps.scored(self.model), val.images, self.preprocess)
        scores = validation_scores(probabilities, val.labels, negative)
        origin = val.origin
        sources = source_scores(
            probabilities, val.labels, origin.sources, origin.source_names, origin.sequences, negative
        )
        row = _history_row(epoch, train_loss, train_acc, scores, sources, self.data.multi_source)
        first_candidate = min(self.early + 1, self.recipe.epochs)
        candidate = _smooth(
            row, self.history, self.recipe.smoothing_epochs, first_candidate, self.recipe.epochs
        )
        improved = candidate and _is_better(row, self.best)
        if improved:
            state = self.steps.scored(self.model).state_dict()
            self.best = _Best(row, {k: v.detach().cpu().clone() for k, v in state.items()})
        return row, sources, improved

    def _record(self, epoch: int, row: dict, sources: dict, improved: bool) -> None:
        """The history files, the epoch's line, and the state a resume continues from."""
        out = self.config.out
        _write_history(self.history, out / "history.csv")
        with open(out / "history_sources.jsonl", "a" if epoch > 1 else "w", encoding="utf-8") as log:
            log.write(json.dumps({"epoch": epoch, "sources": sources}) + "\n")
        _print_epoch(row, sources if self.data.multi_source else {}, improved)
        steps, best = self.steps, self.best
        state = {
            "epoch": epoch,
            "model": unwrap(self.model).state_dict(),
            "optimizer": steps.optimizer.state_dict(),
            "scheduler": steps.scheduler.state_dict(),
            "ema": steps.ema.state_dict() if steps.ema is not None else {},
            "history": self.history,
            "best_row": best.row if best else {},
            "best_state": best.state if best else {},
            "train_config": self.config.as_record(),
        }
        _save_resume_state(self.resume_path, state)

    def progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} {task.fields[stats]}"),
            TimeRemainingColumn(),
            console=console,
            disable=not (self.config.show_progress and self.ranks.is_main),
            transient=True,
        )


def _say(ranks: Ranks) -> Callable:
    return console.print if ranks.is_main else (lambda *args, **kwargs: None)


def _train(
    config: TrainConfig, architecture, preprocess: PreprocessConfig, ranks: Ranks, resume: bool
) -> dict:
    """The loop: epochs until the recipe's last; Ctrl-C keeps the best epoch so far."""
    run = _Run.start(config, architecture, preprocess, ranks, resume)
    interrupted = False
    try:
        with run.progress() as progress:
            for epoch in range(run.first_epoch, run.recipe.epochs + 1):
                run.epoch(epoch, progress)
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: keeping the best epoch so far (resume with --resume)[/]")
    if run.best is None:
        raise KeyboardInterrupt  # nothing chosen yet: nothing to report
    in_sync = ranks.in_sync(unwrap(run.model))
    metrics: dict = {}
    if ranks.is_main:
        data = run.data
        metrics = _finish(config, architecture.name, data, run.history, run.best, interrupted, preprocess)
        bf16 = run.steps.bf16
        metrics.update(processes=ranks.world, ranks_in_sync=in_sync, cpu=run.cpu.describe(), bf16=bf16)
        write_text_atomically(config.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
        if not interrupted:
            run.resume_path.unlink(missing_ok=True)  # finished: nothing left to resume
    ranks.barrier()
    return metrics


def _write_history(history: list[dict], path: Path) -> None:
    # Epochs that were not validated lack the validation columns: the header is their union.
    columns = list(dict.fromkeys(key for row in history for key in row))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(history)


def _print_epoch(row: dict, sources: dict, improved: bool) -> None:
    shares = " ".join(f"{k[6:]} {v:.2f}" for k, v in row.items() if k.startswith("share_"))
    trained = (
        f"epoch {row['epoch']:>3} ({row['image_size']} px): train loss {row['train_loss']:.4f} "
        f"acc {row['train_acc']:.4f} | {row['epoch_seconds']:.0f}s, "
        f"{row['train_images_per_second']:.0f} img/s"
    )
    if "val_loss" not in row:
        console.print(f"{trained} | not validated | draw: {shares}")
        return
    sensitivity = (
        f" tumour-unknown sens {row['val_tumour_unknown_sensitivity']:.4f}"
        if "val_tumour_unknown_sensitivity" in row
        else ""
    )
    console.print(
        f"{trained} | val loss {row['val_loss']:.4f} acc {row['val_acc']:.4f}{sensitivity} | "
        f"criterion {row['val_criterion']:.4f}, smoothed {row['val_smoothed']:.4f} "
        f"(spread {row['val_window_spread']:.4f})" + ("  *best" if improved else "")
    )
    console.print(f"    draw: {shares}")
    for name, figures in sources.items():
        shown = " ".join(
            f"{key} {figures[key]:.3f}"
            for key in ("acc", "sensitivity", "specificity", "auroc", "balanced")
            if key in figures
        )
        console.print(f"    {name:<24} n {figures['images']:>5} {shown}")


def _check_type_prior(logits: np.ndarray, labels: np.ndarray, negative: int, recipe: Recipe) -> dict:
    """The validation check of the prior among tumour types (train/calibration.py): the fitted
    offsets are applied only when the recipe balances types and they raise the validation's
    balanced recall over the four classes; either way the figures are recorded."""
    if negative < 0 or len(np.unique(labels)) < 3:
        return {}
    bias = fit_type_bias(logits, labels, negative)
    before, after = balanced_recall(logits, labels), balanced_recall(logits + bias, labels)
    predicted = np.bincount(logits.argmax(1), minlength=logits.shape[1]) / len(labels)
    true = np.bincount(labels, minlength=logits.shape[1]) / len(labels)
    return {
        "bias": [round(float(b), 4) for b in bias],
        "balanced_recall_before": round(before, 4),
        "balanced_recall_after": round(after, 4),
        "predicted_shares": [round(float(v), 4) for v in predicted],
        "true_shares": [round(float(v), 4) for v in true],
        "applied": bool(recipe.balance_types and after > before),
    }


def _finish(
    config: TrainConfig,
    architecture: str,
    data: _Data,
    history: list[dict],
    best: _Best,
    interrupted: bool,
    preprocess: PreprocessConfig,
) -> dict:
    """Evaluate the best epoch on validation; write the checkpoint, metrics and plots, once each."""
    val, negative = data.val_set, data.negative
    checkpoint = Checkpoint(
        architecture=architecture,
        class_names=data.dataset.class_names,
        preprocess=preprocess,
        state_dict=best.state,
        epoch=best.row["epoch"],
        seed=config.seed,
        train_config=config.as_record(),
        negative_class=config.resolved_mix().negative_class,
    )
    evaluation = evaluate_checkpoint(checkpoint, val, negative, config.resolved_recipe())
    parameters = parameter_count(checkpoint.build_model())
    metrics = _metrics(config, architecture, parameters, data, history, best, interrupted)
    metrics.update(
        validation=evaluation.report, calibration=evaluation.calibration, type_prior=evaluation.type_prior
    )
    save_checkpoint(checkpoint, config.out / CHECKPOINT_NAME)
    plot_curves(history, config.out / "curves.png")
    title = f"validation (best epoch {best.row['epoch']}), accuracy {evaluation.report['accuracy']:.3f}"
    evaluation.plot(checkpoint.class_names, config.out / "confusion_matrix.png", title)
    return metrics


@dataclass
class Evaluation:
    """A checkpoint's validation record: metrics.json's `validation`, `calibration` and
    `type_prior`, and the confusion matrix (with a row for the unknown-type tumours)."""

    report: dict
    calibration: dict
    type_prior: dict
    matrix: np.ndarray
    row_names: list[str]

    def plot(self, class_names: tuple[str, ...], path: Path, title: str) -> None:
        plot_confusion_matrix(self.matrix, class_names, self.row_names, path, title)


def evaluate_checkpoint(checkpoint: Checkpoint, val: ImageSet, negative: int, recipe: Recipe) -> Evaluation:
    """Finish a checkpoint on the validation split: fold in the type prior where it helps,
    fit the temperature, and score it overall, per source and sequence (the checkpoint's
    weights, temperature and metrics are set here; bt-train's best epoch and bt-average's
    averaged weights both end so).

    Temperature, calibration and the confusion matrix use the labelled images; the
    unknown-type ones are reported as tumour sensitivity (and a row of the matrix figure).
    """
    prior, all_logits = _with_type_prior(checkpoint, val, negative, recipe)
    known = val.labels >= 0
    class_names = checkpoint.class_names
    report, calibration = _calibrated_report(all_logits[known], val.labels[known], class_names)
    temperature = calibration["temperature"]
    matrix, row_names = np.asarray(report["confusion_matrix"]), list(class_names)
    if not known.all():
        report["tumour_unknown"], counts = _unknown_type(all_logits, val.labels, negative, row_names)
        matrix, row_names = np.vstack([matrix, counts]), [*row_names, TUMOUR_UNKNOWN_NAME]
    origin = val.origin
    report["sources"] = source_scores(
        softmax(all_logits, temperature),
        val.labels,
        origin.sources,
        origin.source_names,
        origin.sequences,
        negative,
    )
    checkpoint.temperature = temperature
    checkpoint.metrics = {
        "validation_accuracy": report["accuracy"],
        "best_epoch": checkpoint.epoch,
        "validation_ece": calibration["ece_after"],
    }
    if "tumour_unknown" in report:
        checkpoint.metrics["validation_tumour_unknown_sensitivity"] = report["tumour_unknown"]["sensitivity"]
    return Evaluation(report, calibration, prior, matrix, row_names)


def _with_type_prior(
    checkpoint: Checkpoint, val: ImageSet, negative: int, recipe: Recipe
) -> tuple[dict, np.ndarray]:
    """The type-prior check (`_check_type_prior`); where applied, its offsets are folded into
    the checkpoint's classifier bias, so the exported graph carries them and nothing
    downstream changes. Returns the check's record and the validation logits after it."""
    logits = predict_logits(checkpoint.build_model(), val.images, checkpoint.preprocess)
    known = val.labels >= 0
    prior = _check_type_prior(logits[known], val.labels[known], negative, recipe)
    if prior.get("applied"):
        bias = checkpoint.state_dict["classifier.bias"]
        offsets = torch.tensor(prior["bias"], dtype=bias.dtype)
        checkpoint.state_dict = {**checkpoint.state_dict, "classifier.bias": bias + offsets}
        logits = predict_logits(checkpoint.build_model(), val.images, checkpoint.preprocess)
    return prior, logits


def _calibrated_report(
    logits: np.ndarray, labels: np.ndarray, class_names: tuple[str, ...]
) -> tuple[dict, dict]:
    """The temperature fitted on the labelled validation images, and the report at it."""
    temperature = fit_temperature(logits, labels)
    raw, calibrated = softmax(logits), softmax(logits, temperature)
    report = classification_report(labels, calibrated, class_names)
    calibration = {
        "temperature": temperature,
        "ece_before": round(expected_calibration_error(raw, labels), 4),
        "ece_after": round(expected_calibration_error(calibrated, labels), 4),
        "nll_before": round(negative_log_likelihood(raw, labels), 4),
        "nll_after": round(negative_log_likelihood(calibrated, labels), 4),
    }
    return report, calibration


def _unknown_type(
    logits: np.ndarray, labels: np.ndarray, negative: int, class_names: list[str]
) -> tuple[dict, np.ndarray]:
    """How the validation's tumours of unknown type fare: their sensitivity, and how many
    each class got (a row of its own in the confusion-matrix figure)."""
    known = labels >= 0
    predictions = logits[~known].argmax(1)
    scores = validation_scores(softmax(logits), labels, negative)
    record = {
        "images": int((~known).sum()),
        "sensitivity": round(scores["tumour_unknown_sensitivity"], 4),
        "predicted": {name: int((predictions == index).sum()) for index, name in enumerate(class_names)},
    }
    return record, np.bincount(predictions, minlength=len(class_names))


def _metrics(
    config: TrainConfig,
    architecture: str,
    parameters: int,
    data: _Data,
    history: list[dict],
    best: _Best,
    interrupted: bool,
) -> dict:
    """metrics.json's record of the run (its validation figures are added by `_finish`)."""
    seconds = [row["epoch_seconds"] for row in history]
    return {
        "architecture": architecture,
        "parameters": parameters,
        "best_epoch": best.row["epoch"],
        "epochs_run": len(history),
        "interrupted": interrupted,
        "train_images": len(data.dataset.labels) - len(data.val_set.labels),
        "validation": {},
        "calibration": {},
        "type_prior": {},
        "mean_epoch_seconds": round(float(np.mean(seconds)), 2),
        "total_training_seconds": round(float(np.sum(seconds)), 1),
        "mean_train_images_per_second": round(
            float(np.mean([row["train_images_per_second"] for row in history])), 1
        ),
        "skipped_files": data.skipped,
        "train_config": config.as_record(),
    }

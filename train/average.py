"""`bt-average`: one network from two runs of one lineage, by averaging their weights.

A second stage (`bt-train --init-from`) moves the network toward what it draws more of:
the bundled model's second stage drew Kaggle twice and won back the paper's tumour types,
but lost some of what the first run had learnt about healthy brains from other scanners.
Averaging the two runs' weights, parameter by parameter, is a known way to keep much of
both (a weight-space ensemble: WiSE-FT, Wortsman et al., CVPR 2022; "model soups",
Wortsman et al., ICML 2022). It works where both runs lie in one basin of the loss, which
holds for a run and its own continuation; it is meaningless for two runs from different
random starts, so the runs must share a split, input definition, architecture and classes
(the check `bt-train --init-from` makes).

A network that pools globally runs at any input size, so a stage at a new size
(`bt-train --size 224 --init-from` a 160 px run) averages with the run it started from; the
result runs at the second run's size. Batch-norm statistics are averaged like the weights,
and the validation figures below, taken at that size, say whether the average holds.

The result is finished like a training run's best epoch, on the same validation split
neither run trained on: the type prior, the temperature and the figures are fitted on it
(train/trainer.evaluate_checkpoint). `bt-export` then takes it like any run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ..runtime.atomic import write_text_atomically
from .checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    load_checkpoint,
    resolve_checkpoint_path,
    save_checkpoint,
)
from .config import TrainConfig, lineage_differences
from .data import DataError
from .split import load_split, recorded_mix
from .targets import negative_index
from .trainer import evaluate_checkpoint


@dataclass(frozen=True)
class AverageConfig:
    first: Path  # a finished run (folder or model.pt)
    second: Path  # a run of the same lineage, usually the first's continuation
    out: Path
    # The second run's share of every weight: 0 is the first run, 1 the second.
    weight: float = 0.5
    threads: int = 2
    show_progress: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"the second run's weight must be in [0, 1], not {self.weight}")


def interpolate(
    first: dict[str, torch.Tensor], second: dict[str, torch.Tensor], weight: float
) -> dict[str, torch.Tensor]:
    """(1 - weight) * first + weight * second for every floating-point tensor (weights,
    biases, batch-norm statistics); counters such as batch-norm's step count are the
    second's."""
    if first.keys() != second.keys():
        raise ValueError("the two checkpoints hold different tensors")
    return {
        name: torch.lerp(first[name], tensor, weight) if tensor.is_floating_point() else tensor.clone()
        for name, tensor in second.items()
    }


def average(config: AverageConfig) -> dict:
    """Average, finish on validation, and write `model.pt` and `metrics.json` into
    `config.out`; returns the metrics."""
    first, second = load_checkpoint(config.first), load_checkpoint(config.second)
    differences = lineage_differences(
        first.train_config, first.class_names, second.train_config, second.class_names
    )
    if differences:
        raise DataError(
            f"{config.first} and {config.second} differ in {', '.join(differences)}: only runs of one "
            "lineage (the same split and network, one continuing the other) can be averaged"
        )
    recorded = TrainConfig.from_record(second.train_config)
    mix = recorded_mix(second.train_config)
    split = load_split(mix, second.preprocess, recorded.split(), config.threads, config.show_progress)
    averaged = Checkpoint(
        architecture=second.architecture,
        class_names=second.class_names,
        preprocess=second.preprocess,
        state_dict=interpolate(first.state_dict, second.state_dict, config.weight),
        epoch=second.epoch,
        seed=second.seed,
        train_config=second.train_config,
        negative_class=second.negative_class,
    )
    negative = negative_index(second.class_names, mix.negative_class)
    evaluation = evaluate_checkpoint(averaged, split.validation, negative, recorded.resolved_recipe())
    record = {
        "first": str(config.first),
        "second": str(config.second),
        "weight": config.weight,
        "first_epoch": first.epoch,
        "second_epoch": second.epoch,
        "input_sizes": [first.preprocess.size, second.preprocess.size],
    }
    averaged.metrics["average"] = record
    config.out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(averaged, config.out / CHECKPOINT_NAME)
    metrics = {
        "architecture": averaged.architecture,
        "best_epoch": averaged.epoch,
        "average": record,
        "validation": evaluation.report,
        "calibration": evaluation.calibration,
        "type_prior": evaluation.type_prior,
        "train_config": second.train_config,
        # Each run's own record (recipe, epochs, timing, its validation figures), so this
        # file alone says how the averaged network was made.
        "runs": {"first": _run_record(config.first), "second": _run_record(config.second)},
    }
    write_text_atomically(config.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    accuracy = evaluation.report["accuracy"]
    title = f"validation (weights averaged, {config.weight:g} of the second run), accuracy {accuracy:.3f}"
    evaluation.plot(averaged.class_names, config.out / "confusion_matrix.png", title)
    return metrics


def _run_record(path: Path) -> dict:
    """A run's record beside its checkpoint: a run folder's metrics.json, or for a shipped
    checkpoint its `<name>.train.json` (runtime/models/default.pt and default.train.json), so
    averaging with the bundled model keeps its history; empty where there is neither."""
    checkpoint = resolve_checkpoint_path(path)
    for record in (checkpoint.parent / "metrics.json", checkpoint.with_suffix(".train.json")):
        if record.is_file():
            return json.loads(record.read_text(encoding="utf-8"))
    return {}

"""The one definition of the train/validation split, which training makes and export remakes.

A checkpoint records its mix (train/mix.py) and its `SplitConfig`; `load_split` on those
two gives back exactly the images the network trained on and the ones it never saw, so
export fits the scope score and the rule-out level on the right side. No torch here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..runtime.preprocess import PreprocessConfig
from .balance import Balance, balance_types
from .data import (
    DataError,
    ImageSet,
    duplicate_safe_split,
    files_from_mix,
    load_images,
    stratified_subset,
)
from .mix import Mix, MixError
from .twins import twin_groups


@dataclass(frozen=True)
class SplitConfig:
    val_fraction: float = 0.2
    seed: int = 42
    max_images: int | None = None  # a stratified subset of this many images (smoke runs)
    # The order strata are drawn in: "source" (by source, then label), or "label" (by
    # label, then source), which is what checkpoints from before mixes were split with.
    strata_order: str = "source"

    @classmethod
    def from_record(cls, record: dict) -> SplitConfig:
        """The split a checkpoint recorded: every field must be there (no silent defaults)."""
        try:
            # Records made before `strata_order` existed were all split by source.
            order = record.get("strata_order", "source")
            return cls(record["val_fraction"], record["seed"], record["max_images"], order)
        except KeyError as exc:
            raise DataError(f"the checkpoint does not record its split ({exc.args[0]} missing)") from None

    @classmethod
    def from_train_record(cls, train_config: dict) -> SplitConfig:
        """A checkpoint's split: its record, or for a checkpoint from before mixes (which
        recorded loose keys) the split it was made with."""
        if "split" in train_config:
            return cls.from_record(train_config["split"])
        try:
            recorded = (train_config["val_fraction"], train_config["seed"], train_config.get("max_images"))
            return cls(*recorded, strata_order="label")
        except KeyError as exc:
            raise DataError(f"the checkpoint does not record its split ({exc.args[0]} missing)") from None

    def as_record(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Split:
    all: ImageSet
    train: ImageSet
    validation: ImageSet
    skipped: list[str]  # one message per file that could not be decoded


def load_split(
    mix: Mix, preprocess: PreprocessConfig, split: SplitConfig, threads: int = 2, show_progress: bool = False
) -> Split:
    """Decode every image of the mix once and split it: each patient or group, and each set of
    exact or near twins, on one side; validation drawn from every source and label."""
    missing = mix.missing()
    if missing:
        raise DataError(f"training data not found: {', '.join(missing)}")
    try:
        files = files_from_mix(mix)
    except MixError as exc:
        raise DataError(str(exc)) from None
    if split.max_images:
        files = stratified_subset(files, split.max_images, split.seed)
    dataset, skipped = load_images(files, preprocess, threads, show_progress)
    origin = dataset.origin
    groups = twin_groups(dataset.hashes, dataset.phash, origin.groups)
    if split.strata_order == "source":
        strata = origin.sources * 1000 + dataset.labels
    else:
        strata = dataset.labels * 1000 + origin.sources
    train_idx, val_idx = duplicate_safe_split(dataset.labels, groups, split.val_fraction, split.seed, strata)
    return Split(dataset, dataset.subset(train_idx), dataset.subset(val_idx), skipped)


def recorded_mix(train_config: dict) -> Mix:
    """The mix a checkpoint was trained on (older checkpoints recorded two folders instead)."""
    if "mix" in train_config:
        return Mix.from_record(train_config["mix"])
    folders = {}
    for key in ("data", "tumour_unknown"):
        candidates = (train_config.get(key), train_config.get(f"{key}_as_given"))
        folders[key] = next((Path(c) for c in candidates if c and Path(c).is_dir()), None)
        if train_config.get(key) and folders[key] is None:
            raise DataError(
                f"training folder not found: {train_config.get(f'{key}_as_given') or train_config[key]}"
            )
    return Mix.from_folders(
        folders["data"], folders["tumour_unknown"], train_config.get("negative_class", "notumor")
    )  # type: ignore[arg-type]


def epoch_draw(
    sources: np.ndarray,
    weights: tuple[float, ...],
    seed: int,
    epoch: int,
    labels: np.ndarray | None = None,
    balance: Balance | None = None,
) -> np.ndarray:
    """The training indices of one epoch, shuffled: each source's images `weight` times over
    (a fraction: a fresh random share of them each epoch), then, with `balance`, every
    tumour type drawn equally often (train/balance.py). A function of (seed, epoch) only,
    so a resumed run draws what the interrupted one would have."""
    rng = np.random.default_rng([seed, epoch])
    drawn: list[np.ndarray] = []
    for index, weight in enumerate(weights):
        members = np.flatnonzero(sources == index)
        whole, fraction = divmod(weight * len(members), len(members)) if len(members) else (0, 0)
        drawn += [members] * int(whole)
        drawn.append(rng.choice(members, size=round(fraction), replace=False))
    order = np.concatenate(drawn) if drawn else np.empty(0, np.int64)
    if balance is not None and labels is not None and len(order):
        return balance_types(order, labels, balance, rng)
    return rng.permutation(order)

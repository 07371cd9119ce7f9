"""What `bt-train` does, as plain settings: no torch here, so the CLI reads its defaults
from this class and `--help`/`--version` stay quick."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .mix import DEFAULT_NEGATIVE, Mix
from .split import SplitConfig

if TYPE_CHECKING:
    import torch

    from ..runtime.preprocess import PreprocessConfig
    from .recipe import Recipe

DEFAULT_THREADS = os.cpu_count() or 1


@dataclass
class TrainConfig:
    out: Path
    # The training data: a mix of sources (train/mix.py), or a class-folder tree with,
    # optionally, a folder of tumours of unrecorded type (the two-source mix).
    mix: Mix | None = None
    data: Path | None = None
    tumour_unknown: Path | None = None
    arch: str = "paper"
    recipe: Recipe | None = None  # None: the architecture's own recipe
    preprocess: PreprocessConfig | None = None  # None: the architecture's own input definition
    # The class a "tumour, type unknown" image is known not to be (a mix names its own).
    negative_class: str = DEFAULT_NEGATIVE
    val_fraction: float = 0.2
    seed: int = 42
    threads: int = DEFAULT_THREADS
    max_images: int | None = None
    show_progress: bool = True
    device: str = "cpu"  # "cpu", "cuda", or "auto" (a GPU when there is one)
    # Start from a finished run's weights instead of random ones (a second stage with its
    # own recipe: a lower learning rate, another mix weighting). Its split must be this one.
    init_from: Path | None = None

    def resolved_mix(self) -> Mix:
        if self.mix is not None:
            return self.mix
        if self.data is None:
            raise ValueError("give the training data: a mix or a data folder")
        return Mix.from_folders(self.data, self.tumour_unknown, self.negative_class)

    def split(self) -> SplitConfig:
        return SplitConfig(self.val_fraction, self.seed, self.max_images)

    def resolved_recipe(self) -> Recipe:
        from .architectures import get_architecture

        return self.recipe or get_architecture(self.arch).recipe

    def resolved_preprocess(self) -> PreprocessConfig:
        from .architectures import get_architecture

        return self.preprocess or get_architecture(self.arch).preprocess

    def resolved_device(self) -> torch.device:
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def as_record(self) -> dict:
        """Plain values for the checkpoint and metrics files; `from_record` reads them back."""
        record = asdict(replace(self, mix=None, recipe=None, preprocess=None))
        for key in ("data", "tumour_unknown", "init_from"):
            value = getattr(self, key)
            record[key] = None if value is None else str(Path(value).resolve())
            record[f"{key}_as_given"] = None if value is None else str(value)
        record["out"] = str(self.out)
        record["mix"] = self.resolved_mix().as_record()
        record["split"] = self.split().as_record()
        record["recipe"] = asdict(self.resolved_recipe())
        record["preprocess"] = asdict(self.resolved_preprocess())
        return record

    @classmethod
    def from_record(cls, record: dict) -> TrainConfig:
        """The configuration of a recorded run (for `bt-train --resume`)."""
        from ..runtime.preprocess import PreprocessConfig
        from .augment import AugmentConfig
        from .recipe import Recipe

        recipe = dict(record["recipe"])
        recipe["augment"] = AugmentConfig(**recipe["augment"])
        split = SplitConfig.from_record(record["split"])
        return cls(
            out=Path(record["out"]),
            mix=Mix.from_record(record["mix"]),
            arch=record["arch"],
            recipe=Recipe(**recipe),
            preprocess=PreprocessConfig.from_dict(record["preprocess"]),
            negative_class=record["mix"]["negative_class"],
            val_fraction=split.val_fraction,
            seed=split.seed,
            threads=record["threads"],
            max_images=split.max_images,
            show_progress=record["show_progress"],
            device=record["device"],
            init_from=Path(record["init_from"]) if record.get("init_from") else None,
        )


def split_differences(recorded: dict, current: dict) -> list[str]:
    """What would put a recorded run's validation images into this run's training: a
    different split setting, input definition or set of sources (weights may differ; they
    change the draw, never the split). The input size is not among them: images are
    grouped and split on their decoded pixels, before resizing (train/data.py)."""

    def sources(record: dict) -> list[dict]:
        return [
            {k: v for k, v in source.items() if k != "weight" and not k.endswith("_as_given")}
            for source in record["mix"]["sources"]
        ]

    def input_definition(record: dict) -> dict:
        return {k: v for k, v in (record.get("preprocess") or {}).items() if k != "size"}

    differences = [key for key in ("split", "arch") if recorded.get(key) != current.get(key)]
    if input_definition(recorded) != input_definition(current):
        differences.append("preprocess")
    if sources(recorded) != sources(current):
        differences.append("mix sources")
    return differences


def lineage_differences(
    recorded: dict, recorded_classes: tuple[str, ...], current: dict, current_classes: tuple[str, ...]
) -> list[str]:
    """What keeps two runs from one lineage (`bt-train --init-from`, `bt-average`): the split
    differences above, different classes, or a different input size for a network built for
    one size (a network that pools globally runs at any size, so a stage may move to a new
    size and be averaged with the run it started from; empty: one may start from or average
    with the other)."""
    from .architectures import get_architecture

    differences = split_differences(recorded, current)
    if tuple(recorded_classes) != tuple(current_classes):
        differences.append("classes")
    sizes = ((recorded.get("preprocess") or {}).get("size"), (current.get("preprocess") or {}).get("size"))
    if sizes[0] != sizes[1] and not get_architecture(current["arch"]).any_size:
        differences.append(f"input size ({sizes[0]} and {sizes[1]} px)")
    return differences

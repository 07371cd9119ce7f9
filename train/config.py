"""What `bt-train` does, as plain settings: no torch here, so the CLI reads its defaults
from this class and `--help`/`--version` stay quick."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from brain_tumor_edge.runtime.preprocess import PreprocessConfig
    from brain_tumor_edge.train.recipe import Recipe

DEFAULT_THREADS = os.cpu_count() or 1


@dataclass
class TrainConfig:
    data: Path
    out: Path
    arch: str = "paper"
    recipe: Recipe | None = None  # None: the architecture's own recipe
    preprocess: PreprocessConfig | None = None  # None: the architecture's own input definition
    # Images known to show a tumour of unrecorded type (train/targets.py); None: none.
    tumour_unknown: Path | None = None
    # The class a "tumour, type unknown" image is known not to be.
    negative_class: str = "notumor"
    val_fraction: float = 0.2
    seed: int = 42
    threads: int = DEFAULT_THREADS
    max_images: int | None = None
    show_progress: bool = True
    device: str = "cpu"  # "cpu", "cuda", or "auto" (a GPU when there is one)

    def resolved_recipe(self) -> Recipe:
        from brain_tumor_edge.train.architectures import get_architecture

        return self.recipe or get_architecture(self.arch).recipe

    def resolved_preprocess(self) -> PreprocessConfig:
        from brain_tumor_edge.train.architectures import get_architecture

        return self.preprocess or get_architecture(self.arch).preprocess

    def resolved_device(self) -> torch.device:
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def as_record(self) -> dict:
        """Plain values for the checkpoint and metrics files."""
        record = asdict(self)
        # Both as given (relative to where bt-train ran, e.g. ../shared/data/...: valid in any
        # checkout beside the same data) and resolved; export tries both (export/pipeline.py).
        record["data"] = str(Path(self.data).resolve())
        record["data_as_given"] = str(self.data)
        if self.tumour_unknown is not None:
            record["tumour_unknown"] = str(Path(self.tumour_unknown).resolve())
            record["tumour_unknown_as_given"] = str(self.tumour_unknown)
        record["out"] = str(self.out)
        record["recipe"] = asdict(self.resolved_recipe())
        record["preprocess"] = asdict(self.resolved_preprocess())
        return record

"""Checkpoints: weights plus everything needed to rebuild and describe the model.

Only plain types are stored, so `torch.load(weights_only=True)` can read them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..runtime.atomic import replacing
from ..runtime.metrics import UNCALIBRATED
from ..runtime.preprocess import PreprocessConfig
from .architectures import get_architecture

CHECKPOINT_NAME = "model.pt"


@dataclass
class Checkpoint:
    architecture: str
    class_names: tuple[str, ...]
    preprocess: PreprocessConfig
    state_dict: dict[str, torch.Tensor]
    epoch: int = 0
    seed: int | None = None
    # softmax(logits / temperature) is calibrated on the validation split; fitted by bt-train.
    temperature: float = UNCALIBRATED
    train_config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    # The class a "no tumour" answer is (the one home of that fact: export copies it into
    # the model's metadata). Older checkpoints lack it: their training used "notumor".
    negative_class: str = "notumor"

    def build_model(self) -> nn.Module:
        model = get_architecture(self.architecture).build(len(self.class_names))
        model.load_state_dict(self.state_dict)
        return model.eval()


def save_checkpoint(checkpoint: Checkpoint, path: Path) -> None:
    """Write atomically, so an interrupted save never replaces a good checkpoint with a bad one."""
    payload = asdict(checkpoint)
    payload["class_names"] = list(checkpoint.class_names)
    payload["preprocess"] = asdict(checkpoint.preprocess)
    payload["state_dict"] = checkpoint.state_dict
    with replacing(path) as partial:
        torch.save(payload, partial)


def resolve_checkpoint_path(path: Path) -> Path:
    """Accept a run directory or a checkpoint file."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    return path


def load_checkpoint(path: Path) -> Checkpoint:
    payload = torch.load(resolve_checkpoint_path(path), map_location="cpu", weights_only=True)
    return Checkpoint(
        architecture=payload["architecture"],
        class_names=tuple(payload["class_names"]),
        preprocess=PreprocessConfig.from_dict(payload["preprocess"]),
        state_dict=payload["state_dict"],
        epoch=payload.get("epoch", 0),
        seed=payload.get("seed"),
        temperature=float(payload.get("temperature", UNCALIBRATED)),
        train_config=payload.get("train_config", {}),
        metrics=payload.get("metrics", {}),
        negative_class=payload.get("negative_class", "notumor"),
    )

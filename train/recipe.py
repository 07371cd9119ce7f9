"""How a network is trained: optimiser, schedule, regularisation and augmentation."""

from __future__ import annotations

from dataclasses import dataclass, field

from .augment import AugmentConfig


@dataclass(frozen=True)
class Recipe:
    epochs: int = 25
    batch_size: int = 32
    learning_rate: float = 1e-3
    # Adam when 0, AdamW (decoupled decay) otherwise.
    weight_decay: float = 0.0
    label_smoothing: float = 0.0
    # "constant" (the paper) or "cosine" (linear warm-up, then cosine decay to zero).
    schedule: str = "constant"
    warmup_epochs: int = 0
    # Loss weight of a "tumour, type unknown" image relative to a labelled one.
    tumour_unknown_weight: float = 1.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be constant or cosine, not {self.schedule!r}")

"""How a network is trained: optimiser, schedule, regularisation and augmentation."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

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
    # Balanced types (train/balance.py): each epoch's type-known tumour images are
    # redrawn so every tumour class is drawn equally often (their total unchanged), and
    # negatives `negative_weight` times as often as the sources' weights draw them.
    balance_types: bool = False
    negative_weight: float = 1.0
    # Averaged weights: an exponential moving average of the weights, updated every
    # optimiser step, is what validation scores and the checkpoint keeps (0: off; timm's
    # ModelEmaV3 and torchvision's --model-ema). 0.999 averages over ~1,000 steps.
    ema_decay: float = 0.0
    # The best epoch is chosen on its criterion averaged with the epochs before it (this
    # many in all), so one noisy epoch on a few validation patients cannot choose.
    smoothing_epochs: int = 1
    # Progressive resizing: the first `early_fraction` of the epochs train at
    # `early_size` pixels (0: off), validated every `early_validate_every` epochs; the
    # rest at the input size, validated every epoch. Only those can be chosen.
    early_size: int = 0
    early_fraction: float = 0.0
    early_validate_every: int = 1
    # bfloat16 autocast for the forward pass (weights and optimiser stay fp32): "auto"
    # (on where the CPU has AMX or AVX-512 BF16, or on a GPU), "on" or "off".
    bf16: str = "auto"

    def __post_init__(self) -> None:
        if self.schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be constant or cosine, not {self.schedule!r}")
        if self.bf16 not in ("auto", "on", "off"):
            raise ValueError(f"bf16 must be auto, on or off, not {self.bf16!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError("ema_decay must be in [0, 1)")
        if self.smoothing_epochs < 1 or self.early_validate_every < 1:
            raise ValueError("smoothing_epochs and early_validate_every must be at least 1")

    def early_epochs(self) -> int:
        """How many epochs train at `early_size` (none when progressive resizing is off)."""
        return int(self.epochs * self.early_fraction) if self.early_size else 0

    def with_settings(self, settings: list[str]) -> Recipe:
        """This recipe with `FIELD=VALUE` settings (bt-train --set), each value read as
        its field's type; the augmentation is not settable this way."""
        changes: dict[str, object] = {}
        names = {f.name for f in fields(self)} - {"augment"}
        for setting in settings:
            name, sep, text = setting.partition("=")
            name = name.strip()
            if not sep or name not in names:
                choices = ", ".join(sorted(names))
                raise ValueError(f"--set {setting!r}: give FIELD=VALUE, FIELD one of {choices}")
            default = getattr(self, name)
            try:
                if isinstance(default, bool):
                    if text.lower() not in ("true", "false", "1", "0"):
                        raise ValueError(text)
                    changes[name] = text.lower() in ("true", "1")
                else:
                    changes[name] = type(default)(text)
            except ValueError:
                raise ValueError(f"--set {setting!r}: {text!r} is not a {type(default).__name__}") from None
        return replace(self, **changes)

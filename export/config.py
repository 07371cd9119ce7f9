"""What `bt-export` does, as plain settings (no torch or onnx here, so `--help` stays quick)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..runtime.series import SeriesRule
from .parity import ParityThresholds
from .rule_out import RuleOutConfig
from .scope import ScopeConfig


@dataclass(frozen=True)
class QuantizationConfig:
    per_channel: bool = True
    reduce_range: bool = True
    calibration_batch: int = 20
    # Op types left in float. Softmax: quantized probabilities would come in 1/256 steps.
    # ReduceMean: the global pooling that the scope score reads. Every node that only
    # serves the `scope` and `cam` outputs stays float too (export/quantize.py): the
    # whitening matmul's small-variance directions would magnify int8 steps (measured:
    # 93% fp32/int8 agreement of the scope flag quantized, 100% in float).
    keep_float: tuple[str, ...] = ("Softmax", "ReduceMean")


@dataclass
class ExportConfig:
    checkpoint: Path
    out: Path
    quantize: bool = False
    calibration_data: Path | None = None
    check_data: Path | None = None
    # onnxruntime's calibrators take whole batches; fewer than a few hundred images give
    # activation ranges that vary from run to run (measured: +-2 images of Testing accuracy).
    calibration_images: int = 600
    check_images: int = 500
    seed: int = 0
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    thresholds: ParityThresholds = field(default_factory=ParityThresholds)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    scope: ScopeConfig | None = field(default_factory=ScopeConfig)  # None: no scope output
    rule_out: RuleOutConfig | None = field(default_factory=RuleOutConfig)  # None: no rule-out level
    # Activation maps on the densely evaluated last stage (twice the resolution), where the
    # architecture offers it. Off by default: onnxruntime runs every node of a graph whatever
    # outputs are fetched, so the dense branch costs every run, not only --report (model
    # card, "Activation maps"; measured: int8 237 vs 890 img/s).
    fine_maps: bool = False
    # The per-series verdict rule the model carries (runtime/series.py); chosen on the
    # development volumes, not fitted (docs/volumes.md says on what and with what figures).
    series: SeriesRule = field(default_factory=SeriesRule)
    show_progress: bool = False

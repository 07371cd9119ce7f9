"""What an ONNX model says about itself, in its `metadata_props`.

`bt-export` writes these keys and the runtime reads them, so class names, input size
and normalisation have one home: the model file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .errors import ModelError
from .metrics import UNCALIBRATED
from .preprocess import PreprocessConfig
from .series import SeriesRule

_PREFIX = "bt."
# The "no tumour" class of models exported before they named it: their training used it.
LEGACY_NEGATIVE = "notumor"


@dataclass(frozen=True)
class ModelMetadata:
    class_names: tuple[str, ...]
    preprocess: PreprocessConfig
    architecture: str = "unknown"
    precision: str = "fp32"
    temperature: float = UNCALIBRATED
    seed: int | None = None
    metrics: dict = field(default_factory=dict)
    checkpoint_sha256: str = ""
    created: str = ""
    tool_version: str = ""
    # The scope score's method, limit and the figures the limit was chosen on (see
    # export/scope.py); empty for models exported without a `scope` output.
    scope: dict = field(default_factory=dict)
    # The rule-out level: the negative class ("class") needs at least this calibrated
    # probability ("level") to stand without review; how it was chosen (see
    # export/rule_out.py). Empty for models exported without one.
    rule_out: dict = field(default_factory=dict)
    # Parity thresholds a user changed at export (`bt-export --min-agreement`), with the
    # defaults they replaced; empty when the model passed the standard gate.
    parity_override: dict = field(default_factory=dict)
    # The class that means "no tumour" (from the checkpoint; export/pipeline.py). Older
    # models lack the key: their rule-out record names it.
    negative_class: str = ""
    # The per-series verdict rule (runtime/series.py) and what it was chosen on; empty:
    # the rule's defaults.
    series: dict = field(default_factory=dict)

    @property
    def negative(self) -> str:
        """The "no tumour" class (older models' rule-out record names it, the oldest neither)."""
        return self.negative_class or self.rule_out.get("class") or LEGACY_NEGATIVE

    @property
    def series_rule(self) -> SeriesRule:
        """The per-series verdict rule chosen at export (its defaults for a model without one)."""
        return SeriesRule.from_metadata(self.series)

    @property
    def scope_limit(self) -> float | None:
        return float(self.scope["limit"]) if "limit" in self.scope else None

    @property
    def rule_out_level(self) -> tuple[str, float] | None:
        """(negative class, level), or None."""
        if "class" in self.rule_out and "level" in self.rule_out:
            return str(self.rule_out["class"]), float(self.rule_out["level"])
        return None

    def to_props(self) -> dict[str, str]:
        values = {
            "class_names": json.dumps(list(self.class_names)),
            "preprocess": self.preprocess.to_json(),
            "architecture": self.architecture,
            "precision": self.precision,
            "temperature": repr(self.temperature),
            "seed": "" if self.seed is None else str(self.seed),
            "metrics": json.dumps(self.metrics, sort_keys=True),
            "checkpoint_sha256": self.checkpoint_sha256,
            "created": self.created,
            "tool_version": self.tool_version,
            "scope": json.dumps(self.scope, sort_keys=True),
            "rule_out": json.dumps(self.rule_out, sort_keys=True),
            "parity_override": json.dumps(self.parity_override, sort_keys=True),
            "negative_class": self.negative_class,
            "series": json.dumps(self.series, sort_keys=True),
        }
        return {_PREFIX + key: value for key, value in values.items()}

    @classmethod
    def from_props(cls, props: dict[str, str]) -> ModelMetadata:
        values = {key[len(_PREFIX) :]: v for key, v in props.items() if key.startswith(_PREFIX)}
        missing = {"class_names", "preprocess"} - values.keys()
        if missing:
            raise ModelError(f"not a brain-tumour model (metadata lacks {', '.join(sorted(missing))})")
        try:
            return cls(
                class_names=tuple(json.loads(values["class_names"])),
                preprocess=PreprocessConfig.from_json(values["preprocess"]),
                architecture=values.get("architecture", "unknown"),
                precision=values.get("precision", "fp32"),
                temperature=float(values.get("temperature") or UNCALIBRATED),
                seed=int(values["seed"]) if values.get("seed") else None,
                metrics=json.loads(values.get("metrics") or "{}"),
                checkpoint_sha256=values.get("checkpoint_sha256", ""),
                created=values.get("created", ""),
                tool_version=values.get("tool_version", ""),
                scope=json.loads(values.get("scope") or "{}"),
                rule_out=json.loads(values.get("rule_out") or "{}"),
                parity_override=json.loads(values.get("parity_override") or "{}"),
                negative_class=values.get("negative_class", ""),
                series=json.loads(values.get("series") or "{}"),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelError(f"model metadata is malformed ({exc})") from exc

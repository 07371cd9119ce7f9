"""`bt-export` end to end: export, quantize, check parity, and only then put the files in place.

Each model is kept when it passes its own part of the gate: the fp32 model against torch,
the int8 model against fp32. A smoke run whose int8 copy flips near-ties still gets its
fp32 model; the refused file is never written.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..runtime.integrity import file_sha256
from ..runtime.metadata import ModelMetadata
from ..runtime.model import Classifier
from ..runtime.series import SeriesRule
from ..runtime.version import __version__
from ..train.checkpoint import (
    Checkpoint,
    load_checkpoint,
    resolve_checkpoint_path,
)
from ..train.data import (
    DataError,
    LabelledFiles,
    load_images,
    scan_labelled_folder,
    stratified_subset,
)
from ..train.predict import predict_logits, predict_probabilities
from ..train.split import SplitConfig, load_split, recorded_mix
from .config import ExportConfig
from .onnx_export import export_fp32
from .parity import ParityReport, compare
from .quantize import quantize_int8
from .rule_out import fit_rule_out
from .scope import ScopeFit, fit_scope


class ExportError(RuntimeError):
    """The export cannot start (bad paths, no data to check against)."""


@dataclass
class ExportResult:
    fp32_path: Path | None  # None: not written (failed its gate)
    int8_path: Path | None  # None: not asked for, or not written
    int8_requested: bool
    parity_path: Path
    parity: ParityReport
    sizes: dict[str, int]
    images_per_second: dict[str, float]


def int8_path_for(out: Path) -> Path:
    return out.with_name(out.stem + ".int8.onnx")


def parity_path_for(out: Path) -> Path:
    return out.with_name(out.stem + ".parity.json")


def _temporary(path: Path) -> Path:
    # Not ending in .onnx, so a failed export leaves nothing that looks like a usable model.
    return path.with_name(path.name + ".unverified")


@dataclass
class SplitFits:
    """What is fitted on the checkpoint's own split: the scope score (for the graph and its
    metadata record) and the rule-out level's metadata record."""

    scope: ScopeFit | None = None
    rule_out: dict = field(default_factory=dict)


def fit_on_split(config: ExportConfig, checkpoint: Checkpoint, network) -> SplitFits:
    """Fit the scope score on the checkpoint's training split; choose its limit and the rule-out level
    on its validation split.

    The split is recomputed from the settings recorded in the checkpoint, so the images
    the limits are chosen on are exactly those the network never trained on.
    """
    recorded = checkpoint.train_config
    try:
        mix = recorded_mix(recorded)
        split_config = SplitConfig.from_train_record(recorded)
        split = load_split(mix, checkpoint.preprocess, split_config, config.threads, config.show_progress)
    except DataError as exc:
        raise ExportError(
            f"the scope score and rule-out level are fitted on the checkpoint's training data: {exc}; "
            "run where it is (from the folder bt-train ran in), or pass --no-scope --no-rule-out"
        ) from None
    train_set, val_set = split.train, split.validation
    fits = SplitFits()
    if config.scope is not None:
        # Images of unknown tumour type keep their own label: one more class-conditional
        # Gaussian, so they count as in scope without being forced onto a tumour type.
        train_features = predict_logits(network, train_set.images, checkpoint.preprocess, features=True)
        val_features = predict_logits(network, val_set.images, checkpoint.preprocess, features=True)
        fits.scope = fit_scope(train_features, train_set.labels, val_features, config.scope)
    if config.rule_out is not None:
        val_probs = predict_probabilities(
            network, val_set.images, checkpoint.preprocess, checkpoint.temperature
        )
        fits.rule_out = fit_rule_out(
            val_probs,
            val_set.labels,
            checkpoint.class_names,
            checkpoint.negative_class,
            config.rule_out,
            val_set.origin.sources,
            val_set.origin.source_names,
        )
    return fits


SERIES_RULE_CHOSEN_ON = (
    "chosen on the development volumes (external/elderly-volumes, extra/brats-volumes) with "
    "bench/model_report.py; docs/volumes.md"
)


def build_metadata(
    checkpoint: Checkpoint, checkpoint_path: Path, series: SeriesRule | None = None
) -> ModelMetadata:
    return ModelMetadata(
        class_names=checkpoint.class_names,
        preprocess=checkpoint.preprocess,
        architecture=checkpoint.architecture,
        precision="fp32",
        temperature=checkpoint.temperature,
        seed=checkpoint.seed,
        metrics=checkpoint.metrics,
        checkpoint_sha256=file_sha256(checkpoint_path),
        created=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        tool_version=__version__,
        negative_class=(
            checkpoint.negative_class if checkpoint.negative_class in checkpoint.class_names else ""
        ),
        series={**(series or SeriesRule()).as_record(), "chosen_on": SERIES_RULE_CHOSEN_ON},
    )


def _recorded_folder(recorded: dict, key: str) -> Path | None:
    """A folder bt-train recorded: where it was, or else as given (relative to the working
    directory, so a checkpoint committed with the repository finds ../shared/data/... from
    any clone's root)."""
    for candidate in (recorded.get(key), recorded.get(f"{key}_as_given")):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return None


def _training_folder(checkpoint: Checkpoint) -> Path | None:
    """The labelled class-folder tree the checkpoint trained on (a mix: its first such source)."""
    recorded = checkpoint.train_config
    if recorded.get("data"):
        return _recorded_folder(recorded, "data")
    for source in recorded.get("mix", {}).get("sources", []):
        if source.get("folders"):
            return _recorded_folder(source, "folders")
    return None


def _select_files(config: ExportConfig, checkpoint: Checkpoint) -> tuple[LabelledFiles | None, LabelledFiles]:
    """Calibration files (when quantizing) and check files, disjoint when from one folder."""
    calibration_folder = config.calibration_data or _training_folder(checkpoint)
    check_folder = config.check_data or calibration_folder
    if check_folder is None or (config.quantize and calibration_folder is None):
        raise ExportError(
            "the checkpoint's training folder is not available: pass --calibration-data and "
            "--check-data (labelled folders, one sub-folder per class)"
        )
    for folder in (calibration_folder, check_folder):
        if folder is not None and not Path(folder).is_dir():
            raise ExportError(f"data folder not found: {folder}")
    calibration = None
    excluded: set[Path] = set()
    if config.quantize:
        everything = scan_labelled_folder(calibration_folder, checkpoint.class_names)
        calibration = stratified_subset(everything, config.calibration_images, config.seed)
        excluded = set(calibration.paths)
    check_all = scan_labelled_folder(check_folder, checkpoint.class_names)
    keep = np.asarray([i for i, p in enumerate(check_all.paths) if p not in excluded], np.int64)
    check = stratified_subset(check_all.subset(keep), config.check_images, config.seed + 1)
    return calibration, check


def measure_images_per_second(model: Classifier, batch: np.ndarray, seconds: float = 2.0) -> float:
    """Model-only throughput on preprocessed uint8 batches (no decoding)."""
    model.predict(batch)  # warm-up
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.predict(batch)
        done += len(batch)
    return done / (time.perf_counter() - started)


def run_export(config: ExportConfig) -> ExportResult:
    """Export (and quantize); the parity report is always written, the models only on success."""
    try:
        checkpoint_path = resolve_checkpoint_path(config.checkpoint)
    except FileNotFoundError as exc:
        raise ExportError(str(exc)) from None
    if config.out.suffix != ".onnx":
        raise ExportError(f"--out must end in .onnx: {config.out}")
    config.out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = load_checkpoint(checkpoint_path)
    calibration_files, check_files = _select_files(config, checkpoint)
    metadata = build_metadata(checkpoint, checkpoint_path, config.series)
    try:
        return _export_and_check(
            config, checkpoint, checkpoint_path, metadata, calibration_files, check_files
        )
    finally:
        # Whatever happened, no unverified model is left behind.
        _temporary(config.out).unlink(missing_ok=True)
        _temporary(int8_path_for(config.out)).unlink(missing_ok=True)


def _export_and_check(
    config: ExportConfig,
    checkpoint: Checkpoint,
    checkpoint_path: Path,
    metadata: ModelMetadata,
    calibration_files: LabelledFiles | None,
    check_files: LabelledFiles,
) -> ExportResult:
    fp32_path, int8_path = config.out, int8_path_for(config.out)
    fp32_tmp, int8_tmp = _temporary(fp32_path), _temporary(int8_path)
    network = checkpoint.build_model()
    fits = fit_on_split(config, checkpoint, network) if config.scope or config.rule_out else SplitFits()
    scope = fits.scope
    metadata = replace(
        metadata,
        scope=scope.record if scope else {},
        rule_out=fits.rule_out,
        parity_override=config.thresholds.changed(),
    )
    export_fp32(network, metadata, fp32_tmp, scope, config.fine_maps)

    # Reference and exported models see the same uint8 images: the network through the
    # checkpoint's preprocessing, the ONNX file through the settings in its own metadata.
    check, _ = load_images(check_files, checkpoint.preprocess, config.threads, config.show_progress)
    torch_probs = predict_probabilities(network, check.images, checkpoint.preprocess, checkpoint.temperature)
    fp32_model = Classifier(fp32_tmp, config.threads)
    runtime_images = check
    if fp32_model.metadata.preprocess != checkpoint.preprocess:
        # Decode as bt-classify will, from the model's own metadata: a mistake there fails the gate.
        runtime_images, _ = load_images(check_files, fp32_model.metadata.preprocess, config.threads)
    fp32_out = fp32_model.run(runtime_images.images)

    int8_model = None
    int8_out = None
    if config.quantize and calibration_files is not None:
        calibration, _ = load_images(
            calibration_files, checkpoint.preprocess, config.threads, config.show_progress
        )
        int8_metadata = replace(metadata, precision="int8")
        quantize_int8(fp32_tmp, int8_tmp, calibration.images, int8_metadata, config.quantization)
        int8_model = Classifier(int8_tmp, config.threads)
        int8_out = int8_model.run(runtime_images.images)

    limit = metadata.scope_limit
    report = compare(torch_probs, fp32_out, int8_out, check.labels, config.thresholds, limit)
    parity_path = parity_path_for(config.out)
    sizes = {"fp32_bytes": fp32_tmp.stat().st_size}
    speed = {"fp32": measure_images_per_second(fp32_model, check.images[:32])}
    if int8_model is not None:
        sizes["int8_bytes"] = int8_tmp.stat().st_size
        speed["int8"] = measure_images_per_second(int8_model, check.images[:32])
    record = {
        "checkpoint": str(checkpoint_path),
        "check_data": str(config.check_data or _training_folder(checkpoint)),
        "sizes": sizes,
        "model_only_images_per_second": {k: round(v, 1) for k, v in speed.items()},
        "threads": config.threads,
        **report.as_dict(),
    }
    parity_path.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    if report.fp32_passed:
        os.replace(fp32_tmp, fp32_path)
    int8_written = int8_model is not None and report.int8_passed
    if int8_written:
        os.replace(int8_tmp, int8_path)
    return ExportResult(
        fp32_path=fp32_path if report.fp32_passed else None,
        int8_path=int8_path if int8_written else None,
        int8_requested=config.quantize,
        parity_path=parity_path,
        parity=report,
        sizes=sizes,
        images_per_second=speed,
    )

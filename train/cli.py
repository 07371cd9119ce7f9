"""`bt-train`, `bt-evaluate`, `bt-audit` and `bt-average`."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated

import typer

from ..runtime.commands import EXIT_INTERRUPTED, VersionOption, fail, new_app
from ..runtime.errors import install_hint
from .config import DEFAULT_THREADS, TrainConfig

train_app = new_app()
evaluate_app = new_app()
audit_app = new_app()
average_app = new_app()


def require_training_extra() -> None:
    missing = [name for name in ("torch", "torchvision", "matplotlib") if not importlib.util.find_spec(name)]
    if missing:
        raise fail(f"{', '.join(missing)} not installed; training needs the extra: {install_hint('train')}")


# The longer options' declarations, named here so the command reads as its list of flags.
MixOption = Annotated[
    Path | None,
    typer.Option(
        help="TOML file describing a mix of sources (folders or manifests, label mapping, "
        "groups, sequences, weights; docs/training.md). Instead of --data."
    ),
]
ResumeOption = Annotated[
    Path | None,
    typer.Option(
        help="Continue the interrupted run in this folder (its recorded settings; other "
        "options are not allowed with it)."
    ),
]
TumourUnknownOption = Annotated[
    Path | None,
    typer.Option(
        "--tumour-unknown",
        "--tumor-unknown",
        help="Folder of images known to show a tumour of unrecorded type: trained on "
        "-log(1 - p(negative class)), never on a tumour type (docs/training.md).",
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="A recipe field, FIELD=VALUE (train/recipe.py), e.g. --set early_size=0; repeatable.",
    ),
]
SizeOption = Annotated[
    int | None,
    typer.Option(
        min=32,
        help="Input size in pixels (default: the architecture's). Only for networks that run at "
        "any size (compact); with --init-from, a stage at a new size.",
    ),
]
InitFromOption = Annotated[
    Path | None,
    typer.Option(
        help="Start from this run's weights (a run folder or model.pt) instead of random "
        "ones: a second stage. Its split, input and sources must be this run's."
    ),
]


@train_app.command()
def train_command(
    out: Annotated[
        Path | None, typer.Option(help="Run directory for the checkpoint, metrics and plots.")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Folder with one sub-folder of images per class.")] = None,
    mix: MixOption = None,
    resume: ResumeOption = None,
    arch: Annotated[str, typer.Option(help="Architecture name (train/architectures.py).")] = TrainConfig.arch,
    tumour_unknown: TumourUnknownOption = None,
    negative_class: Annotated[
        str, typer.Option(help="The class a --tumour-unknown image is known not to be.")
    ] = TrainConfig.negative_class,
    epochs: Annotated[int | None, typer.Option(min=1, help="Default: the architecture's recipe.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Default: the recipe's.")] = None,
    learning_rate: Annotated[float | None, typer.Option(min=0.0, help="Default: the recipe's.")] = None,
    settings: SetOption = None,
    size: SizeOption = None,
    init_from: InitFromOption = None,
    val_fraction: Annotated[float, typer.Option(min=0.01, max=0.9)] = TrainConfig.val_fraction,
    seed: int = TrainConfig.seed,
    threads: Annotated[int, typer.Option(min=1)] = DEFAULT_THREADS,
    max_images: Annotated[
        int | None, typer.Option(min=10, help="Train on a stratified subset of this many images.")
    ] = None,
    device: Annotated[
        str, typer.Option(help="cpu, cuda, or auto (a GPU when there is one).")
    ] = TrainConfig.device,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    version: VersionOption = False,
) -> None:
    """Train a classifier on a labelled image folder or a mix of sources; the best epoch is kept."""
    require_training_extra()
    from .data import DataError
    from .mix import MixError
    from .trainer import train

    if resume is not None:
        given = [data, mix, out, tumour_unknown, size, epochs, batch_size, learning_rate, max_images]
        config = _resumed_config(resume, [*given, init_from, settings or None])
    else:
        config = _new_config(
            out, data, mix, arch, tumour_unknown, negative_class, settings or [],
            {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate}, size,
        )  # fmt: skip
        config = replace(
            config, val_fraction=val_fraction, seed=seed, threads=threads, max_images=max_images,
            show_progress=not quiet and sys.stderr.isatty(), device=device, init_from=init_from,
        )  # fmt: skip
    try:
        metrics = train(config, resume=resume is not None)
    except (DataError, MixError) as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        # No epoch chosen yet: either none finished, or none had a full smoothing window.
        message = "interrupted before any epoch could be chosen as the best; --resume continues"
        raise fail(message, EXIT_INTERRUPTED) from None
    if not metrics:
        return  # a rank other than 0 under torchrun: rank 0 reports
    typer.echo(_outcome(metrics, config.out))
    if metrics["interrupted"]:
        raise typer.Exit(EXIT_INTERRUPTED)


def _new_config(
    out: Path | None,
    data: Path | None,
    mix: Path | None,
    arch: str,
    tumour_unknown: Path | None,
    negative_class: str,
    settings: list[str],
    overrides: dict,
    size: int | None = None,
) -> TrainConfig:
    """A new run's settings: its data, its run folder, and the architecture's recipe and
    input with the options' changes."""
    from .architectures import get_architecture
    from .mix import Mix, MixError

    if (data is None) == (mix is None):
        raise fail("give the training data: --data DIR or --mix FILE.toml (one of them)")
    if out is None:
        raise fail("give the run directory: --out DIR")
    if mix is not None and tumour_unknown is not None:
        raise fail("--tumour-unknown goes with --data; a mix lists such a folder as a source")
    try:
        architecture = get_architecture(arch)
        recipe = architecture.recipe.with_settings(settings)
        mixture = Mix.from_toml(mix) if mix is not None else None
    except (ValueError, MixError) as exc:
        raise fail(str(exc)) from None
    if size is not None and not architecture.any_size:
        raise fail(f"--size: the {arch!r} network is built for {architecture.preprocess.size} px only")
    if size is not None and recipe.early_size >= size:
        raise fail(f"--size {size}: the recipe's early size is {recipe.early_size} px; --set early_size=0")
    recipe = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    preprocess = architecture.preprocess if size is None else replace(architecture.preprocess, size=size)
    return TrainConfig(
        out=out,
        mix=mixture,
        data=data,
        arch=arch,
        recipe=recipe,
        preprocess=preprocess,
        tumour_unknown=tumour_unknown,
        negative_class=negative_class,
    )


def _outcome(metrics: dict, out: Path) -> str:
    """The line a finished (or interrupted) run ends with."""
    validation = metrics["validation"]
    unknown = validation.get("tumour_unknown")
    sensitivity = (
        f", tumour sensitivity {unknown['sensitivity']:.4f} on {unknown['images']} of unknown type"
        if unknown
        else ""
    )
    return (
        f"best epoch {metrics['best_epoch']}: validation accuracy {validation['accuracy']:.4f} "
        f"on {validation['images']} images{sensitivity}; {metrics['mean_epoch_seconds']:.0f}s/epoch, "
        f"{metrics['total_training_seconds']:.0f}s in all; artifacts in {out}"
    )


def _resumed_config(run: Path, others: list) -> TrainConfig:
    """The settings an interrupted run recorded in its resume state."""
    import torch

    from .trainer import RESUME_NAME

    if any(value is not None for value in others):
        raise fail(
            "--resume RUN continues that run with its own settings: "
            "give no data, mix, out, size or recipe options"
        )
    state_path = Path(run) / RESUME_NAME
    if not state_path.is_file():
        raise fail(f"nothing to resume: {state_path} not found (a run writes it after each epoch)")
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    config = TrainConfig.from_record(state["train_config"])
    config.out = Path(run)
    config.show_progress = sys.stderr.isatty()
    return config


def _screen(model: Path | None, positive: Path | None, healthy: Path | None, out: Path | None) -> None:
    """bt-evaluate --positive/--healthy: screening figures of an exported model (runtime only)."""
    from ..runtime.errors import ModelError
    from ..runtime.model import Classifier, default_model_path
    from .screening import describe, screen_folder

    try:
        classifier = Classifier(model or default_model_path())
    except ModelError as exc:
        raise fail(str(exc)) from None
    reports = []
    for folder, is_positive in ((positive, True), (healthy, False)):
        if folder is None:
            continue
        if not folder.is_dir():
            raise fail(f"no such folder: {folder}")
        report = screen_folder(classifier, folder, is_positive)
        if report["images"] == 0:
            raise fail(f"no images found in {folder}")
        typer.echo(describe(report))
        reports.append(report)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(reports, indent=2) + "\n", encoding="utf-8")
        typer.echo(f"written to {out}")


def _labelled_report(model: Path | None, data: Path, report_dir: Path) -> None:
    """The review page for a labelled folder (true class from the folder name), via the runtime."""
    from ..runtime.api import classify_folder
    from ..runtime.errors import ModelError
    from ..runtime.model import Classifier, default_model_path
    from ..runtime.review_page import ReviewPage

    if not data.is_dir():
        raise fail(f"no such folder: {data}")
    try:
        classifier = Classifier(model or default_model_path())
    except ModelError as exc:
        raise fail(str(exc)) from None
    page = ReviewPage(
        report_dir, classifier.class_names, classifier.metadata, str(data), truth_from_folder=True
    )
    failed = correct = 0
    for result in classify_folder(data, classifier):
        page.add(result)
        failed += bool(result.error)
        correct += result.prediction == page.rows[-1]["truth"]
    written = page.write(failed, {})
    typer.echo(f"{correct} of {len(page.rows)} correct by {classifier.path.name}; review page: {written}")


@evaluate_app.command()
def evaluate_command(
    checkpoint: Annotated[
        Path | None, typer.Argument(help="Run directory or .pt checkpoint (for --data).")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="Labelled folder, e.g. .../Testing.")] = None,
    positive: Annotated[
        Path | None,
        typer.Option(help="Folder of tumour-positive images of unknown type: how many are missed."),
    ] = None,
    healthy: Annotated[
        Path | None, typer.Option(help="Folder of images without a tumour: how many false alarms.")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(help="ONNX model for --positive/--healthy; default: the bundled model."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write; default RUN_DIR/eval-<folder name>.")
    ] = None,
    leak_reference: Annotated[
        Path | None,
        typer.Option(help="Training folder: also report accuracy on images with no twin there."),
    ] = None,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write DIR/index.html for --data as classified by the ONNX --model: misclassified first.",
        ),
    ] = None,
    threads: Annotated[int, typer.Option(min=1)] = DEFAULT_THREADS,
    quiet: bool = False,
    version: VersionOption = False,
) -> None:
    """Accuracy, per-class recall and the confusion matrix of a checkpoint on a labelled folder;
    or, with --positive/--healthy, how often an exported model misses a tumour or raises a false alarm.
    """
    if positive or healthy:
        _screen(model, positive, healthy, out)
        return
    if report_dir is not None:
        if data is None:
            raise fail("--report needs --data (a labelled folder)")
        _labelled_report(model, data, report_dir)
        if checkpoint is None:
            return
    if checkpoint is None or data is None:
        raise fail("give a CHECKPOINT and --data, or --positive/--healthy folders")
    require_training_extra()
    from .checkpoint import resolve_checkpoint_path
    from .data import DataError
    from .evaluate import evaluate_checkpoint

    try:
        checkpoint_file = resolve_checkpoint_path(checkpoint)
    except FileNotFoundError as exc:
        raise fail(str(exc)) from None
    out = out or checkpoint_file.parent / f"eval-{Path(data).resolve().name}"
    try:
        report = evaluate_checkpoint(
            checkpoint_file,
            data,
            out,
            threads,
            show_progress=not quiet and sys.stderr.isatty(),
            leak_reference=leak_reference,
        )
    except DataError as exc:
        raise fail(str(exc)) from None
    recalls = ", ".join(f"{name} {row['recall']:.3f}" for name, row in report["per_class"].items())
    typer.echo(f"accuracy {report['accuracy']:.4f} on {report['images']} images; recall: {recalls}")
    if "leak_free" in report:
        clean = report["leak_free"]
        typer.echo(
            f"leak-free (no exact or near twin in {leak_reference}): accuracy {clean['accuracy']:.4f} "
            f"on {clean['images']} images"
        )
    typer.echo(f"written to {out}")


@audit_app.command()
def audit_command(
    folder: Annotated[Path, typer.Argument(help="Labelled folder to audit.")],
    reference: Annotated[
        Path | None, typer.Option(help="A second labelled folder (e.g. Training) to look for twins in.")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the full report here.")] = None,
    threads: Annotated[int, typer.Option(min=1)] = DEFAULT_THREADS,
    version: VersionOption = False,
) -> None:
    """Find exact and near-duplicate images, within a folder and against a reference, and label conflicts."""
    from .audit import audit
    from .data import DataError

    try:
        report = audit(folder, reference, threads)
    except DataError as exc:
        raise fail(str(exc)) from None
    typer.echo(report.summary())
    if json_out:
        json_out.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
        typer.echo(f"report written to {json_out}")


@average_app.command()
def average_command(
    first: Annotated[Path, typer.Argument(help="A finished run (folder or model.pt).")],
    second: Annotated[
        Path, typer.Argument(help="A run of the same lineage, e.g. a second stage started from FIRST.")
    ],
    out: Annotated[Path, typer.Option(help="Run directory for the averaged checkpoint and metrics.")],
    weight: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="SECOND's share of every weight (0: FIRST, 1: SECOND).")
    ] = 0.5,
    threads: Annotated[int, typer.Option(min=1)] = DEFAULT_THREADS,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
    version: VersionOption = False,
) -> None:
    """Average two runs' weights (a run and its second stage) and finish the result on the
    validation split, like a run's best epoch; bt-export takes it like any run."""
    require_training_extra()
    from .average import AverageConfig, average
    from .data import DataError
    from .mix import MixError

    config = AverageConfig(first, second, out, weight, threads, not quiet and sys.stderr.isatty())
    try:
        metrics = average(config)
    except (DataError, MixError, FileNotFoundError) as exc:
        raise fail(str(exc)) from None
    validation = metrics["validation"]
    typer.echo(
        f"averaged ({weight:g} of {second}): validation accuracy {validation['accuracy']:.4f} on "
        f"{validation['images']} images; artifacts in {out}"
    )


def train_main() -> None:
    train_app()


def evaluate_main() -> None:
    evaluate_app()


def audit_main() -> None:
    audit_app()


def average_main() -> None:
    average_app()

"""`bt-train` and `bt-evaluate`."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated

import typer

train_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
evaluate_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
audit_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def fail(message: str, status: int = EXIT_USAGE) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(status)


def require_training_extra() -> None:
    missing = [name for name in ("torch", "torchvision", "matplotlib") if not importlib.util.find_spec(name)]
    if missing:
        raise fail(f"{', '.join(missing)} not installed; training needs the extra: pip install '.[train]'")


@train_app.command()
def train_command(
    data: Annotated[Path, typer.Option(help="Folder with one sub-folder of images per class.")],
    out: Annotated[Path, typer.Option(help="Run directory for the checkpoint, metrics and plots.")],
    arch: Annotated[str, typer.Option(help="Architecture from the registry: paper, compact.")] = "paper",
    epochs: Annotated[int | None, typer.Option(min=1, help="Default: the architecture's recipe.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Default: the recipe's.")] = None,
    learning_rate: Annotated[float | None, typer.Option(min=0.0, help="Default: the recipe's.")] = None,
    val_fraction: Annotated[float, typer.Option(min=0.01, max=0.9)] = 0.2,
    seed: int = 42,
    threads: Annotated[int, typer.Option(min=1)] = os.cpu_count() or 1,
    max_images: Annotated[
        int | None, typer.Option(min=10, help="Train on a stratified subset of this many images.")
    ] = None,
    device: Annotated[
        str, typer.Option(help="cpu, cuda, or auto (a GPU when there is one).")
    ] = "cpu",
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Train a classifier on a labelled image folder; the best epoch (validation accuracy) is kept."""
    require_training_extra()
    from brain_tumor_edge.train.architectures import get_architecture
    from brain_tumor_edge.train.data import DataError
    from brain_tumor_edge.train.trainer import TrainConfig, train

    try:
        recipe = get_architecture(arch).recipe
    except ValueError as exc:
        raise fail(str(exc)) from None
    overrides = {"epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate}
    recipe = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    config = TrainConfig(
        data=data,
        out=out,
        arch=arch,
        recipe=recipe,
        val_fraction=val_fraction,
        seed=seed,
        threads=threads,
        max_images=max_images,
        show_progress=not quiet and sys.stderr.isatty(),
        device=device,
    )
    try:
        metrics = train(config)
    except DataError as exc:
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail("interrupted before the first epoch finished", EXIT_INTERRUPTED) from None
    validation = metrics["validation"]
    typer.echo(
        f"best epoch {metrics['best_epoch']}: validation accuracy {validation['accuracy']:.4f} "
        f"on {validation['images']} images; {metrics['mean_epoch_seconds']:.0f}s/epoch, "
        f"{metrics['total_training_seconds']:.0f}s in all; artifacts in {out}"
    )
    if metrics["interrupted"]:
        raise typer.Exit(EXIT_INTERRUPTED)


@evaluate_app.command()
def evaluate_command(
    checkpoint: Annotated[Path, typer.Argument(help="Run directory or .pt checkpoint.")],
    data: Annotated[Path, typer.Option(help="Labelled folder, e.g. .../Testing.")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write; default RUN_DIR/eval-<folder name>.")
    ] = None,
    leak_reference: Annotated[
        Path | None,
        typer.Option(help="Training folder: also report accuracy on images with no twin there."),
    ] = None,
    threads: Annotated[int, typer.Option(min=1)] = os.cpu_count() or 1,
    quiet: bool = False,
) -> None:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of a checkpoint on a folder."""
    require_training_extra()
    from brain_tumor_edge.train.checkpoint import resolve_checkpoint_path
    from brain_tumor_edge.train.data import DataError
    from brain_tumor_edge.train.evaluate import evaluate_checkpoint

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
    threads: Annotated[int, typer.Option(min=1)] = os.cpu_count() or 1,
) -> None:
    """Find exact and near-duplicate images, within a folder and against a reference, and label conflicts."""
    from brain_tumor_edge.train.audit import audit
    from brain_tumor_edge.train.data import DataError

    try:
        report = audit(folder, reference, threads)
    except DataError as exc:
        raise fail(str(exc)) from None
    typer.echo(report.summary())
    if json_out:
        json_out.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
        typer.echo(f"report written to {json_out}")


def train_main() -> None:
    train_app()


def evaluate_main() -> None:
    evaluate_app()


def audit_main() -> None:
    audit_app()

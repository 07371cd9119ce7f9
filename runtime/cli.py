"""`bt-classify FOLDER --csv OUT.csv`: classify every image below a folder into a CSV."""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from runtime.classify import Classification
from runtime.dicom import SAFE_FIELDS
from runtime.errors import ModelError
from runtime.files import FolderWalk
from runtime.model import Classifier, default_model_path
from runtime.progress import progress_bar
from runtime.report import CsvReport, ReportError, partial_path

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MAX_FAILURES_SHOWN = 10

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _fail(message: str) -> typer.Exit:
    _say(f"error: {message}")
    return typer.Exit(EXIT_USAGE)


@app.command()
def classify(
    folder: Annotated[Path, typer.Argument(help="Folder of MRI images (searched recursively).")],
    csv: Annotated[Path, typer.Option("--csv", help="Where to write the results CSV.")],
    model: Annotated[Path | None, typer.Option(help="ONNX model; default: the bundled int8 model.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1024)] = 32,
    threads: Annotated[
        int | None, typer.Option(min=1, help="onnxruntime threads; default: all cores.")
    ] = None,
    recursive: Annotated[bool, typer.Option(help="Descend into sub-folders.")] = True,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing CSV.")] = False,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run from its OUT.csv.partial.")
    ] = False,
    dicom_fields: Annotated[
        str,
        typer.Option(
            help="Comma-separated non-identifying DICOM fields to add as columns, "
            "e.g. SOPInstanceUID,SeriesInstanceUID,InstanceNumber."
        ),
    ] = "",
    min_confidence: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Add a needs_review column: 'yes' where the calibrated confidence is "
            "below this, for a person to look at; e.g. 0.9.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar and no summary.")] = False,
) -> None:
    """Classify each image as glioma, meningioma, notumor or pituitary (the model's classes).

    Exit status: 0 all images classified; 1 some files failed (see their `error` cells);
    2 usage error (no such folder, no images, unusable model); 130 interrupted.
    """
    if not folder.is_dir():
        raise _fail(f"no such folder: {folder}")
    fields = tuple(name.strip() for name in dicom_fields.split(",") if name.strip())
    refused = sorted(set(fields) - SAFE_FIELDS)
    if refused:
        raise _fail(
            f"--dicom-fields: {', '.join(refused)} not allowed (patient privacy); "
            f"choose from {', '.join(sorted(SAFE_FIELDS))}"
        )
    if csv.is_dir():
        raise _fail(f"--csv points to a folder: {csv}")
    if csv.exists() and not overwrite:
        raise _fail(f"{csv} exists; pass --overwrite to replace it")
    if resume and not partial_path(csv).exists():
        raise _fail(f"nothing to resume: {partial_path(csv)} does not exist")
    if partial_path(csv).exists() and not (resume or overwrite):
        raise _fail(
            f"an interrupted run left {partial_path(csv)}; pass --resume to continue it "
            "or --overwrite to start over"
        )
    if not csv.parent.is_dir():
        raise _fail(f"folder for the CSV does not exist: {csv.parent}")
    try:
        classifier = Classifier(model or default_model_path(), threads)
    except ModelError as exc:
        raise _fail(str(exc)) from None

    walk = FolderWalk(folder, recursive)
    show_progress = not quiet and sys.stderr.isatty()
    total = sum(1 for _ in walk) if show_progress else None
    counts: Counter[str] = Counter()
    failures: list[str] = []
    started = time.perf_counter()
    progress = progress_bar(show_progress, "classifying")
    decode_workers = min(4, os.cpu_count() or 1)
    try:
        with (
            CsvReport(csv, classifier.class_names, resume, fields, min_confidence) as report,
            progress,
        ):
            task = progress.add_task("classify", total=total, completed=report.rows)
            resumed = report.rows
            todo = (path for path in walk if not report.is_done(path))
            classification = Classification(classifier, batch_size, decode_workers, fields)
            for result in classification.run(todo):
                report.write(result)
                if result.probabilities is None:
                    if len(failures) < MAX_FAILURES_SHOWN:
                        failures.append(f"  {result.name}: {result.error}")
                else:
                    counts[classifier.class_names[int(result.probabilities.argmax())]] += 1
                progress.update(task, completed=report.rows)
            if report.rows == 0:
                raise _fail(f"no images found in {folder}")
    except KeyboardInterrupt:
        _say(f"interrupted: finished rows are in {partial_path(csv)}; rerun with --resume to go on")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ReportError as exc:
        raise _fail(str(exc)) from None
    except typer.Exit:
        partial_path(csv).unlink(missing_ok=True)
        raise

    seconds = time.perf_counter() - started
    failed = report.failed
    if not quiet:
        done = sum(counts.values())
        per_class = ", ".join(f"{name} {counts[name]}" for name in classifier.class_names)
        kept = f" (plus {resumed} rows kept from the interrupted run)" if resumed else ""
        flagged = report.flagged
        review = f"; {flagged} below --min-confidence {min_confidence:g} (needs_review)" if flagged else ""
        skipped = "".join(f"; {n} skipped: {why}" for why, n in sorted(classification.skipped.items()))
        _say(
            f"classified {done} images in {seconds:.1f}s ({done / seconds:.1f} images/s){kept}: "
            f"{per_class}; {failed} failed{review}{skipped}; {walk.ignored} non-image files skipped. "
            f"CSV: {csv}"
        )
        if failures:
            more = failed - len(failures)
            lines = failures + ([f"  ... and {more} more (see the error column)"] if more > 0 else [])
            _say("failed files:\n" + "\n".join(lines))
    raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)


def main() -> None:
    app()

"""`bt-classify FOLDER --csv OUT.csv`: classify every image below a folder into a CSV."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from brain_tumor_edge.runtime.classify import Classification, Settings
from brain_tumor_edge.runtime.commands import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    VersionOption,
    fail,
    new_app,
    plural,
    say,
)
from brain_tumor_edge.runtime.dicom import SAFE_FIELDS
from brain_tumor_edge.runtime.errors import ModelError
from brain_tumor_edge.runtime.files import FolderWalk
from brain_tumor_edge.runtime.lock import FileLock, LockedError, lock_path
from brain_tumor_edge.runtime.model import Classifier, default_model_path
from brain_tumor_edge.runtime.progress import progress_bar
from brain_tumor_edge.runtime.report import CsvReport, ReportError, partial_path

MAX_FAILURES_SHOWN = 10
DEFAULTS = Settings()

app = new_app()


def _check_paths(folder: Path, csv: Path, overwrite: bool, resume: bool) -> None:
    if overwrite and resume:
        raise fail("--resume continues a CSV and --overwrite replaces it: choose one")
    if not folder.exists():
        raise fail(f"no such folder: {folder}")
    if not folder.is_dir():
        raise fail(f"{folder} is a file, not a folder: give the folder that holds the images")
    if csv.is_dir():
        raise fail(f"--csv points to a folder: {csv}")
    # The CSV's folder is not created: a mistyped path should fail here, not scatter results.
    if not csv.parent.is_dir():
        raise fail(f"folder for the CSV does not exist: {csv.parent}")


def _check_csv_state(csv: Path, overwrite: bool, resume: bool) -> None:
    """Advice about an existing CSV or partial file; only given while holding the CSV's lock,
    so a run still in progress is never mistaken for an interrupted one."""
    if csv.exists() and not overwrite:
        if resume:
            raise fail(f"{csv} is complete: that run already finished (pass --overwrite to run again)")
        raise fail(f"{csv} exists; pass --overwrite to replace it")
    if resume and not partial_path(csv).exists():
        raise fail(f"nothing to resume: {partial_path(csv)} does not exist")
    if partial_path(csv).exists() and not (resume or overwrite):
        raise fail(
            f"an interrupted run left {partial_path(csv)}; pass --resume to continue it "
            "or --overwrite to start over"
        )


@app.command()
def classify(
    folder: Annotated[
        Path, typer.Argument(metavar="FOLDER", help="Folder of MRI images (searched recursively).")
    ],
    csv: Annotated[Path, typer.Option("--csv", help="Where to write the results CSV.")],
    model: Annotated[Path | None, typer.Option(help="ONNX model; default: the bundled int8 model.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1024)] = DEFAULTS.batch_size,
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
        typer.Option(help="DICOM fields to add as columns, comma-separated (non-identifying only)."),
    ] = "",
    min_confidence: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Rows less confident than this get 'low confidence' in the review column.",
        ),
    ] = DEFAULTS.min_confidence,
    report_dir: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Also write DIR/index.html: every row with its image and heatmap, doubtful rows first.",
        ),
    ] = None,
    ray: Annotated[
        bool, typer.Option("--ray", help="Run on a Ray cluster (pip install '.[cluster]'); same CSV.")
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join, e.g. ray://head:10001; default: RAY_ADDRESS or a local one."),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar and no summary.")] = False,
    version: VersionOption = False,
) -> None:
    """Classify each image as one of the model's classes, or flag it for review.

    Exit status: 0 all images classified; 1 some files failed (see their `error` cells);
    2 usage error (no such folder, no images, unusable model); 130 interrupted.
    """
    _check_paths(folder, csv, overwrite, resume)
    try:
        lock = FileLock(lock_path(csv)).acquire()
    except LockedError as exc:
        raise fail(str(exc)) from None
    with lock:
        _check_csv_state(csv, overwrite, resume)
        _classify(
            folder,
            csv,
            model,
            batch_size,
            threads,
            recursive,
            resume,
            dicom_fields,
            min_confidence,
            report_dir,
            ray,
            ray_address,
            quiet,
        )


def _classify(
    folder: Path,
    csv: Path,
    model: Path | None,
    batch_size: int,
    threads: int | None,
    recursive: bool,
    resume: bool,
    dicom_fields: str,
    min_confidence: float,
    report_dir: Path | None,
    ray: bool,
    ray_address: str | None,
    quiet: bool,
) -> None:
    """The run itself, under the CSV's lock."""
    fields = tuple(name.strip() for name in dicom_fields.split(",") if name.strip())
    refused = sorted(set(fields) - SAFE_FIELDS)
    if refused:
        raise fail(
            f"--dicom-fields: {', '.join(refused)} not allowed (patient privacy); "
            f"choose from {', '.join(sorted(SAFE_FIELDS))}"
        )
    try:
        classifier = Classifier(model or default_model_path(), threads)
    except ModelError as exc:
        raise fail(str(exc)) from None

    if ray and report_dir is not None:
        raise fail("--report is not available with --ray yet: run --report on one PC")
    walk = FolderWalk(folder, recursive)
    show_progress = not quiet and sys.stderr.isatty()
    total = sum(1 for _ in walk) if show_progress and not ray else None
    passed = PassedOver()
    failures: list[str] = []
    started = time.perf_counter()
    progress = progress_bar(show_progress, "classifying")
    maps = report_dir is not None  # only the review page shows them
    settings = Settings(batch_size, DEFAULTS.decode_workers, fields, min_confidence, maps=maps)
    classification = Classification(classifier, settings)
    page = None
    if report_dir is not None:
        from brain_tumor_edge.runtime.review_page import ReviewPage

        page = ReviewPage(report_dir, classifier.class_names, classifier.metadata, str(folder))
    try:
        with CsvReport(csv, classifier.class_names, resume, fields) as report, progress:
            task = progress.add_task("classify", total=total, completed=report.rows)

            def written(name: str, error: str) -> None:
                if error and len(failures) < MAX_FAILURES_SHOWN:
                    failures.append(f"  {name}: {error}")
                progress.update(task, completed=report.rows)

            if ray:
                model_path = classifier.path.resolve()
                for row in _ray_rows(folder, model_path, settings, ray_address, recursive, report, passed):
                    written(row[0], row[report.error_column])
            else:
                todo = (path for path in walk if not report.is_done(path))
                for result in classification.run(todo):
                    report.write(result)
                    if page is not None:
                        page.add(result)
                    written(result.name, result.error)
                counts = {"ignored": walk.ignored, "special": walk.special}
                passed.add({**counts, "skipped": classification.skipped})
            if report.rows == 0:
                raise fail(f"no images found in {folder}")
    except KeyboardInterrupt:
        say(f"interrupted: finished rows are in {partial_path(csv)}; rerun with --resume to go on")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ReportError as exc:
        raise fail(str(exc)) from None
    except typer.Exit:
        partial_path(csv).unlink(missing_ok=True)
        raise
    except OSError as exc:  # the output, not an input: the disk is full or the CSV unwritable
        reason = exc.strerror or str(exc)
        raise fail(f"cannot write {partial_path(csv)}: {reason}; rows so far are kept there") from None

    if page is not None:
        written = page.write(report.failed, classification.skipped)
        if not quiet:
            say(f"review page: {written}")
    if not quiet:
        say(_summary(report, classifier, passed, time.perf_counter() - started, csv))
        if failures:
            more = report.failed - len(failures)
            lines = failures + ([f"  ... and {more} more (see the error column)"] if more > 0 else [])
            say("failed files:\n" + "\n".join(lines))
    raise typer.Exit(EXIT_FAILED if report.failed else EXIT_OK)


@dataclass
class PassedOver:
    """What a run did not classify: counted for the summary, from one PC or from Ray workers."""

    ignored: int = 0  # not images
    special: int = 0  # pipes, sockets, devices
    skipped: Counter = field(default_factory=Counter)  # DICOM without pixels, by reason

    def add(self, counts: dict) -> None:
        self.ignored += counts.get("ignored", 0)
        self.special += counts.get("special", 0)
        self.skipped.update(counts.get("skipped", {}))


def _ray_rows(
    folder: Path,
    model_path: Path,
    settings: Settings,
    address: str | None,
    recursive: bool,
    report: CsvReport,
    passed: PassedOver,
) -> Iterator[list[str]]:
    """Rows from the Ray path, written to the report as they arrive in sorted order."""
    from brain_tumor_edge.runtime.cluster import ClusterJob, classify_on_ray

    job = ClusterJob(str(model_path), settings)
    try:
        for kind, value in classify_on_ray(folder, job, address, recursive, frozenset(report.done)):
            if kind == "counts":
                passed.add(value)
            else:
                report.write_cells(value)
                yield value
    except RuntimeError as exc:
        if "pip install" in str(exc):
            raise fail(str(exc)) from None
        raise


def _summary(
    report: CsvReport,
    classifier: Classifier,
    passed: PassedOver,
    seconds: float,
    csv: Path,
) -> str:
    """One paragraph: counts over the whole CSV (rows kept by --resume included)."""
    from brain_tumor_edge import __version__

    new = report.rows - report.kept
    kept = f" (plus {report.kept} kept from the interrupted run)" if report.kept else ""
    per_class = ", ".join(f"{name} {report.predicted[name]}" for name in classifier.class_names)
    parts = [
        f"{per_class}",
        f"{report.out_of_scope} out of scope" if classifier.has_scope or report.out_of_scope else "",
        f"{report.low_confidence} low confidence" if report.low_confidence else "",
        f"{report.not_ruled_out} with a tumour not ruled out" if report.not_ruled_out else "",
        f"{report.failed} failed",
    ]
    skipped = [f"{n} skipped: {why}" for why, n in sorted(passed.skipped.items())]
    skipped += [plural(passed.ignored, "non-image file", "non-image files") + " skipped"]
    if passed.special:
        special = plural(passed.special, "pipe, socket or device", "pipes, sockets or devices")
        skipped += [f"{special} skipped"]
    lines = [
        f"classified {plural(new, 'image')} in {seconds:.1f}s "
        f"({new / max(seconds, 1e-9):.1f} images/s){kept}",
        "; ".join(p for p in parts if p) + "; " + "; ".join(skipped) + ".",
    ]
    if not classifier.has_scope:
        lines.append(
            "note: this model has no scope output, so out-of-scope detection is unavailable "
            "(only the input checks ran); re-export it with bt-export"
        )
    lines.append(f"CSV: {csv} (brain-tumor-edge {__version__}, model {classifier.path.name})")
    return "\n".join(lines)


def main() -> None:
    app()

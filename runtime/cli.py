"""`bt-classify FOLDER --csv OUT.csv`: classify every image below a folder into a CSV."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from .commands import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    VersionOption,
    fail,
    new_app,
    say,
)
from .errors import BrainTumorEdgeError, RunInterrupted, Terminated, install_hint
from .files import DEFAULT_EXCLUDES
from .library_warnings import route
from .options import RunOptions
from .run import classify_to_csv

DEFAULTS = RunOptions()
# The longer options' declarations, named here so the command reads as its list of flags.
Inputs = Annotated[
    list[Path],
    typer.Argument(
        metavar="FOLDER|FILES...",
        help="A folder of MRI images (searched recursively), or files and folders (a shell glob).",
    ),
]
# A string, not a Path: Path("new/") drops the slash that says the user meant a folder.
CsvOption = Annotated[
    str | None,
    typer.Option(
        "--csv", help="Where to write the results CSV (a file name); default: FOLDER's name + .csv, here."
    ),
]
ExcludeOption = Annotated[
    list[str] | None,
    typer.Option(
        metavar="GLOB",
        help="Leave out files and folders whose name (or path below FOLDER) matches; repeatable. "
        f"Always left out unless --no-default-excludes: {' '.join(DEFAULT_EXCLUDES)}",
    ),
]
DefaultExcludesOption = Annotated[
    bool, typer.Option(help="Leave out system clutter (macOS, Windows, NAS folders); see --exclude.")
]
ResumeOption = Annotated[
    bool, typer.Option(help="Continue an interrupted run from its OUT.csv.partial (the same run only).")
]
RetryOption = Annotated[
    bool, typer.Option(help="Re-classify only the failed rows of a finished CSV, in place (same run only).")
]
DicomFieldsOption = Annotated[
    str, typer.Option(help="DICOM fields to add as columns, comma-separated (non-identifying only).")
]
MinConfidenceOption = Annotated[
    float,
    typer.Option(
        min=0.0, max=1.0, help="Rows less confident than this get 'low confidence' in the review column."
    ),
]
ReportOption = Annotated[
    Path | None,
    typer.Option(
        "--report",
        help="Also write DIR/index.html: every row with its image and heatmap, doubtful rows first.",
    ),
]
SeriesOption = Annotated[
    Path | None,
    typer.Option(
        "--series-csv",
        help="Also write one row per NIfTI volume or DICOM series, with a verdict (docs/volumes.md).",
    ),
]
DicomScOption = Annotated[
    Path | None,
    typer.Option(
        "--dicom-sc",
        metavar="DIR",
        help="With --series-csv: each DICOM series' verdict as a DICOM Secondary Capture in DIR, "
        "filed under the series' own patient and study, for a PACS to take back (docs/dicom.md).",
    ),
]
RayOption = Annotated[
    bool, typer.Option("--ray", help=f"Run on a Ray cluster ({install_hint('cluster')}); same CSV.")
]
RayAddressOption = Annotated[
    str | None,
    typer.Option(help="Ray cluster to join, e.g. ray://head:10001; default: RAY_ADDRESS or a local one."),
]

app = new_app()


@app.command()
def classify(
    folder: Inputs,
    csv: CsvOption = None,
    model: Annotated[Path | None, typer.Option(help="ONNX model; default: the bundled int8 model.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=1024)] = DEFAULTS.batch_size,
    threads: Annotated[
        int | None, typer.Option(min=1, help="onnxruntime threads; default: all cores.")
    ] = None,
    recursive: Annotated[bool, typer.Option(help="Descend into sub-folders.")] = DEFAULTS.recursive,
    exclude: ExcludeOption = None,
    default_excludes: DefaultExcludesOption = DEFAULTS.default_excludes,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing CSV.")] = False,
    resume: ResumeOption = False,
    retry_errors: RetryOption = False,
    dicom_fields: DicomFieldsOption = "",
    min_confidence: MinConfidenceOption = DEFAULTS.min_confidence,
    report_dir: ReportOption = None,
    series_csv: SeriesOption = None,
    dicom_sc: DicomScOption = None,
    ray: RayOption = False,
    ray_address: RayAddressOption = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar and no summary.")] = False,
    version: VersionOption = False,
) -> None:
    """Classify each image as one of the model's classes, or flag it for review.

    Exit status: 0 all images classified; 1 some files failed (see their `error` cells);
    2 usage error (no such folder, no images, unusable model); 130 interrupted (Ctrl-C);
    143 stopped by SIGTERM. Either way the finished rows are kept for --resume.
    """
    if csv is None:  # as rembg and yolo do: a default output, said out loud
        named = folder[0] if len(folder) == 1 and folder[0].is_dir() else Path("results")
        csv = f"{named.resolve().name or 'results'}.csv"
        if not quiet:
            say(f"writing {csv} (--csv to choose another name)")
    # The flags are RunOptions' fields, one for one (runtime/options.py).
    options = RunOptions(
        model=model, threads=threads, batch_size=batch_size,
        dicom_fields=tuple(name.strip() for name in dicom_fields.split(",") if name.strip()),
        min_confidence=min_confidence, recursive=recursive, exclude=tuple(exclude or ()),
        default_excludes=default_excludes, overwrite=overwrite, resume=resume, retry_errors=retry_errors,
        report_dir=report_dir, series_csv=series_csv, dicom_sc=dicom_sc, ray=ray, ray_address=ray_address,
        show_progress=not quiet and sys.stderr.isatty(),
    )  # fmt: skip
    try:
        summary = classify_to_csv(folder, csv, options)
    except RunInterrupted as exc:
        say(str(exc))
        raise typer.Exit(EXIT_TERMINATED if exc.terminated else EXIT_INTERRUPTED) from None
    except BrainTumorEdgeError as exc:
        raise fail(str(exc)) from None
    if not quiet:
        if summary.review_page is not None:
            say(f"review page: {summary.review_page}")
        if dicom_sc is not None:
            say(f"DICOM verdicts: {len(summary.dicom_verdicts)} Secondary Captures in {dicom_sc}")
        say(summary.describe())
    raise typer.Exit(EXIT_FAILED if summary.failed else EXIT_OK)


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    route()  # the readers' warnings go to their file's row, not the console
    app()

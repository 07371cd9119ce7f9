"""A whole `bt-classify` run as one function: folder in, CSV (and review page) out.

    from brain_tumor_edge import classify_to_csv

    summary = classify_to_csv("scans/", "scans.csv", report_dir="review/")
    print(summary.describe())

The command's options are this function's keywords (`runtime/cli.py` maps one onto the
other and exceptions onto exit codes, nothing more). It takes the CSV's lock, checks the
output paths and any earlier partial CSV under it, streams rows into the CSV (and the
review page), resumes an interrupted run, or hands the work to Ray. Problems that stop
the run are `RunError`s; Ctrl-C becomes `RunInterrupted`, with every finished row kept.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from .classify import Classification, Settings
from .commands import plural
from .csv_report import CsvReport, ReportError, partial_path
from .dicom import SAFE_FIELDS
from .errors import ModelError, RunError, RunInterrupted
from .files import FolderWalk
from .lock import FileLock, lock_path
from .model import Classifier, default_model_path
from .progress import progress_bar
from .reasons import KINDS, OTHER
from .series import SeriesCollector, SeriesRule, SeriesSummary, write_series_csv

MAX_FAILURES_SHOWN = 10


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


@dataclass
class RunSummary:
    """What a run wrote, counted over the whole CSV (rows kept by a resume included)."""

    csv: Path
    model: Classifier
    report: CsvReport
    passed: PassedOver
    seconds: float
    failures: list[str]  # the first few failed files, "  name: error"
    review_page: Path | None = None
    series: list[SeriesSummary] = field(default_factory=list)  # with series_csv: one per series

    @property
    def failed(self) -> int:
        return self.report.failed

    @property
    def rows(self) -> int:
        return self.report.rows

    def describe(self) -> str:
        """The paragraph bt-classify prints: counts, what was passed over, where the CSV is."""
        from .version import __version__

        report, passed, classifier = self.report, self.passed, self.model
        new = report.rows - report.kept
        kept = f" (plus {report.kept} kept from the interrupted run)" if report.kept else ""
        per_class = ", ".join(f"{name} {report.predicted[name]}" for name in classifier.class_names)
        parts = [
            per_class,
            f"{report.out_of_scope} out of scope" if classifier.has_scope or report.out_of_scope else "",
            *(
                f"{report.kinds[kind.name]} {kind.summary}"
                for kind in (*KINDS, OTHER)
                if not kind.out_of_scope and report.kinds[kind.name]
            ),
            f"{report.failed} failed",
        ]
        skipped = [f"{n} skipped: {why}" for why, n in sorted(passed.skipped.items())]
        skipped += [plural(passed.ignored, "non-image file", "non-image files") + " skipped"]
        if passed.special:
            special = plural(passed.special, "pipe, socket or device", "pipes, sockets or devices")
            skipped += [f"{special} skipped"]
        lines = [
            f"classified {plural(new, 'image')} in {self.seconds:.1f}s "
            f"({new / max(self.seconds, 1e-9):.1f} images/s){kept}",
            "; ".join(p for p in parts if p) + "; " + "; ".join(skipped) + ".",
        ]
        if not classifier.has_scope:
            lines.append(
                "note: this model has no scope output, so out-of-scope detection is unavailable "
                "(only the input checks ran); re-export it with bt-export"
            )
        lines.append(f"CSV: {self.csv} (brain-tumor-edge {__version__}, model {classifier.path.name})")
        if self.failures:
            more = report.failed - len(self.failures)
            shown = self.failures + ([f"  ... and {more} more (see the error column)"] if more > 0 else [])
            lines.append("failed files:\n" + "\n".join(shown))
        return "\n".join(lines)


def classify_to_csv(
    folder: str | Path,
    csv: str | Path,
    *,
    model: Classifier | str | Path | None = None,
    settings: Settings | None = None,
    threads: int | None = None,
    recursive: bool = True,
    overwrite: bool = False,
    resume: bool = False,
    report_dir: str | Path | None = None,
    series_csv: str | Path | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    show_progress: bool = False,
) -> RunSummary:
    """Classify every input below `folder` into `csv`; see the module docstring.

    `model`: a loaded Classifier, a path, or None for the bundled model (`threads` applies
    when it is loaded here). `settings.maps` is set by `report_dir` (only the page shows them).
    `series_csv`: also one row per NIfTI volume or DICOM series (runtime/series.py).
    """
    folder, csv = Path(folder), Path(csv)
    report_dir = None if report_dir is None else Path(report_dir)
    series_csv = None if series_csv is None else Path(series_csv)
    settings = settings or Settings()
    _check_paths(folder, csv, overwrite, resume)
    if series_csv is not None:
        if resume or ray:
            raise RunError(
                "--series-csv needs every slice of a series in one run: not with --resume or --ray"
            )
        if series_csv.is_dir() or not series_csv.parent.is_dir():
            raise RunError(f"--series-csv must name a file in an existing folder: {series_csv}")
        if series_csv.exists() and not overwrite:
            raise RunError(f"{series_csv} exists; pass --overwrite to replace it")
    refused = sorted(set(settings.dicom_fields) - SAFE_FIELDS)
    if refused:
        raise RunError(
            f"--dicom-fields: {', '.join(refused)} not allowed (patient privacy); "
            f"choose from {', '.join(sorted(SAFE_FIELDS))}"
        )
    if ray and report_dir is not None:
        raise RunError("--report is not available with --ray yet: run --report on one PC")
    with FileLock(lock_path(csv)).acquire():
        _check_csv_state(csv, overwrite, resume)
        try:
            classifier = (
                model
                if isinstance(model, Classifier)
                else Classifier(Path(model) if model is not None else default_model_path(), threads)
            )
        except ModelError as exc:
            raise RunError(str(exc)) from None
        settings = replace(settings, maps=report_dir is not None)  # only the page shows maps
        return _run(
            folder,
            csv,
            classifier,
            settings,
            recursive,
            resume,
            report_dir,
            series_csv,
            ray,
            ray_address,
            show_progress,
        )


def _check_paths(folder: Path, csv: Path, overwrite: bool, resume: bool) -> None:
    if overwrite and resume:
        raise RunError("--resume continues a CSV and --overwrite replaces it: choose one")
    if not folder.exists():
        raise RunError(f"no such folder: {folder}")
    if not folder.is_dir():
        raise RunError(f"{folder} is a file, not a folder: give the folder that holds the images")
    if csv.is_dir():
        raise RunError(f"--csv points to a folder: {csv}")
    # The CSV's folder is not created: a mistyped path should fail here, not scatter results.
    if not csv.parent.is_dir():
        raise RunError(f"folder for the CSV does not exist: {csv.parent}")


def _check_csv_state(csv: Path, overwrite: bool, resume: bool) -> None:
    """Advice about an existing CSV or partial file; only given while holding the CSV's lock,
    so a run still in progress is never mistaken for an interrupted one."""
    if csv.exists() and not overwrite:
        if resume:
            raise RunError(f"{csv} is complete: that run already finished (pass --overwrite to run again)")
        raise RunError(f"{csv} exists; pass --overwrite to replace it")
    if resume and not partial_path(csv).exists():
        raise RunError(f"nothing to resume: {partial_path(csv)} does not exist")
    if partial_path(csv).exists() and not (resume or overwrite):
        raise RunError(
            f"an interrupted run left {partial_path(csv)}; pass --resume to continue it "
            "or --overwrite to start over"
        )


def _run(
    folder: Path,
    csv: Path,
    classifier: Classifier,
    settings: Settings,
    recursive: bool,
    resume: bool,
    report_dir: Path | None,
    series_csv: Path | None,
    ray: bool,
    ray_address: str | None,
    show_progress: bool,
) -> RunSummary:
    """The run itself, under the CSV's lock."""
    series = None
    if series_csv is not None or report_dir is not None:  # the page groups rows by series too
        negative = classifier.metadata.negative or "notumor"
        series = SeriesCollector(negative, SeriesRule.from_metadata(classifier.metadata.series))
    walk = FolderWalk(folder, recursive)
    try:
        total = sum(1 for _ in walk) if show_progress and not ray else None
    except OSError as exc:
        raise RunError(f"cannot list {folder}: {exc.strerror or exc}") from None
    passed = PassedOver()
    failures: list[str] = []
    started = time.perf_counter()
    progress = progress_bar(show_progress, "classifying")
    classification = Classification(classifier, settings)
    page = None
    if report_dir is not None:
        from .review_page import ReviewPage

        page = ReviewPage(report_dir, classifier.class_names, classifier.metadata, str(folder))
    try:
        with CsvReport(csv, classifier.class_names, resume, settings.dicom_fields) as report, progress:
            task = progress.add_task("classify", total=total, completed=report.rows)

            def written(name: str, error: str) -> None:
                if error and len(failures) < MAX_FAILURES_SHOWN:
                    failures.append(f"  {name}: {error}")
                progress.update(task, completed=report.rows)

            if ray:
                rows = _ray_rows(
                    folder, classifier.path.resolve(), settings, ray_address, recursive, report, passed
                )
                for row in rows:
                    written(row[0], row[report.error_column])
            else:
                todo = (path for path in walk if not report.is_done(path))
                for result in classification.run(todo):
                    report.write(result)
                    if page is not None:
                        page.add(result)
                    if series is not None:
                        series.add(result)
                    written(result.name, result.error)
                passed.add(
                    {"ignored": walk.ignored, "special": walk.special, "skipped": classification.skipped}
                )
            if report.rows == 0:
                raise RunError(f"no images found in {folder}")
    except KeyboardInterrupt:
        raise RunInterrupted(
            f"interrupted: finished rows are in {partial_path(csv)}; rerun with --resume to go on"
        ) from None
    except RunError:
        partial_path(csv).unlink(missing_ok=True)  # nothing was classified: nothing to resume
        raise
    except ReportError as exc:
        raise RunError(str(exc)) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.filename is not None and Path(exc.filename) == folder:  # the root itself went away
            raise RunError(
                f"cannot list {folder}: {reason}; rows so far are kept in {partial_path(csv)}"
            ) from None
        # Otherwise the output, not an input: the disk is full or the CSV unwritable.
        raise RunError(f"cannot write {partial_path(csv)}: {reason}; rows so far are kept there") from None
    summary = RunSummary(csv, classifier, report, passed, time.perf_counter() - started, failures)
    if series is not None:
        summary.series = series.summaries()
    if series_csv is not None:
        write_series_csv(series_csv, summary.series)
    if page is not None:
        summary.review_page = page.write(report.failed, classification.skipped, summary.series)
    return summary


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
    from .cluster import ClusterJob, classify_on_ray

    job = ClusterJob(str(model_path), settings)
    for kind, value in classify_on_ray(folder, job, address, recursive, frozenset(report.done)):
        if kind == "counts":
            passed.add(value)
        else:
            report.write_cells(value)
            yield value

"""A whole `bt-classify` run as one function: folder in, CSV (and review page) out.

`classify_to_csv(folder, csv, options)` returns a `RunSummary` (runtime/summary.py;
`describe()` is the command's summary paragraph; docs/classify.md, "From Python", shows
it in use). `options` is a `RunOptions` (runtime/options.py), `bt-classify`'s flags one
for one; keywords may stand in for it or change it (`overwrite=True`).

It takes the CSV's lock, checks the output paths and any earlier partial CSV under it,
streams rows into the CSV (and the review page), resumes an interrupted run, or hands the
work to Ray. Problems that stop the run are `RunError`s; Ctrl-C becomes `RunInterrupted`,
with every finished row kept.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .classify import Classification, Settings
from .csv_report import CsvReport, ReportError, partial_path, retry_partial_path, spreadsheet_safe
from .dicom import SAFE_FIELDS
from .errors import ModelError, RunError, RunInterrupted, Terminated
from .files import FolderWalk, WalkRules
from .lock import lock_path
from .model import Classifier, default_model_path
from .options import RunOptions
from .progress import progress_bar
from .results import ImageResult, file_of
from .run_paths import (
    Outputs,
    check_csv_state,
    check_page_state,
    locked,
    locked_page,
    locked_series,
    output_file,
    output_folder,
)
from .run_record import RunRecord, record_path
from .series import SeriesCollector, write_series_csv
from .summary import STDOUT, PassedOver, RunSummary

if TYPE_CHECKING:
    from .review_page import ReviewPage

MAX_FAILURES_SHOWN = 10


def classify_to_csv(
    folder: str | Path | Sequence[str | Path],
    csv: str | Path,
    options: RunOptions | None = None,
    **keywords: object,
) -> RunSummary:
    """Classify every input below `folder` (or the files given) into `csv`; see the module
    docstring. `keywords` are RunOptions fields, applied over `options`."""
    options = replace(options or RunOptions(), **keywords)
    to_stdout = os.fspath(csv) == STDOUT
    _check_options(options, to_stdout)
    folder, selected = _inputs(folder)
    if selected is not None and options.ray:
        raise RunError("--ray takes one folder: give the folder, not files in it")
    outputs = _outputs(csv, options, to_stdout)
    outputs.check(folder)
    rules = WalkRules(options.globs(), outputs.all(), selected=selected)
    if to_stdout:
        with locked_series(outputs.series_csv):
            classifier = _classifier(options.model, options.threads)
            plan = _Plan(folder, folder, options.recursive, rules, options)
            summary = _to_stdout(plan, outputs.series_csv, classifier)
            _write_verdicts(summary, outputs.dicom_sc)
            return summary
    with locked(lock_path(outputs.csv)), locked_series(outputs.series_csv), locked_page(outputs.report_dir):
        return _to_file(folder, selected, outputs, rules, options)


def _check_options(options: RunOptions, to_stdout: bool) -> None:
    _check_modes(options)
    if to_stdout and (
        options.resume or options.retry_errors or options.report_dir is not None or options.ray
    ):
        raise RunError(
            "--csv - sends rows to standard output as they come, with no file to resume, retry "
            "or build a page from: not with --resume, --retry-errors, --report or --ray"
        )
    if options.dicom_sc is not None and options.series_csv is None:
        raise RunError("--dicom-sc writes each series' verdict: it needs --series-csv")
    refused = sorted(set(options.dicom_fields) - SAFE_FIELDS)
    if refused:
        raise RunError(
            f"--dicom-fields: {', '.join(refused)} not allowed (patient privacy); "
            f"choose from {', '.join(sorted(SAFE_FIELDS))}"
        )


def _outputs(csv: str | Path, options: RunOptions, to_stdout: bool) -> Outputs:
    outputs = Outputs(
        Path(STDOUT) if to_stdout else output_file(csv, "--csv"),
        None if options.report_dir is None else output_folder(options.report_dir),
        None if options.series_csv is None else output_file(options.series_csv, "--series-csv"),
        None if options.dicom_sc is None else output_folder(options.dicom_sc, "--dicom-sc"),
    )
    if outputs.series_csv is not None and outputs.series_csv.exists() and not options.overwrite:
        raise RunError(f"{outputs.series_csv} exists; pass --overwrite to replace it")
    return outputs


def _to_file(
    folder: Path, selected: frozenset[str] | None, outputs: Outputs, rules: WalkRules, options: RunOptions
) -> RunSummary:
    """The run into a CSV file, under its lock: check what is there, record the run, run it."""
    csv, continuing = outputs.csv, options.resume or options.retry_errors
    check_csv_state(csv, options.overwrite, options.resume, options.retry_errors)
    if outputs.report_dir is not None:
        check_page_state(outputs.report_dir, csv, options.overwrite, continuing)
    classifier = _classifier(options.model, options.threads)
    row_options = options.row_options()
    if selected is not None:  # files given one by one (a shell glob): the same ones to resume
        row_options["selected"] = sorted(selected)
    record = RunRecord.of(folder, classifier.path, row_options)
    walk_root = spelled = folder
    replaced = record_path(csv).read_bytes() if record_path(csv).is_file() else None
    earlier = None
    if continuing:
        earlier = RunRecord.read(record_path(csv))
        earlier.check_same_run(record, "resume" if options.resume else "retry")
        spelled = Path(earlier.folder)  # how the kept rows name the folder
        # Walk it as the run spelled it where that still leads there (the same working
        # folder), so new rows name files as the kept ones do; else compare rebased.
        if os.path.realpath(earlier.folder) == record.root:
            walk_root = spelled
    else:
        record.write(record_path(csv))
    plan = _Plan(walk_root, spelled, options.recursive, replace(rules, root=walk_root), options)
    try:
        summary = _run(plan, outputs, classifier)
    except RunError:
        if not continuing and not partial_path(csv).exists():
            # Nothing was written: no new run to record; an earlier CSV keeps its own.
            if replaced is None:
                record_path(csv).unlink(missing_ok=True)
            else:
                record_path(csv).write_bytes(replaced)
        raise
    # The finished run's counts join its record: the same figures the summary and page show.
    replace(earlier or record, counts=summary.counts()).write(record_path(csv))
    return summary


@dataclass(frozen=True)
class _Plan:
    """How this run walks (and, in `options`, everything else it was asked)."""

    root: Path  # the folder walked
    spelled: Path  # the folder as the kept rows name it
    recursive: bool
    rules: WalkRules
    options: RunOptions

    @property
    def settings(self) -> Settings:
        return self.options.settings()


def _series(classifier: Classifier, series_csv: Path | None) -> SeriesCollector | None:
    if series_csv is None:
        return None
    return SeriesCollector(classifier.metadata.negative, classifier.metadata.series_rule)


def _to_stdout(plan: _Plan, series_csv: Path | None, classifier: Classifier) -> RunSummary:
    """`--csv -`: rows to standard output as they come (to a pipe, a database loader, `jq`);
    the summary goes to standard error as always. No partial, lock or record is written:
    there is no file to resume, so an interrupted run is simply run again."""
    series = _series(classifier, series_csv)
    walk = FolderWalk(plan.root, plan.recursive, plan.rules)
    classification = Classification(classifier, plan.settings)
    extra = plan.settings.dicom_fields
    report = CsvReport(Path(STDOUT), classifier.class_names, extra=extra, stream=sys.stdout)
    failures: list[str] = []
    started = time.perf_counter()
    try:
        with report:
            for result in classification.run(walk):
                _take(result, report, None, series, failures)
    except KeyboardInterrupt as exc:
        message = "interrupted: the rows so far went to standard output (no file to --resume: run again)"
        raise RunInterrupted(message, isinstance(exc, Terminated)) from None
    except BrokenPipeError:
        raise RunError(f"standard output was closed (its reader stopped) after {report.rows} rows") from None
    except OSError as exc:
        raise RunError(f"cannot list {plan.root}: {exc.strerror or exc}") from None
    if report.rows == 0:
        raise RunError(f"no images found in {plan.root}")
    passed = PassedOver()
    passed.add({**walk.counts(), "skipped": classification.skipped})
    summary = RunSummary(Path(STDOUT), classifier, report, passed, time.perf_counter() - started, failures)
    if series is not None and series_csv is not None:
        summary.series = series.summaries()
        write_series_csv(series_csv, summary.series)
    return summary


def _take(
    result: ImageResult,
    report: CsvReport,
    page: ReviewPage | None,
    series: SeriesCollector | None,
    failures: list[str],
) -> None:
    """One result into every output that wants it."""
    report.write(result)
    if page is not None:
        page.add(result)
    if series is not None:
        series.add(result)
    _note_failure(result.name, result.error, failures)


def _run(plan: _Plan, outputs: Outputs, classifier: Classifier) -> RunSummary:
    """The run itself, under the CSV's lock."""
    options, csv = plan.options, outputs.csv
    series = _series(classifier, outputs.series_csv)
    walk = FolderWalk(plan.root, plan.recursive, plan.rules)
    try:
        total = sum(1 for _ in walk) if options.show_progress and not options.ray else None
    except OSError as exc:
        raise RunError(f"cannot list {plan.root}: {exc.strerror or exc}") from None
    passed = PassedOver()
    failures: list[str] = []
    started = time.perf_counter()
    progress = progress_bar(options.show_progress, "classifying")
    page = _page(plan, outputs, classifier)
    with _rows_kept(plan, csv):
        fields = plan.settings.dicom_fields
        report = CsvReport(csv, classifier.class_names, options.resume, fields, options.retry_errors)
        with report, progress:
            if plan.root != plan.spelled:
                report.rebase(plan.spelled, plan.root)
            task = progress.add_task("classify", total=total, completed=report.files)
            if options.ray:
                for row in _ray_rows(plan, classifier.path.resolve(), report, passed):
                    _note_failure(row[0], row[report.error_column], failures)
                    progress.update(task, completed=report.files)
            else:
                classification = Classification(classifier, plan.settings)
                todo = (path for path in walk if _wanted(path, report, options.retry_errors))
                for result in classification.run(todo):
                    _take(result, report, page, series, failures)
                    progress.update(task, completed=_files_done(report.files, result))
                passed.add({**walk.counts(), "skipped": classification.skipped})
            if report.rows == 0:
                raise RunError(f"no images found in {plan.root}")
    summary = RunSummary(csv, classifier, report, passed, time.perf_counter() - started, failures)
    summary.retried = len(report.retrying) if options.retry_errors else None
    if series is not None and outputs.series_csv is not None:
        summary.series = series.summaries()
        write_series_csv(outputs.series_csv, summary.series)
        _write_verdicts(summary, outputs.dicom_sc)
    if page is not None:
        meta = classifier.metadata
        summary.review_page = page.write_from_csv(passed.counts(), meta.series_rule, meta.negative)
    return summary


def _files_done(files: int, result: ImageResult) -> float:
    """The progress bar's count, in files: inside a volume, the share of its slices done."""
    place = result.place
    if place is None or not place.slices:
        return files
    return files - 1 + (place.position + 1) / place.slices


def _note_failure(name: str, error: str, failures: list[str]) -> None:
    if error and len(failures) < MAX_FAILURES_SHOWN:
        failures.append(f"  {name}: {error}")


def _page(plan: _Plan, outputs: Outputs, classifier: Classifier) -> ReviewPage | None:
    """The review page being built, or None without --report."""
    if outputs.report_dir is None:
        return None
    from .review_page import ReviewPage

    options = plan.options
    keep = (options.resume or options.retry_errors) and not options.overwrite
    return ReviewPage(
        outputs.report_dir,
        classifier.class_names,
        classifier.metadata,
        str(plan.spelled),
        csv=outputs.csv,
        keep=keep,
    )


@contextmanager
def _rows_kept(plan: _Plan, csv: Path) -> Iterator[None]:
    """What stops a run part-way, in words that say where its finished rows are."""
    retry = plan.options.retry_errors
    try:
        yield
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        if retry:
            message = f"interrupted: {csv} is as it was; run --retry-errors again to redo its failed rows"
        elif not partial_path(csv).exists():
            message = "interrupted before the first row: nothing was written"
        else:
            message = f"interrupted: finished rows are in {partial_path(csv)}; rerun with --resume to go on"
        raise RunInterrupted(message, terminated) from None
    except RunError:
        report_partial = retry_partial_path(csv) if retry else partial_path(csv)
        report_partial.unlink(missing_ok=True)  # nothing was classified: nothing to resume
        raise
    except ReportError as exc:
        raise RunError(str(exc)) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.filename is not None and Path(exc.filename) == plan.root:  # the root itself went away
            raise RunError(
                f"cannot list {plan.root}: {reason}; rows so far are kept in {partial_path(csv)}"
            ) from None
        # Otherwise the output, not an input: the disk is full or the CSV unwritable.
        raise RunError(f"cannot write {partial_path(csv)}: {reason}; rows so far are kept there") from None


def _classifier(model: Classifier | str | Path | None, threads: int | None) -> Classifier:
    if isinstance(model, Classifier):
        return model
    try:
        return Classifier(Path(model) if model is not None else default_model_path(), threads)
    except ModelError as exc:
        raise RunError(str(exc)) from None


def _write_verdicts(summary: RunSummary, dicom_sc: Path | None) -> None:
    """--dicom-sc: each DICOM series' verdict as a Secondary Capture (runtime/dicom_capture.py)."""
    if dicom_sc is None:
        return
    from .dicom_capture import write_secondary_captures

    dicom_sc.mkdir(exist_ok=True)
    summary.dicom_verdicts = write_secondary_captures(summary.series, dicom_sc, summary.model.path.name)


def _check_modes(options: RunOptions) -> None:
    """Options that cannot go together."""
    resume, retry, ray, ray_address = options.resume, options.retry_errors, options.ray, options.ray_address
    if sum((options.overwrite, resume, retry)) > 1:
        raise RunError(
            "--overwrite, --resume and --retry-errors each say what to do with the CSV: choose one"
        )
    if options.series_csv is not None and (resume or retry or ray):
        raise RunError(
            "--series-csv needs every slice of a series in one run: "
            "not with --resume, --retry-errors or --ray"
        )
    if ray and retry:
        raise RunError("--retry-errors runs on one PC: leave out --ray")
    if ray and options.report_dir is not None:  # Ray workers return CSV cells, not slices
        raise RunError("--report is not available with --ray yet: run --report on one PC")
    if ray and ray_address and ray_address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
        raise RunError(
            f"--ray-address {ray_address} needs Ray's client: pip install 'ray[client]' "
            "(or run on the cluster's head node without ray://)"
        )


def _inputs(given: str | Path | Sequence[str | Path]) -> tuple[Path, frozenset[str] | None]:
    """The folder to walk and, for files (or several paths) given, which of its entries.

    One folder is walked whole, as ever. One file, or several paths (a shell glob,
    `scan.dcm other/`), are walked from their common folder, taking only the paths given
    and what lies in the folders among them: the same walk, order and rows as a folder's,
    so resume, retry, the review page and the series verdicts work unchanged."""
    paths = [Path(given)] if isinstance(given, (str, os.PathLike)) else [Path(p) for p in given]
    if not paths:
        raise RunError("give a folder, or files, to classify")
    for path in paths:
        if not path.exists() and not path.is_symlink():
            raise RunError(f"no such file or folder: {path}")
    if len(paths) == 1 and paths[0].is_dir():
        return paths[0], None
    spelled = [os.fspath(p) for p in paths]
    if len({os.path.isabs(p) for p in spelled}) > 1:  # a mix of relative and absolute: one spelling
        spelled = [os.path.abspath(p) for p in spelled]
    root = Path(os.path.commonpath([os.path.normpath(p) for p in spelled]))
    if len(paths) == 1 or not root.is_dir():
        root = root.parent
    selected = frozenset(Path(os.path.relpath(os.path.normpath(p), root)).as_posix() for p in spelled)
    return root, selected


def _wanted(path: Path, report: CsvReport, retry: bool) -> bool:
    """Whether the walk's next file is classified now: not yet in the CSV (a resume), or,
    retrying, a file whose rows failed or one inside a folder that could not be listed."""
    if report.is_done(path):
        return False
    if not retry:
        return True
    cell = spreadsheet_safe(str(path))
    # file_of on both sides, as the rows were: a file named "scan#7" is recorded as "scan".
    return file_of(cell) in report.retrying or cell.startswith(report.retrying_folders)


def _ray_rows(plan: _Plan, model_path: Path, report: CsvReport, passed: PassedOver) -> Iterator[list[str]]:
    """Rows from the Ray path, written to the report as they arrive in sorted order."""
    from .cluster import ClusterJob, classify_on_ray

    job = ClusterJob(str(model_path), plan.settings)
    done = frozenset(report.done)
    rows = classify_on_ray(plan.root, job, plan.options.ray_address, plan.recursive, done, plan.rules)
    for kind, value in rows:
        if kind == "counts":
            passed.add(value)
        else:
            report.write_cells(value)
            yield value

"""A whole `bt-classify` run as one function: folder in, CSV (and review page) out.

`classify_to_csv(folder, csv, ...)` returns a `RunSummary` (`describe()` is the command's
summary paragraph; docs/classify.md, "From Python", shows it in use).

The command's options are this function's keywords (`runtime/cli.py` maps one onto the
other and exceptions onto exit codes, nothing more). It takes the CSV's lock, checks the
output paths and any earlier partial CSV under it, streams rows into the CSV (and the
review page), resumes an interrupted run, or hands the work to Ray. Problems that stop
the run are `RunError`s; Ctrl-C becomes `RunInterrupted`, with every finished row kept.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .classify import Classification, Settings
from .commands import plural
from .csv_report import (
    CsvReport,
    ReportError,
    file_of,
    partial_path,
    retry_partial_path,
    spreadsheet_safe,
)
from .dicom import SAFE_FIELDS
from .errors import ModelError, RunError, RunInterrupted, Terminated
from .files import DEFAULT_EXCLUDES, FolderWalk, WalkRules
from .lock import lock_path
from .model import Classifier, default_model_path
from .progress import progress_bar
from .reasons import KINDS, OTHER
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
from .series import SeriesCollector, SeriesRule, SeriesSummary, write_series_csv

MAX_FAILURES_SHOWN = 10
STDOUT = "-"  # --csv -: the rows to standard output


@dataclass
class PassedOver:
    """What a run did not classify: counted for the summary, from one PC or from Ray workers."""

    ignored: int = 0  # not images
    special: int = 0  # pipes, sockets, devices
    excluded: int = 0  # matched an exclude glob (system clutter by default)
    skipped: Counter = field(default_factory=Counter)  # DICOM without pixels, by reason

    def add(self, counts: dict) -> None:
        self.ignored += counts.get("ignored", 0)
        self.special += counts.get("special", 0)
        self.excluded += counts.get("excluded", 0)
        self.skipped.update(counts.get("skipped", {}))

    def counts(self) -> dict[str, int]:
        """What was passed over, by kind, in words: the CLI, the page and the run record say
        the same (non-image files always, the other kinds when there are any)."""
        counts = {"non-image files": self.ignored}
        if self.special:
            counts["pipes, sockets or devices"] = self.special
        if self.excluded:
            counts["entries excluded (--exclude)"] = self.excluded
        counts.update({f"skipped: {why}": n for why, n in sorted(self.skipped.items())})
        return counts


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
    retried: int | None = None  # with retry_errors: how many files' rows had failed
    dicom_verdicts: list[Path] = field(default_factory=list)  # with dicom_sc: the files written

    @property
    def failed(self) -> int:
        return self.report.failed

    @property
    def rows(self) -> int:
        return self.report.rows

    def counts(self) -> dict:
        """One set of counts over the whole CSV, computed here once: the CLI's summary, the
        review page and the run record all show these."""
        report = self.report
        return {
            "files": report.files,
            "rows": report.rows,
            "classified": report.classified,
            "out_of_scope": report.out_of_scope,
            "failed": report.failed,
            "flagged": report.flagged,
            "per_class": {name: report.predicted[name] for name in self.model.class_names},
            "passed_over": self.passed.counts(),
        }

    def describe(self) -> str:
        """The paragraph bt-classify prints: counts, what was passed over, where the CSV is."""
        from .version import __version__

        report, passed, classifier = self.report, self.passed, self.model
        new = report.rows - report.kept
        if self.retried is not None:
            kept = f" (retried the {plural(self.retried, 'file')} that had failed; {report.kept} rows kept)"
        else:
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
        if passed.excluded:
            skipped += [plural(passed.excluded, "entry", "entries") + " excluded (--exclude)"]
        files = report.files - report.kept_files
        lines = [
            f"{plural(new, 'row')} from {plural(files, 'file')} in {self.seconds:.1f}s "
            f"({new / max(self.seconds, 1e-9):.1f} rows/s){kept}: {report.classified} classified, "
            f"{report.out_of_scope} out of scope, {report.failed} failed",
            "; ".join(p for p in parts if p) + "; " + "; ".join(skipped) + ".",
        ]
        if not classifier.has_scope:
            lines.append(
                "note: this model has no scope output, so out-of-scope detection is unavailable "
                "(only the input checks ran); re-export it with bt-export"
            )
        where = "standard output" if str(self.csv) == STDOUT else self.csv
        lines.append(f"CSV: {where} (brain-tumor-edge {__version__}, model {classifier.path.name})")
        if self.failures:
            more = report.failed - len(self.failures)
            shown = self.failures + ([f"  ... and {more} more (see the error column)"] if more > 0 else [])
            lines.append("failed files:\n" + "\n".join(shown))
        return "\n".join(lines)


def classify_to_csv(
    folder: str | Path | Sequence[str | Path],
    csv: str | Path,
    *,
    model: Classifier | str | Path | None = None,
    settings: Settings | None = None,
    threads: int | None = None,
    recursive: bool = True,
    exclude: Sequence[str] = (),
    default_excludes: bool = True,
    overwrite: bool = False,
    resume: bool = False,
    retry_errors: bool = False,
    report_dir: str | Path | None = None,
    series_csv: str | Path | None = None,
    dicom_sc: str | Path | None = None,
    ray: bool = False,
    ray_address: str | None = None,
    show_progress: bool = False,
) -> RunSummary:
    """Classify every input below `folder` into `csv`; see the module docstring.

    `model`: a loaded Classifier, a path, or None for the bundled model (`threads` applies
    when it is loaded here). `settings.maps` is set by `report_dir` (only the page shows them).
    `exclude`: shell globs for names to leave out, added to `files.DEFAULT_EXCLUDES` unless
    `default_excludes` is False. `resume` continues an interrupted run, `retry_errors`
    re-classifies the failed rows of a finished one in place; both only for the same run
    (runtime/run_record.py). `series_csv`: also one row per NIfTI volume or DICOM series;
    `dicom_sc` (with it): each DICOM series' verdict as a DICOM object in that folder.
    """
    _check_modes(overwrite, resume, retry_errors, ray, ray_address, series_csv, report_dir)
    to_stdout = os.fspath(csv) == STDOUT
    if to_stdout and (resume or retry_errors or report_dir is not None or ray):
        raise RunError(
            "--csv - sends rows to standard output as they come, with no file to resume, retry "
            "or build a page from: not with --resume, --retry-errors, --report or --ray"
        )
    if dicom_sc is not None and series_csv is None:
        raise RunError("--dicom-sc writes each series' verdict: it needs --series-csv")
    folder, selected = _inputs(folder)
    if selected is not None and ray:
        raise RunError("--ray takes one folder: give the folder, not files in it")
    outputs = Outputs(
        Path(STDOUT) if to_stdout else output_file(csv, "--csv"),
        None if report_dir is None else output_folder(report_dir),
        None if series_csv is None else output_file(series_csv, "--series-csv"),
        None if dicom_sc is None else output_folder(dicom_sc, "--dicom-sc"),
    )
    if outputs.series_csv is not None and outputs.series_csv.exists() and not overwrite:
        raise RunError(f"{outputs.series_csv} exists; pass --overwrite to replace it")
    settings = settings or Settings()
    outputs.check(folder)
    refused = sorted(set(settings.dicom_fields) - SAFE_FIELDS)
    if refused:
        raise RunError(
            f"--dicom-fields: {', '.join(refused)} not allowed (patient privacy); "
            f"choose from {', '.join(sorted(SAFE_FIELDS))}"
        )
    globs = (*(DEFAULT_EXCLUDES if default_excludes else ()), *exclude)
    rules = WalkRules(tuple(globs), outputs.all(), selected=selected)
    if to_stdout:
        with locked_series(outputs.series_csv):
            classifier = _classifier(model, threads)
            plan = _Plan(folder, folder, recursive, rules, False, False, False, None, show_progress)
            summary = _to_stdout(plan, outputs.series_csv, classifier, settings)
            _write_verdicts(summary, outputs.dicom_sc)
            return summary
    csv = outputs.csv
    with locked(lock_path(csv)), locked_series(outputs.series_csv), locked_page(outputs.report_dir):
        check_csv_state(csv, overwrite, resume, retry_errors)
        if outputs.report_dir is not None:
            check_page_state(outputs.report_dir, csv, overwrite, resume or retry_errors)
        classifier = _classifier(model, threads)
        record = RunRecord.of(folder, classifier.path, _row_options(settings, recursive, globs, selected))
        walk_root = spelled = folder
        replaced = record_path(csv).read_bytes() if record_path(csv).is_file() else None
        earlier = None
        if resume or retry_errors:
            earlier = RunRecord.read(record_path(csv))
            earlier.check_same_run(record, "resume" if resume else "retry")
            spelled = Path(earlier.folder)  # how the kept rows name the folder
            # Walk it as the run spelled it where that still leads there (the same working
            # folder), so new rows name files as the kept ones do; else compare rebased.
            if os.path.realpath(earlier.folder) == record.root:
                walk_root = spelled
        else:
            record.write(record_path(csv))
        settings = replace(settings, maps=outputs.report_dir is not None)  # only the page shows maps
        plan = _Plan(
            walk_root,
            spelled,
            recursive,
            replace(rules, root=walk_root),
            resume,
            retry_errors,
            ray,
            ray_address,
            show_progress,
        )
        try:
            summary = _run(plan, outputs, classifier, settings, overwrite)
        except RunError:
            if not (resume or retry_errors) and not partial_path(csv).exists():
                # Nothing was written: no new run to record; an earlier CSV keeps its own.
                if replaced is None:
                    record_path(csv).unlink(missing_ok=True)
                else:
                    record_path(csv).write_bytes(replaced)
            raise
        # The finished run's counts join its record: the same figures the summary and page show.
        replace(earlier or record, counts=summary.counts()).write(record_path(csv))
        return summary


def _classifier(model: Classifier | str | Path | None, threads: int | None) -> Classifier:
    if isinstance(model, Classifier):
        return model
    try:
        return Classifier(Path(model) if model is not None else default_model_path(), threads)
    except ModelError as exc:
        raise RunError(str(exc)) from None


def _to_stdout(
    plan: _Plan, series_csv: Path | None, classifier: Classifier, settings: Settings
) -> RunSummary:
    """`--csv -`: rows to standard output as they come (to a pipe, a database loader, `jq`);
    the summary goes to standard error as always. No partial, lock or record is written:
    there is no file to resume, so an interrupted run is simply run again."""
    negative = classifier.metadata.negative or "notumor"
    series = (
        SeriesCollector(negative, SeriesRule.from_metadata(classifier.metadata.series))
        if series_csv
        else None
    )
    walk = FolderWalk(plan.root, plan.recursive, plan.rules)
    classification = Classification(classifier, settings)
    report = CsvReport(Path(STDOUT), classifier.class_names, extra=settings.dicom_fields, stream=sys.stdout)
    failures: list[str] = []
    started = time.perf_counter()
    try:
        with report:
            for result in classification.run(walk):
                report.write(result)
                if series is not None:
                    series.add(result)
                if result.error and len(failures) < MAX_FAILURES_SHOWN:
                    failures.append(f"  {result.name}: {result.error}")
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
    passed.add({"ignored": walk.ignored, "special": walk.special, "excluded": walk.excluded,
                "skipped": classification.skipped})  # fmt: skip
    summary = RunSummary(Path(STDOUT), classifier, report, passed, time.perf_counter() - started, failures)
    if series is not None and series_csv is not None:
        summary.series = series.summaries()
        write_series_csv(series_csv, summary.series)
    return summary


def _write_verdicts(summary: RunSummary, dicom_sc: Path | None) -> None:
    """--dicom-sc: each DICOM series' verdict as a Secondary Capture (runtime/dicom_capture.py)."""
    if dicom_sc is None:
        return
    from .dicom_capture import write_secondary_captures

    dicom_sc.mkdir(exist_ok=True)
    summary.dicom_verdicts = write_secondary_captures(summary.series, dicom_sc, summary.model.path.name)


@dataclass(frozen=True)
class _Plan:
    """How this run walks and what it keeps (from classify_to_csv's keywords)."""

    root: Path  # the folder walked
    spelled: Path  # the folder as the kept rows name it
    recursive: bool
    rules: WalkRules
    resume: bool
    retry: bool
    ray: bool
    ray_address: str | None
    show_progress: bool


def _row_options(
    settings: Settings, recursive: bool, globs: Sequence[str], selected: frozenset[str] | None
) -> dict:
    """The options that change which rows a run writes or what they say."""
    options = {
        "min_confidence": settings.min_confidence,
        "dicom_fields": list(settings.dicom_fields),
        "recursive": recursive,
        "exclude": sorted(globs),
    }
    if selected is not None:  # files given one by one (a shell glob): the same ones to resume
        options["selected"] = sorted(selected)
    return options


def _check_modes(
    overwrite: bool,
    resume: bool,
    retry: bool,
    ray: bool,
    ray_address: str | None,
    series_csv: object,
    report_dir: object,
) -> None:
    if sum((overwrite, resume, retry)) > 1:
        raise RunError(
            "--overwrite, --resume and --retry-errors each say what to do with the CSV: choose one"
        )
    if series_csv is not None and (resume or retry or ray):
        raise RunError(
            "--series-csv needs every slice of a series in one run: "
            "not with --resume, --retry-errors or --ray"
        )
    if ray and retry:
        raise RunError("--retry-errors runs on one PC: leave out --ray")
    if ray and report_dir is not None:  # Ray workers return CSV cells, not slices
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


def _run(
    plan: _Plan, outputs: Outputs, classifier: Classifier, settings: Settings, overwrite: bool
) -> RunSummary:
    """The run itself, under the CSV's lock."""
    csv, report_dir, series_csv = outputs.csv, outputs.report_dir, outputs.series_csv
    series = None
    if series_csv is not None:
        negative = classifier.metadata.negative or "notumor"
        series = SeriesCollector(negative, SeriesRule.from_metadata(classifier.metadata.series))
    walk = FolderWalk(plan.root, plan.recursive, plan.rules)
    try:
        total = sum(1 for _ in walk) if plan.show_progress and not plan.ray else None
    except OSError as exc:
        raise RunError(f"cannot list {plan.root}: {exc.strerror or exc}") from None
    passed = PassedOver()
    failures: list[str] = []
    started = time.perf_counter()
    progress = progress_bar(plan.show_progress, "classifying")
    classification = Classification(classifier, settings)
    page = None
    if report_dir is not None:
        from .review_page import ReviewPage

        keep = (plan.resume or plan.retry) and not overwrite
        page = ReviewPage(
            report_dir, classifier.class_names, classifier.metadata, str(plan.spelled), csv=csv, keep=keep
        )
    try:
        report = CsvReport(csv, classifier.class_names, plan.resume, settings.dicom_fields, plan.retry)
        with report, progress:
            if plan.root != plan.spelled:
                report.rebase(plan.spelled, plan.root)
            task = progress.add_task("classify", total=total, completed=report.files)

            def written(name: str, error: str) -> None:
                if error and len(failures) < MAX_FAILURES_SHOWN:
                    failures.append(f"  {name}: {error}")
                progress.update(task, completed=report.files)

            if plan.ray:
                rows = _ray_rows(plan, classifier.path.resolve(), settings, report, passed)
                for row in rows:
                    written(row[0], row[report.error_column])
            else:
                todo = (path for path in walk if _wanted(path, report, plan.retry))
                for result in classification.run(todo):
                    report.write(result)
                    if page is not None:
                        page.add(result)
                    if series is not None:
                        series.add(result)
                    written(result.name, result.error)
                passed.add(
                    {
                        "ignored": walk.ignored,
                        "special": walk.special,
                        "excluded": walk.excluded,
                        "skipped": classification.skipped,
                    }
                )
            if report.rows == 0:
                raise RunError(f"no images found in {plan.root}")
    except KeyboardInterrupt as exc:
        terminated = isinstance(exc, Terminated)
        if plan.retry:
            raise RunInterrupted(
                f"interrupted: {csv} is as it was; run --retry-errors again to redo its failed rows",
                terminated,
            ) from None
        if not partial_path(csv).exists():
            message = "interrupted before the first row: nothing was written"
            raise RunInterrupted(message, terminated) from None
        raise RunInterrupted(
            f"interrupted: finished rows are in {partial_path(csv)}; rerun with --resume to go on", terminated
        ) from None
    except RunError:
        report_partial = retry_partial_path(csv) if plan.retry else partial_path(csv)
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
    summary = RunSummary(csv, classifier, report, passed, time.perf_counter() - started, failures)
    summary.retried = len(report.retrying) if plan.retry else None
    if series is not None:
        summary.series = series.summaries()
        write_series_csv(series_csv, summary.series)
        _write_verdicts(summary, outputs.dicom_sc)
    if page is not None:
        rule = SeriesRule.from_metadata(classifier.metadata.series)
        summary.review_page = page.write_from_csv(
            passed.counts(), rule, classifier.metadata.negative or "notumor"
        )
    return summary


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


def _ray_rows(
    plan: _Plan,
    model_path: Path,
    settings: Settings,
    report: CsvReport,
    passed: PassedOver,
) -> Iterator[list[str]]:
    """Rows from the Ray path, written to the report as they arrive in sorted order."""
    from .cluster import ClusterJob, classify_on_ray

    job = ClusterJob(str(model_path), settings)
    done = frozenset(report.done)
    rows = classify_on_ray(plan.root, job, plan.ray_address, plan.recursive, done, plan.rules)
    for kind, value in rows:
        if kind == "counts":
            passed.add(value)
        else:
            report.write_cells(value)
            yield value

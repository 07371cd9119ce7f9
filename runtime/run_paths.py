"""The paths a run writes, checked before any work, and the locks that make them one run's.

Every output-path problem is a one-line `RunError` (exit 2) raised here, with the same
rules for `--csv`, `--series-csv` and `--report`: the folder they go in must exist and be
writable, a file name must be a file name (not `new/`) short enough for the files written
beside it, a review folder must be a folder. The CSV is written under its lock
(runtime/lock.py), a review folder under its own, and the advice about an existing CSV,
partial or page is given only while holding them, so a live run is never mistaken for an
interrupted one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .csv_report import partial_path, retry_partial_path
from .errors import RunError
from .lock import FileLock, LockedError, lock_path
from .run_record import RECORD_SUFFIX, record_path

PAGE_LOCK = ".bt-classify.lock"  # in a review folder: held by the run writing it


@dataclass(frozen=True)
class Outputs:
    """Every path a run writes, checked before any work starts and left out of its walk."""

    csv: Path
    report_dir: Path | None = None
    series_csv: Path | None = None
    dicom_sc: Path | None = None  # a folder for the verdicts as DICOM (runtime/dicom_capture.py)

    def files(self) -> dict[Path, str]:
        """Every file the run writes (resolved) and the option it belongs to."""
        named = [
            (self.csv, "--csv"),
            (partial_path(self.csv), "--csv's partial file"),
            (retry_partial_path(self.csv), "--csv's retry file"),
            (lock_path(self.csv), "--csv's lock"),
            (record_path(self.csv), "--csv's run record"),
        ]
        if self.series_csv is not None:
            named += [
                (self.series_csv, "--series-csv"),
                (partial_path(self.series_csv), "--series-csv's partial file"),
                (lock_path(self.series_csv), "--series-csv's lock"),
            ]
        resolved: dict[Path, str] = {}
        for path, option in named:
            real = Path(os.path.realpath(path))
            if real in resolved:
                raise RunError(f"{option} and {resolved[real]} are the same file ({path}): give each its own")
            resolved[real] = option
        return resolved

    def all(self) -> frozenset[Path]:
        """Resolved, so the walk recognises them however the input folder is reached."""
        paths = set(self.files())
        for folder in (self.report_dir, self.dicom_sc):
            if folder is not None:
                paths.add(Path(os.path.realpath(folder)))
        return frozenset(paths)

    def check(self, inputs: Path) -> None:
        """Refuse outputs that would overwrite each other, land in the review folder, or a
        review folder that holds anything this tool did not write (inputs included): a
        run touches only what it creates."""
        files = self.files()
        if self.report_dir is None:
            return
        page = Path(os.path.realpath(self.report_dir))
        for path, option in files.items():
            if path.is_relative_to(page):
                raise RunError(
                    f"{option} ({path}) lies inside the --report folder {self.report_dir}: put it elsewhere"
                )
        if page == Path(os.path.realpath(inputs)):
            raise RunError(
                f"--report {self.report_dir} is the input folder: give the page a folder of its own"
            )
        if self.report_dir.is_dir():
            from .review_page import foreign_entries

            foreign = foreign_entries(self.report_dir)
            if foreign:
                raise RunError(
                    f"--report {self.report_dir} holds files bt-classify did not write "
                    f"({', '.join(foreign)}): choose a new or empty folder (nothing there is touched)"
                )


def name_limit(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):  # not reported (Windows): the usual limit
        return 255


def output_file(path: str | Path, option: str) -> Path:
    """An output file's path, checked: a file name (not a folder) in an existing, writable
    folder, short enough for the files written beside it (`.partial`, `.lock`, `.run.json`)."""
    text = os.fspath(path)
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        raise RunError(f"{option} must name a file, not a folder: {text}")
    path = Path(text)
    # Its folder is not created: a mistyped path should fail here, not scatter results.
    if not path.parent.is_dir():
        raise RunError(f"{option}: the folder {path.parent} does not exist")
    longest = len(os.fsencode(path.name + RECORD_SUFFIX))
    if longest > name_limit(path.parent):
        raise RunError(
            f"{option}: the name {path.name!r} is too long for this file system with the files "
            f"written beside it ({path.name}{RECORD_SUFFIX}, limit {name_limit(path.parent)} bytes)"
        )
    check_writable(path.parent, option)
    return path


def output_folder(path: str | Path, option: str = "--report") -> Path:
    """An output folder: created if missing, in an existing parent (the same rule as --csv)."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise RunError(f"{option} {path} is a broken link: give a folder")
    if path.exists() and not path.is_dir():
        raise RunError(f"{option} must name a folder: {path} is a file")
    if not path.parent.is_dir():
        raise RunError(f"{option}: the folder {path.parent} does not exist")
    check_writable(path if path.is_dir() else path.parent, option)
    return path


def check_writable(folder: Path, option: str) -> None:
    """Tried, not asked (os.access is wrong for root, ACLs and network shares)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise RunError(f"{option}: cannot write in {folder} ({exc.strerror or type(exc).__name__})") from None


@contextmanager
def locked(path: Path) -> Iterator[None]:
    try:
        with FileLock(path).acquire():
            yield
    except PermissionError as exc:  # raised before the lock is held: the folder refused it
        raise RunError(f"cannot write {path} ({exc.strerror})") from None


@contextmanager
def locked_series(series_csv: Path | None) -> Iterator[None]:
    """A series CSV is written by one run at a time, like the CSV (two runs naming one wait)."""
    if series_csv is None:
        yield
        return
    try:
        with locked(lock_path(series_csv)):
            yield
    except LockedError:
        raise RunError(
            f"another bt-classify is writing {series_csv}; wait for it or choose another name"
        ) from None


@contextmanager
def locked_page(report_dir: Path | None) -> Iterator[None]:
    """A review folder is written by one run at a time (two CSVs naming one folder wait)."""
    if report_dir is None:
        yield
        return
    report_dir.mkdir(exist_ok=True)
    try:
        with FileLock(report_dir / PAGE_LOCK).acquire():
            yield
    except LockedError:
        raise RunError(
            f"another bt-classify is writing the review folder {report_dir}; wait for it"
        ) from None


def check_page_state(report_dir: Path, csv: Path, overwrite: bool, continuing: bool) -> None:
    """A review folder holding a page is replaced only on --overwrite, or continued by a
    resume or retry of the CSV that page belongs to: never silently lost or mixed."""
    from .review_page import page_owner

    owner = page_owner(report_dir)
    if owner is None or overwrite or (continuing and owner == os.path.realpath(csv)):
        return
    whose = f"the page of {owner}" if owner else "a review page"
    raise RunError(f"{report_dir} holds {whose}; choose another --report folder or pass --overwrite")


def check_csv_state(csv: Path, overwrite: bool, resume: bool, retry: bool) -> None:
    """Advice about an existing CSV or partial file; only given while holding the CSV's lock,
    so a run still in progress is never mistaken for an interrupted one."""
    partial = partial_path(csv)
    if retry:
        if partial.exists():
            raise RunError(f"an interrupted run left {partial}: finish it with --resume, then retry")
        if not csv.exists():
            raise RunError(f"nothing to retry: {csv} does not exist")
        return
    if csv.exists() and not overwrite:
        if resume and retry_partial_path(csv).exists():
            raise RunError(
                f"{csv} is complete and a --retry-errors of it was interrupted: "
                "run --retry-errors again to redo its failed rows"
            )
        if resume:
            raise RunError(
                f"{csv} is complete: that run already finished "
                "(--retry-errors redoes its failed rows, --overwrite runs again)"
            )
        raise RunError(
            f"{csv} exists; pass --overwrite to replace it (or --retry-errors to redo its failures)"
        )
    if resume and not partial.exists():
        raise RunError(f"nothing to resume: {partial} does not exist")
    if partial.exists() and not (resume or overwrite):
        raise RunError(
            f"an interrupted run left {partial}; pass --resume to continue it or --overwrite to start over"
        )

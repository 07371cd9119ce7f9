"""The results CSV: written row by row to a temporary file, renamed into place when complete."""

from __future__ import annotations

import csv
import io
import math
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO

from .errors import BrainTumorEdgeError
from .reasons import KINDS, kinds_in
from .results import ImageResult, Unlisted, file_of, split_name

# Spreadsheets run a cell that starts with one of these as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def sort_key(name: str) -> str:
    """Path components joined by NUL, then the frame: sorts exactly as the one-PC walk emits.

    The walk sorts each folder's names and descends depth-first, which is the order of the
    component tuples; NUL sorts below any character a name can hold.
    """
    base, number = split_name(name)  # a DICOM frame "#N" or a volume's slice "#z=K"
    return "\x00".join(Path(base).parts) + f"\x01{number or 0:09d}"


class ReportError(BrainTumorEdgeError, ValueError):
    """An existing partial CSV cannot be resumed."""


class RowWriter:
    """csv.writer with "\n" line ends that still quotes a cell holding "\r".

    Python's writer quotes only the characters of its own line terminator, so with "\n"
    a file name holding "\r" would be written bare and read back as two records. Rows are
    formatted with "\r\n" (which quotes both) and written with "\n".
    """

    def __init__(self, handle) -> None:
        self._handle = handle
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def writerow(self, row) -> None:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(row)
        self._handle.write(self._buffer.getvalue()[:-2] + "\n")


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def spreadsheet_safe(text: str) -> str:
    """The CSV form of a cell: formula injection neutralised the usual way (OWASP: a leading
    single quote; a plain number such as "-12.5" is left as it is, a spreadsheet reads it as
    a number), and a name that is not valid UTF-8 (its bytes kept by Python as surrogates)
    written with its bad bytes as `\\udcXX` escapes, so the CSV stays UTF-8 and resume
    compares names in this same form."""
    if not text.isascii() and any("\udc80" <= char <= "\udcff" for char in text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if text.startswith(_FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def csv_columns(class_names: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """The fixed columns, then any --dicom-fields."""
    probabilities = (f"p_{name}" for name in class_names)
    return ["path", "prediction", "confidence", *probabilities, "review", "error", *extra]


def result_row(result: ImageResult, class_names: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """A result as CSV cells (the Ray path writes the very same cells). A row with no class
    (failed, out of scope) has empty class columns: no evidence for a class it was not given."""
    if result.probabilities is None or not result.prediction:
        probabilities = [""] * len(class_names)
    else:
        probabilities = [f"{p:.6f}" for p in result.probabilities]
    confidence = "" if result.confidence is None else f"{result.confidence:.6f}"
    cells = [result.name, result.prediction, confidence, *probabilities, result.review, result.error]
    cells += [result.fields.get(name, "") for name in extra]
    return [spreadsheet_safe(cell) for cell in cells]


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def partial_path(target: Path) -> Path:
    return target.with_name(target.name + ".partial")


def retry_partial_path(target: Path) -> Path:
    """Where a `--retry-errors` writes until it is done: its own name, so an interrupted retry
    is never taken for an interrupted run (the finished CSV is still there beside it), and
    running the retry again simply starts it over."""
    return target.with_name(target.name + ".retry.partial")


class CsvReport:
    """Context manager: rows are flushed as they come; the target appears only when complete.

    An interrupted run (Ctrl-C, kill -9, power loss) leaves `OUT.csv.partial` with every
    finished row and never a truncated `OUT.csv`; one that fails before its first row
    leaves nothing (a header-only partial would only block the next run).

    `resume`: the partial's rows are kept and their files not redone. `retry`: the finished
    CSV's rows are kept except every row of a file that has an error row; `retrying` then
    holds those files' path cells, and the rows are put back in walk order at the end.
    `stream` (`--csv -`): rows go there as they come, nothing is written to a file.
    """

    def __init__(
        self,
        target: Path,
        class_names: Sequence[str],
        resume: bool = False,
        extra: Sequence[str] = (),
        retry: bool = False,
        stream: TextIO | None = None,
    ) -> None:
        self.stream = stream
        self.target = Path(target)
        self.class_names = tuple(class_names)
        self.extra = tuple(extra)
        self.columns = csv_columns(self.class_names, self.extra)
        # Where the cells the counts read sit in a row: looked up once, not per row.
        self._counted = tuple(self.columns.index(name) for name in ("prediction", "review", "error"))
        self.error_column = self._counted[2]
        numeric = ("confidence", *(f"p_{name}" for name in self.class_names))
        self._numeric = tuple(self.columns.index(name) for name in numeric)
        self.partial = retry_partial_path(self.target) if retry else partial_path(self.target)
        self.resume = resume
        self.retry = retry
        self.retrying: set[str] = set()  # with retry: the files whose rows failed
        self.retrying_folders: tuple[str, ...] = ()  # ... and folders not listed, as "path/"
        self.done: set[str] = set()  # path cells already written (when resuming)
        # Counts over the whole CSV, rows kept from an interrupted run included.
        self.rows = 0
        self.failed = 0
        self.flagged = 0  # a review reason, out of scope or not
        self.out_of_scope = 0  # rows with any out-of-scope reason (no class given)
        self.kinds: Counter = Counter()  # rows with each kind of reason (runtime/reasons.py)
        self.predicted: Counter[str] = Counter()  # rows per predicted class
        self.kept = 0  # rows kept from an interrupted run
        self.files = 0  # files the rows come from (a volume's slices, a DICOM's frames: one file)
        self.kept_files = 0
        self._last_file: str | None = None
        self._handle = None
        self._writer = None

    def __enter__(self) -> CsvReport:
        if self.retry:
            rows = self._rows_to_keep(self.target)
            self.retrying = {file_of(row[0]) for row in rows if row[self.error_column]}
            self.retrying_folders = tuple(
                row[0] + os.sep for row in rows if row[self.error_column].startswith(Unlisted.ERROR)
            )
            kept = [row for row in rows if file_of(row[0]) not in self.retrying]
        else:
            kept = self._rows_to_keep(self.partial) if self.resume and self.partial.exists() else []
        self._handle = self.stream or open(self.partial, "w", newline="", encoding="utf-8")
        self._writer = RowWriter(self._handle)
        self._writer.writerow(self.columns)
        for row in kept:
            self._writer.writerow(row)
        self.done = {file_of(row[0]) for row in kept}
        self.kept = len(kept)
        for row in kept:
            self._count_cells(row)
        self.kept_files = self.files
        return self

    def _count(self, prediction: str, review: str, error: str) -> None:
        self.rows += 1
        self.failed += bool(error)
        self.flagged += bool(review)
        kinds = kinds_in(review)
        self.kinds.update(kinds)
        self.out_of_scope += any(kind.out_of_scope and kind.name in kinds for kind in KINDS)
        if prediction:
            self.predicted[prediction] += 1

    def _rows_to_keep(self, source: Path) -> list[list[str]]:
        """Complete rows of an interrupted run (or a finished one); a torn last line (kill -9)
        is dropped, and so are the rows of a last file whose frames may be incomplete."""
        # utf-8-sig: a CSV re-saved by a spreadsheet starts with a byte-order mark (and ends
        # its lines with CRLF, which the csv module reads as it reads LF).
        with open(source, encoding="utf-8-sig", errors="replace", newline="") as handle:
            text = handle.read()
        if not text.endswith("\n"):
            text = text[: text.rfind("\n") + 1]
        # Parsed as CSV, not split into lines: a quoted cell may hold a line break (a file
        # name with "\r" or "\n"), and such a row must come back whole.
        try:
            rows = list(csv.reader(io.StringIO(text, newline="")))
        except csv.Error:
            rows = []
        if not rows or rows[0] != self.columns:
            raise ReportError(
                f"{source} was written with other columns (another model or --dicom-fields); "
                "remove it or pass --overwrite to start over"
            )
        kept = [row for row in rows[1:] if len(row) == len(self.columns)]
        for number, row in enumerate(kept, start=2):
            for index in self._numeric:
                if row[index] and not _is_number(row[index]):
                    raise ReportError(
                        f"{source}, row {number}: {self.columns[index]} {row[index][:20]!r} is not a "
                        "number (edited by hand?); remove it or pass --overwrite to start over"
                    )
        # The frames of the last file may be incomplete: redo that file whole.
        if source == self.partial and kept and file_of(kept[-1][0]) != kept[-1][0]:
            last = file_of(kept[-1][0])
            while kept and file_of(kept[-1][0]) == last:
                kept.pop()
        return kept

    def is_done(self, path: Path) -> bool:
        # file_of on both sides: a file named "scan#7" is recorded as "scan" (a frame's form).
        return file_of(spreadsheet_safe(str(path))) in self.done

    def rebase(self, old: Path, new: Path) -> None:
        """The kept rows name files below `old` (the folder as the run spelled it); this run
        walks it as `new`: compare in the new spelling."""

        def prefix(folder: Path) -> str:  # how the walk's paths below `folder` begin
            return "" if str(folder) == "." else spreadsheet_safe(str(folder) + os.sep)

        before, after = prefix(old), prefix(new)

        def moved(cell: str) -> str:
            return after + cell[len(before) :] if cell.startswith(before) else cell

        self.done = {moved(cell) for cell in self.done}
        self.retrying = {moved(cell) for cell in self.retrying}
        self.retrying_folders = tuple(moved(cell) for cell in self.retrying_folders)

    def write(self, result: ImageResult) -> None:
        self.write_cells(result_row(result, self.class_names, self.extra))

    def write_cells(self, cells: list[str]) -> None:
        """A row already made by `result_row` (on a Ray worker, say)."""
        self._writer.writerow(cells)
        self._count_cells(cells)
        self._handle.flush()

    def _count_cells(self, cells: list[str]) -> None:
        self._count(*(cells[index] for index in self._counted))
        # A file's rows are written together: a new file is where the file changes.
        name = file_of(cells[0])
        if name != self._last_file:
            self.files += 1
            self._last_file = name

    @property
    def classified(self) -> int:
        """Rows given a class (not failed, not out of scope)."""
        return sum(self.predicted.values())

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._handle.flush()
        if self.stream is not None:
            return  # a stream: nothing to move into place
        os.fsync(self._handle.fileno())
        self._handle.close()
        if exc_type is not None and self.rows == 0:
            self.partial.unlink(missing_ok=True)  # nothing to resume: leave nothing behind
        elif exc_type is None:
            if self.retry:
                self._put_in_walk_order()
            os.replace(self.partial, self.target)

    def _put_in_walk_order(self) -> None:
        """After a retry the retried files' rows come last: sort every row back into place
        (each file's own rows, its frames, keep their order: the sort is stable)."""
        with open(self.partial, encoding="utf-8", newline="") as handle:
            header, *rows = list(csv.reader(handle))
        rows.sort(key=lambda row: sort_key(file_of(row[0])))
        with open(self.partial, "w", encoding="utf-8", newline="") as handle:
            writer = RowWriter(handle)
            for row in (header, *rows):
                writer.writerow(row)
            handle.flush()
            os.fsync(handle.fileno())

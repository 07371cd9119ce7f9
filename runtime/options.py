"""A run's options, one object: `bt-classify`'s flags map onto its fields one for one.

`classify_to_csv(folder, csv, options)` takes it (runtime/run.py). A field marked
`changes_rows()` changes which rows a run writes or what they say: the run record keeps
those (`row_options`), and `--resume` / `--retry-errors` refuse a run that differs in any
of them (runtime/run_record.py), so one CSV never mixes two runs. A new such option is a
marked field here, its flag in runtime/cli.py, and the code that uses it: the record and
the check follow from the mark.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from .classify import Settings
from .files import DEFAULT_EXCLUDES

if TYPE_CHECKING:
    from .model import Classifier

_ROWS = "changes_rows"


def changes_rows(default: object) -> object:
    """A field whose value changes the rows: recorded with the run, checked on resume."""
    return field(default=default, metadata={_ROWS: True})


@dataclass(frozen=True)
class RunOptions:
    """How `classify_to_csv` runs; the defaults are `bt-classify`'s."""

    # What to classify and how (Settings, the classifier's own, holds the batch's part).
    model: Classifier | str | Path | None = None  # None: the bundled model
    threads: int | None = None  # onnxruntime threads when the model is loaded here
    batch_size: int = Settings.batch_size
    decode_workers: int | None = None  # None: Settings' default
    dicom_fields: tuple[str, ...] = changes_rows(())
    min_confidence: float | None = changes_rows(Settings.min_confidence)
    # Which files.
    recursive: bool = changes_rows(True)
    exclude: tuple[str, ...] = changes_rows(())  # shell globs, added to DEFAULT_EXCLUDES
    default_excludes: bool = changes_rows(True)
    # What to do with an existing CSV: at most one of these.
    overwrite: bool = False
    resume: bool = False
    retry_errors: bool = False
    # More outputs.
    report_dir: str | Path | None = None  # the review page (it alone shows activation maps)
    series_csv: str | Path | None = None  # one row per NIfTI volume or DICOM series
    dicom_sc: str | Path | None = None  # with series_csv: each DICOM series' verdict as DICOM
    # Where it runs.
    ray: bool = False
    ray_address: str | None = None
    show_progress: bool = False

    def row_options(self) -> dict:
        """The marked fields, as plain JSON values: what the run record keeps and compares."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self) if f.metadata.get(_ROWS)}

    def globs(self) -> tuple[str, ...]:
        """Every exclude glob the walk applies."""
        return (*(DEFAULT_EXCLUDES if self.default_excludes else ()), *self.exclude)

    def settings(self) -> Settings:
        """The classifier's settings; activation maps only for the review page, which shows them."""
        workers = {} if self.decode_workers is None else {"decode_workers": self.decode_workers}
        return Settings(
            batch_size=self.batch_size,
            dicom_fields=tuple(self.dicom_fields),
            min_confidence=self.min_confidence,
            maps=self.report_dir is not None,
            **workers,
        )


def _plain(value: object) -> object:
    return list(value) if isinstance(value, (tuple, list)) else value

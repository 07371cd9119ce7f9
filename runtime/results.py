"""The records that flow through a run, and how a frame, page or slice is named: the ground floor.

A file is walked (`Unlisted` stands for a folder that could not be listed), decoded into
`Item`s (`Decoded`: one per image, frame, page or slice, each with its `SlicePlace` where it
belongs to a volume or series), and each item classified into an `ImageResult`, one CSV row.
Every other runtime module passes these along; this one imports nothing of the runtime
but the reasons' vocabulary (which imports nothing either), so any module can use them
without tying itself to the modules that make them.

Names: a file's row is named by its path; a multi-frame DICOM's frames and a multi-page
TIFF's pages add "#N", a volume's slices "#z=K" (`frame_name`, `slice_name`); `file_of`
reads the file back from any such name.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .reasons import SEPARATOR, is_out_of_scope

FRAME_MARK = "#"
SLICE_MARK = "#z="


def frame_name(file: str, index: int) -> str:
    """A DICOM frame's or a TIFF page's row name: "scan.dcm#12"."""
    return f"{file}{FRAME_MARK}{index}"


def slice_name(file: str, index: int) -> str:
    """A volume slice's row name: "brain.nii.gz#z=40"."""
    return f"{file}{SLICE_MARK}{index}"


def split_name(name: str) -> tuple[str, int | None]:
    """A row name -> (its file, its frame or slice number, or None for a whole file)."""
    base, mark, number = name.rpartition(FRAME_MARK)
    number = number.removeprefix(SLICE_MARK.removeprefix(FRAME_MARK))
    if mark and number.isdigit():
        return base, int(number)
    return name, None


def file_of(name: str) -> str:
    """The file a row name belongs to: "scan.dcm#12" (frame 12) or "brain.nii.gz#z=40" -> the file."""
    return split_name(name)[0]


@dataclass(frozen=True)
class SlicePlace:
    """Where a slice lies: its series (a UID or a file path, never anything identifying),
    its plane and its position along the slice normal (mm; or an instance number)."""

    series: str
    plane: str
    position: float
    description: str = ""  # DICOM SeriesDescription (what the scanner called it: "AX FLAIR")
    # A volume's slice count (its slices are numbered 0 to slices - 1 by `position`), so a
    # progress bar in files can advance inside one; 0 for a DICOM file (one file, one slice).
    slices: int = 0


class Unlisted(type(Path())):  # type: ignore[misc]  # a concrete Path class, as Path() makes
    """A folder the walk could not list: it becomes one error row, never silence."""

    reason = ""
    ERROR = "folder not listed"  # how its row's error begins (a retry re-walks such folders)

    @property
    def error(self) -> str:
        return f"{self.ERROR} ({self.reason}): its files were not classified"

    @classmethod
    def of(cls, folder: Path, exc: OSError) -> Unlisted:
        entry = cls(folder)
        entry.reason = exc.strerror or type(exc).__name__
        return entry


@dataclass(frozen=True)
class Item:
    """One decoded image (or the reason there is none), waiting for the model."""

    name: str
    image: np.ndarray | None  # 3 x S x S uint8
    error: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    place: SlicePlace | None = None


@dataclass(frozen=True)
class Decoded:
    """What one file turned into: images (or errors) to classify, or a reason to skip it.

    `items` is a list, or for a volume a generator read slab by slab as it is consumed
    (its own errors become error rows)."""

    items: list[Item] | Iterator[Item]
    skipped: str = ""  # a DICOM object without pixels: counted, no row


@dataclass(frozen=True)
class ImageResult:
    """One CSV row: an image (or a DICOM frame) and what the model says of it."""

    name: str  # the file's path; frames, pages and slices add their mark (frame_name, slice_name)
    probabilities: np.ndarray | None  # None when the image could not be classified
    error: str = ""
    fields: dict[str, str] = field(default_factory=dict)  # --dicom-fields values
    reasons: tuple[str, ...] = ()  # why a person should look (runtime/reasons.py)
    scope: float | None = None  # the model's scope score, where it has one
    cam: np.ndarray | None = None  # classes x h x w activation maps, where the model has them
    class_names: tuple[str, ...] = ()
    image: np.ndarray | None = None  # the 3 x S x S network input (for the review page)
    place: SlicePlace | None = None  # its series and position there (volumes, DICOM series)

    def __repr__(self) -> str:
        """What a person wants to see when printing one: the CSV's cells, not the arrays."""
        confidence = None if self.confidence is None else round(self.confidence, 4)
        shown = f"name={self.name!r}, prediction={self.prediction!r}, confidence={confidence!r}"
        for label, value in (("review", self.review), ("error", self.error)):
            if value:
                shown += f", {label}={value!r}"
        return f"ImageResult({shown})"

    @property
    def out_of_scope(self) -> bool:
        return is_out_of_scope(self.reasons)

    @property
    def review(self) -> str:
        return SEPARATOR.join(self.reasons)

    @property
    def prediction(self) -> str:
        """The class, or "" when failed or out of scope (not something the model knows)."""
        if self.probabilities is None or self.out_of_scope:
            return ""
        return self.class_names[int(self.probabilities.argmax())]

    @property
    def confidence(self) -> float | None:
        if self.probabilities is None or self.out_of_scope:
            return None
        return float(self.probabilities.max())

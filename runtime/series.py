"""A verdict per volume or series: does this stack of slices show a tumour, and where?

A tumour spans neighbouring slices; a false alarm seldom does. So the rule counts the
"tumour slices" (given a tumour class, with no reason to doubt it) and the longest run of
consecutive ones, in slice order:

- `tumour likely`: a run of at least `min_run` tumour slices;
- `review`: some tumour slices but no such run, any slice given a tumour class that a
  reason makes unsure (low confidence), or too few slices classified (fewer than
  `min_classified_share` of them: out of scope, failed) to clear the series;
- `no tumour found`: no slice given a tumour class among enough classified ones;
- `out of scope`: no slice classified, some out of scope (a CT series, a localiser of
  colour overlays): the model has nothing to say about it.

Verdicts come from evidence, not from notes: a note that says how a slice was read (a
4-D file's first volume, a DICOM value read past a decimal comma) leaves its class as
evidence, and a slice given a tumour class always counts against `no tumour found`.

The rule's parameters travel in the model's metadata (`bt.series`, chosen at export;
docs/volumes.md says on what); a model without them uses the defaults below.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

from .atomic import write_atomically
from .reasons import DICOM_NOTE, VOLUME_NOTE, kind_of
from .results import ImageResult, file_of

# Notes on how a slice was read: they leave its class as evidence for the verdict.
READING_NOTES = (VOLUME_NOTE, DICOM_NOTE)

TUMOUR_LIKELY = "tumour likely"
NO_TUMOUR_FOUND = "no tumour found"
REVIEW = "review"
OUT_OF_SCOPE_VERDICT = "out of scope"
SERIES_COLUMNS = (
    "series",
    "folder",
    "first_file",
    "description",
    "plane",
    "slices",
    "classified",
    "tumour_slices",
    "longest_run",
    "strongest_slice",
    "strongest_class",
    "strongest_probability",
    "verdict",
)


@dataclass(frozen=True)
class SeriesRule:
    min_run: int = 3
    min_classified_share: float = 0.5

    @classmethod
    def from_metadata(cls, record: dict) -> SeriesRule:
        known = {key: record[key] for key in ("min_run", "min_classified_share") if key in record}
        return cls(**known)

    def as_record(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SeriesSummary:
    series: str  # the file path (NIfTI) or the SeriesInstanceUID (DICOM)
    folder: str  # where its first slice's file is
    first_file: str  # the file of its first slice in slice order (the volume itself for NIfTI)
    description: str  # DICOM SeriesDescription, "" for NIfTI
    plane: str
    slices: int
    classified: int  # slices with a class (not failed, not out of scope)
    tumour_slices: int
    longest_run: int
    strongest_slice: str  # the slice most likely to show a tumour, "" when none classified
    strongest_class: str
    strongest_probability: float | None  # 1 - p(negative) of that slice
    verdict: str

    def row(self) -> list[str]:
        probability = "" if self.strongest_probability is None else f"{self.strongest_probability:.6f}"
        return [
            self.series,
            self.folder,
            self.first_file,
            self.description,
            self.plane,
            str(self.slices),
            str(self.classified),
            str(self.tumour_slices),
            str(self.longest_run),
            self.strongest_slice,
            self.strongest_class,
            probability,
            self.verdict,
        ]


def summarise(
    series: str,
    plane: str,
    ordered: list[ImageResult],
    negative: str,
    rule: SeriesRule,
    description: str = "",
) -> SeriesSummary:
    """The summary of one series from its slices' results, in slice order."""
    run = longest = tumour = unsure = classified = out_of_scope = 0
    strongest: tuple[float, ImageResult] | None = None
    for result in ordered:
        if not result.prediction:  # failed or out of scope: breaks a run
            out_of_scope += result.out_of_scope
            run = 0
            continue
        classified += 1
        index = result.class_names.index(negative)
        score = 1.0 - float(result.probabilities[index])  # type: ignore[index]
        if strongest is None or score > strongest[0]:
            strongest = (score, result)
        says_tumour = result.prediction != negative
        is_tumour = says_tumour and not any(kind_of(reason) not in READING_NOTES for reason in result.reasons)
        unsure += says_tumour and not is_tumour
        run = run + 1 if is_tumour else 0
        tumour += is_tumour
        longest = max(longest, run)
    if classified == 0 and out_of_scope:
        verdict = OUT_OF_SCOPE_VERDICT
    elif longest >= rule.min_run:
        verdict = TUMOUR_LIKELY
    elif tumour or unsure or classified < rule.min_classified_share * max(len(ordered), 1):
        verdict = REVIEW
    else:
        verdict = NO_TUMOUR_FOUND
    best = strongest[1] if strongest else None
    strongest_class = ""
    if best is not None:
        tumour_classes = [
            (p, n) for p, n in zip(best.probabilities, best.class_names, strict=True) if n != negative
        ]  # type: ignore[arg-type]
        strongest_class = max(tumour_classes)[1]
    first_file = file_of(ordered[0].name) if ordered else ""
    return SeriesSummary(
        series,
        str(Path(first_file).parent) if first_file else "",
        first_file,
        description,
        plane,
        len(ordered),
        classified,
        tumour,
        longest,
        best.name if best else "",
        strongest_class,
        strongest[0] if strongest else None,
        verdict,
    )


class SeriesCollector:
    """Gathers the slices of each series as results stream by; `summaries()` at the end.

    Keeps what the verdict needs of each slice (not its image or maps)."""

    def __init__(self, negative: str, rule: SeriesRule) -> None:
        self.negative = negative
        self.rule = rule
        self._slices: dict[str, list[tuple[float, str, ImageResult]]] = {}
        self._planes: dict[str, str] = {}
        self._descriptions: dict[str, str] = {}

    def add(self, result: ImageResult) -> None:
        if result.place is None:
            return
        place = result.place
        lite = replace(result, image=None, cam=None)
        self._slices.setdefault(place.series, []).append((place.position, result.name, lite))
        self._planes.setdefault(place.series, place.plane)
        self._descriptions.setdefault(place.series, place.description)

    def summaries(self) -> list[SeriesSummary]:
        out = []
        for series in sorted(self._slices):
            ordered = [result for _, _, result in sorted(self._slices[series], key=lambda t: (t[0], t[1]))]
            plane, description = self._planes[series], self._descriptions[series]
            out.append(summarise(series, plane, ordered, self.negative, self.rule, description))
        return out


def write_series_csv(path, summaries: list[SeriesSummary]) -> None:
    """One row per series, written whole and then moved into place (runtime/atomic.py)."""
    from .csv_report import RowWriter, spreadsheet_safe  # here: csv_report -> classify -> this module

    def write(handle) -> None:
        writer = RowWriter(handle)
        writer.writerow(SERIES_COLUMNS)
        for summary in summaries:
            row = summary.row()
            for index in (0, 1, 2, 3, 9):  # the text cells: series, folder, file, description, slice
                row[index] = spreadsheet_safe(row[index])
            writer.writerow(row)

    write_atomically(Path(path), write)

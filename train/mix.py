"""The training data as one declarative description: a mix of sources (`bt-train --mix FILE.toml`).

A source is a folder with one sub-folder per class, a folder of images of one kind, or a
manifest CSV (path, label, and optionally group and sequence columns). Each maps its own
labels onto the model's classes, or onto `tumour` ("a tumour, type unknown": trained on
-log(1 - p(negative)), train/targets.py), or onto `skip`. A mirror source builds
tumour-free slices from another manifest's tumour slices (train/mirror.py). Paths in a
TOML file are relative to the file, so a mix in the repository finds `../shared/data`.

    classes = ["glioma", "meningioma", "notumor", "pituitary"]
    negative_class = "notumor"

    [[source]]
    name = "kaggle"
    folders = "../shared/data/brain-tumor-mri/Training"

    [[source]]
    name = "brats"
    manifest = "../shared/data/extra/brats/manifest.csv"
    group_column = "patient"
    sequence_column = "sequence"
    weight = 0.5

`bt-train --data DIR [--tumour-unknown DIR]` is the two-source case of the same thing.
No torch here: the audit, the export's split and the tests read mixes without it.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TUMOUR = "tumour"  # a mapped label: a tumour of unrecorded type, or a lesion that is never `negative`
# Identifiers and labels here spell "tumour"; the package and the dataset's class names
# ("brain_tumor_edge", "notumor") came spelled "tumor". Either spelling is read.
SPELLINGS = {"tumor": TUMOUR}
# A source's keys that hold paths: relative to the TOML when read, recorded both resolved
# and as given.
PATH_KEYS = ("folders", "folder", "manifest", "mirror_masks")
SKIP = "skip"  # a mapped label: leave such images out
DEFAULT_CLASSES = ("glioma", "meningioma", "notumor", "pituitary")
DEFAULT_NEGATIVE = "notumor"


class MixError(ValueError):
    """The mix description cannot be used."""


@dataclass(frozen=True)
class Source:
    name: str
    # Exactly one of these three says where the images are.
    folders: Path | None = None  # one sub-folder per label (its name is the source's label)
    folder: Path | None = None  # every image of one label, `label`
    manifest: Path | None = None  # a CSV; its `path` column is relative to the CSV's folder
    label: str | None = None  # the label of every image (with `folder`)
    # Source label -> a class, `tumour` or `skip`; a label not listed maps to itself.
    labels: dict[str, str] = field(default_factory=dict)
    label_column: str = "label"
    group_column: str | None = None  # patient or case: kept on one side of the split
    sequence_column: str | None = None
    sequence: str = "mixed"  # every image's sequence when there is no column
    # Images of this source drawn per epoch, as a multiple of its size (0.5: a random half
    # each epoch; 2: each image twice). Validation always uses all of them once.
    weight: float = 1.0
    # Mirror source: tumour-free slices made from `manifest`'s tumour slices whose mask
    # lies in one half, with these masks (PATIENT/NNN.png) and the midline column.
    mirror_masks: Path | None = None
    midline: float = 118.0

    def __post_init__(self) -> None:
        given = [name for name in ("folders", "folder", "manifest") if getattr(self, name) is not None]
        if len(given) != 1:
            raise MixError(f"source {self.name!r}: give exactly one of folders, folder, manifest")
        if self.folder is not None and self.label is None:
            raise MixError(f"source {self.name!r}: a folder source needs its label")
        if self.mirror_masks is not None and self.manifest is None:
            raise MixError(f"source {self.name!r}: mirror_masks needs a manifest")
        if self.weight < 0:
            raise MixError(f"source {self.name!r}: weight must be >= 0")

    @property
    def location(self) -> Path:
        return Path(self.folders or self.folder or self.manifest)  # type: ignore[arg-type]

    @property
    def is_mirror(self) -> bool:
        return self.mirror_masks is not None

    def mapped(self, label: str) -> str:
        target = self.labels.get(label, label)
        return SPELLINGS.get(target, target)


@dataclass(frozen=True)
class Mix:
    sources: tuple[Source, ...]
    classes: tuple[str, ...] = DEFAULT_CLASSES
    negative_class: str = DEFAULT_NEGATIVE

    def __post_init__(self) -> None:
        if not self.sources:
            raise MixError("a mix needs at least one source")
        names = [source.name for source in self.sources]
        if len(set(names)) != len(names):
            raise MixError(f"source names must differ: {names}")
        if self.negative_class not in self.classes:
            raise MixError(f"negative class {self.negative_class!r} is not one of {self.classes}")
        allowed = {*self.classes, TUMOUR, SKIP, *SPELLINGS}
        for source in self.sources:
            targets = set(source.labels.values()) | ({source.label} if source.label else set())
            unknown = sorted(targets - allowed)
            if unknown:
                raise MixError(f"source {source.name!r} maps onto unknown labels {unknown}")

    @classmethod
    def from_toml(cls, path: Path) -> Mix:
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise MixError(f"cannot read the mix {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise MixError(f"{path} is not valid TOML: {exc}") from None
        return cls.from_dict(raw, base=path.parent)

    @classmethod
    def from_dict(cls, raw: dict, base: Path = Path()) -> Mix:
        """Paths are relative to `base` (the TOML file's folder)."""
        known = {f.name for f in fields(Source)}
        sources = []
        for entry in raw.get("source", []):
            extra = sorted(set(entry) - known)
            if extra:
                raise MixError(f"source {entry.get('name', '?')!r}: unknown keys {extra}")
            if "name" not in entry:
                raise MixError("every source needs a name")
            entry = dict(entry)
            for key in PATH_KEYS:
                if entry.get(key) is not None:
                    entry[key] = Path(base, entry[key])
            sources.append(Source(**entry))
        unknown_keys = sorted(set(raw) - {"source", "classes", "negative_class"})
        if unknown_keys:
            raise MixError(f"unknown keys in the mix: {unknown_keys}")
        return cls(
            tuple(sources),
            tuple(raw.get("classes", DEFAULT_CLASSES)),
            raw.get("negative_class", DEFAULT_NEGATIVE),
        )

    @classmethod
    def from_folders(
        cls, data: Path, tumour_unknown: Path | None = None, negative_class: str = DEFAULT_NEGATIVE
    ) -> Mix:
        """`--data DIR [--tumour-unknown DIR]`: class names are the data folder's sub-folders."""
        data = Path(data)
        if not data.is_dir():
            raise MixError(f"data folder not found: {data}")
        classes = tuple(sorted(p.name for p in data.iterdir() if p.is_dir() and not p.name.startswith(".")))
        if len(classes) < 2:
            raise MixError(
                f"{data} has no labelled images: expected one sub-folder of images per class "
                "(at least two classes)"
            )
        sources = [Source("data", folders=data)]
        if tumour_unknown is not None:
            sources.append(Source("tumour-unknown", folder=Path(tumour_unknown), label=TUMOUR))
        if negative_class not in classes:
            # No negative class: plain classification; a tumour-unknown folder then makes no sense.
            if tumour_unknown is not None:
                raise MixError(f"--tumour-unknown needs the negative class {negative_class!r} in {data}")
            return cls(tuple(sources), classes or ("?",), classes[0] if classes else "?")
        return cls(tuple(sources), classes, negative_class)

    def as_record(self) -> dict:
        """Plain values for the checkpoint: paths both resolved and as given (export tries both)."""
        record = asdict(self)
        for source, entry in zip(self.sources, record["sources"], strict=True):
            for key in PATH_KEYS:
                value = getattr(source, key)
                entry[key] = None if value is None else str(Path(value).resolve())
                entry[f"{key}_as_given"] = None if value is None else str(value)
        return record

    @classmethod
    def from_record(cls, record: dict) -> Mix:
        """The mix a checkpoint recorded, each path where it was or else as given."""
        sources = []
        for entry in record["sources"]:
            entry = dict(entry)
            for key in PATH_KEYS:
                as_given = entry.pop(f"{key}_as_given", None)
                chosen = entry.get(key)
                if chosen is not None and not Path(chosen).exists() and as_given is not None:
                    chosen = as_given
                entry[key] = None if chosen is None else Path(chosen)
            sources.append(Source(**entry))
        return cls(tuple(sources), tuple(record["classes"]), record["negative_class"])

    def missing(self) -> list[str]:
        """Sources whose folder or manifest is not there."""
        return [f"{s.name} ({s.location})" for s in self.sources if not s.location.exists()]


@dataclass(frozen=True)
class Entry:
    """One image of a mix, before decoding."""

    path: Path
    label: str  # a class, or TUMOUR
    source: int  # index into mix.sources
    sequence: str
    group: str | None  # patient or case key, namespaced by the manifest (None: the image alone)
    mirror_mask: Path | None = None  # a mirrored slice: built from `path` with this mask


def read_manifest(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise MixError(f"cannot read the manifest {path}: {exc.strerror}") from None
    if not rows or "path" not in rows[0]:
        raise MixError(f"{path}: a manifest needs a header with a 'path' column and at least one row")
    return rows


def group_key(source: Source, row: dict[str, str]) -> str | None:
    """The split's group of a manifest row: one per manifest and patient, so a mirror source's
    slices share their patient's group with the slices they were made from."""
    if source.group_column is None:
        return None
    return f"{Path(source.manifest).resolve()}|{row[source.group_column]}"  # type: ignore[arg-type]

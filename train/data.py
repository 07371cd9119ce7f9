"""Labelled image folders: scanning, stratified duplicate-safe splits, and the in-memory cache.

Every image is read, hashed and preprocessed once (with `runtime.preprocess`, the same
code `bt-classify` runs) and kept as uint8, so an epoch costs network compute only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from ..runtime.errors import ImageError
from ..runtime.files import iter_image_files
from ..runtime.formats import image_from_bytes
from ..runtime.preprocess import PreprocessConfig, resize_chw
from ..runtime.reading import read_input
from .entries import list_entries
from .mirror import build_mirrored
from .mix import TUMOUR, Mix, MixError
from .targets import TUMOUR_UNKNOWN
from .twins import perceptual_hash


class DataError(ValueError):
    """The data folder cannot be used for training or evaluation."""


@dataclass(frozen=True)
class Provenance:
    """Where each image of a set comes from: its source in the mix, sequence, patient group and,
    for a mirrored slice (train/mirror.py), the mask and midline it is built with."""

    sources: np.ndarray  # int64 index into source_names
    source_names: tuple[str, ...]
    sequences: list[str]
    groups: list[str | None]  # None: the image is its own group (twins still join it)
    mirror_masks: list[Path | None]
    midlines: list[float]

    @classmethod
    def single(cls, count: int, name: str = "data") -> Provenance:
        return cls(
            np.zeros(count, np.int64),
            (name,),
            ["mixed"] * count,
            [None] * count,
            [None] * count,
            [0.0] * count,
        )

    def subset(self, indices: np.ndarray) -> Provenance:
        return Provenance(
            self.sources[indices],
            self.source_names,
            [self.sequences[i] for i in indices],
            [self.groups[i] for i in indices],
            [self.mirror_masks[i] for i in indices],
            [self.midlines[i] for i in indices],
        )


@dataclass(frozen=True)
class LabelledFiles:
    paths: list[Path]
    labels: np.ndarray  # int64 index into class_names, or TUMOUR_UNKNOWN (train/targets.py)
    class_names: tuple[str, ...]
    provenance: Provenance | None = None  # None: one source, no groups

    def __post_init__(self) -> None:
        if self.provenance is None:
            object.__setattr__(self, "provenance", Provenance.single(len(self.paths)))

    def subset(self, indices: np.ndarray) -> LabelledFiles:
        return LabelledFiles(
            [self.paths[i] for i in indices],
            self.labels[indices],
            self.class_names,
            self.provenance.subset(indices),  # type: ignore[union-attr]
        )


@dataclass(frozen=True)
class ImageSet:
    """Preprocessed images (N x 3 x S x S uint8) with labels, content hashes and provenance."""

    images: np.ndarray
    labels: np.ndarray
    hashes: list[str]  # SHA-256 of the file bytes
    phash: np.ndarray  # uint64 perceptual hash of the decoded image
    paths: list[Path]
    class_names: tuple[str, ...]
    provenance: Provenance | None = None

    def __post_init__(self) -> None:
        if self.provenance is None:
            object.__setattr__(self, "provenance", Provenance.single(len(self.paths)))

    @property
    def origin(self) -> Provenance:
        assert self.provenance is not None
        return self.provenance

    def subset(self, indices: np.ndarray) -> ImageSet:
        return ImageSet(
            self.images[indices],
            self.labels[indices],
            [self.hashes[i] for i in indices],
            self.phash[indices],
            [self.paths[i] for i in indices],
            self.class_names,
            self.origin.subset(indices),
        )


def scan_labelled_folder(root: Path, class_names: tuple[str, ...] | None = None) -> LabelledFiles:
    """One sub-folder per class (names sorted); raises DataError for unusable folders.

    With `class_names` given (evaluating a trained model), those classes and that order
    are used, and a folder lacking one of them is an error.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder not found: {root}")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if class_names is None:
        class_names = tuple(found)
    else:
        missing = sorted(set(class_names) - set(found))
        if missing:
            raise DataError(f"{root} lacks class folders: {', '.join(missing)}")
    paths: list[Path] = []
    labels: list[int] = []
    for index, name in enumerate(class_names):
        files = list(iter_image_files(root / name))
        paths += files
        labels += [index] * len(files)
    if not paths or len({*labels}) < 2:
        raise DataError(
            f"{root} has no labelled images: expected one sub-folder of images per class "
            "(at least two classes)"
        )
    return LabelledFiles(paths, np.asarray(labels, np.int64), tuple(class_names))


def with_tumour_unknown(files: LabelledFiles, folder: Path) -> LabelledFiles:
    """Add every image under `folder` as "a tumour, type unknown" (label `TUMOUR_UNKNOWN`)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"tumour-unknown folder not found: {folder}")
    extra = list(iter_image_files(folder))
    if not extra:
        raise DataError(f"no images in the tumour-unknown folder {folder}")
    labels = np.concatenate([files.labels, np.full(len(extra), TUMOUR_UNKNOWN, np.int64)])
    return LabelledFiles(files.paths + extra, labels, files.class_names)


def files_from_mix(mix: Mix) -> LabelledFiles:
    """Every image of every source of the mix, labelled with the mix's classes."""
    paths: list[Path] = []
    labels: list[int] = []
    sources: list[int] = []
    sequences: list[str] = []
    groups: list[str | None] = []
    masks: list[Path | None] = []
    midlines: list[float] = []
    for index, source in enumerate(mix.sources):
        try:
            entries = list_entries(mix, index)
        except MixError as exc:
            raise DataError(str(exc)) from None
        for entry in entries:
            paths.append(entry.path)
            labels.append(TUMOUR_UNKNOWN if entry.label == TUMOUR else mix.classes.index(entry.label))
            sources.append(index)
            sequences.append(entry.sequence)
            groups.append(entry.group)
            masks.append(entry.mirror_mask)
            midlines.append(source.midline)
    provenance = Provenance(
        np.asarray(sources, np.int64), tuple(s.name for s in mix.sources), sequences, groups, masks, midlines
    )
    return LabelledFiles(paths, np.asarray(labels, np.int64), mix.classes, provenance)


def stratified_subset(files: LabelledFiles, max_images: int, seed: int) -> LabelledFiles:
    """At most `max_images` files, each class of each source keeping its share (at least one each)."""
    if max_images >= len(files.paths):
        return files
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    strata = files.provenance.sources * 1000 + files.labels  # type: ignore[union-attr]
    for stratum in np.unique(strata):
        members = np.flatnonzero(strata == stratum)
        take = max(1, round(max_images * len(members) / len(files.paths)))
        chosen.append(rng.choice(members, size=min(take, len(members)), replace=False))
    return files.subset(np.sort(np.concatenate(chosen)))


def _read_one(
    path: Path, config: PreprocessConfig, mirror_mask: Path | None = None, midline: float = 0.0
) -> tuple[np.ndarray | None, str, int, str]:
    try:
        data = read_input(path)
    except (OSError, ImageError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, "", 0, f"{path}: {reason}"
    digest = hashlib.sha256(data).hexdigest()
    try:
        decoded = image_from_bytes(path, data, config.channel_order)
        if mirror_mask is not None:
            decoded = build_mirrored(decoded, mirror_mask, midline)
            digest = hashlib.sha256(data + b"#mirrored").hexdigest()  # not the source file's twin
    except (ImageError, MixError) as exc:
        return None, digest, 0, f"{path}: {exc}"
    return resize_chw(decoded, config), digest, perceptual_hash(decoded), ""


def load_images(
    files: LabelledFiles, config: PreprocessConfig, threads: int = 2, show_progress: bool = True
) -> tuple[ImageSet, list[str]]:
    """Decode and preprocess every file once; returns the set and one message per skipped file."""
    images = np.empty((len(files.paths), 3, config.size, config.size), np.uint8)
    keep = np.zeros(len(files.paths), bool)
    hashes = [""] * len(files.paths)
    phash = np.zeros(len(files.paths), np.uint64)
    skipped: list[str] = []
    with (
        ThreadPoolExecutor(max_workers=max(1, threads)) as pool,
        Progress(disable=not show_progress, transient=True) as progress,
    ):
        task = progress.add_task("Loading images", total=len(files.paths))
        origin = files.provenance
        assert origin is not None
        results = pool.map(
            lambda i: _read_one(files.paths[i], config, origin.mirror_masks[i], origin.midlines[i]),
            range(len(files.paths)),
        )
        for index, (image, digest, fingerprint, problem) in enumerate(results):
            hashes[index] = digest
            phash[index] = fingerprint
            if image is None:
                skipped.append(problem)
            else:
                images[index] = image
                keep[index] = True
            progress.advance(task)
    kept = np.flatnonzero(keep)
    if len(kept) == 0:
        raise DataError("no image in the data folder could be decoded")
    full = ImageSet(images, files.labels, hashes, phash, files.paths, files.class_names, files.provenance)
    return full.subset(kept), skipped


def duplicate_safe_split(
    labels: np.ndarray,
    groups: Sequence[Hashable],
    val_fraction: float,
    seed: int,
    strata: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train/validation indices in which each group of twins stays on one side.

    `groups` is a key per image (a content hash, or `train.twins.twin_groups` for exact
    and near twins); whole groups are assigned, class by class (a group's class is that
    of its first image), so validation never sees a training image again. Images of
    unknown tumour type (label `TUMOUR_UNKNOWN`) are one more stratum: validation gets
    its share of them too. `strata` (default: the labels) names the stratum of each image,
    so a mix can stratify by source and label: validation then draws from every source.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must be between 0 and 1")
    members: dict[Hashable, list[int]] = {}
    for index, key in enumerate(groups):
        members.setdefault(key, []).append(index)
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    strata = labels if strata is None else np.asarray(strata)
    for stratum in np.unique(strata):
        class_groups = [g for g in members.values() if strata[g[0]] == stratum]
        order = rng.permutation(len(class_groups))
        target = val_fraction * sum(len(g) for g in class_groups)
        taken = 0
        for position in order:
            group = class_groups[position]
            if taken < target:
                val += group
                taken += len(group)
            else:
                train += group
    return np.sort(np.asarray(train, np.int64)), np.sort(np.asarray(val, np.int64))

"""Leak audit: exact and near-duplicate images within a folder and across two, and label conflicts.

Exact twins share a SHA-256 of their bytes; near twins share a perceptual hash up to a
couple of bits (see `train.twins`). Needs numpy and OpenCV only.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..runtime.errors import ImageError
from ..runtime.formats import image_from_bytes
from ..runtime.reading import read_input
from .data import LabelledFiles, scan_labelled_folder
from .twins import near_pairs, perceptual_hash


@dataclass(frozen=True)
class Fingerprints:
    files: LabelledFiles
    sha256: list[str]
    phash: np.ndarray  # uint64, one per file; 0 where the file could not be decoded
    unreadable: list[str] = field(default_factory=list)  # "path: reason", a finding of its own


def fingerprint(files: LabelledFiles, threads: int = 2) -> Fingerprints:
    def one(path: Path) -> tuple[str, int, str]:
        try:
            data = read_input(path)
        except (OSError, ImageError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            # A digest of its own, so unreadable files never count as each other's twins.
            return f"unreadable:{path}", 0, f"{path}: {reason}"
        digest = hashlib.sha256(data).hexdigest()
        try:
            return digest, perceptual_hash(image_from_bytes(path, data)), ""
        except ImageError:
            return digest, 0, ""

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(one, files.paths))
    return Fingerprints(
        files,
        [digest for digest, _, _ in results],
        np.asarray([h for _, h, _ in results], np.uint64),
        [problem for _, _, problem in results if problem],
    )


@dataclass
class AuditReport:
    folder: str
    images: int
    exact_duplicate_files: int  # files whose bytes occur more than once in the folder
    near_duplicate_pairs: int
    label_conflicts: list[tuple[str, str]] = field(default_factory=list)
    reference: str | None = None
    exact_twins_in_reference: int = 0
    near_twins_in_reference: int = 0
    cross_label_conflicts: list[tuple[str, str]] = field(default_factory=list)
    leaked: list[str] = field(default_factory=list)  # files with an exact or near twin in the reference
    unreadable: list[str] = field(default_factory=list)  # "path: reason" for files that could not be read

    def summary(self) -> str:
        lines = [
            f"{self.folder}: {self.images} images, {self.exact_duplicate_files} in exact-duplicate "
            f"groups, {self.near_duplicate_pairs} near-duplicate pairs, "
            f"{len(self.label_conflicts)} label conflicts, {len(self.unreadable)} unreadable"
        ]
        lines += [f"  unreadable: {problem}" for problem in self.unreadable[:10]]
        if self.reference:
            lines.append(
                f"against {self.reference}: {self.exact_twins_in_reference} exact and "
                f"{self.near_twins_in_reference} near twins; {len(self.leaked)} of {self.images} "
                f"images leak, {len(self.cross_label_conflicts)} twins carry another label"
            )
        return "\n".join(lines)


def _label(files: LabelledFiles, index: int) -> str:
    return files.class_names[files.labels[index]]


def audit(folder: Path, reference: Path | None = None, threads: int = 2) -> AuditReport:
    """Audit `folder`; with `reference` (e.g. Training for Testing), also find its twins there."""
    target = fingerprint(scan_labelled_folder(folder), threads)
    files = target.files
    counts = Counter(target.sha256)
    pairs = near_pairs(target.phash)
    conflicts = [
        (str(files.paths[i]), str(files.paths[j])) for i, j in pairs if _label(files, i) != _label(files, j)
    ]
    report = AuditReport(
        folder=str(folder),
        images=len(files.paths),
        exact_duplicate_files=sum(1 for d in target.sha256 if counts[d] > 1),
        near_duplicate_pairs=len(pairs),
        label_conflicts=conflicts,
        unreadable=target.unreadable,
    )
    if reference is None:
        return report
    ref = fingerprint(scan_labelled_folder(reference), threads)
    ref_digests = set(ref.sha256)
    exact = {i for i, digest in enumerate(target.sha256) if digest in ref_digests}
    cross = near_pairs(target.phash, ref.phash)
    near = {i for i, _ in cross} - exact
    report.unreadable += ref.unreadable
    report.reference = str(reference)
    report.exact_twins_in_reference = len(exact)
    report.near_twins_in_reference = len(near)
    report.leaked = sorted(str(files.paths[i]) for i in exact | near)
    report.cross_label_conflicts = [
        (str(files.paths[i]), str(ref.files.paths[j]))
        for i, j in cross
        if _label(files, i) != _label(ref.files, j)
    ]
    return report

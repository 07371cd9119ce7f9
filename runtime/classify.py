"""Batch classification: decode in a thread pool while the previous batch runs in onnxruntime."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np

from runtime.dicom import DICOM_SUFFIXES, NotAnImage, looks_like_dicom, read_dicom
from runtime.errors import ImageError
from runtime.model import Classifier
from runtime.preprocess import PreprocessConfig, load_image, resize_chw


@dataclass(frozen=True)
class ImageResult:
    name: str  # the file's path; frames of a multi-frame DICOM add "#<frame>"
    probabilities: np.ndarray | None  # None when the image could not be classified
    error: str = ""
    fields: dict[str, str] = field(default_factory=dict)  # --dicom-fields values


@dataclass(frozen=True)
class Decoded:
    """What one file turned into: images (or errors) to classify, or a reason to skip it."""

    items: list[tuple[str, np.ndarray | None, str, dict[str, str]]]
    skipped: str = ""  # a DICOM object without pixels: counted, no row


def _unreadable(path: Path, exc: OSError) -> str:
    reason = "broken link" if path.is_symlink() and not path.exists() else exc.strerror
    return f"unreadable file ({reason or type(exc).__name__})"


def read_and_preprocess(path: Path, config: PreprocessConfig) -> tuple[np.ndarray | None, str]:
    """One image file -> (3xSxS uint8, "") or (None, short reason). Never raises for a bad file."""
    try:
        # Read bytes ourselves: cv2.imread cannot open non-ASCII paths on every platform.
        data = path.read_bytes()
    except OSError as exc:
        return None, _unreadable(path, exc)
    return _preprocess_bytes(data, config)


def _preprocess_bytes(data: bytes, config: PreprocessConfig) -> tuple[np.ndarray | None, str]:
    try:
        return load_image(data, config), ""
    except ImageError as exc:
        return None, str(exc)
    except Exception as exc:  # an OpenCV codec failure must not end the batch
        return None, f"decode failed ({type(exc).__name__})"


def decode_file(path: Path, config: PreprocessConfig, dicom_fields: tuple[str, ...] = ()) -> Decoded:
    """Any input file -> Decoded; DICOM is recognised by content, or by a .dcm suffix."""
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return Decoded([(name, None, _unreadable(path, exc), {})])
    if not (looks_like_dicom(data) or path.suffix.lower() in DICOM_SUFFIXES):
        image, error = _preprocess_bytes(data, config)
        return Decoded([(name, image, error, {})])
    try:
        dicom = read_dicom(data, dicom_fields)
    except NotAnImage as exc:
        return Decoded([], skipped=str(exc))
    except ImageError as exc:
        return Decoded([(name, None, str(exc), {})])
    items = []
    for index, frame in enumerate(dicom.frames):
        label = name if len(dicom.frames) == 1 else f"{name}#{index}"
        image = resize_chw(np.repeat(frame[:, :, None], 3, axis=2), config)
        items.append((label, image, "", dicom.fields))
    return Decoded(items)


def _batches(paths: Iterable[Path], size: int) -> Iterator[list[Path]]:
    iterator = iter(paths)
    while batch := list(islice(iterator, size)):
        yield batch


class Classification:
    """Streams results for a sequence of files, in order; counts the files it skipped."""

    def __init__(
        self,
        classifier: Classifier,
        batch_size: int = 32,
        decode_workers: int = 2,
        dicom_fields: tuple[str, ...] = (),
    ) -> None:
        self.classifier = classifier
        self.batch_size = batch_size
        self.decode_workers = decode_workers
        self.dicom_fields = dicom_fields
        self.skipped: dict[str, int] = {}

    def run(self, paths: Iterable[Path]) -> Iterator[ImageResult]:
        """One result per image or frame; the path list is streamed, never held whole."""
        config = self.classifier.metadata.preprocess
        batches = _batches(paths, self.batch_size)
        pending: deque[list[Future]] = deque()
        with ThreadPoolExecutor(max_workers=max(1, self.decode_workers)) as pool:

            def submit(batch: list[Path]) -> None:
                pending.append([pool.submit(decode_file, p, config, self.dicom_fields) for p in batch])

            # Two batches in flight: one being decoded while the other is in the model.
            for batch in islice(batches, 2):
                submit(batch)
            while pending:
                decoded = [future.result() for future in pending.popleft()]
                if (following := next(batches, None)) is not None:
                    submit(following)
                for outcome in decoded:
                    if outcome.skipped:
                        self.skipped[outcome.skipped] = self.skipped.get(outcome.skipped, 0) + 1
                items = [item for outcome in decoded for item in outcome.items]
                for start in range(0, len(items), self.batch_size):
                    yield from self._classify(items[start : start + self.batch_size])

    def _classify(
        self, items: list[tuple[str, np.ndarray | None, str, dict[str, str]]]
    ) -> Iterator[ImageResult]:
        good = [index for index, item in enumerate(items) if item[1] is not None]
        probabilities: dict[int, np.ndarray] = {}
        model_error = ""
        if good:
            try:
                output = self.classifier.predict(np.stack([items[i][1] for i in good]))
                probabilities = dict(zip(good, output, strict=True))
            except Exception as exc:
                model_error = f"model failed ({type(exc).__name__})"
        for index, (name, _, error, fields) in enumerate(items):
            if index in probabilities:
                yield ImageResult(name, probabilities[index], fields=fields)
            else:
                yield ImageResult(name, None, error or model_error, fields)


def classify_paths(
    paths: Iterable[Path], classifier: Classifier, batch_size: int = 32, decode_workers: int = 2
) -> Iterator[ImageResult]:
    """Convenience wrapper: results for `paths` with default settings."""
    return Classification(classifier, batch_size, decode_workers).run(paths)

"""Batch classification: decode in a thread pool while the previous batch runs in onnxruntime."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from runtime.errors import ImageError
from runtime.model import Classifier
from runtime.preprocess import PreprocessConfig, load_image


@dataclass(frozen=True)
class ImageResult:
    path: Path
    probabilities: np.ndarray | None  # None when the file could not be classified
    error: str = ""


def read_and_preprocess(path: Path, config: PreprocessConfig) -> tuple[np.ndarray | None, str]:
    """One file -> (3xSxS uint8, "") or (None, short reason). Never raises for a bad file."""
    try:
        # Read bytes ourselves: cv2.imread cannot open non-ASCII paths on every platform.
        data = path.read_bytes()
    except OSError as exc:
        reason = "broken link" if path.is_symlink() and not path.exists() else exc.strerror
        return None, f"unreadable file ({reason or type(exc).__name__})"
    try:
        return load_image(data, config), ""
    except ImageError as exc:
        return None, str(exc)
    except Exception as exc:  # an OpenCV codec failure must not end the batch
        return None, f"decode failed ({type(exc).__name__})"


def _batches(paths: Iterable[Path], size: int) -> Iterator[list[Path]]:
    iterator = iter(paths)
    while batch := list(islice(iterator, size)):
        yield batch


def classify_paths(
    paths: Iterable[Path], classifier: Classifier, batch_size: int = 32, decode_workers: int = 2
) -> Iterator[ImageResult]:
    """Yield one result per path, in input order, streaming: the path list is never held whole."""
    config = classifier.metadata.preprocess
    batches = _batches(paths, batch_size)
    pending: deque[tuple[list[Path], list[Future]]] = deque()
    with ThreadPoolExecutor(max_workers=max(1, decode_workers)) as pool:

        def submit(batch: list[Path]) -> None:
            pending.append((batch, [pool.submit(read_and_preprocess, p, config) for p in batch]))

        # Two batches in flight: one being decoded while the other is in the model.
        for batch in islice(batches, 2):
            submit(batch)
        while pending:
            batch, futures = pending.popleft()
            decoded = [future.result() for future in futures]
            if (following := next(batches, None)) is not None:
                submit(following)
            yield from _classify_decoded(batch, decoded, classifier)


def _classify_decoded(
    batch: list[Path], decoded: list[tuple[np.ndarray | None, str]], classifier: Classifier
) -> Iterator[ImageResult]:
    good = [index for index, (image, _) in enumerate(decoded) if image is not None]
    probabilities: dict[int, np.ndarray] = {}
    model_error = ""
    if good:
        try:
            output = classifier.predict(np.stack([decoded[i][0] for i in good]))
            probabilities = dict(zip(good, output, strict=True))
        except Exception as exc:
            model_error = f"model failed ({type(exc).__name__})"
    for index, path in enumerate(batch):
        if index in probabilities:
            yield ImageResult(path, probabilities[index])
        else:
            yield ImageResult(path, None, decoded[index][1] or model_error)

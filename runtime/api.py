"""The Python API: the same path from file to result as `bt-classify`, without the CLI.

`load_model()` once, then `classify_folder(folder, model)` yields results as they come and
`classify_to_csv(folder, csv, model=model)` does what `bt-classify` does; docs/classify.md
("From Python") shows them in use.

Each result has the CSV's fields: `name` (path), `prediction` and `confidence` (empty for
failed or out-of-scope rows), `probabilities` (in `class_names` order), `review`
(`; `-separated reasons), `error`. Nothing here imports torch or onnx.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from .classify import Classification, Settings
from .files import FolderWalk
from .image_files import decode_array
from .model import Classifier, default_model_path
from .options import RunOptions  # noqa: F401 (the API's, re-exported)
from .results import ImageResult
from .run import classify_to_csv  # noqa: F401 (the API's, re-exported)
from .series import SeriesCollector, SeriesSummary
from .summary import RunSummary  # noqa: F401 (the API's, re-exported)


def load_model(path: str | Path | None = None, threads: int | None = None) -> Classifier:
    """Load an ONNX model (default: the bundled one) once; reuse it for every call."""
    return Classifier(Path(path) if path is not None else default_model_path(), threads)


def _classification(model: Classifier | None, settings: Settings | None) -> Classification:
    return Classification(model or load_model(), settings)


def classify_array(
    image: np.ndarray, model: Classifier | None = None, settings: Settings | None = None
) -> ImageResult:
    """Classify an HxW (grey) or HxWx3 uint8 image, channels in the model's order (RGB)."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, not {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected HxW or HxWx3, not shape {image.shape}")
    classification = _classification(model, settings)
    item = decode_array(image, classification.classifier.metadata.preprocess)
    return next(iter(classification.classify_items([item])))


def classify_file(
    path: str | Path, model: Classifier | None = None, settings: Settings | None = None
) -> list[ImageResult]:
    """Classify one file: one result, or one per frame of a multi-frame DICOM or slice of a
    volume (none for DICOMDIR).

    Read and classified a batch at a time, as `classify_folder` does; the results keep no
    network input (`image` is None: 150 KB a slice at 224 px, 3 GB for a 20,000-slice volume), so
    a long volume costs what it costs the CLI. `classify_folder` streams results with it."""
    classification = _classification(model, settings)
    return [replace(result, image=None) for result in classification.run([Path(path)])]


def classify_folder(
    folder: str | Path,
    model: Classifier | None = None,
    settings: Settings | None = None,
    recursive: bool = True,
) -> Iterator[ImageResult]:
    """Stream results for every input file below `folder`, in sorted path order."""
    folder = Path(folder)
    if not folder.is_dir():
        where = "" if folder.is_absolute() else f" (relative to {Path.cwd()})"
        raise NotADirectoryError(f"not a folder: {folder}{where}")
    return _classification(model, settings).run(FolderWalk(folder, recursive))


def classify_volume(
    path: str | Path, model: Classifier | None = None, settings: Settings | None = None
) -> list[SeriesSummary]:
    """A verdict per series (runtime/series.py): for a NIfTI file, its one volume; for a
    folder, each NIfTI file and each DICOM series in it (grouped by SeriesInstanceUID)."""
    path = Path(path)
    classification = _classification(model, settings)
    metadata = classification.classifier.metadata
    collector = SeriesCollector(metadata.negative, metadata.series_rule)
    results = classification.run(FolderWalk(path) if path.is_dir() else [path])
    for result in results:
        collector.add(result)
    return collector.summaries()

"""Batch classification: decode in a thread pool while the previous batch runs in onnxruntime.

`decode_file` is the one boundary where whatever goes wrong with one file becomes that
file's error, and `Classification` is the one path from files to results: the CLI, the
Python API and the benchmarks all go through them.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import chain, islice
from pathlib import Path

import numpy as np

from .errors import ImageError, MissingExtraError, short_error
from .formats import decode
from .library_warnings import collect
from .model import Classifier
from .outputs import ModelOutput
from .preprocess import PreprocessConfig
from .reading import unreadable
from .reasons import confidence_reason, is_out_of_scope, rule_out_reason, scope_reason
from .results import Decoded, ImageResult, Item, Unlisted


def decode_file(path: Path, config: PreprocessConfig, dicom_fields: tuple[str, ...] = ()) -> Decoded:
    """Any input file -> Decoded; never raises for a bad file (the per-file error boundary).

    The format that claims the file decodes it (runtime/formats.py). Whatever fails while
    reading, parsing or decoding (any exception type, from any library) becomes an error row.
    """
    if isinstance(path, Unlisted):
        return Decoded([Item(str(path), None, path.error)])
    try:
        with collect() as notes:  # the readers' warnings about this file (library_warnings.py)
            decoded = decode(path, config, dicom_fields)
        return _with_notes(decoded, notes)
    except (ImageError, MissingExtraError) as exc:
        return Decoded([Item(str(path), None, str(exc))])
    except OSError as exc:
        return Decoded([Item(str(path), None, unreadable(path, exc))])
    except MemoryError:
        return Decoded([Item(str(path), None, "not enough memory to decode")])
    except Exception as exc:  # a codec's own failure must not end the batch
        return Decoded([Item(str(path), None, f"decode failed ({short_error(exc)})")])


def _with_notes(decoded: Decoded, notes: list[str]) -> Decoded:
    """Every item of the file carries the notes its reading left (a warning about its header)."""
    if not notes:
        return decoded
    extra = tuple(notes)
    items = (
        replace(item, reasons=item.reasons + extra) if item.image is not None else item
        for item in decoded.items
    )
    return replace(decoded, items=items)


def _batches(paths: Iterable[Path], size: int) -> Iterator[list[Path]]:
    iterator = iter(paths)
    while batch := list(islice(iterator, size)):
        yield batch


@dataclass(frozen=True)
class Settings:
    """How a folder is classified; `bt-classify`'s options default to these."""

    batch_size: int = 32
    # Decoding threads: OpenCV and pydicom release the GIL, so threads decode in parallel.
    decode_workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    dicom_fields: tuple[str, ...] = ()
    # Below this calibrated confidence a row gets the "low confidence" review reason.
    min_confidence: float | None = 0.5
    # Activation maps (where the model has them), for the review page. Off, they are not
    # fetched or copied; onnxruntime still runs the graph's (small) map branch: it runs
    # every node whatever outputs are asked for.
    maps: bool = True


class Classification:
    """Streams results for a sequence of files, in order; counts the files it skipped."""

    def __init__(self, classifier: Classifier, settings: Settings | None = None) -> None:
        self.classifier = classifier
        self.settings = settings or Settings()
        self.skipped: dict[str, int] = {}

    def run(self, paths: Iterable[Path]) -> Iterator[ImageResult]:
        """One result per image or frame; the path list is streamed, never held whole."""
        config = self.classifier.metadata.preprocess
        batches = _batches(paths, self.settings.batch_size)
        pending: deque[list[Future]] = deque()
        with ThreadPoolExecutor(max_workers=max(1, self.settings.decode_workers)) as pool:
            fields = self.settings.dicom_fields

            def submit(batch: list[Path]) -> None:
                pending.append([pool.submit(decode_file, p, config, fields) for p in batch])

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
                # Volumes stream: their slices are read one batch at a time, never whole.
                items = chain.from_iterable(outcome.items for outcome in decoded)
                while chunk := list(islice(items, self.settings.batch_size)):
                    yield from self.classify_items(chunk)

    def classify_items(self, items: list[Item]) -> Iterator[ImageResult]:
        """Run the model on the decoded items and attach every review reason."""
        good = [index for index, item in enumerate(items) if item.image is not None]
        outputs: dict[int, ModelOutput] = {}
        model_error = ""
        if good:
            try:
                batch = self.classifier.run(np.stack([items[i].image for i in good]), maps=self.settings.maps)
                outputs = {index: batch[row] for row, index in enumerate(good)}
            except Exception as exc:
                model_error = f"model failed ({type(exc).__name__})"
        names = self.classifier.class_names
        limit = self.classifier.metadata.scope_limit if self.classifier.has_scope else None
        rule_out = self.classifier.metadata.rule_out_level
        for index, item in enumerate(items):
            if index not in outputs:
                yield ImageResult(
                    item.name,
                    None,
                    item.error or model_error,
                    item.fields,
                    class_names=names,
                    place=item.place,
                )
                continue
            output = outputs[index]
            reasons = list(item.reasons)
            score = None if output.scope is None else float(output.scope)
            if score is not None and limit is not None:
                reasons += scope_reason(score, limit)
            if not is_out_of_scope(reasons):
                top = int(output.probabilities.argmax())
                confidence = float(output.probabilities[top])
                reasons += confidence_reason(confidence, self.settings.min_confidence)
                reasons += rule_out_reason(names[top], confidence, rule_out)
            yield ImageResult(
                item.name,
                output.probabilities,
                "",
                item.fields,
                tuple(reasons),
                score,
                output.cam,
                names,
                item.image,
                item.place,
            )

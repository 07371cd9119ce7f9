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

from .dicom import (
    DICOM_SUFFIXES,
    PREAMBLE_LENGTH,
    NotAnImage,
    looks_like_dicom,
    read_dicom,
)
from .errors import ImageError, MissingExtraError
from .files import Unlisted, open_regular, read_head, read_input
from .library_warnings import collect
from .model import Classifier
from .outputs import ModelOutput
from .preprocess import PreprocessConfig, decode_pages, resize_chw
from .reasons import (
    SEPARATOR,
    confidence_reason,
    image_reasons,
    is_out_of_scope,
    rule_out_reason,
    scope_reason,
)
from .series import SlicePlace
from .volumes import Volume, is_nifti


@dataclass(frozen=True)
class ImageResult:
    """One CSV row: an image (or a DICOM frame) and what the model says of it."""

    name: str  # the file's path; frames of a multi-frame DICOM add "#<frame>"
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
    (its own errors become error rows: `_volume_items`)."""

    items: list[Item] | Iterator[Item]
    skipped: str = ""  # a DICOM object without pixels: counted, no row


def _unreadable(path: Path, exc: OSError) -> str:
    try:
        broken = path.is_symlink() and not path.exists()
    except OSError:  # the path itself cannot be looked at (a name too long): say why it failed
        broken = False
    reason = "broken link" if broken else exc.strerror
    return f"unreadable file ({reason or type(exc).__name__})"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def decode_array(image: np.ndarray, config: PreprocessConfig, name: str = "<array>") -> Item:
    """A decoded HxWx3 uint8 image (in the model's channel order) -> an Item with its input checks."""
    return Item(name, resize_chw(image, config), reasons=tuple(image_reasons(image)))


def _volume_items(path: Path, config: PreprocessConfig) -> Iterator[Item]:
    """One item per axial slice of a NIfTI volume (`path#z=K`), read lazily. A failure
    part-way through becomes one error row naming the slice it stopped at."""
    name = str(path)
    with Volume(path) as volume:
        info = volume.info()
        done = -1
        try:
            for index, grey in volume.slices(info.window):
                rgb = np.repeat(grey[:, :, None], 3, axis=2)
                done = index
                reasons = info.reasons + tuple(image_reasons(rgb))
                place = SlicePlace(name, "axial", float(index))
                yield Item(f"{name}#z={index}", resize_chw(rgb, config), reasons=reasons, place=place)
        except Exception as exc:  # a truncated or corrupt volume: the rows so far stand
            message = f"volume read failed at slice {done + 1} ({_short(exc)})"
            yield Item(f"{name}#z={done + 1}", None, message)


def _decode(path: Path, config: PreprocessConfig, dicom_fields: tuple[str, ...]) -> Decoded:
    name = str(path)
    if is_nifti(path):
        items = _volume_items(path, config)
        first = next(items)  # the header and the window are read here, inside the boundary
        return Decoded(chain([first], items))
    is_dicom = path.suffix.lower() in DICOM_SUFFIXES or looks_like_dicom(read_head(path, PREAMBLE_LENGTH))
    if not is_dicom:
        # Read bytes ourselves: cv2.imread cannot open non-ASCII paths on every platform.
        pages = decode_pages(read_input(path), config.channel_order)  # a multi-page TIFF: each page
        if len(pages) == 1:
            return Decoded([decode_array(pages[0], config, name)])
        return Decoded([decode_array(page, config, f"{name}#{index}") for index, page in enumerate(pages)])
    with open_regular(path) as handle:
        try:
            dicom = read_dicom(handle, dicom_fields)
        except NotAnImage as exc:
            return Decoded([], skipped=str(exc))
        items = []
        for frame in dicom.frames():  # decoded one by one while the file is open
            label = name if dicom.frame_count == 1 else f"{name}#{frame.index}"
            if frame.pixels is None:
                items.append(Item(label, None, frame.error, dicom.fields, place=dicom.place))
                continue
            rgb = np.repeat(frame.pixels[:, :, None], 3, axis=2)
            reasons = (*dicom.reasons, *frame.reasons, *image_reasons(rgb))
            items.append(Item(label, resize_chw(rgb, config), "", dicom.fields, reasons, dicom.place))
    return Decoded(items)


def decode_file(path: Path, config: PreprocessConfig, dicom_fields: tuple[str, ...] = ()) -> Decoded:
    """Any input file -> Decoded; never raises for a bad file (the per-file error boundary).

    DICOM is recognised by content, or by a .dcm suffix. Whatever fails while reading,
    parsing or decoding (any exception type, from any library) becomes an error row.
    """
    if isinstance(path, Unlisted):
        return Decoded([Item(str(path), None, path.error)])
    try:
        with collect() as notes:  # the readers' warnings about this file (library_warnings.py)
            decoded = _decode(path, config, dicom_fields)
        return _with_notes(decoded, notes)
    except (ImageError, MissingExtraError) as exc:
        return Decoded([Item(str(path), None, str(exc))])
    except OSError as exc:
        return Decoded([Item(str(path), None, _unreadable(path, exc))])
    except MemoryError:
        return Decoded([Item(str(path), None, "not enough memory to decode")])
    except Exception as exc:  # a codec's own failure must not end the batch
        return Decoded([Item(str(path), None, f"decode failed ({_short(exc)})")])


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

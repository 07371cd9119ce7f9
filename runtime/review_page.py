"""`bt-classify --report DIR`: one HTML page to look at every row, doubtful ones first.

The page opens from the file system with a double-click on a PC without network: the
CSS and JavaScript are inline, the thumbnails are small JPEG files beside it, and no
font, script or image is fetched from anywhere. Every value from the files (paths,
DICOM fields, errors) travels as JSON and is put on the page as text, never as HTML.

After a `bt-classify` run the page is built from the finished CSV's rows, so a resumed or
retried run shows every row, not only the ones it classified itself. Thumbnails are named
by their row's path and listed in `rows.json` beside the page with the CSV they belong to:
a resume or retry of that CSV keeps them, any other run starts the folder afresh, so one
run's slices never stand beside another run's results.

Written by hand rather than with a template library: the runtime's dependencies stay
onnxruntime, OpenCV, numpy and typer, and the page is one string with a few holes.
"""

from __future__ import annotations

import csv as csv_module
import hashlib
import html
import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from .atomic import write_text_atomically
from .csv_report import spreadsheet_safe
from .heatmap import normalised, upsample
from .metadata import ModelMetadata
from .reasons import is_blank, is_out_of_scope, split_review
from .results import ImageResult, SlicePlace
from .series import SeriesCollector, SeriesRule, SeriesSummary

SIDECAR = "rows.json"  # this folder's thumbnails and series places, and the CSV they belong to

# Slices and maps are written at the network's input size and laid over each other by the
# page (thumbnail and enlarged view), the map at an opacity the reader sets.
LARGE_QUALITY = 90
MAP_QUALITY = 85  # a smooth colour field: fewer bits suffice


def _bgr(image: np.ndarray) -> np.ndarray:
    """A 3xSxS RGB uint8 network input as HxWx3 BGR."""
    return cv2.cvtColor(np.ascontiguousarray(image.transpose(1, 2, 0)), cv2.COLOR_RGB2BGR)


def map_layer(cam: np.ndarray, side: int) -> np.ndarray:
    """One class's activation map at side x side, in colour (BGR, blue low, red high)."""
    heat = normalised(upsample(cam, side, side))
    return cv2.applyColorMap(np.round(heat * 255).astype(np.uint8), cv2.COLORMAP_JET)


def _jpeg(bgr: np.ndarray, quality: int) -> bytes:
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes() if ok else b""


def _sidecar(folder: Path) -> dict:
    try:
        return json.loads((folder / SIDECAR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


# A thumbnail or map this tool wrote: named by a hash of its row's path (`ReviewPage.add`).
THUMBNAIL = re.compile(r"[0-9a-f]{20}(-map)?\.jpg")
# What a review folder may hold besides thumbs/: everything else is someone else's.
PAGE_FILES = frozenset(
    {"index.html", "index.html.partial", SIDECAR, SIDECAR + ".partial", ".bt-classify.lock"}
)


def foreign_entries(folder: Path, limit: int = 3) -> list[str]:
    """Entries of a review folder that this tool did not write (at most `limit`): a folder
    holding any is not a review page's, and nothing in it may be touched."""
    found: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        if entry.name == "thumbs" and entry.is_dir(follow_symlinks=False):
            found += [
                f"thumbs/{inner.name}"
                for inner in os.scandir(entry.path)
                if not (THUMBNAIL.fullmatch(inner.name) and inner.is_file(follow_symlinks=False))
            ]
        elif entry.name not in PAGE_FILES:
            found.append(entry.name)
        if len(found) >= limit:
            break
    return sorted(found[:limit])


def _clear_thumbnails(folder: Path) -> None:
    """Remove the thumbnails an earlier run of this tool wrote, and only those."""
    for inner in (folder / "thumbs").glob("*.jpg"):
        if THUMBNAIL.fullmatch(inner.name):
            inner.unlink(missing_ok=True)


def page_owner(folder: Path) -> str | None:
    """The CSV (resolved) whose page a review folder holds; "" for a page of unknown origin
    (an older version's, or the labelled report's); None when it holds no page."""
    if not (folder / "index.html").exists() and not (folder / SIDECAR).exists():
        return None
    return str(_sidecar(folder).get("csv", ""))


def _page_row(
    path: str,
    prediction: str,
    confidence: float | None,
    probabilities: np.ndarray | None,
    review: str,
    error: str,
    extra: dict,
) -> dict:
    """One row of the page's data: the CSV's cells and what `extra` adds (thumbnails, series).

    A row with no class (failed, out of scope) shows no class evidence: no probabilities
    and no class map, whatever the network computed for it."""
    reasons = split_review(review)
    classed = bool(prediction)
    return {
        "path": path,
        "prediction": prediction,
        "confidence": confidence,
        "probabilities": None
        if probabilities is None or not classed
        else [round(float(p), 4) for p in probabilities],
        "review": review,
        "out_of_scope": is_out_of_scope(reasons),
        "blank": is_blank(reasons),
        "error": error,
        "thumb": extra.get("thumb", ""),
        "map": extra.get("map", "") if classed else "",
        "map_class": extra.get("map_class", "") if classed else "",
        "series": extra.get("series", ""),
        "position": extra.get("position"),
    }


def histogram_svg(confidences: list[float], bins: int = 20) -> str:
    """Inline SVG bars of the confidence distribution (0..1)."""
    counts, _ = np.histogram(np.asarray(confidences, float), bins=bins, range=(0.0, 1.0))
    peak = max(int(counts.max()) if len(counts) else 0, 1)
    width, height = 400, 100
    bar = width / bins
    rects = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - c / peak * height:.1f}" width="{bar - 1:.1f}" '
        f'height="{c / peak * height:.1f}"><title>{i / bins:.2f}-{(i + 1) / bins:.2f}: {c}</title></rect>'
        for i, c in enumerate(counts)
    )
    return (
        f'<svg class="hist" viewBox="0 0 {width} {height + 14}" role="img" aria-label="confidence histogram">'
        f'{rects}<text x="0" y="{height + 12}">0</text><text x="{width - 8}" y="{height + 12}">1</text></svg>'
    )


@dataclass
class ReviewPage:
    """Collects rows while a run streams; `write()` puts index.html in place at the end."""

    folder: Path
    class_names: tuple[str, ...]
    metadata: ModelMetadata
    source: str
    max_thumbnails: int = 5000
    truth_from_folder: bool = False  # labelled folder: the parent folder's name is the class
    csv: Path | None = None  # the run's CSV: the page is built from its rows (`write_from_csv`)
    keep: bool = False  # a resume or retry of that CSV: keep the thumbnails its run wrote
    rows: list[dict] = field(default_factory=list)
    thumbnails: int = 0

    def __post_init__(self) -> None:
        self.started = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
        # Per path cell: its thumbnail, map and series place (what the CSV does not hold).
        self.extras: dict[str, dict] = {}
        owner = str(Path(os.path.realpath(self.csv))) if self.csv is not None else ""
        sidecar = _sidecar(self.folder)
        if self.keep and sidecar.get("csv") == owner:
            self.extras = sidecar.get("rows", {})
        else:  # a new run: nothing of an earlier run's page stays (and nothing else is touched)
            _clear_thumbnails(self.folder)
            (self.folder / SIDECAR).unlink(missing_ok=True)
        self._owner = owner
        (self.folder / "thumbs").mkdir(parents=True, exist_ok=True)

    def add(self, result: ImageResult) -> None:
        # What the CSV does not hold: the slice as the network saw it (the page scales it
        # down), its map in colour (laid over it at a chosen opacity) and the class whose map
        # it is (the predicted one), its volume or DICOM series and place there.
        place = result.place
        extra = {
            "thumb": "",
            "map": "",
            "map_class": "",
            "series": place.series if place is not None else "",
            "description": place.description if place is not None else "",
            "plane": place.plane if place is not None else "",
            "position": place.position if place is not None else None,
        }
        doubtful = bool(result.review or result.error)
        # The cap keeps disk and page size bounded; doubtful rows take their thumbnails first.
        if result.image is not None and (self.thumbnails < self.max_thumbnails or doubtful):
            # Named by the row's path, so a resumed run finds (or replaces) the earlier one's.
            base = "thumbs/" + hashlib.sha1(result.name.encode("utf-8", "surrogateescape")).hexdigest()[:20]
            slice_bgr = _bgr(result.image)
            # Two files a row, each used twice: the page lays the map over the slice itself,
            # in the table and in the enlarged view, so no blended copy is encoded.
            (self.folder / f"{base}.jpg").write_bytes(_jpeg(slice_bgr, LARGE_QUALITY))
            extra["thumb"] = f"{base}.jpg"
            if result.cam is not None and result.prediction:  # a class's map only where a class is given
                best = int(result.probabilities.argmax())
                layer = map_layer(result.cam[best], slice_bgr.shape[0])
                (self.folder / f"{base}-map.jpg").write_bytes(_jpeg(layer, MAP_QUALITY))
                extra["map"] = f"{base}-map.jpg"
                extra["map_class"] = self.class_names[best]
            self.thumbnails += 1
        self.extras[spreadsheet_safe(result.name)] = extra
        row = _page_row(
            result.name,
            result.prediction,
            result.confidence,
            result.probabilities,
            result.review,
            result.error,
            extra,
        )
        if self.truth_from_folder:
            row["truth"] = Path(result.name.split("#")[0]).parent.name
        self.rows.append(row)

    def write_from_csv(self, skipped: dict[str, int], rule: SeriesRule, negative: str) -> Path:
        """The page for the run's finished CSV: every row in it (kept, resumed, retried),
        with the thumbnails and series places this folder holds for them."""
        with open(self.csv, encoding="utf-8", newline="") as handle:
            header, *cells = list(csv_module.reader(handle))
        column = {name: index for index, name in enumerate(header)}
        probability_columns = [column[f"p_{name}"] for name in self.class_names]
        series = SeriesCollector(negative, rule)
        self.rows = []
        for row in cells:
            extra = self.extras.get(row[0], {})
            review, error, confidence = row[column["review"]], row[column["error"]], row[column["confidence"]]
            probabilities = (
                None
                if error or not row[probability_columns[0]]
                else np.asarray([float(row[index]) for index in probability_columns])
            )
            self.rows.append(
                _page_row(
                    row[0],
                    row[column["prediction"]],
                    float(confidence) if confidence else None,
                    probabilities,
                    review,
                    error,
                    extra,
                )
            )
            if extra.get("series"):
                place = SlicePlace(
                    extra["series"],
                    extra.get("plane", ""),
                    float(extra["position"]),
                    extra.get("description", ""),
                )
                reasons = tuple(split_review(review))
                series.add(
                    ImageResult(
                        row[0],
                        probabilities,
                        error,
                        reasons=reasons,
                        class_names=self.class_names,
                        place=place,
                    )
                )
        self.thumbnails = sum(bool(row["thumb"]) for row in self.rows)
        record = {"csv": self._owner, "rows": self.extras}
        write_text_atomically(self.folder / SIDECAR, json.dumps(record, ensure_ascii=True))
        failed = sum(bool(row["error"]) for row in self.rows)
        return self.write(failed, skipped, series.summaries())

    def write(self, failed: int, skipped: dict[str, int], series: Sequence[SeriesSummary] = ()) -> Path:
        """The page; `series` adds its section: a row per volume or series, with a strip of
        its strongest slices and a link that shows every slice of it in order."""
        counts = {name: sum(r["prediction"] == name for r in self.rows) for name in self.class_names}
        summary = {
            "source": self.source,
            "started": self.started,
            "finished": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
            "rows": len(self.rows),
            "per_class": counts,
            "flagged": sum(bool(r["review"]) for r in self.rows),
            "out_of_scope": sum(r["out_of_scope"] for r in self.rows),
            "failed": failed,
            "skipped": skipped,
            "thumbnail_cap": self.max_thumbnails,
            "thumbnails": self.thumbnails,
            "model": {
                "architecture": self.metadata.architecture,
                "precision": self.metadata.precision,
                "classes": list(self.class_names),
                "created": self.metadata.created,
                "tool_version": self.metadata.tool_version,
                "scope": self.metadata.scope,
                "rule_out": self.metadata.rule_out,
                "metrics": self.metadata.metrics,
            },
        }
        summary["negative"] = self.metadata.negative
        series_rows = [asdict(item) for item in series]
        data = json.dumps(
            {"summary": summary, "rows": self.rows, "classes": list(self.class_names), "series": series_rows}
        )
        # Inside <script>, "</" ends the element and "<!--" sends the parser into its
        # escaped states (one file named "<!--<script>.jpg" would blank the page), so no
        # "<" may appear raw: every one (and ">", "&", U+2028/9) becomes a JSON escape,
        # which JSON.parse reads back as the same character.
        for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                             ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):  # fmt: skip
            data = data.replace(raw, escaped)
        confidences = [r["confidence"] for r in self.rows if r["confidence"] is not None]
        template = (
            resources.files("brain_tumor_edge.runtime").joinpath("report_assets/page.html").read_text("utf-8")
        )
        values = {
            "TITLE": html.escape(f"Review: {self.source}"),
            "HISTOGRAM": histogram_svg(confidences),
            "DATA": data,
        }
        # One pass, so a placeholder inside a value (a path, say) is never substituted.
        page = re.sub(r"\{\{(TITLE|HISTOGRAM|DATA)\}\}", lambda match: values[match.group(1)], template)
        target = self.folder / "index.html"
        write_text_atomically(target, page)
        return target

"""What a run did, counted once: what it passed over, and the summary the CLI prints, the
review page shows and the run record keeps (`RunSummary.counts`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .commands import plural
from .csv_report import CsvReport
from .model import Classifier
from .reasons import KINDS, OTHER
from .series import SeriesSummary

STDOUT = "-"  # --csv -: the rows to standard output


@dataclass
class PassedOver:
    """What a run did not classify: counted for the summary, from one PC or from Ray workers."""

    ignored: int = 0  # not images
    special: int = 0  # pipes, sockets, devices
    excluded: int = 0  # matched an exclude glob (system clutter by default)
    skipped: Counter = field(default_factory=Counter)  # DICOM without pixels, by reason

    def add(self, counts: dict) -> None:
        self.ignored += counts.get("ignored", 0)
        self.special += counts.get("special", 0)
        self.excluded += counts.get("excluded", 0)
        self.skipped.update(counts.get("skipped", {}))

    def counts(self) -> dict[str, int]:
        """What was passed over, by kind, in words: the CLI, the page and the run record say
        the same (non-image files always, the other kinds when there are any)."""
        counts = {"non-image files": self.ignored}
        if self.special:
            counts["pipes, sockets or devices"] = self.special
        if self.excluded:
            counts["entries excluded (--exclude)"] = self.excluded
        counts.update({f"skipped: {why}": n for why, n in sorted(self.skipped.items())})
        return counts


@dataclass
class RunSummary:
    """What a run wrote, counted over the whole CSV (rows kept by a resume included)."""

    csv: Path
    model: Classifier
    report: CsvReport
    passed: PassedOver
    seconds: float
    failures: list[str]  # the first few failed files, "  name: error"
    review_page: Path | None = None
    series: list[SeriesSummary] = field(default_factory=list)  # with series_csv: one per series
    retried: int | None = None  # with retry_errors: how many files' rows had failed
    dicom_verdicts: list[Path] = field(default_factory=list)  # with dicom_sc: the files written

    @property
    def failed(self) -> int:
        return self.report.failed

    @property
    def rows(self) -> int:
        return self.report.rows

    def counts(self) -> dict:
        """One set of counts over the whole CSV, computed here once: the CLI's summary, the
        review page and the run record all show these."""
        report = self.report
        return {
            "files": report.files,
            "rows": report.rows,
            "classified": report.classified,
            "out_of_scope": report.out_of_scope,
            "failed": report.failed,
            "flagged": report.flagged,
            "per_class": {name: report.predicted[name] for name in self.model.class_names},
            "passed_over": self.passed.counts(),
        }

    def describe(self) -> str:
        """The paragraph bt-classify prints: counts, what was passed over, where the CSV is."""
        from .version import __version__

        report, passed, classifier = self.report, self.passed, self.model
        new = report.rows - report.kept
        if self.retried is not None:
            kept = f" (retried the {plural(self.retried, 'file')} that had failed; {report.kept} rows kept)"
        else:
            kept = f" (plus {report.kept} kept from the interrupted run)" if report.kept else ""
        per_class = ", ".join(f"{name} {report.predicted[name]}" for name in classifier.class_names)
        parts = [
            per_class,
            f"{report.out_of_scope} out of scope" if classifier.has_scope or report.out_of_scope else "",
            *(
                f"{report.kinds[kind.name]} {kind.summary}"
                for kind in (*KINDS, OTHER)
                if not kind.out_of_scope and report.kinds[kind.name]
            ),
            f"{report.failed} failed",
        ]
        skipped = [f"{n} skipped: {why}" for why, n in sorted(passed.skipped.items())]
        skipped += [plural(passed.ignored, "non-image file", "non-image files") + " skipped"]
        if passed.special:
            special = plural(passed.special, "pipe, socket or device", "pipes, sockets or devices")
            skipped += [f"{special} skipped"]
        if passed.excluded:
            skipped += [plural(passed.excluded, "entry", "entries") + " excluded (--exclude)"]
        files = report.files - report.kept_files
        lines = [
            f"{plural(new, 'row')} from {plural(files, 'file')} in {self.seconds:.1f}s "
            f"({new / max(self.seconds, 1e-9):.1f} rows/s){kept}: {report.classified} classified, "
            f"{report.out_of_scope} out of scope, {report.failed} failed",
            "; ".join(p for p in parts if p) + "; " + "; ".join(skipped) + ".",
        ]
        if not classifier.has_scope:
            lines.append(
                "note: this model has no scope output, so out-of-scope detection is unavailable "
                "(only the input checks ran); re-export it with bt-export"
            )
        where = "standard output" if str(self.csv) == STDOUT else self.csv
        lines.append(f"CSV: {where} (brain-tumor-edge {__version__}, model {classifier.path.name})")
        if self.failures:
            more = report.failed - len(self.failures)
            shown = self.failures + ([f"  ... and {more} more (see the error column)"] if more > 0 else [])
            lines.append("failed files:\n" + "\n".join(shown))
        return "\n".join(lines)

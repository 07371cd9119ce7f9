"""The "Figures" section of docs/model-report.md, as markdown, from a model report's JSON.

    python bench/report_tables.py runtime/models/default.report.json > /tmp/figures.md

So the document's tables are the report's figures, written by a program, not retyped.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

COLUMNS = (
    "| sequence | tumour slices | missed | detected | tumour-free | false alarms | AUROC "
    "| area-matched AUROC | area alone | pointing game (centre) | series |"
)

# Bands of depth below the vertex (bench/slice_sets.py, `levels`, which records their mm).
LEVEL_LABELS = {
    "above": "above the brain levels",
    "brain": "brain levels",
    "skull_base": "skull base",
    "below": "face and neck",
}


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def row(sequence: str, figures: dict) -> str:
    tumour, free = figures["tumour_slices"], figures["tumour_free_slices"]
    point = figures.get("pointing_game")
    pointing = f"{pct(point['map'])} of {point['scored']} ({pct(point['centre'])})" if point else "—"
    series = "—"
    if "series" in figures:
        s = figures["series"]
        if s["tumour_volumes"]:
            series = f"tumour likely {s['tumour_volumes_called_tumour_likely']}/{s['tumour_volumes']}"
        if s["healthy_volumes"]:
            series = (
                f"no tumour found {s['healthy_volumes_no_tumour_found']}/{s['healthy_volumes']}, "
                f"review {s['healthy_volumes_review']}, tumour likely {s['healthy_volumes_tumour_likely']}"
            )
    has_tumours, has_free = tumour["images"] > 0, free["images"] > 0
    cells = [
        sequence,
        str(tumour["images"]),
        pct(tumour.get("missed_rate")) if has_tumours else "—",
        pct(tumour.get("detected_rate")) if has_tumours else "—",
        str(free["images"]),
        pct(free.get("false_alarm_rate")) if has_free else "—",
        number(figures.get("auroc")),
        number(figures.get("area_matched_auroc")),
        number(figures.get("brain_area_auroc")),
        pointing,
        series,
    ]
    return "| " + " | ".join(cells) + " |"


def tables(report: dict) -> str:
    testing = report["testing"]
    lines = [
        "### Testing (670, in scope)",
        "",
        "| rows | images | accuracy | recall glioma / meningioma / notumor / pituitary |",
        "|---|---|---|---|",
    ]
    for key, label in (("all", "all"), ("not_flagged", "not flagged")):
        part = testing[key]
        recall = " / ".join(pct(r) for r in part["recall"].values())
        lines.append(f"| {label} | {part['images']} | {pct(part['accuracy'])} | {recall} |")
    lines += [
        "",
        f"flagged out of scope {pct(testing['flagged_out_of_scope'])}; healthy sent for review by the "
        f"rule-out level {pct(testing['healthy_sent_for_review_by_rule_out'])}; tumours called notumor "
        f"(in scope) {testing['tumours_called_negative']}, of them unflagged "
        f"{testing['tumours_called_negative_unflagged']}",
        "",
        "### Out of scope",
        "",
    ]
    away = report["out_of_scope"]
    lines.append(
        f"{pct(away['flagged_or_refused'])} of {away['inputs']} flagged or refused (input checks alone "
        f"{pct(away['by_input_checks_alone'])}, scope score alone {pct(away['by_scope_score_alone'])}); "
        f"AUROC scope {away['auroc_scope_score']}, "
        f"max-softmax baseline {away['auroc_max_softmax_baseline']}; "
        f"not flagged: {', '.join(away['not_flagged']) or 'none'}"
    )
    if "external" in report:
        ext = report["external"]
        lines += ["", "### external/tumour-positive", "",
                  f"{ext['images']} slices: missed {pct(ext['missed_rate'])} ({ext['missed']}), "
                  f"detected {pct(ext['detected_rate'])}, flagged {pct(ext['flagged_rate'])}"]  # fmt: skip
    for group in ("slice_sets", "volumes"):
        for folder, figures in report.get(group, {}).items():
            name = folder.removeprefix("../shared/data/")
            cut = " (validation patients/groups only)" if figures.get("restricted_to_validation") else ""
            lines += ["", f"### {name}{cut}", "", COLUMNS, "|---" * 11 + "|"]
            lines += [row(sequence, part) for sequence, part in figures["sequences"].items()]
            lines += _level_lines(figures["sequences"])
    return "\n".join(lines) + "\n"


def _level_lines(sequences: dict) -> list[str]:
    """Healthy volumes: false alarms per band of depth below the vertex (slice_sets.py)."""
    lines = []
    for sequence, part in sequences.items():
        if levels := part.get("levels"):
            shown = "; ".join(
                f"{label} ({_millimetres(levels[key]['mm'])}) {pct(levels[key]['false_alarm_rate'])} "
                f"of {levels[key]['slices']}"
                for key, label in LEVEL_LABELS.items()
                if levels[key]["slices"]
            )
            lines.append(f"- {sequence}, false alarms by level: {shown}")
    return ["", *lines] if lines else []


def _millimetres(band: list) -> str:
    low, high = band
    if low is None:
        return f"< {high:g} mm"
    return f"> {low:g} mm" if high is None else f"{low:g}-{high:g} mm"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", type=Path)
    args = parser.parse_args()
    print(tables(json.loads(args.report.read_text(encoding="utf-8"))), end="")


if __name__ == "__main__":
    main()

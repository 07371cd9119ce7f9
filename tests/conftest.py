"""Shared fixtures: the real dataset (skipped when absent), samples, labelled images for the
training and export paths (the real dataset in CI, a small set made from samples/ in a fresh
clone), and a briefly trained model."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
DATASET = Path(os.environ.get("BT_DATA", REPO.parent / "shared" / "data" / "brain-tumor-mri"))


@pytest.fixture(scope="session")
def dataset() -> Path:
    if not (DATASET / "Training").is_dir():
        pytest.skip(f"real data not available at {DATASET} (set BT_DATA to the dataset folder)")
    return DATASET


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES


@dataclass(frozen=True)
class Labelled:
    """Labelled folders for tests that train and export."""

    training: Path
    testing: Path
    max_images: int | None  # a stratified subset of the training folder, or all of it
    real: bool  # the real dataset (CI), or the small set made from samples/


# Variants per sample image in the small set: 3 notumor samples x 40 = 120 healthy images, so
# a 20% validation split holds the 20 that fitting a rule-out level needs (export/rule_out.py).
VARIANTS_PER_SAMPLE = 40


def make_small_labelled_set(folder: Path, variants: int = VARIANTS_PER_SAMPLE, seed: int = 0) -> Path:
    """samples/ grown into a labelled folder: each image rotated, shifted, zoomed, flipped and
    re-windowed `variants` times (at most 192 px, JPEG). Distinct enough that the split's twin
    grouping keeps most apart; real enough for training, export and the parity gate to run."""
    rng = np.random.default_rng(seed)
    for source in sample_files():
        image = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
        scale = 192 / max(image.shape)
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        height, width = image.shape
        out = folder / source.parent.name
        out.mkdir(parents=True, exist_ok=True)
        for index in range(variants):
            matrix = cv2.getRotationMatrix2D(
                (width / 2, height / 2), rng.uniform(-20, 20), rng.uniform(0.85, 1.15)
            )
            matrix[:, 2] += rng.uniform(-0.08, 0.08, 2) * (width, height)
            variant = cv2.warpAffine(image, matrix, (width, height))
            if rng.random() < 0.5:
                variant = variant[:, ::-1]
            gamma = rng.uniform(0.75, 1.33)
            variant = (255 * (variant / 255.0) ** gamma).astype(np.uint8)
            cv2.imwrite(str(out / f"{source.stem}_{index:02d}.jpg"), variant)
    return folder


@pytest.fixture(scope="session")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Labelled:
    if (DATASET / "Training").is_dir():
        return Labelled(DATASET / "Training", DATASET / "Testing", 1200, real=True)
    small = make_small_labelled_set(tmp_path_factory.mktemp("small-labelled"))
    return Labelled(small, SAMPLES, None, real=False)


def run_python(script: str, *args: object) -> subprocess.CompletedProcess[str]:
    """`python -c SCRIPT ARGS...` in a fresh process from the repository root."""
    command = [sys.executable, "-c", script, *(str(arg) for arg in args)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*/*.jpg"))


@pytest.fixture(scope="session")
def trained_run(labelled: Labelled, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A paper-architecture run for 3 epochs, on 1,200 real images (~60% accurate) or the small
    set: enough to export."""
    pytest.importorskip("torch")
    from brain_tumor_edge.train.config import TrainConfig
    from brain_tumor_edge.train.recipe import Recipe
    from brain_tumor_edge.train.trainer import train

    out = tmp_path_factory.mktemp("run")
    train(
        TrainConfig(
            data=labelled.training,
            out=out,
            recipe=Recipe(epochs=3),
            max_images=labelled.max_images,
            seed=5,
            show_progress=False,
        )
    )
    return out


def train_one_epoch(labelled: Labelled, out: Path, *extra: str):
    """`bt-train` for one epoch on the labelled set (through the CLI, as a user runs it):
    the second stages, averages and refusals of tests/train build on it. Returns the
    CliRunner's result."""
    from typer.testing import CliRunner

    from brain_tumor_edge.train.cli import train_app

    sized = ["--max-images", str(labelled.max_images)] if labelled.max_images else []
    arguments = ["--data", str(labelled.training), "--out", str(out), "--epochs", "1", "--quiet"]
    return CliRunner().invoke(train_app, [*arguments, *sized, *extra])


def samples_the_bundled_model_gets_right() -> int:
    """How many of samples/ the bundled model classifies correctly (one is a known miss:
    model card), computed, so tests compare paths against each other, not a typed count."""
    from brain_tumor_edge import classify_folder, load_model

    results = classify_folder(SAMPLES, load_model())
    return sum(result.prediction == Path(result.name).parent.name for result in results)


def as_nobody(task: Callable[[], str]) -> str:
    """`task()` in a forked child that has dropped root for the unprivileged user `nobody`
    (uid 65534), as a hospital PC's user runs: root reads and writes whatever the mode.
    The modules are already loaded, so the child reads nothing but what `task` opens.
    Without root, `task` runs here."""
    if os.geteuid() != 0:
        return task()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: never returns into pytest
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            os.write(write, task().encode("utf-8", "surrogateescape"))
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, encoding="utf-8", errors="surrogateescape") as handle:
        answer = handle.read()
    os.waitpid(child, 0)
    return answer

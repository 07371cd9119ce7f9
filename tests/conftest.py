"""Shared fixtures: the real dataset (skipped when absent), samples, and a briefly trained model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def run_python(script: str, *args: object) -> subprocess.CompletedProcess[str]:
    """`python -c SCRIPT ARGS...` in a fresh process from the repository root."""
    command = [sys.executable, "-c", script, *(str(arg) for arg in args)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*/*.jpg"))


@pytest.fixture(scope="session")
def trained_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A paper-architecture run on 1,200 real images for 3 epochs (~60% accurate): enough to export."""
    pytest.importorskip("torch")
    from brain_tumor_edge.train.config import TrainConfig
    from brain_tumor_edge.train.recipe import Recipe
    from brain_tumor_edge.train.trainer import train

    out = tmp_path_factory.mktemp("run")
    train(
        TrainConfig(
            data=dataset / "Training",
            out=out,
            recipe=Recipe(epochs=3),
            max_images=1200,
            seed=5,
            show_progress=False,
        )
    )
    return out


def samples_the_bundled_model_gets_right() -> int:
    """How many of samples/ the bundled model classifies correctly (one is a known miss:
    model card), computed, so tests compare paths against each other, not a typed count."""
    from brain_tumor_edge import classify_folder, load_model

    results = classify_folder(SAMPLES, load_model())
    return sum(result.prediction == Path(result.name).parent.name for result in results)

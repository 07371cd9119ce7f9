"""The split as training builds it (train/split.py, train/twins.py): patients, groups and
twins, exact and near and chained, each on one side."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from brain_tumor_edge.runtime.preprocess import PreprocessConfig
from brain_tumor_edge.train.mix import Mix
from brain_tumor_edge.train.split import SplitConfig, epoch_draw, load_split
from brain_tumor_edge.train.twins import twin_groups
from tests.conftest import sample_files


def _distinct_images(folder: Path, count: int, seed: int) -> list[Path]:
    """Random blob images: no two are near twins."""
    rng = np.random.default_rng(seed)
    paths = []
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = cv2.GaussianBlur(rng.integers(0, 256, (64, 64)).astype(np.uint8), (0, 0), 4)
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX)
        path = folder / f"{index:03d}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def test_planted_twins_and_chains_land_on_one_side(tmp_path: Path):
    """A re-encoded, shifted twin under another name and class, and a chain a = b (bytes),
    b ~ c (near): whatever the seed, each stays on one side of the split."""
    root = tmp_path / "data"
    for name in ("glioma", "notumor"):
        _distinct_images(root / name, 30, seed=len(name))
    original = sample_files()[0]
    image = cv2.imread(str(original), cv2.IMREAD_GRAYSCALE)
    a = root / "glioma" / "chain_a.jpg"
    cv2.imwrite(str(a), image)
    (root / "notumor" / "chain_b.jpg").write_bytes(a.read_bytes())  # exact twin, other class
    shifted = np.roll(image, 2, axis=1)
    cv2.imwrite(str(root / "notumor" / "chain_c.png"), shifted)  # re-encoded and shifted
    mix = Mix.from_folders(root)
    names = {"chain_a.jpg", "chain_b.jpg", "chain_c.png"}
    for seed in range(8):
        split = load_split(mix, PreprocessConfig(size=64), SplitConfig(0.3, seed, None), threads=1)
        sides = {p.name: "train" for p in split.train.paths} | {p.name: "val" for p in split.validation.paths}
        assert len({sides[name] for name in names}) == 1, (seed, {n: sides[n] for n in names})
        assert len(split.train.paths) + len(split.validation.paths) == 63


def test_twin_groups_join_chains_and_known_groups_but_not_look_alikes_of_named_patients():
    sha = ["x", "x", "y", "z", "w", "v"]
    phash = np.array([5, 5, 5 ^ 0b1, 1 << 40, 1 << 40, 7], np.uint64)
    # 0 = 1 by bytes, 1 ~ 2 near (one bit): a chain; 3 and 4 look alike but belong to
    # named patients, so only their patients decide; 4 and 5 are one patient.
    groups = twin_groups(sha, phash, [None, None, None, "p1", "p2", "p2"])
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] != groups[4] and groups[4] == groups[5]
    assert len(set(groups)) == 3


def test_no_patient_is_on_both_sides_and_every_source_gets_validation(tmp_path: Path):
    rows = []
    for patient in range(12):
        for index, path in enumerate(_distinct_images(tmp_path / "m" / f"p{patient}", 6, seed=100 + patient)):
            label = "glioma" if index % 2 else "notumor"
            rows.append(
                {"path": str(path.relative_to(tmp_path / "m")), "label": label, "patient": f"p{patient}"}
            )
    with open(tmp_path / "m" / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "patient"])
        writer.writeheader()
        writer.writerows(rows)
    for name in ("glioma", "notumor"):
        _distinct_images(tmp_path / "k" / name, 20, seed=len(name) + 50)
    mix = Mix.from_dict(
        {
            "classes": ["glioma", "notumor"],
            "source": [
                {"name": "k", "folders": "k"},
                {"name": "m", "manifest": "m/manifest.csv", "group_column": "patient"},
            ],
        },
        base=tmp_path,
    )
    split = load_split(mix, PreprocessConfig(size=64), SplitConfig(0.25, 1, None), threads=1)
    patients = lambda s: {p.parent.name for p, src in zip(s.paths, s.origin.sources, strict=True) if src == 1}  # noqa: E731
    assert patients(split.train) and patients(split.validation)
    assert not patients(split.train) & patients(split.validation)
    assert set(split.validation.origin.sources) == {0, 1}


def test_epoch_draw_takes_each_source_by_its_weight_and_depends_only_on_seed_and_epoch():
    sources = np.repeat([0, 1, 2], [100, 50, 10])
    draw = epoch_draw(sources, (1.0, 0.5, 2.0), seed=3, epoch=4)
    assert np.bincount(sources[draw]).tolist() == [100, 25, 20]
    assert len(set(draw[sources[draw] == 0])) == 100  # weight 1: each image once
    assert np.array_equal(draw, epoch_draw(sources, (1.0, 0.5, 2.0), seed=3, epoch=4))
    other = epoch_draw(sources, (1.0, 0.5, 2.0), seed=3, epoch=5)
    assert set(other[sources[other] == 1]) != set(draw[sources[draw] == 1])  # a fresh half each epoch

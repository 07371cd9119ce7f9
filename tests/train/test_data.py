from pathlib import Path

import numpy as np
import pytest

from brain_tumor_edge.runtime.preprocess import PreprocessConfig
from brain_tumor_edge.train.data import (
    DataError,
    duplicate_safe_split,
    load_images,
    scan_labelled_folder,
    stratified_subset,
    with_tumour_unknown,
)
from brain_tumor_edge.train.targets import TUMOUR_UNKNOWN


def test_split_is_stratified_and_keeps_duplicates_together():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), [100, 200, 150, 50])
    hashes = [f"h{i}" for i in range(len(labels))]
    for i in range(0, 200, 10):  # twenty files appearing twice, within one class
        hashes[i + 1] = hashes[i]
    hashes[rng.integers(0, 500)] = hashes[0]  # even across classes they stay together
    train, val = duplicate_safe_split(labels, hashes, 0.2, seed=3)
    assert len(set(train) & set(val)) == 0 and len(train) + len(val) == len(labels)
    assert not {hashes[i] for i in train} & {hashes[i] for i in val}
    for label, count in enumerate([100, 200, 150, 50]):
        share = (labels[val] == label).sum() / count
        assert 0.15 <= share <= 0.25


def test_split_is_reproducible_for_a_seed():
    labels = np.repeat(np.arange(2), 50)
    hashes = [str(i) for i in range(100)]
    first = duplicate_safe_split(labels, hashes, 0.3, seed=7)
    again = duplicate_safe_split(labels, hashes, 0.3, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))


def test_bad_folders_are_refused(tmp_path):
    with pytest.raises(DataError, match="not found"):
        scan_labelled_folder(tmp_path / "nope")
    with pytest.raises(DataError, match="no labelled images"):
        scan_labelled_folder(tmp_path)
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.jpg").write_bytes(b"x")
    with pytest.raises(DataError, match="no labelled images"):
        scan_labelled_folder(tmp_path)


def test_real_training_split_has_no_shared_content(dataset: Path):
    files = stratified_subset(scan_labelled_folder(dataset / "Training"), 400, seed=0)
    counts = np.bincount(files.labels)
    assert len(counts) == 4 and counts.min() >= 80
    images, skipped = load_images(files, PreprocessConfig(), threads=2, show_progress=False)
    assert not skipped and images.images.shape == (len(files.paths), 3, 150, 150)
    train, val = duplicate_safe_split(images.labels, images.hashes, 0.2, seed=0)
    assert not {images.hashes[i] for i in train} & {images.hashes[i] for i in val}


def test_tumour_unknown_images_are_a_stratum_of_their_own_and_twins_stay_together():
    labels = np.concatenate([np.repeat(np.arange(4), 60), np.full(100, TUMOUR_UNKNOWN)])
    hashes = [f"h{i}" for i in range(len(labels))]
    hashes[250] = hashes[2]  # an unknown-type image that is a twin of a glioma image
    _, val = duplicate_safe_split(labels, hashes, 0.2, seed=0)
    unknown_share = (labels[val] == TUMOUR_UNKNOWN).sum() / 100
    assert 0.15 <= unknown_share <= 0.25, "validation gets its share of the unknown-type images"
    assert (2 in val) == (250 in val), "twins across grains stay on one side"


def test_with_tumour_unknown_adds_the_folder_as_unknown_type(samples: Path, tmp_path: Path):
    extra = tmp_path / "extra" / "nested"
    extra.mkdir(parents=True)
    for source in sorted((samples / "glioma").glob("*.jpg"))[:3]:
        (extra / source.name).write_bytes(source.read_bytes())
    labelled = scan_labelled_folder(samples)
    files = with_tumour_unknown(labelled, tmp_path / "extra")
    assert files.class_names == labelled.class_names
    assert len(files.paths) == len(labelled.paths) + 3
    assert (files.labels == TUMOUR_UNKNOWN).sum() == 3
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        with_tumour_unknown(labelled, empty)
    with pytest.raises(DataError, match="not found"):
        with_tumour_unknown(labelled, tmp_path / "missing")

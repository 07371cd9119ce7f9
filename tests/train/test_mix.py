"""The mix description (train/mix.py): parsing, label mapping, groups and sequences."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from brain_tumor_edge.train.data import files_from_mix
from brain_tumor_edge.train.entries import list_entries
from brain_tumor_edge.train.mix import TUMOUR, Mix, MixError
from brain_tumor_edge.train.targets import TUMOUR_UNKNOWN
from tests.conftest import REPO


def _image(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((32, 32), value, np.uint8))


def _manifest(folder: Path, rows: list[dict]) -> Path:
    for index, row in enumerate(rows):
        _image(folder / row["path"], 10 + index)
    path = folder / "manifest.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def mix_file(tmp_path: Path) -> Path:
    for name in ("glioma", "notumor"):
        _image(tmp_path / "kaggle" / name / "a.jpg", 50)
    _image(tmp_path / "unknown" / "x.jpg", 90)
    _manifest(
        tmp_path / "cases",
        [
            {"path": "p1/1_t1.jpg", "label": "glioma", "sequence": "t1", "patient": "p1"},
            {"path": "p1/2_t2.jpg", "label": "notumor", "sequence": "t2", "patient": "p1"},
            {"path": "p2/1_t1.jpg", "label": "other", "sequence": "t1", "patient": "p2"},
            {"path": "p2/2_t1.jpg", "label": "junk", "sequence": "t1", "patient": "p2"},
        ],
    )
    path = tmp_path / "mix.toml"
    path.write_text(
        """
classes = ["glioma", "notumor"]
negative_class = "notumor"

[[source]]
name = "kaggle"
folders = "kaggle"

[[source]]
name = "unknown"
folder = "unknown"
label = "tumour"

[[source]]
name = "cases"
manifest = "cases/manifest.csv"
group_column = "patient"
sequence_column = "sequence"
labels = { other = "tumour", junk = "skip" }
weight = 0.5
""",
        encoding="utf-8",
    )
    return path


def test_a_mix_maps_labels_groups_and_sequences(mix_file: Path):
    mix = Mix.from_toml(mix_file)
    assert [s.name for s in mix.sources] == ["kaggle", "unknown", "cases"]
    assert mix.sources[2].weight == 0.5 and mix.negative_class == "notumor"
    # Paths are relative to the TOML file, not to where the command runs.
    assert mix.sources[0].folders == mix_file.parent / "kaggle"

    cases = list_entries(mix, 2)
    assert [(e.path.name, e.label, e.sequence) for e in cases] == [
        ("1_t1.jpg", "glioma", "t1"),
        ("2_t2.jpg", "notumor", "t2"),
        ("1_t1.jpg", TUMOUR, "t1"),  # "other" -> a tumour, never notumor; "junk" skipped
    ]
    assert cases[0].group == cases[1].group != cases[2].group

    files = files_from_mix(mix)
    assert files.class_names == ("glioma", "notumor")
    assert list(files.labels) == [0, 1, TUMOUR_UNKNOWN, 0, 1, TUMOUR_UNKNOWN]
    assert list(files.provenance.sources) == [0, 0, 1, 2, 2, 2]


def test_the_record_round_trips(mix_file: Path):
    mix = Mix.from_toml(mix_file)
    assert Mix.from_record(mix.as_record()) == Mix(
        tuple(s.__class__(**{**s.__dict__, **{k: Path(v).resolve() for k, v in s.__dict__.items()
                                               if k in ("folders", "folder", "manifest") and v}})
              for s in mix.sources),
        mix.classes,
        mix.negative_class,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[source]]\nname = "a"\n', "exactly one of folders, folder, manifest"),
        ('[[source]]\nname = "a"\nfolder = "x"\n', "needs its label"),
        ('[[source]]\nname = "a"\nfolders = "x"\ncolour = 1\n', "unknown keys"),
        ('[[source]]\nname = "a"\nfolders = "x"\nlabels = { a = "cat" }\n', "unknown labels"),
        ('negative_class = "healthy"\n[[source]]\nname = "a"\nfolders = "x"\n', "negative class"),
        ("classes = [\n", "not valid TOML"),
        ("", "at least one source"),
    ],
)
def test_bad_mixes_are_refused_with_a_reason(tmp_path: Path, text: str, message: str):
    path = tmp_path / "mix.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(MixError, match=message):
        Mix.from_toml(path)


def test_an_unmapped_manifest_label_is_an_error_not_a_guess(tmp_path: Path):
    _manifest(tmp_path / "m", [{"path": "a.jpg", "label": "lymphoma"}])
    mix = Mix.from_dict({"source": [{"name": "m", "manifest": "m/manifest.csv"}]}, base=tmp_path)
    with pytest.raises(MixError, match="'lymphoma' maps to no class"):
        list_entries(mix, 0)


BUNDLED_STAGES = ["default.stage2.mix.toml", "default.stage3.mix.toml"]


@pytest.mark.parametrize("name", ["default.mix.toml", *BUNDLED_STAGES])
def test_the_bundled_mixes_parse_and_train_on_nothing_external(name: str):
    mix = Mix.from_toml(REPO / "runtime" / "models" / name)
    assert {s.name for s in mix.sources} >= {"kaggle", "br35h", "brats", "brats-mirrored", "feltrin", "lgg"}
    for source in mix.sources:
        assert "external" not in source.location.resolve().parts, source.name


@pytest.mark.parametrize("name", BUNDLED_STAGES)
def test_each_later_stage_mix_differs_from_the_first_in_weights_only(name: str):
    """So `bt-train --init-from` accepts it (the first run's validation images stay unseen)."""
    first, second = (Mix.from_toml(REPO / "runtime" / "models" / n) for n in ("default.mix.toml", name))
    assert [replace(s, weight=1.0) for s in first.sources] == [replace(s, weight=1.0) for s in second.sources]
    assert [s.weight for s in first.sources] != [s.weight for s in second.sources]

import shutil
from pathlib import Path

import cv2
import numpy as np
from typer.testing import CliRunner

from brain_tumor_edge.train.audit import audit
from brain_tumor_edge.train.cli import audit_app
from tests.conftest import sample_files


def plant(tmp_path: Path) -> tuple[Path, Path]:
    """A folder with one exact duplicate, one re-encoded shifted twin under another label."""
    files = sample_files()
    glioma_a, glioma_b, meningioma = files[0], files[1], files[6]
    folder = tmp_path / "data"
    for name in ("glioma", "meningioma"):
        (folder / name).mkdir(parents=True)
    shutil.copy(glioma_a, folder / "glioma" / "a.jpg")
    shutil.copy(glioma_a, folder / "glioma" / "a_copy.jpg")  # exact duplicate
    shutil.copy(glioma_b, folder / "glioma" / "b.jpg")
    shutil.copy(meningioma, folder / "meningioma" / "m.jpg")
    image = cv2.imread(str(glioma_b))
    shifted = np.roll(image, (3, -2), axis=(0, 1))
    cv2.imwrite(str(folder / "meningioma" / "b_twin.jpg"), shifted, [cv2.IMWRITE_JPEG_QUALITY, 70])
    reference = tmp_path / "reference"
    (reference / "glioma").mkdir(parents=True)
    (reference / "meningioma").mkdir(parents=True)
    shutil.copy(meningioma, reference / "meningioma" / "same_m.jpg")
    shutil.copy(files[2], reference / "glioma" / "other.jpg")
    return folder, reference


def test_audit_finds_planted_duplicates_and_label_conflict(tmp_path: Path):
    folder, reference = plant(tmp_path)
    report = audit(folder, reference)
    assert report.images == 5
    assert report.exact_duplicate_files == 2
    # a/a_copy (exact, so also near) and b/b_twin (re-encoded and shifted)
    assert report.near_duplicate_pairs == 2
    assert [tuple(Path(p).name for p in pair) for pair in report.label_conflicts] == [("b.jpg", "b_twin.jpg")]
    assert report.exact_twins_in_reference == 1
    assert [Path(p).name for p in report.leaked] == ["m.jpg"]


def test_distinct_slices_are_not_twins(tmp_path: Path):
    folder = tmp_path / "data"
    for index, path in enumerate(sample_files()):
        target = folder / ("a" if index % 2 else "b")
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    report = audit(folder)
    assert report.exact_duplicate_files == 0 and report.near_duplicate_pairs == 0


def test_audit_cli_prints_a_summary(tmp_path: Path):
    folder, reference = plant(tmp_path)
    result = CliRunner().invoke(
        audit_app, [str(folder), "--reference", str(reference), "--json", str(tmp_path / "a.json")]
    )
    assert result.exit_code == 0, result.output
    assert "1 label conflicts" in result.output and (tmp_path / "a.json").is_file()


def test_an_unreadable_file_is_a_finding_not_a_traceback(tmp_path: Path):
    folder = tmp_path / "data"
    for index, path in enumerate(sample_files()[:4]):
        target = folder / ("a" if index % 2 else "b")
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    (folder / "a" / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")  # unreadable whoever runs it
    result = CliRunner().invoke(audit_app, [str(folder)])
    assert result.exit_code == 0, result.output
    assert "1 unreadable" in result.output and "gone.jpg" in result.output
    assert "Traceback" not in result.output

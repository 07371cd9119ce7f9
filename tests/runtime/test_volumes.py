"""NIfTI volumes and DICOM series: slices as radiologists see them, a verdict per series."""

from __future__ import annotations

import csv
import gzip
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from brain_tumor_edge.runtime.classify import Classification, Settings
from brain_tumor_edge.runtime.cli import app
from brain_tumor_edge.runtime.results import ImageResult, SlicePlace
from brain_tumor_edge.runtime.series import (
    NO_TUMOUR_FOUND,
    REVIEW,
    TUMOUR_LIKELY,
    SeriesRule,
    summarise,
)
from tests.conftest import REPO, sample_files

nibabel = pytest.importorskip(
    "nibabel", reason="the volumes extra is not installed (pip install '.[volumes]')"
)
from brain_tumor_edge.runtime.volumes import FIRST_VOLUME_ONLY, Volume  # noqa: E402

BRATS = REPO.parent / "shared" / "data" / "extra"
CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def _save(data: np.ndarray, affine: np.ndarray, path: Path) -> Path:
    nibabel.save(nibabel.Nifti1Image(data, affine), str(path))
    return path


def test_slices_are_shown_anterior_up_and_the_patients_right_on_the_left(tmp_path: Path):
    """A marker in the patient's right, anterior, upper quarter, stored in three orientations
    (RAS, LPS, and sagittal slices): every reading puts it at the top left of a high slice."""
    ras = np.zeros((40, 50, 30), np.int16)  # x: left -> right, y: posterior -> anterior, z: up
    ras[30:38, 40:48, 22:26] = 1000  # right, anterior, superior
    ras[5:10, 5:10, 2:4] = 300  # a dimmer mark: left, posterior, inferior
    layouts = {
        "ras": (ras, np.diag([1.0, 1.0, 1.0, 1.0])),
        "lps": (ras[::-1, ::-1, :], np.diag([-1.0, -1.0, 1.0, 1.0])),
        # Stored as (z, x, y): axis 0 runs superior, axis 1 right, axis 2 anterior.
        "sagittal": (
            np.transpose(ras, (2, 0, 1)),
            np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]]),
        ),
    }
    for name, (data, affine) in layouts.items():
        volume = Volume(_save(np.ascontiguousarray(data), affine, tmp_path / f"{name}.nii.gz"))
        assert volume.shape == (40, 50, 30), name
        slices = dict(volume.slices(volume.info().window))
        assert len(slices) == 30
        top = slices[24]  # rows: anterior (row 0) -> posterior; columns: patient's right -> left
        rows, columns = np.nonzero(top == top.max())
        assert rows.max() < 10 and columns.max() < 10, name  # top left
        low = slices[3]
        rows, columns = np.nonzero(low > 0)
        assert rows.min() >= 40 and columns.min() >= 30, name  # bottom right: posterior, left


@pytest.mark.skipif(not (BRATS / "brats-volumes").is_dir(), reason=f"no BraTS volumes at {BRATS}")
def test_slices_match_the_extra_brats_slices_cut_from_the_same_volumes():
    """extra/brats was cut from these volumes (every second slice, 99.5th percentile of the
    brain): the runtime's reading matches it slice for slice, to JPEG noise."""
    for patient in sorted((BRATS / "brats-volumes").iterdir()):
        for sequence in ("flair", "t1", "t1c", "t2"):
            volume = Volume(patient / f"{sequence}.nii.gz")
            compared = 0
            for index, grey in volume.slices(volume.info().window):
                jpeg = BRATS / "brats" / patient.name / f"{index:03d}_{sequence}.jpg"
                if jpeg.exists():
                    cut = cv2.imread(str(jpeg), cv2.IMREAD_GRAYSCALE)
                    assert np.abs(grey.astype(int) - cut).mean() < 1.5, (patient.name, sequence, index)
                    compared += 1
            assert compared >= 40, (patient.name, sequence)


def test_nibabels_own_files_give_a_row_per_slice_and_a_note_for_4d(tmp_path: Path):
    from nibabel.testing import data_path

    folder = tmp_path / "nifti"
    folder.mkdir()
    for name in ("anatomical.nii", "example4d.nii.gz", "standard.nii.gz"):
        (folder / name).write_bytes((Path(data_path) / name).read_bytes())
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        app, [str(folder), "--csv", str(out), "--series-csv", str(tmp_path / "s.csv")]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    by_file: dict[str, list[dict]] = {}
    for row in rows:
        by_file.setdefault(Path(row["path"].split("#")[0]).name, []).append(row)
    assert len(by_file["anatomical.nii"]) == 25 and len(by_file["example4d.nii.gz"]) == 24
    assert len(by_file["standard.nii.gz"]) == 7
    assert [r["path"].rsplit("#", 1)[1] for r in by_file["anatomical.nii"]] == [f"z={k}" for k in range(25)]
    assert all(FIRST_VOLUME_ONLY in r["review"] for r in by_file["example4d.nii.gz"])
    assert not any(FIRST_VOLUME_ONLY in r["review"] for r in by_file["anatomical.nii"])
    assert all(r["error"] == "" for r in rows)
    series = {Path(r["series"]).name: r for r in csv.DictReader((tmp_path / "s.csv").open(encoding="utf-8"))}
    assert set(series) == set(by_file)
    assert series["anatomical.nii"]["slices"] == "25" and series["anatomical.nii"]["plane"] == "axial"


def test_a_broken_or_truncated_volume_is_an_error_row_and_the_batch_goes_on(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "garbage.nii.gz").write_bytes(b"not a volume at all")
    data = np.random.default_rng(0).integers(0, 1000, (64, 64, 40)).astype(np.int16)
    whole = _save(data, np.eye(4), tmp_path / "whole.nii.gz").read_bytes()
    raw = gzip.decompress(whole)
    (folder / "cut.nii.gz").write_bytes(gzip.compress(raw[: len(raw) // 2]))  # half the voxels
    cv2.imwrite(str(folder / "ok.jpg"), cv2.imread(str(sample_files()[0])))
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(app, [str(folder), "--csv", str(out)])
    assert result.exit_code == 1, result.output
    rows = {row["path"]: row for row in csv.DictReader(out.open(encoding="utf-8"))}
    assert rows[str(folder / "garbage.nii.gz")]["error"].startswith("not a readable NIfTI file")
    cut = [row for path, row in rows.items() if path.startswith(str(folder / "cut.nii.gz"))]
    assert len(cut) == 1 and cut[0]["error"]  # the window pass reads every slab, so it fails first
    assert rows[str(folder / "ok.jpg")]["prediction"]


def _result(prediction: str, reasons: tuple[str, ...] = (), position: float = 0) -> ImageResult:
    probabilities = np.full(4, 0.02)
    probabilities[CLASSES.index(prediction)] = 0.94
    return ImageResult(
        f"v#z={position:g}", probabilities, reasons=reasons, class_names=CLASSES,
        place=SlicePlace("v", "axial", position),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("labels", "verdict", "longest"),
    [
        ("nnggnnnggg", TUMOUR_LIKELY, 3),  # a run of three neighbouring tumour slices
        ("ngngngngnn", REVIEW, 1),  # scattered alarms: a person looks
        ("nnnnnnnnnn", NO_TUMOUR_FOUND, 0),
        ("nnoooooooo", REVIEW, 0),  # too few slices classified to clear the series
        ("nngLgnnnnn", REVIEW, 1),  # low confidence breaks the run (a reason: not a tumour slice)
        # Notes say how a slice was read, not that its class is in doubt: evidence all the same.
        ("VVVVVVVVVV", TUMOUR_LIKELY, 10),  # every slice of a 4-D file's first volume: glioma
        ("nnDDDnnnnn", TUMOUR_LIKELY, 3),  # DICOM windows written with decimal commas
        # Unsure tumour slices never let a series be cleared: a person looks.
        ("LLLLLLLLLL", REVIEW, 0),  # --min-confidence 0.999 on forty glioma slices
        ("nnnnLnnnnn", REVIEW, 0),
        ("nnnnRnnnnn", NO_TUMOUR_FOUND, 0),  # a notumor answer held to the rule-out bar
    ],
)
def test_the_verdict_weighs_runs_of_neighbouring_slices(labels: str, verdict: str, longest: int):
    kinds = {
        "n": ("notumor", ()),
        "g": ("glioma", ()),
        "L": ("glioma", ("low confidence (0.40 < 0.50)",)),
        "V": ("glioma", ("volume: 4-D file, only its first volume is read",)),
        "D": ("glioma", ("dicom: window written with a decimal comma, read as a point",)),
        "R": ("notumor", ("tumour not ruled out (notumor 0.610 < 0.900)",)),
    }
    results = []
    for position, label in enumerate(labels):
        if label == "o":
            results.append(
                _result(
                    "glioma", ("out of scope: blank or nearly constant (contrast 0.0, limit 8)",), position
                )
            )
        else:
            prediction, reasons = kinds[label]
            results.append(_result(prediction, reasons, position))
    summary = summarise("v", "axial", results, "notumor", SeriesRule(min_run=3))
    assert (summary.verdict, summary.longest_run) == (verdict, longest)
    assert summary.slices == len(labels)


def test_a_dicom_series_is_one_series_row_in_slice_order_whatever_the_file_names(tmp_path: Path):
    pytest.importorskip("pydicom", reason="the dicom extra is not installed")
    from pydicom.uid import generate_uid

    from tests.runtime.dicom_files import dataset

    folder = tmp_path / "study"
    folder.mkdir()
    series = generate_uid()
    grey = cv2.imread(str(sample_files()[0]), cv2.IMREAD_GRAYSCALE)
    # File names run against the slice order; the positions along the normal decide.
    for index, z in enumerate([30.0, 10.0, 20.0]):
        ds = dataset(grey, SeriesInstanceUID=series, InstanceNumber=index + 1,
                     ImageOrientationPatient=[1, 0, 0, 0, 1, 0], ImagePositionPatient=[0, 0, z])  # fmt: skip
        ds.save_as(folder / f"IM{index:04d}", enforce_file_format=True)
    other = dataset(grey, ImageOrientationPatient=[0, 1, 0, 0, 0, -1], ImagePositionPatient=[5, 0, 0])
    other.save_as(folder / "sagittal.dcm", enforce_file_format=True)
    out, series_csv = tmp_path / "out.csv", tmp_path / "series.csv"
    result = CliRunner().invoke(app, [str(folder), "--csv", str(out), "--series-csv", str(series_csv)])
    assert result.exit_code == 0, result.output
    rows = {row["series"]: row for row in csv.DictReader(series_csv.open(encoding="utf-8"))}
    assert rows[series]["slices"] == "3" and rows[series]["plane"] == "axial"
    assert rows[str(other.SeriesInstanceUID)]["plane"] == "sagittal"
    assert "Doe" not in series_csv.read_text(encoding="utf-8")

    from brain_tumor_edge import classify_volume

    summaries = {s.series: s for s in classify_volume(folder)}
    assert summaries[series].slices == 3 and summaries[series].verdict == rows[series]["verdict"]


def test_a_300_slice_volume_costs_at_most_twice_one_batch_of_slices(tmp_path: Path):
    """Peak memory of classifying a 300-slice volume, beyond classifying one batch of slice
    images with the same model, stays under two batches of the volume's slices (float32)."""
    from brain_tumor_edge import load_model

    side, depth, batch = 256, 300, Settings().batch_size
    data = (np.random.default_rng(1).random((side, side, depth), dtype=np.float32) * 1000).astype(np.float32)
    volume = _save(data, np.eye(4), tmp_path / "big.nii")
    del data
    one_batch = tmp_path / "batch"
    one_batch.mkdir()
    for index in range(batch):
        cv2.imwrite(str(one_batch / f"{index:02d}.png"), np.full((side, side), index * 7, np.uint8))
    model = load_model()
    Volume(volume).info()  # nibabel's own import and first-use caches, once

    def peak(paths) -> int:
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            sum(1 for _ in Classification(model, Settings(maps=False)).run(paths))
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()

    reference = peak(sorted(one_batch.iterdir()))
    cost = peak([volume])
    slice_batch = batch * side * side * 4
    assert cost - reference <= 2 * slice_batch, (cost, reference, slice_batch)


def _peak_in_child(script: str) -> tuple[int, str]:
    """Peak resident memory (bytes) of a fresh Python that runs `script`, and what it printed."""
    import subprocess
    import sys

    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the forking parent
    # (pytest, after other tests' big allocations); VmHWM belongs to the new program alone.
    status = "open('/proc/self/status').read()"
    code = script + f"\nimport re; print('PEAK', re.search(r'VmHWM:\\s+(\\d+)', {status}).group(1))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    peak = int(done.stdout.rsplit("PEAK", 1)[1]) * 1024
    return peak, done.stdout


def _nifti_header(shape: tuple[int, ...], offset: int = 352) -> bytes:
    header = nibabel.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = offset
    return header.binaryblock + b"\0\0\0\0"


def test_declared_sizes_are_checked_before_anything_is_inflated(tmp_path: Path):
    """A 64 KiB .nii.gz that inflates to one 8192 x 8192 slice, and a small file declaring
    512 MB of header extensions, are error rows at once; the process stays far below 400 MB."""
    bomb = tmp_path / "bomb.nii.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as stream:
        stream.write(_nifti_header((8192, 8192, 1)))
        for _ in range(64):
            stream.write(bytes(1 << 20))
    assert bomb.stat().st_size < 200_000
    extension = tmp_path / "extension.nii"
    extension.write_bytes(_nifti_header((64, 64, 4), offset=512 * 1024 * 1024) + bytes(4096))
    out = tmp_path / "o.csv"
    script = (
        "from typer.testing import CliRunner; from brain_tumor_edge.runtime.cli import app; "
        f"r = CliRunner().invoke(app, [{str(tmp_path)!r}, '--csv', {str(out)!r}]); print(r.exit_code)"
    )
    peak, printed = _peak_in_child(script)
    assert printed.splitlines()[0] == "1"
    rows = {Path(row["path"]).name: row for row in csv.DictReader(out.open(encoding="utf-8"))}
    assert "8192x8192 pixels declared: too large" in rows["bomb.nii.gz"]["error"]
    assert "header extensions of 536,870,912 bytes declared" in rows["extension.nii"]["error"]
    assert peak < 400 * 1024 * 1024, f"peak {peak / 2**20:.0f} MiB"


def test_a_nifti_pair_is_read_and_a_lone_header_is_named(tmp_path: Path):
    data = np.random.default_rng(2).integers(0, 1000, (48, 48, 6)).astype(np.int16)
    folder = tmp_path / "pair"
    folder.mkdir()
    nibabel.save(nibabel.Nifti1Pair(data, np.eye(4)), str(folder / "scan.img"))
    nibabel.save(nibabel.Nifti1Pair(data, np.eye(4)), str(tmp_path / "lone.img"))
    (folder / "lone.hdr").write_bytes((tmp_path / "lone.hdr").read_bytes())
    out = tmp_path / "o.csv"
    assert CliRunner().invoke(app, [str(folder), "--csv", str(out)]).exit_code == 1
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    scan = [row for row in rows if "scan.hdr#z=" in row["path"]]
    assert len(scan) == 6 and all(row["error"] == "" for row in scan)
    (lone,) = [row for row in rows if "lone.hdr" in row["path"]]
    assert lone["error"] == "a NIfTI pair's header without its voxels: lone.img is missing"


def test_a_gzipped_volume_reads_in_time_linear_in_its_size(tmp_path: Path):
    """Reading slab by slab from the gzip stream re-inflated it for every slab (quadratic: 512
    slices took 17 s, 2,048 took 304 s); inflated once, a .nii.gz costs a small multiple of its
    .nii twin. Here, in a test, the pair is timed at 64 and 256 slices: the ratio must not grow."""
    import time

    def seconds(path: Path) -> float:
        started = time.perf_counter()
        with Volume(path) as volume:
            info = volume.info()
            assert sum(1 for _ in volume.slices(info.window)) == info.slices
        return time.perf_counter() - started

    before = set(Path(tempfile_dir()).glob("bt-volume-*"))
    ratios = []
    for depth in (64, 256):
        data = np.random.default_rng(depth).integers(0, 1000, (128, 128, depth)).astype(np.int16)
        plain, packed = (
            _save(data, np.eye(4), tmp_path / f"{depth}.nii"),
            _save(data, np.eye(4), tmp_path / f"{depth}.nii.gz"),
        )
        ratios.append(min(seconds(packed) for _ in range(2)) / min(seconds(plain) for _ in range(2)))
    assert ratios[1] < 3.0 and ratios[1] < 1.5 * ratios[0] + 0.5, ratios
    assert set(Path(tempfile_dir()).glob("bt-volume-*")) == before, "a temporary volume was left behind"


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


def test_classify_file_streams_a_long_volume_and_keeps_no_pixels(tmp_path: Path):
    """Memory does not grow with the number of slices: a 400-slice volume peaks within a few
    MB of a 100-slice one. Compared, not bounded, because one batch's network input scales
    with the model's input size (32 slices at 224 px: 19 MB of float32)."""
    from brain_tumor_edge import classify_file, load_model

    model = load_model()

    def peak_for(depth: int) -> int:
        data = (np.random.default_rng(3).random((128, 128, depth)) * 1000).astype(np.float32)
        volume = _save(data, np.eye(4), tmp_path / f"long-{depth}.nii")
        del data
        tracemalloc.start()
        try:
            results = classify_file(volume, model)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(results) == depth and all(result.image is None for result in results)
        return peak

    short, long = peak_for(100), peak_for(400)
    # Before: every slice's image was kept (300 more slices: +45 MB at 224 px) and the volume
    # read whole (+20 MB of float32).
    assert long - short < 8 * 1024 * 1024, (short, long)


def test_nibabel_is_imported_without_pydicom_and_pydicom_still_imports_after_it():
    """nibabel imports pydicom as it loads (0.2 s of its 0.5 s) for tools this project never
    uses; runtime/readers.py holds pydicom back for that import, and DICOM still reads after."""
    import subprocess
    import sys

    script = (
        "import sys; from brain_tumor_edge.runtime.readers import import_nibabel, import_pydicom; "
        "import_nibabel(); print('pydicom' in sys.modules); print(import_pydicom().__name__)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "pydicom"]

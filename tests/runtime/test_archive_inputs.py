"""Whatever a shared folder or a PACS export holds: special files, cycles, huge files, odd DICOM."""

import csv
import io
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from brain_tumor_edge.runtime import image_files
from brain_tumor_edge.runtime.classify import decode_file
from brain_tumor_edge.runtime.cli import app
from brain_tumor_edge.runtime.files import FolderWalk
from brain_tumor_edge.runtime.lock import FileLock, lock_path
from brain_tumor_edge.runtime.model import Classifier, default_model_path
from tests.conftest import REPO, sample_files

pydicom = pytest.importorskip("pydicom", reason="the dicom extra is not installed")
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import (  # noqa: E402
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from tests.runtime.dicom_files import dataset, full_range_grey  # noqa: E402

runner = CliRunner()
PREPROCESS = Classifier(default_model_path()).metadata.preprocess


def rows_of(path: Path) -> dict[str, dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return {Path(row["path"]).name: row for row in csv.DictReader(handle)}


def run_cli(folder: Path, out: Path, *extra: str, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """bt-classify in its own process, with a deadline: a hang is a failure, not a stuck suite."""
    command = [sys.executable, "-m", "brain_tumor_edge.runtime", str(folder), "--csv", str(out), *extra]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_fifo_and_socket_are_skipped_never_opened(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(sample_files()[0].read_bytes())
    os.mkfifo(folder / "scanner.jpg")  # opening it for reading would block for ever
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(folder / "socket.dcm"))
    try:
        result = run_cli(folder, tmp_path / "o.csv")
    finally:
        server.close()
    assert result.returncode == 0, result.stderr
    assert set(rows_of(tmp_path / "o.csv")) == {"a.jpg"}
    assert "2 pipes, sockets or devices skipped" in result.stderr


def test_a_link_cycle_ends_and_each_folder_is_walked_once(tmp_path: Path):
    root = tmp_path / "in"
    (root / "series").mkdir(parents=True)
    for index, source in enumerate(sample_files()[:3]):
        (root / "series" / f"{index}.jpg").write_bytes(source.read_bytes())
    (root / "series" / "back-to-root").symlink_to(root)  # a cycle
    (root / "again").symlink_to(root / "series")  # the same folder by a second route
    paths = list(FolderWalk(root))
    assert len(paths) == 3
    assert len({p.resolve() for p in paths}) == 3


def test_a_sparse_multi_gigabyte_file_is_refused_unread(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(sample_files()[0].read_bytes())
    with open(folder / "huge.jpg", "wb") as handle:
        handle.write(sample_files()[0].read_bytes()[:1000])
        handle.truncate(6 * 2**30)  # 6 GiB, sparse: no disk used
    big_dicom = dataset(np.zeros((64, 64), np.uint8))
    big_dicom.save_as(folder / "series.dcm", enforce_file_format=True)
    with open(folder / "series.dcm", "r+b") as handle:
        handle.truncate(3 * 2**30)  # declares 64x64 pixels, holds 3 GiB
    script = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, '-m', 'brain_tumor_edge.runtime', *sys.argv[1:]])\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(r.returncode)\n"
    )
    out = tmp_path / "o.csv"
    result = subprocess.run(
        [sys.executable, "-c", script, str(folder), "--csv", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    peak_kib = int(result.stdout.strip().splitlines()[-1])
    assert peak_kib < 1024 * 1024, f"peak RSS {peak_kib / 1024:.0f} MiB"
    rows = rows_of(out)
    assert "file too large" in rows["huge.jpg"]["error"]
    assert "file too large" in rows["series.dcm"]["error"]
    assert rows["a.jpg"]["error"] == ""


def test_a_file_that_vanishes_after_listing_gets_an_error_row(tmp_path: Path):
    path = tmp_path / "gone.jpg"
    path.write_bytes(sample_files()[0].read_bytes())
    listed = list(FolderWalk(tmp_path))
    path.unlink()
    (item,) = decode_file(listed[0], PREPROCESS).items
    assert item.image is None and "unreadable file" in item.error


def test_an_unexpected_exception_in_decoding_is_one_error_row(tmp_path: Path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.jpg", "boom.jpg", "c.jpg"):
        (folder / name).write_bytes(sample_files()[0].read_bytes())
    real = image_files.decode_pages

    class CodecSurprise(Exception):
        pass

    def flaky(data, order):
        if data == b"":
            return real(data, order)
        flaky.calls += 1
        if flaky.calls == 2:
            raise CodecSurprise("library bug")
        return real(data, order)

    flaky.calls = 0
    monkeypatch.setattr(image_files, "decode_pages", flaky)
    out = tmp_path / "o.csv"
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--batch-size", "1"])
    assert result.exit_code == 1, result.output
    rows = rows_of(out)
    assert len(rows) == 3
    errors = [row["error"] for row in rows.values() if row["error"]]
    assert errors == ["decode failed (CodecSurprise: library bug)"]


def test_a_second_run_on_the_same_csv_is_refused_and_a_stale_lock_is_not(tmp_path: Path, samples: Path):
    out = tmp_path / "o.csv"
    with FileLock(lock_path(out)):
        result = runner.invoke(app, [str(samples), "--csv", str(out)])
        assert result.exit_code == 2 and "another bt-classify is writing" in result.output
    # What a killed run leaves: a partial CSV, its run record and a lock file nobody holds.
    complete = tmp_path / "complete.csv"
    assert runner.invoke(app, [str(samples), "--csv", str(complete)]).exit_code == 0
    lines = complete.read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "o.csv.partial").write_text("".join(lines[:4]), encoding="utf-8")
    shutil.copy(tmp_path / "complete.csv.run.json", tmp_path / "o.csv.run.json")
    lock_path(out).write_text("")
    result = runner.invoke(app, [str(samples), "--csv", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == complete.read_bytes() and not lock_path(out).exists()


def test_a_run_in_progress_is_named_whatever_the_options(tmp_path: Path, samples: Path):
    """A live run holds the lock and has a partial CSV: no advice about interrupted runs."""
    out = tmp_path / "o.csv"
    (tmp_path / "o.csv.partial").write_text("path\n", encoding="utf-8")
    with FileLock(lock_path(out)):
        for options in ([], ["--resume"], ["--overwrite"]):
            result = runner.invoke(app, [str(samples), "--csv", str(out), *options])
            assert result.exit_code == 2, (options, result.output)
            assert "another bt-classify is writing" in result.output, options
            assert "interrupted" not in result.output and "--resume" not in result.output, options
        out.write_text("done\n", encoding="utf-8")  # even a finished CSV: the lock is named first
        result = runner.invoke(app, [str(samples), "--csv", str(out)])
        assert "another bt-classify is writing" in result.output
        assert lock_path(out).exists(), "a refused run leaves the live run's lock alone"
    assert (tmp_path / "o.csv.partial").read_text(encoding="utf-8") == "path\n"
    both = runner.invoke(app, [str(samples), "--csv", str(out), "--resume", "--overwrite"])
    assert both.exit_code == 2 and "choose one" in both.output


def _slice() -> np.ndarray:
    return full_range_grey(sample_files()[0])


def _write(ds, path: Path, **kwargs) -> Path:
    ds.save_as(path, **kwargs)
    return path


def test_dicom_without_preamble_or_file_meta_is_read(tmp_path: Path):
    written = _write(dataset(_slice()), tmp_path / "ref.dcm", enforce_file_format=True)
    reference = decode_file(written, PREPROCESS)
    full = (tmp_path / "ref.dcm").read_bytes()
    no_preamble = tmp_path / "no-preamble.dcm"
    no_preamble.write_bytes(full[128:])  # starts at "DICM"
    bare = dataset(_slice())
    del bare.file_meta
    bare_path = tmp_path / "bare.dcm"
    bare.save_as(bare_path, implicit_vr=True, little_endian=True)  # no preamble, no meta
    for path in (no_preamble, bare_path):
        (item,) = decode_file(path, PREPROCESS).items
        assert item.error == "", (path.name, item.error)
        assert np.array_equal(item.image, reference.items[0].image), path.name


def test_malformed_number_of_frames_is_an_error_row_and_the_batch_goes_on(tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    bad = dataset(_slice())
    bad.NumberOfFrames = 11
    _write(bad, folder / "bad.dcm", enforce_file_format=True)
    # As one toolkit writes it: an IS value with a stray letter (pydicom will not write it).
    element = b"\x28\x00\x08\x00IS\x02\x0011"
    data = (folder / "bad.dcm").read_bytes()
    assert data.count(element) == 1
    (folder / "bad.dcm").write_bytes(data.replace(element, element[:-2] + b"1A"))
    _write(dataset(_slice()), folder / "good.dcm", enforce_file_format=True)
    out = tmp_path / "o.csv"
    result = runner.invoke(app, [str(folder), "--csv", str(out)])
    assert result.exit_code == 1, result.output
    rows = rows_of(out)
    assert "NumberOfFrames" in rows["bad.dcm"]["error"]
    assert rows["good.dcm"]["error"] == "" and rows["good.dcm"]["prediction"]


def _encoded(syntax: str) -> bytes:
    grey = _slice()[:128, :128].copy()
    ds = dataset(grey)
    if syntax == "implicit":
        del ds.file_meta.TransferSyntaxUID
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    elif syntax == RLELossless:
        ds.compress(RLELossless, grey)
    elif syntax == JPEG2000Lossless:
        ds.compress(JPEG2000Lossless, grey)
    elif syntax == JPEGBaseline8Bit:
        import cv2

        _, jpeg = cv2.imencode(".jpg", grey)
        ds.PixelData = encapsulate([jpeg.tobytes()])
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


SYNTAXES = ["implicit", ExplicitVRLittleEndian, RLELossless, JPEG2000Lossless, JPEGBaseline8Bit]


@pytest.fixture(scope="module")
def encoded() -> dict[str, bytes]:
    return {str(syntax): _encoded(syntax) for syntax in SYNTAXES}


@settings(
    max_examples=2000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    syntax=st.sampled_from([str(s) for s in SYNTAXES]),
    cut=st.integers(0, 100_000),
    flips=st.dictionaries(st.integers(0, 4000), st.integers(1, 255), max_size=12),
    junk=st.binary(max_size=16),
)
def test_mutated_dicom_never_escapes_the_per_file_boundary(
    tmp_path_factory, encoded, syntax, cut, flips, junk
):
    data = bytearray(encoded[syntax])
    for position, mask in flips.items():
        if position < len(data):
            data[position] ^= mask
    mutated = bytes(data[: max(132, len(data) - cut)]) + junk
    path = tmp_path_factory.getbasetemp() / "fuzz.dcm"
    path.write_bytes(mutated)
    decoded = decode_file(path, PREPROCESS)  # must not raise, whatever the bytes
    for item in decoded.items:
        assert (item.image is None) != (item.error == "")
        if item.image is not None:
            assert item.image.shape == (3, PREPROCESS.size, PREPROCESS.size)

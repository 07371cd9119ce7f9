"""Messy folders, interruptions and hostile input: nothing crashes, nothing is lost."""

import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from brain_tumor_edge.runtime import files, reading
from brain_tumor_edge.runtime.classify import decode_file
from brain_tumor_edge.runtime.cli import app
from brain_tumor_edge.runtime.model import Classifier, default_model_path
from tests.conftest import REPO, as_nobody, run_python, sample_files

runner = CliRunner()
# The bundled model's own input definition: tests exercise exactly what bt-classify runs.
PREPROCESS = Classifier(default_model_path()).metadata.preprocess


def decode_one(path: Path) -> tuple[np.ndarray | None, str]:
    """`decode_file`, the CLI's per-file boundary, for a one-image file: its image, or
    its error (a DICOM object without pixels is skipped, and the skip reason stands in)."""
    decoded = decode_file(path, PREPROCESS)
    if decoded.skipped:
        assert decoded.items == []
        return None, decoded.skipped
    (item,) = decoded.items
    return item.image, item.error


def rows_of(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def cmyk_jpeg(source: Path) -> bytes:
    """A CMYK JPEG, as print-oriented software exports them (made with Pillow)."""
    image = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    image.open(source).convert("CMYK").save(buffer, "JPEG")
    return buffer.getvalue()


def messy_folder(root: Path) -> dict[str, str]:
    """Files of every kind a PACS export or USB stick holds; returns name -> expected outcome."""
    source = sample_files()[0]
    bgr = cv2.imread(str(source))
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    root.mkdir(parents=True, exist_ok=True)
    (root / "nested" / "deeper").mkdir(parents=True)
    expected = {}

    def write(name: str, ok: bool, data: bytes | None = None, image: np.ndarray | None = None) -> None:
        path = root / name
        if image is not None:
            assert cv2.imwrite(str(path), image)
        else:
            path.write_bytes(data)
        expected[name] = "ok" if ok else "error"

    write("grey.png", True, image=grey)
    write("rgba.png", True, image=cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
    write("sixteen.png", True, image=bgr.astype(np.uint16) * 257)
    write("twelve.tif", True, image=grey.astype(np.uint16) * 16)
    write("plain.bmp", True, image=bgr)
    write("cmyk.jpg", True, data=cmyk_jpeg(source))
    write("lossy.webp", True, image=bgr)
    write("upper.JPG", True, data=source.read_bytes())
    write("long.jpeg", True, data=source.read_bytes())
    write("tiny.png", True, image=cv2.resize(bgr, (9, 7)))  # decoded, then out of scope
    write("large.png", True, image=cv2.resize(bgr, (3000, 2200)))
    write("wide.jpg", True, image=cv2.resize(bgr, (600, 200)))
    write("nested/deeper/naïve scan ü.jpg", True, data=source.read_bytes())
    write("empty.jpg", False, data=b"")
    write("half.jpg", False, data=source.read_bytes()[:5000])
    write("page.png", False, data=b"<!doctype html><html></html>")
    write("noise.jpg", False, data=np.random.default_rng(0).bytes(4096))
    side = 40_000  # a decompression bomb: the header claims 40000 x 40000
    write(
        "bomb.png",
        False,
        data=cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes()[:16]
        + side.to_bytes(4, "big")
        + side.to_bytes(4, "big")
        + b"\x08\x00\x00\x00\x00"
        + b"\x00" * 64,
    )
    (root / "gone.jpg").symlink_to(root / "never-existed.jpg")
    expected["gone.jpg"] = "error"
    (root / "notes.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "folder.jpg").mkdir()
    return expected


def test_messy_folder_gives_one_row_per_image_and_goes_on(tmp_path: Path):
    expected = messy_folder(tmp_path / "in")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, [str(tmp_path / "in"), "--csv", str(out)])
    assert result.exit_code == 1, result.output
    rows = {Path(row["path"]).relative_to(tmp_path / "in").as_posix(): row for row in rows_of(out)}
    assert set(rows) == set(expected)
    for name, outcome in expected.items():
        row = rows[name]
        if name == "tiny.png":
            assert row["error"] == "" and row["review"].startswith("out of scope: too small"), row
        elif outcome == "ok":
            assert row["error"] == "" and row["prediction"], name
        else:
            assert row["error"] and row["prediction"] == "" and row["p_glioma"] == "", name
    assert "too large" in rows["bomb.png"]["error"]
    assert "broken link" in rows["gone.jpg"]["error"]
    assert "3 non-image files skipped" in result.output


def _decode_as_nobody(path: Path) -> tuple[bool, str]:
    """decode_one as the unprivileged user `nobody`: (no image, its error)."""

    def task() -> str:
        image, error = decode_one(path)
        return f"{image is None}|{error}"

    is_none, _, error = as_nobody(task).partition("|")
    return is_none == "True", error


def test_unreadable_file_gets_an_error_row(tmp_path: Path):
    """A file its reader may not open (mode 0): as an ordinary user directly; as root (CI),
    in a child that drops to `nobody`, since root reads files whatever their mode."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="bt-unreadable-"))
    folder.chmod(0o755)  # nobody must reach the file to be refused by its mode
    path = folder / "secret.jpg"
    path.write_bytes(sample_files()[0].read_bytes())
    path.chmod(0)
    if os.geteuid() == 0:
        failed, error = _decode_as_nobody(path)
    else:
        image, error = decode_one(path)
        failed = image is None
    assert failed and error == "unreadable file (Permission denied)", error


def test_unreadable_file_reason_is_reported(tmp_path: Path, monkeypatch):
    path = tmp_path / "secret.jpg"
    path.write_bytes(b"x")

    def denied(path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(reading, "_open_regular", denied)
    image, error = decode_one(path)
    assert image is None and error == "unreadable file (Permission denied)"


def test_same_folder_twice_gives_byte_identical_csvs(tmp_path: Path, samples: Path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    assert runner.invoke(app, [str(samples), "--csv", str(first)]).exit_code == 0
    assert runner.invoke(app, [str(samples), "--csv", str(second), "--batch-size", "5"]).exit_code == 0
    assert first.read_bytes() == second.read_bytes()


def test_resume_after_a_kill_repeats_and_drops_nothing(tmp_path: Path, samples: Path):
    complete = tmp_path / "complete.csv"
    assert runner.invoke(app, [str(samples), "--csv", str(complete)]).exit_code == 0
    lines = complete.read_text(encoding="utf-8").splitlines(keepends=True)
    # What kill -9 leaves: the header, five finished rows and half of the sixth.
    out = tmp_path / "out.csv"
    partial = Path(str(out) + ".partial")
    partial.write_text("".join(lines[:6]) + lines[6][:20], encoding="utf-8")
    shutil.copy(tmp_path / "complete.csv.run.json", tmp_path / "out.csv.run.json")  # written at its start
    refused = runner.invoke(app, [str(samples), "--csv", str(out)])
    assert refused.exit_code == 2 and "--resume" in refused.output
    assert partial.read_text(encoding="utf-8").startswith("".join(lines[:6]))
    result = runner.invoke(app, [str(samples), "--csv", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert "plus 5 kept from the interrupted run" in result.output
    assert out.read_bytes() == complete.read_bytes()


def test_resume_without_a_partial_file_is_a_usage_error(tmp_path: Path, samples: Path):
    result = runner.invoke(app, [str(samples), "--csv", str(tmp_path / "o.csv"), "--resume"])
    assert result.exit_code == 2 and "nothing to resume" in result.output


def test_ctrl_c_exits_130_and_keeps_finished_rows(tmp_path: Path):
    folder = tmp_path / "many"
    folder.mkdir()
    data = sample_files()[0].read_bytes()
    for index in range(3000):
        (folder / f"{index:05d}.jpg").write_bytes(data)
    out = tmp_path / "out.csv"
    process = subprocess.Popen(
        [sys.executable, "-m", "brain_tumor_edge.runtime", folder, "--csv", out, "--batch-size", "8"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A shell without job control starts background jobs with SIGINT ignored, and
        # Python keeps it so; give the child the default handling a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    partial = Path(str(out) + ".partial")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not partial.exists() or partial.stat().st_size < 2000):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and not out.exists()
    rows = partial.read_text(encoding="utf-8").splitlines()
    assert 1 < len(rows) < 3001 and all(row.count(",") == 8 for row in rows)


def test_runtime_opens_no_network_connection(tmp_path: Path, samples: Path):
    guard = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise SystemExit('network use attempted')\n"
        "socket.socket.connect = refuse\nsocket.create_connection = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "sys.argv = ['bt-classify', *sys.argv[1:]]\n"
        "from brain_tumor_edge.runtime.cli import main\nmain()\n"
    )
    out = tmp_path / "o.csv"
    result = run_python(guard, samples, "--csv", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert out.is_file()


JPEG = sample_files()[0].read_bytes()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=2048),
        st.builds(
            lambda cut, flips: bytes(b ^ flips.get(i, 0) for i, b in enumerate(JPEG[: max(2, cut)])),
            st.integers(0, len(JPEG)),
            st.dictionaries(st.integers(0, 4000), st.integers(1, 255), max_size=20),
        ),
    )
)
def test_fuzzed_bytes_end_as_an_image_or_an_error(tmp_path_factory, data: bytes):
    path = tmp_path_factory.getbasetemp() / "fuzz.jpg"
    path.write_bytes(data)
    image, error = decode_one(path)
    assert (image is None) != (error == "")
    if image is not None:
        size = PREPROCESS.size
        assert image.shape == (3, size, size) and image.dtype == np.uint8


def test_a_share_that_drops_mid_walk_is_never_a_clean_exit_with_missing_rows(tmp_path: Path, monkeypatch):
    """Folders the walk cannot list (a dropped share: EIO) and a link to a folder that is gone
    each become an error row; the run exits 1, and every file is a row or inside a folder
    an error row names."""
    root = tmp_path / "share"
    for name in ("a", "b", "c"):
        (root / name).mkdir(parents=True)
        for index in range(2):
            shutil.copy(sample_files()[index], root / name / f"{index}.jpg")
    (root / "gone").symlink_to(tmp_path / "unmounted-volume", target_is_directory=True)
    real_listdir = os.listdir

    def dropped(path):
        if Path(path).name in ("b", "c"):
            raise OSError(5, "Input/output error", str(path))
        return real_listdir(path)

    monkeypatch.setattr(files.os, "listdir", dropped)
    out = tmp_path / "out.csv"
    result = runner.invoke(app, [str(root), "--csv", str(out)])
    assert result.exit_code == 1, result.output
    rows = {Path(row["path"]).relative_to(root).as_posix(): row for row in rows_of(out)}
    assert set(rows) == {"a/0.jpg", "a/1.jpg", "b", "c", "gone"}
    for name in ("b", "c"):
        assert rows[name]["error"] == "folder not listed (Input/output error): its files were not classified"
    assert rows["gone"]["error"].startswith("unreadable file (broken link")
    assert "3 failed" in result.output
    for path in root.rglob("*.jpg"):  # every file: a row, or in a folder an error row names
        relative = path.relative_to(root).as_posix()
        assert relative in rows or rows.get(relative.split("/")[0], {}).get("error"), relative


def test_a_root_that_cannot_be_listed_is_a_one_line_error(tmp_path: Path, monkeypatch):
    root = tmp_path / "share"
    root.mkdir()

    def dropped(path):
        raise OSError(107, "Transport endpoint is not connected", str(path))

    monkeypatch.setattr(files.os, "listdir", dropped)
    result = runner.invoke(app, [str(root), "--csv", str(tmp_path / "out.csv")])
    assert result.exit_code == 2 and "cannot list" in result.output and "Traceback" not in result.output


def test_each_page_of_a_multi_page_tiff_is_a_row_and_clutter_is_excluded(tmp_path: Path):
    folder = tmp_path / "stick"
    (folder / "__MACOSX").mkdir(parents=True)
    pages = [cv2.imread(str(path)) for path in sample_files()[:3]]
    ok, data = cv2.imencodemulti(".tiff", pages)
    assert ok
    (folder / "film.tif").write_bytes(data.tobytes())
    shutil.copy(sample_files()[0], folder / "scan.jpg")
    (folder / "._scan.jpg").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # a macOS resource fork
    (folder / "__MACOSX" / "._film.tif").write_bytes(b"\x00\x05\x16\x07")
    out = tmp_path / "o.csv"
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--exclude", "scan.*"])
    assert result.exit_code == 0, result.output
    assert [Path(row["path"]).name for row in rows_of(out)] == ["film.tif#0", "film.tif#1", "film.tif#2"]
    assert "3 entries excluded (--exclude)" in result.output
    help_text = runner.invoke(app, ["--help"], terminal_width=200).output
    assert "--exclude" in help_text and "__MACOSX" in help_text

import csv
import os
import subprocess
from pathlib import Path

from brain_tumor_edge.runtime.files import FolderWalk, WalkRules


def make(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_walk_is_sorted_recursive_and_counts_non_images(tmp_path):
    for name in ["b.jpg", "a.PNG", "sub/c.jpeg", "sub/deeper/d.tif", "notes.txt", ".DS_Store", "Thumbs.db"]:
        make(tmp_path / name)
    (tmp_path / "folder.jpg").mkdir()  # a directory named like an image
    walk = FolderWalk(tmp_path)
    found = [p.relative_to(tmp_path).as_posix() for p in walk]
    assert found == ["a.PNG", "b.jpg", "sub/c.jpeg", "sub/deeper/d.tif"]
    assert walk.ignored == 3


def test_walk_without_recursion_stays_at_the_top(tmp_path):
    make(tmp_path / "top.jpg")
    make(tmp_path / "sub" / "inner.jpg")
    assert [p.name for p in FolderWalk(tmp_path, recursive=False)] == ["top.jpg"]


def test_broken_links_are_yielded_so_they_get_an_error_row(tmp_path):
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    assert [p.name for p in FolderWalk(tmp_path)] == ["gone.jpg"]


def test_system_clutter_is_left_out_by_default_and_counted(tmp_path):
    real = b"\xff\xd8 a real file"
    for name in [
        "scan.jpg",
        "._scan.jpg",  # a macOS resource fork beside it, named like an image
        "__MACOSX/._scan.jpg",
        "$RECYCLE.BIN/deleted.jpg",
        "$Recycle.Bin/S-1-5-21/old.jpg",  # Windows spells it either way
        "@eaDir/scan.jpg/SYNOPHOTO_THUMB_XL.jpg",
        ".Trash-1000/files/x.jpg",
        "System Volume Information/tracking.jpg",
        "sub/._inner.png",
        "sub/inner.png",
    ]:
        make(tmp_path / name, real)
    walk = FolderWalk(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in walk] == ["scan.jpg", "sub/inner.png"]
    assert walk.excluded == 8
    everything = FolderWalk(tmp_path, rules=WalkRules(exclude=()))
    assert len(list(everything)) == 10 and everything.excluded == 0


def test_exclude_globs_match_names_and_paths_below_the_root(tmp_path):
    for name in ["keep/a.jpg", "old/b.jpg", "keep/c.png", "keep/localizer_1.jpg"]:
        make(tmp_path / name)
    rules = WalkRules(exclude=("old", "*.PNG", "keep/localizer_*"))
    assert [p.relative_to(tmp_path).as_posix() for p in FolderWalk(tmp_path, rules=rules)] == ["keep/a.jpg"]


def test_the_runs_own_outputs_are_never_walked_however_reached(tmp_path):
    make(tmp_path / "in" / "a.jpg")
    make(tmp_path / "in" / "review" / "thumbs" / "x.jpg")
    make(tmp_path / "in" / "o.csv.partial")
    (tmp_path / "link").symlink_to(tmp_path / "in", target_is_directory=True)
    outputs = frozenset(
        {(tmp_path / "in" / "review").resolve(), (tmp_path / "in" / "o.csv.partial").resolve()}
    )
    walk = FolderWalk(tmp_path / "link", rules=WalkRules(outputs=outputs))
    assert [p.name for p in walk] == ["a.jpg"] and walk.ignored == 0


def test_dicom_is_found_by_content_whatever_its_extension(tmp_path):
    dicom = bytes(128) + b"DICM" + b"\x02\x00" * 8
    for name in ["a.IMA", "b.MR", "c.1", "d"]:
        make(tmp_path / name, dicom)
    make(tmp_path / "notes.IMA", b"plain text")
    walk = FolderWalk(tmp_path)
    assert [p.name for p in walk] == ["a.IMA", "b.MR", "c.1", "d"] and walk.ignored == 1


def test_a_tree_a_thousand_folders_deep_is_walked_without_recursion(tmp_path: Path):
    (tmp_path / "root").mkdir()
    folder = os.open(tmp_path / "root", os.O_RDONLY)
    for _ in range(1000):  # one level at a time, each relative to the last
        os.mkdir("d", dir_fd=folder)
        inner = os.open("d", os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = inner
    os.close(os.open("bottom.jpg", os.O_CREAT | os.O_WRONLY, dir_fd=folder))
    os.close(folder)
    (tmp_path / "root" / "top.jpg").write_bytes(b"x")
    try:
        found = list(FolderWalk(tmp_path / "root"))
        assert [path.name for path in found] == ["bottom.jpg", "top.jpg"]  # sorted, depth-first
    finally:  # shutil.rmtree (pytest's clean-up) recurses: take the tree down here, bottom up
        subprocess.run(["find", str(tmp_path / "root"), "-depth", "-delete"], check=True)


def test_a_path_too_long_to_open_is_one_error_row_and_the_run_goes_on(tmp_path: Path, monkeypatch):
    """Over 4,096 bytes (PATH_MAX): the file cannot be opened by its path. It was the whole
    run's end (exit 2, 0 rows, a message blaming the CSV); now it is its own row."""
    import shutil

    from typer.testing import CliRunner

    from brain_tumor_edge.runtime.cli import app
    from tests.conftest import sample_files

    root = tmp_path / "in"
    root.mkdir()
    shutil.copy(sample_files()[0], root / "ok.jpg")
    monkeypatch.chdir(root)
    for _ in range(18):  # made step by step: no single call sees the whole path
        os.mkdir("d" * 250)
        os.chdir("d" * 250)
    shutil.copy(sample_files()[0], "deep.jpg")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "o.csv"
    result = CliRunner().invoke(app, ["in", "--csv", str(out)])
    assert result.exit_code == 1, result.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    # The deepest entry the system cannot reach by its path (the file, or the folder holding
    # it, by how long the test's own folder is) is the one error row, saying why.
    (deep,) = [row for row in rows if row["error"]]
    assert deep["error"] == "unreadable file (File name too long)" and len(deep["path"]) > 4000
    assert [Path(row["path"]).name for row in rows if row["prediction"]] == ["ok.jpg"]

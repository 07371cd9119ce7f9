from pathlib import Path

from brain_tumor_edge.runtime.files import FolderWalk


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

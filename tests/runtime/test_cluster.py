"""bt-classify --ray: a real local Ray cluster (2 CPUs) gives the one-PC CSV, row for row."""

import csv
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brain_tumor_edge.runtime.cli import app
from tests.conftest import sample_files

ray = pytest.importorskip("ray", reason="the cluster extra is not installed (pip install '.[cluster]')")

runner = CliRunner()


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def archive(root: Path) -> Path:
    """The samples in sub-folders, plus the bad inputs a real archive holds."""
    shutil.copytree(sample_files()[0].parents[1], root / "samples")
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "half.jpg").write_bytes(sample_files()[0].read_bytes()[:3000])
    (bad / "page.png").write_text("<html></html>")
    (bad / "notes.txt").write_text("not an image")
    (root / "top-level.jpg").write_bytes(sample_files()[1].read_bytes())
    return root


def test_ray_csv_equals_the_one_pc_csv(cluster, tmp_path: Path):
    folder = archive(tmp_path / "archive")
    one, distributed = tmp_path / "one.csv", tmp_path / "ray.csv"
    single = runner.invoke(app, [str(folder), "--csv", str(one)])
    assert single.exit_code == 1, single.output  # the bad files fail on both
    result = runner.invoke(app, [str(folder), "--csv", str(distributed), "--ray"])
    assert result.exit_code == 1, result.output
    assert distributed.read_bytes() == one.read_bytes()

    # The same summary counts as one PC, from the workers' listings.
    def counts(output: str) -> str:
        return next(line for line in output.splitlines() if line.startswith("glioma"))

    assert counts(result.output) == counts(single.output)
    assert "3 failed" in counts(result.output)


def _actor_pids() -> set[int]:
    """Model actors alive now (Ray names their processes after the actor class)."""
    pids = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"MapWorker" in command and b"ClassifyBatch" in command:
            pids.add(int(pid))
    return pids


def _kill_one_actor(stop: threading.Event, seen: dict) -> None:
    """SIGKILL the first model actor once it has started work; then record every actor
    process seen after it (its replacement)."""
    while not stop.is_set() and "killed" not in seen:
        for pid in sorted(_actor_pids()):
            time.sleep(0.5)  # let it start work, so a batch is in flight
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # gone already: look for the next one
                continue
            seen["killed"] = pid
            break
        time.sleep(0.05)
    seen["after"] = set()
    while not stop.is_set():
        seen["after"] |= _actor_pids() - {seen.get("killed")}
        time.sleep(0.05)


def test_a_killed_actor_is_replaced_and_every_file_has_one_row(cluster, tmp_path: Path):
    """Killed while it works, the actor is replaced by a new process and the batch it held
    is retried: every file has exactly one row."""
    folder = tmp_path / "many"
    for index in range(12):  # 204 files: the run outlasts the kill
        sub = folder / f"series{index}"
        sub.mkdir(parents=True)
        for path in sample_files():
            shutil.copy(path, sub / path.name)
    out = tmp_path / "o.csv"
    stop, seen = threading.Event(), {}
    killer = threading.Thread(target=_kill_one_actor, args=(stop, seen))
    killer.start()
    try:
        result = runner.invoke(app, [str(folder), "--csv", str(out), "--ray", "--batch-size", "4"])
    finally:
        stop.set()
        killer.join()
    assert "killed" in seen, "no actor process was found to kill"
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8", newline="") as handle:
        paths = [row["path"] for row in csv.DictReader(handle)]
    expected = sorted(str(p) for p in folder.rglob("*.jpg"))
    assert sorted(paths) == expected and len(paths) == len(set(paths))
    # A new actor process took over (the pool holds one actor here): a restart happened,
    # not a run that had finished before the kill.
    assert seen["after"], "no replacement actor process appeared after the kill"


def test_the_sort_key_orders_rows_as_the_one_pc_walk_does(tmp_path: Path):
    """Names where plain string order and the walk's order differ: '-' and '.' sort below
    '/', and frame or slice numbers must sort as numbers."""
    from brain_tumor_edge.runtime.csv_report import sort_key
    from brain_tumor_edge.runtime.files import FolderWalk

    root = tmp_path / "r"
    for relative in ("a/b.jpg", "a-b/c.jpg", "a.jpg", "a b/d.jpg", "A/e.jpg"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_files()[0], root / relative)
    walked = [str(p) for p in FolderWalk(root)]
    assert sorted(walked) != walked  # plain sorting would not do
    assert sorted(walked, key=sort_key) == walked
    volume = [f"{root}/v.nii.gz#z={k}" for k in (0, 2, 9, 10, 11)]
    frames = [f"{root}/m.dcm#{k}" for k in (1, 10)]
    assert sorted(reversed(volume + frames), key=sort_key) == frames + volume


def test_ray_resume_continues_a_partial_csv_to_the_one_pc_csv(cluster, tmp_path: Path):
    """A run interrupted after some rows (its partial CSV) is finished on Ray: the rows kept,
    the rest added in order, byte for byte the one-PC CSV; and an archive whose names sort
    differently from plain string order proves the Ray path sorts like the walk."""
    folder = archive(tmp_path / "archive")
    for relative in ("a-b/x.jpg", "a.jpg", "a/y.jpg"):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_files()[2], folder / relative)
    one = tmp_path / "one.csv"
    assert runner.invoke(app, [str(folder), "--csv", str(one)]).exit_code == 1
    lines = one.read_text(encoding="utf-8").splitlines(keepends=True)
    distributed = tmp_path / "ray.csv"
    Path(str(distributed) + ".partial").write_text("".join(lines[:8]), encoding="utf-8")  # header + 7 rows
    shutil.copy(tmp_path / "one.csv.run.json", tmp_path / "ray.csv.run.json")  # the run's record
    result = runner.invoke(app, [str(folder), "--csv", str(distributed), "--ray", "--resume"])
    assert result.exit_code == 1, result.output
    assert "plus 7 kept from the interrupted run" in result.output
    assert distributed.read_bytes() == one.read_bytes()


def test_a_ray_listing_task_excludes_as_the_one_pc_walk_does(tmp_path: Path):
    """Each task walks one sub-folder: path globs still match from the archive's root, and
    the clutter defaults and the run's own outputs hold there too."""
    from brain_tumor_edge.runtime.cluster import _list_folder
    from brain_tumor_edge.runtime.files import DEFAULT_EXCLUDES, WalkRules

    for relative in ("study/keep.jpg", "study/old/skip.jpg", "study/._keep.jpg", "study/review/t.jpg"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sample_files()[0], tmp_path / relative)
    outputs = frozenset({(tmp_path / "study" / "review").resolve()})
    rules = WalkRules((*DEFAULT_EXCLUDES, "study/old"), outputs, root=tmp_path)
    rows = _list_folder({"folder": str(tmp_path / "study")}, frozenset(), rules)
    assert [row["path"] for row in rows[:-1]] == [str(tmp_path / "study" / "keep.jpg")]
    assert '"excluded": 2' in rows[-1]["path"]

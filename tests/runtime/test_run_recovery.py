"""Every way out has a way back: an interrupted retry, SIGTERM, damaged run records and
hand-edited or spreadsheet-saved CSVs end in one line that says what to do, never a traceback."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brain_tumor_edge.runtime import csv_report
from brain_tumor_edge.runtime.cli import app
from tests.runtime.test_run import folder_of, interrupt, rows_of

runner = CliRunner()


def one_line_refusal(args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_an_interrupted_retry_is_retried_again_not_a_dead_end(tmp_path: Path, monkeypatch):
    folder = folder_of(tmp_path / "scans", 4)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    out = tmp_path / "o.csv"
    assert runner.invoke(app, [str(folder), "--csv", str(out)]).exit_code == 1
    finished = out.read_bytes()
    real_write = csv_report.CsvReport.write

    def stop(self, result):
        raise KeyboardInterrupt

    monkeypatch.setattr(csv_report.CsvReport, "write", stop)
    stopped = runner.invoke(app, [str(folder), "--csv", str(out), "--retry-errors"])
    assert stopped.exit_code == 130 and "run --retry-errors again" in stopped.output
    assert out.read_bytes() == finished and not Path(str(out) + ".partial").exists()
    monkeypatch.setattr(csv_report.CsvReport, "write", real_write)
    one_line_refusal([str(folder), "--csv", str(out), "--resume"], "run --retry-errors again")
    again = runner.invoke(app, [str(folder), "--csv", str(out), "--retry-errors"])
    assert again.exit_code == 1 and "retried the 1 file that had failed" in again.output
    assert out.read_bytes() == finished  # still broken: the same rows
    assert not Path(str(out) + ".retry.partial").exists()


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ('{"root": "/x", "folder": "/x", "model_sha256": "0", "options": null}', "'options' is not"),
        ('{"root": "/x", "folder": "/x", "model_sha256": "0", "options": []}', "'options' is not"),
        ('{"root": "/x", "folder": 7, "model_sha256": "0", "options": {}}', "'folder' is not"),
        ("[1, 2]", "not a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "unreadable"),
    ],
)
def test_a_damaged_run_record_is_a_one_line_refusal(tmp_path: Path, record: str, message: str):
    folder = folder_of(tmp_path / "scans", 2)
    out = tmp_path / "o.csv"
    assert runner.invoke(app, [str(folder), "--csv", str(out)]).exit_code == 0
    Path(str(out) + ".run.json").write_text(record, encoding="utf-8")
    one_line_refusal([str(folder), "--csv", str(out), "--retry-errors"], message)


def test_a_hand_edited_cell_is_named_and_a_spreadsheet_resave_is_read(tmp_path: Path):
    folder = folder_of(tmp_path / "scans", 4)
    out = tmp_path / "o.csv"
    assert runner.invoke(app, [str(folder), "--csv", str(out)]).exit_code == 0
    whole = rows_of(out)
    interrupt(out, 2)
    partial = Path(str(out) + ".partial")
    text = partial.read_text(encoding="utf-8")
    # Re-saved by a spreadsheet: a byte-order mark and CRLF line ends.
    partial.write_bytes(b"\xef\xbb\xbf" + text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8"))
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--resume"])
    assert result.exit_code == 0 and "plus 2 kept" in result.output, result.output
    assert [row["path"] for row in rows_of(out)] == [row["path"] for row in whole]
    interrupt(out, 2)
    lines = partial.read_text(encoding="utf-8").splitlines(keepends=True)
    cells = lines[1].split(",")
    cells[2] = "high"  # the confidence cell
    partial.write_text(lines[0] + ",".join(cells) + "".join(lines[2:]), encoding="utf-8")
    one_line_refusal([str(folder), "--csv", str(out), "--resume"], "row 2: confidence 'high' is not a number")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_ends_the_run_with_a_message_143_and_no_stale_lock(tmp_path: Path):
    folder = folder_of(tmp_path / "scans", 6)
    for copy in range(60):  # enough rows that the signal lands mid-run
        os.link(next(folder.glob("a/*.jpg")), folder / f"copy{copy}.jpg")
    out = tmp_path / "o.csv"
    command = [str(Path(sys.executable).with_name("bt-classify")), str(folder), "--csv", str(out),
               "--batch-size", "1", "--threads", "1"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    partial, lock = Path(str(out) + ".partial"), Path(str(out) + ".lock")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (partial.exists() and partial.stat().st_size > 200):
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 143, output
    assert "finished rows are in" in output and "Traceback" not in output
    assert not lock.exists() and partial.exists() and not out.exists()
    resumed = runner.invoke(app, [str(folder), "--csv", str(out), "--resume"])
    assert resumed.exit_code == 0 and len(rows_of(out)) == 66


def test_the_run_record_reads_back_what_it_wrote(tmp_path: Path):
    folder = folder_of(tmp_path / "scans", 2)
    out = tmp_path / "o.csv"
    assert runner.invoke(app, [str(folder), "--csv", str(out)]).exit_code == 0
    record = json.loads(Path(str(out) + ".run.json").read_text(encoding="utf-8"))
    assert set(record) == {"root", "folder", "model_sha256", "options", "version", "counts"}
    assert runner.invoke(app, [str(folder), "--csv", str(out), "--retry-errors"]).exit_code == 0


def test_a_full_disk_while_writing_the_series_csv_or_the_page_is_a_message_with_nothing_half_written(
    tmp_path: Path, monkeypatch
):
    from brain_tumor_edge.runtime import atomic

    folder = folder_of(tmp_path / "scans", 2)
    real_fsync = os.fsync

    def full(descriptor: int) -> None:
        if os.readlink(f"/proc/self/fd/{descriptor}").endswith(("s.csv.partial", "index.html.partial")):
            raise OSError(28, "No space left on device")
        real_fsync(descriptor)

    monkeypatch.setattr(atomic.os, "fsync", full)
    for option, name in (("--series-csv", "s.csv"), ("--report", "report")):
        out = tmp_path / f"{name}.o.csv"
        result = runner.invoke(app, [str(folder), "--csv", str(out), option, str(tmp_path / name)])
        assert result.exit_code == 2 and "No space left on device" in result.output, result.output
        assert "Traceback" not in result.output and out.exists()  # the CSV itself was finished
        assert not list(tmp_path.rglob("*.partial")), list(tmp_path.rglob("*.partial"))


def test_a_report_folder_that_is_a_broken_link_is_a_message(tmp_path: Path):
    folder = folder_of(tmp_path / "scans", 2)
    (tmp_path / "report").symlink_to(tmp_path / "gone")
    one_line_refusal([str(folder), "--csv", str(tmp_path / "o.csv"), "--report", str(tmp_path / "report")],
                     "is a broken link")  # fmt: skip

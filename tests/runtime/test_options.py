"""One options object for a run: the CLI's flags are its fields, and the fields marked as
changing rows are what the run record keeps and `--resume` checks, with no other code."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import typer.main

from brain_tumor_edge.runtime.cli import classify
from brain_tumor_edge.runtime.errors import RunError
from brain_tumor_edge.runtime.options import RunOptions, changes_rows
from brain_tumor_edge.runtime.run import classify_to_csv
from tests.runtime.test_run import folder_of, interrupt, rows_of


@dataclasses.dataclass(frozen=True)
class WithDummy(RunOptions):
    """A new option that changes rows, added the way options.py says: one marked field."""

    dummy: int = changes_rows(0)


def test_every_flag_of_bt_classify_is_a_field_of_the_options() -> None:
    flags = {parameter.name for parameter in typer.main.get_command_from_info(
        typer.models.CommandInfo(callback=classify), pretty_exceptions_short=True, rich_markup_mode=None
    ).params}  # fmt: skip
    cli_only = {"folder", "csv", "quiet", "version"}  # the inputs, the output, the console
    fields = {field.name for field in dataclasses.fields(RunOptions)}
    assert flags - cli_only == fields - {"decode_workers", "show_progress"}


def test_the_record_keeps_exactly_the_marked_options(tmp_path: Path) -> None:
    folder = folder_of(tmp_path / "scans", 2)
    out = tmp_path / "o.csv"
    classify_to_csv(folder, out, RunOptions(min_confidence=0.6, exclude=("*.png",)))
    recorded = json.loads((tmp_path / "o.csv.run.json").read_text(encoding="utf-8"))["options"]
    assert recorded == {
        "dicom_fields": [],
        "min_confidence": 0.6,
        "recursive": True,
        "exclude": ["*.png"],
        "default_excludes": True,
    }


def test_resume_refuses_a_run_that_differs_in_a_new_row_changing_option(tmp_path: Path) -> None:
    folder = folder_of(tmp_path / "scans", 4)
    out = tmp_path / "o.csv"
    classify_to_csv(folder, out, WithDummy(dummy=1))
    whole = rows_of(out)
    interrupt(out, 2)
    with pytest.raises(RunError, match=r"dummy 2 \(the run had 1\)"):
        classify_to_csv(folder, out, WithDummy(dummy=2, resume=True))
    summary = classify_to_csv(folder, out, WithDummy(dummy=1, resume=True))  # the same run goes on
    assert summary.report.kept == 2 and rows_of(out) == whole


def test_keywords_stand_in_for_the_options(tmp_path: Path) -> None:
    folder = folder_of(tmp_path / "scans", 2)
    out = tmp_path / "o.csv"
    classify_to_csv(folder, out, min_confidence=0.99)
    assert all("low confidence" in row["review"] for row in rows_of(out) if row["prediction"])
    with pytest.raises(TypeError):
        classify_to_csv(folder, out, no_such_option=True)

"""What makes a run the same run: recorded beside its CSV, checked by `--resume` and `--retry-errors`.

`OUT.csv.run.json` holds the run's identity: the input folder resolved (and as it was
spelled, since the CSV's path cells start with that spelling), the model's SHA-256 and
the options that change rows. A resume or a retry continues the run only when all of
them match, however the folder is spelled this time; otherwise it stops with a message
naming what differs, so one CSV never mixes two runs. The file stays beside the finished
CSV as its provenance (and for a later `--retry-errors`); the tool's version is recorded
for the reader, not compared.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .atomic import write_text_atomically
from .errors import RunError
from .integrity import file_sha256

RECORD_SUFFIX = ".run.json"


def record_path(csv: Path) -> Path:
    return csv.with_name(csv.name + RECORD_SUFFIX)


@dataclass(frozen=True)
class RunRecord:
    root: str  # the input folder, resolved (links and "..", relative or absolute)
    folder: str  # as given: the CSV's path cells start with it
    model_sha256: str
    options: dict = field(default_factory=dict)  # only options that change rows
    version: str = ""
    # Written when the run finishes: the run's counts, as its summary and page show them.
    counts: dict = field(default_factory=dict)

    @classmethod
    def of(cls, folder: Path, model: Path, options: dict) -> RunRecord:
        from .version import __version__

        return cls(os.path.realpath(folder), str(folder), file_sha256(model), options, __version__)

    def differences(self, other: RunRecord) -> list[str]:
        """What differs between the recorded run and this one, in words; [] for the same run."""
        out = []
        if self.root != other.root:
            out.append(f"folder {other.root} (the run was on {self.root})")
        if self.model_sha256 != other.model_sha256:
            out.append("model (its checksum differs from the run's)")
        for key in sorted(set(self.options) | set(other.options)):
            if self.options.get(key) != other.options.get(key):
                out.append(f"{key} {other.options.get(key)!r} (the run had {self.options.get(key)!r})")
        return out

    def write(self, path: Path) -> None:
        write_text_atomically(path, json.dumps(asdict(self), indent=2, ensure_ascii=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> RunRecord:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunError(
                f"{path} is missing: the run this CSV belongs to cannot be checked "
                "(pass --overwrite to start over)"
            ) from None
        except (OSError, ValueError, RecursionError):  # RecursionError: nested past Python's limit
            raise RunError(f"{path} is unreadable; pass --overwrite to start over") from None
        problem = _shape_problem(raw)
        if problem:
            raise RunError(f"{path} is damaged ({problem}); pass --overwrite to start over")
        return cls(**raw)

    def check_same_run(self, other: RunRecord, action: str) -> None:
        differs = self.differences(other)
        if differs:
            raise RunError(
                f"cannot {action}: not the same run ({'; '.join(differs)}); "
                "pass --overwrite to start over, or another --csv"
            )


def _shape_problem(raw: object) -> str:
    """What is wrong with a record's shape (a hand edit, another tool's file); "" when fine."""
    if not isinstance(raw, dict):
        return "not a JSON object"
    expected = {
        "root": str,
        "folder": str,
        "model_sha256": str,
        "options": dict,
        "version": str,
        "counts": dict,
    }
    unknown = sorted(set(raw) - set(expected))
    if unknown:
        return f"unknown keys {', '.join(map(str, unknown))}"
    for key, kind in expected.items():
        if key in ("options", "version", "counts") and key not in raw:
            continue
        if not isinstance(raw.get(key), kind):
            return f"{key!r} is not a {'text' if kind is str else 'JSON object'}"
    return ""

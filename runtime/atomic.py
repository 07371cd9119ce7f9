"""Every whole-file output (run record, series CSV, review page and its rows.json; training's
checkpoints, resume state and metrics) is written here: to `NAME.partial` beside it, then
moved into place, so a reader never sees half a file and a good file is never replaced by
a broken one.

A write that fails (a full disk, a share that went away) removes its partial and becomes a
one-line `RunError` naming the file and the reason; whatever was in place before stays.
The per-image CSV streams rows and keeps its partial on purpose (`--resume`): not here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from .errors import RunError


def partial_of(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """For writers that take a path (torch.save, onnx): write to the yielded partial path; it
    replaces `path` when the block ends without error, and is removed when it does not.
    Errors propagate as they are (the caller says what failed)."""
    partial = partial_of(Path(path))
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, write: Callable[[TextIO], None]) -> None:
    """`write(handle)` fills a text file (UTF-8, "\\n" line ends) that then replaces `path`."""
    partial = partial_of(Path(path))
    try:
        with open(partial, "w", encoding="utf-8", newline="") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise RunError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_text_atomically(path: Path, text: str) -> None:
    write_atomically(path, lambda handle: handle.write(text))

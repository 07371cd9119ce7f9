"""Reading one input file safely: regular files only, and bounded.

`open_regular` never opens a FIFO, socket or device (opening a FIFO blocks until someone
writes to it). `read_input` refuses a file larger than its cap before reading it whole,
and re-checks the file it actually opened (it may have changed since the walk listed it).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from .errors import ImageError

# Ordinary image files above this are refused unread: a 8000 x 8000 pixel slice (the
# decoder's own cap, MAX_PIXELS) compresses far below it. DICOM has its own cap, from the
# size its header declares (runtime/dicom.py).
MAX_IMAGE_BYTES = 128 * 1024 * 1024


def _open_regular(path: Path) -> int:
    """A file descriptor for a regular file; never blocks on a FIFO or device."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_BINARY", 0))
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise ImageError("not a regular file")
    except BaseException:
        os.close(descriptor)
        raise
    return descriptor


def open_regular(path: Path) -> BinaryIO:
    """A regular file opened for reading (never a FIFO or device), as a binary file object."""
    return os.fdopen(_open_regular(path), "rb")


def read_head(path: Path, size: int) -> bytes:
    with open_regular(path) as handle:
        return handle.read(size)


def read_input(path: Path, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The whole file, if it is a regular file of at most `max_bytes`; else ImageError/OSError."""
    descriptor = _open_regular(path)
    with os.fdopen(descriptor, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > max_bytes:
            raise ImageError(f"file too large ({size / 2**20:.0f} MiB, limit {max_bytes / 2**20:.0f} MiB)")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:  # grew while we read it
        raise ImageError("file changed while it was read")
    return data


def unreadable(path: Path, exc: OSError) -> str:
    """A row's error for a file the system would not let us read."""
    try:
        broken = path.is_symlink() and not path.exists()
    except OSError:  # the path itself cannot be looked at (a name too long): say why it failed
        broken = False
    reason = "broken link" if broken else exc.strerror
    return f"unreadable file ({reason or type(exc).__name__})"

"""One writer per CSV: an OS lock on `OUT.csv.lock`, held while a run writes.

The operating system drops the lock when the process ends, however it ends (kill -9,
power loss), so a stale lock file never blocks `--resume`: only a live run does.

Why not the `filelock` library: it takes the same OS lock (flock / msvcrt), but leaves
the lock file behind on release on Unix, and a folder of results should hold results.
These forty lines do what the CLI needs and nothing else.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from .errors import RunError


class LockedError(RunError):
    """Another live process holds the lock."""


def lock_path(target: Path) -> Path:
    return target.with_name(target.name + ".lock")


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._handle = None

    def __enter__(self) -> FileLock:
        return self if self._handle is not None else self.acquire()

    def acquire(self) -> FileLock:
        """Take the lock now (LockedError if a live process holds it); `with` releases it."""
        handle = open(self.path, "a+b")  # noqa: SIM115 -- held for as long as the lock
        try:
            _lock(handle)
        except OSError:
            handle.close()
            raise LockedError(
                f"another bt-classify is writing this CSV (lock {self.path}); wait for it to finish"
            ) from None
        self._handle = handle
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self.path.unlink(missing_ok=True)  # first, so no newcomer locks a file we remove
            self._handle.close()  # releases the lock


def _lock(handle) -> None:
    if os.name == "nt":
        import msvcrt

        msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

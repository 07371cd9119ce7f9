"""Warnings the readers' libraries give about one file go into that file's row, not the console.

pydicom warns as it reads through a malformed header ("Invalid value for VR UI", a value
longer than its VR allows), nibabel about an odd NIfTI header. On a console they are noise
without a file's name, interleaved with the progress bar; in the row they say which file
the reading was doubtful for. `route()` (the CLI calls it once) sends the warnings of these
libraries to the file being decoded in the same thread (`collect()`, in
`classify.decode_file`), each as a review note of its kind, its quoted values scrubbed as
errors are (`dicom.library_words`). Without `route()` (an API user's program), warnings
behave as Python's defaults say.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from .reasons import DICOM_NOTE, VOLUME_NOTE

# Which library a warning came from (by the file that raised it) and its note's prefix.
LIBRARIES = {"pydicom": DICOM_NOTE.prefix, "nibabel": VOLUME_NOTE.prefix}
MAX_NOTES = 2  # per file: enough to say what was odd, not a log

_current = threading.local()


@contextmanager
def collect() -> Iterator[list[str]]:
    """The notes routed warnings leave while this thread decodes one file."""
    notes: list[str] = []
    _current.notes = notes
    try:
        yield notes
    finally:
        _current.notes = None


def route() -> None:
    """Send these libraries' warnings to the row of the file being decoded (once per process)."""
    if getattr(warnings.showwarning, "routed", False):
        return
    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        notes = getattr(_current, "notes", None)
        prefix = next((p for name, p in LIBRARIES.items() if f"{name}" in str(filename)), None)
        if notes is None or prefix is None:
            original(message, category, filename, lineno, file, line)
            return
        from .dicom import library_words

        text = library_words(message if isinstance(message, Warning) else category(str(message)), 120)
        note = f"{prefix}{text.partition(': ')[2] or text}"
        if note not in notes and len(notes) < MAX_NOTES:
            notes.append(note)

    show.routed = True  # type: ignore[attr-defined]
    warnings.showwarning = show
    for name in LIBRARIES:  # every time, not once per place: each file's row gets its own
        warnings.filterwarnings("always", module=rf"{name}(\..*)?$")

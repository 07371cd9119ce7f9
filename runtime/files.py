"""Which files in a folder are images, in a stable order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from runtime.dicom import DICOM_SUFFIXES, PREAMBLE_LENGTH, looks_like_dicom

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"}
)


def is_input_file(path: Path) -> bool:
    """Images by extension; DICOM by extension or, for PACS/CD exports without one, by content."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS or suffix in DICOM_SUFFIXES:
        return True
    if suffix and not suffix[1:].isdigit():  # DICOM exports are often named 1.2.840.113619...
        return False
    try:
        with open(path, "rb") as handle:
            return looks_like_dicom(handle.read(PREAMBLE_LENGTH))
    except OSError:
        return False


class FolderWalk:
    """Iterates the input files below a folder in sorted order, counting what it passes over.

    Each directory is listed and sorted on its own and walked depth-first, so memory
    grows with the widest directory, not the whole tree. Directories whose names end
    like images are not yielded; broken links are (they get an error row, not silence).
    """

    def __init__(self, folder: Path, recursive: bool = True) -> None:
        self.folder = Path(folder)
        self.recursive = recursive
        self.ignored = 0  # files that are neither images nor DICOM

    def __iter__(self) -> Iterator[Path]:
        self.ignored = 0
        return self._walk(self.folder)

    def _walk(self, folder: Path) -> Iterator[Path]:
        try:
            # Names only (not DirEntry objects, ~4x larger): a 20,000-file folder is held
            # sorted in ~1.5 MB while it is walked.
            names = sorted(os.listdir(folder))
        except OSError:
            return
        for name in names:
            path = folder / name
            try:
                is_dir = path.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if self.recursive:
                    yield from self._walk(path)
            elif name.upper() == "DICOMDIR":
                self.ignored += 1  # an index of the other files, not an image
            elif is_input_file(path):
                yield path
            else:
                self.ignored += 1


def iter_image_files(folder: Path, recursive: bool = True) -> Iterator[Path]:
    return iter(FolderWalk(folder, recursive))

"""Which files in a folder are images, in a stable order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm"}
)


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


class FolderWalk:
    """Iterates the image files below a folder in sorted order, counting what it passes over.

    Each directory is listed and sorted on its own and walked depth-first, so memory
    grows with the widest directory, not the whole tree. Directories whose names end
    like images are not yielded; broken links are (they get an error row, not silence).
    """

    def __init__(self, folder: Path, recursive: bool = True) -> None:
        self.folder = Path(folder)
        self.recursive = recursive
        self.ignored = 0  # files without an image extension

    def __iter__(self) -> Iterator[Path]:
        self.ignored = 0
        return self._walk(self.folder)

    def _walk(self, folder: Path) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            return
        for entry in entries:
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if self.recursive:
                    yield from self._walk(path)
            elif is_image_name(path):
                yield path
            else:
                self.ignored += 1


def iter_image_files(folder: Path, recursive: bool = True) -> Iterator[Path]:
    return iter(FolderWalk(folder, recursive))

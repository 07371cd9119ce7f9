"""Which files in a folder are inputs, in a stable order.

The walk leaves out system clutter (`DEFAULT_EXCLUDES`, plus `--exclude` globs) and the
run's own outputs (`WalkRules`). It opens regular files only (or links to them): FIFOs,
sockets and device nodes are counted and never read, because opening a FIFO blocks until
someone writes to it. Which files are inputs is the formats' say (runtime/formats.py).
Each real directory (device, inode) is walked once, so a link back to an ancestor ends
instead of looping, and a folder reached by two routes is not classified twice. Links to
folders outside the root are followed, once each.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath

from .formats import is_input_file
from .results import Unlisted

# System clutter that is never a scan: macOS resource forks and archive folders, Windows'
# recycle bin and volume folders, NAS thumbnail folders, desktop trash. Matched (without
# regard to case) against each file's and folder's name; `--exclude` adds to them.
DEFAULT_EXCLUDES = (
    "._*",
    "__MACOSX",
    "$RECYCLE.BIN",
    "@eaDir",
    ".Trash*",
    "System Volume Information",
)


@dataclass(frozen=True)  # cached_property needs the instance dict: no slots
class WalkRules:
    """What the walk leaves out: names matching `exclude` (shell globs, matched without regard
    to case against a name or a path relative to the root), and `outputs`, the run's own
    files and folders (CSV, its partial and lock, the review folder), by their resolved path,
    so a run never classifies its own thumbnails however the folders are nested."""

    exclude: tuple[str, ...] = DEFAULT_EXCLUDES
    outputs: frozenset[Path] = frozenset()
    root: Path | None = None  # what path globs are relative to; default: the folder walked
    # `bt-classify a.dcm b/ c/*.dcm`: the files and folders given, as POSIX paths relative
    # to the root (their common folder); None: everything below the root.
    selected: frozenset[str] | None = None

    @cached_property
    def _ancestors(self) -> frozenset[str]:
        """Every folder on the way from the root to a selected path ("a", "a/b" for "a/b/c.dcm")."""
        parts = (PurePosixPath(path).parents for path in self.selected or ())
        return frozenset(str(parent) for chain_ in parts for parent in chain_ if str(parent) != ".")

    def selects(self, relative: str, is_folder: bool) -> bool:
        """Whether the walk goes to this entry: it was given, lies in a folder that was, or (a
        folder) leads to one that was."""
        if self.selected is None or relative in self.selected:
            return True
        if is_folder and relative in self._ancestors:
            return True
        return any(str(parent) in self.selected for parent in PurePosixPath(relative).parents)

    @cached_property
    def _pattern(self) -> re.Pattern | None:
        """Every glob in one regular expression (fnmatch's own translation), made once."""
        if not self.exclude:
            return None
        return re.compile("|".join(fnmatch.translate(glob.lower()) for glob in self.exclude))

    def excludes(self, name: str, relative: str) -> bool:
        pattern = self._pattern
        return pattern is not None and bool(pattern.match(name.lower()) or pattern.match(relative.lower()))


@dataclass(frozen=True)
class _Descend:
    """The walk's note to itself: go into this sub-folder next."""

    folder: Path


class FolderWalk:
    """Iterates the input files below a folder in sorted order, counting what it passes over.

    Each directory is listed and sorted on its own and walked depth-first, so memory
    grows with the widest directory, not the whole tree. Directories whose names end
    like images are not yielded; broken links are (they get an error row, not silence).
    Nothing is lost without a word: a sub-folder that cannot be listed is yielded as an
    `Unlisted` entry (an error row naming the folder), an entry that cannot be examined is
    yielded for its error row, and a root that cannot be listed raises OSError. `rules`
    leaves out excluded names (counted) and the run's own outputs (not counted).
    """

    def __init__(self, folder: Path, recursive: bool = True, rules: WalkRules = WalkRules()) -> None:
        self.folder = Path(folder)
        self.recursive = recursive
        self.rules = rules
        self.ignored = 0  # files that are neither images nor DICOM
        self.special = 0  # FIFOs, sockets, devices: never opened
        self.excluded = 0  # entries (files or whole folders) matching an exclude glob
        self._seen: set[tuple[int, int]] = set()

    def __iter__(self) -> Iterator[Path]:
        self.ignored = self.special = self.excluded = 0
        self._seen = set()
        return self._walk(self.folder)

    def counts(self) -> dict[str, int]:
        """What this walk passed over, by kind (summary.PassedOver adds them up)."""
        return {"ignored": self.ignored, "special": self.special, "excluded": self.excluded}

    def _walk(self, root: Path) -> Iterator[Path]:
        """Depth-first with a stack of open folder listings, not recursion: a tree 1,000
        folders deep is walked like a flat one (Python's recursion limit is about 1,000)."""
        stack = [self._entries(root)]
        while stack:
            entry = next(stack[-1], None)
            if entry is None:
                stack.pop()
            elif isinstance(entry, _Descend):
                stack.append(self._entries(entry.folder))
            else:
                yield entry

    def _entries(self, folder: Path) -> Iterator[Path | _Descend]:
        """One folder's inputs in sorted order, and a `_Descend` for each sub-folder."""
        try:
            identity = os.stat(folder)
            key = (identity.st_dev, identity.st_ino)
            if key in self._seen:
                return  # a link cycle, or a folder reached by a second route
            self._seen.add(key)
            # Names only (not DirEntry objects, ~4x larger): a 20,000-file folder is held
            # sorted in ~1.5 MB while it is walked.
            names = sorted(os.listdir(folder))
        except OSError as exc:
            if folder == self.folder:
                raise  # the root itself: the whole run cannot go on
            yield Unlisted.of(folder, exc)
            return
        real = Path(os.path.realpath(folder)) if self.rules.outputs else None
        below = self._relative(folder)  # once per folder, not per entry
        for name in names:
            path = folder / name
            if real is not None and real / name in self.rules.outputs:
                continue  # the run's own output: not an input, not counted
            if self.rules.excludes(name, below + name):
                self.excluded += 1
                continue
            try:
                mode = os.stat(path).st_mode  # follows links
            except OSError:
                mode = None  # a broken link or a file that vanished: an error row
            if not self.rules.selects(below + name, mode is not None and stat.S_ISDIR(mode)):
                continue  # not among the files and folders given: not an input, not counted
            if mode is not None and stat.S_ISDIR(mode):
                if self.recursive:
                    yield _Descend(path)
            elif mode is not None and not stat.S_ISREG(mode):
                self.special += 1
            elif name.upper() == "DICOMDIR":
                self.ignored += 1  # an index of the other files, not an image
            elif mode is None:
                yield path  # a broken link, a vanished or unreachable entry: its own error row
            elif is_input_file(path):
                yield path
            else:
                self.ignored += 1

    def _relative(self, folder: Path) -> str:
        """How paths inside `folder` begin below the root ("" at the root, "sub/dir/" below)."""
        root = self.rules.root or self.folder  # a Ray task walks one sub-folder of the root
        if folder == root or not folder.is_relative_to(root):
            return ""
        return folder.relative_to(root).as_posix() + "/"


def iter_image_files(folder: Path, recursive: bool = True) -> Iterator[Path]:
    return iter(FolderWalk(folder, recursive))

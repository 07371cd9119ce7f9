"""Every image a mix's source contributes: its folders' images, its manifest's rows, or
the mirrored slices a mirror source makes (train/mirror.py), each with its label,
sequence and split group."""

from __future__ import annotations

from ..runtime.files import iter_image_files
from .mirror import mirror_entries
from .mix import SKIP, TUMOUR, Entry, Mix, MixError, group_key, read_manifest


def list_entries(mix: Mix, source_index: int) -> list[Entry]:
    """Every image one source contributes, in a stable order (mirrors: see train/mirror.py)."""
    source = mix.sources[source_index]
    if not source.location.exists():
        raise MixError(f"source {source.name!r}: {source.location} not found")
    entries: list[Entry] = []
    if source.folders is not None:
        for sub in sorted(p for p in source.folders.iterdir() if p.is_dir() and not p.name.startswith(".")):
            label = source.mapped(sub.name)
            if label == SKIP:
                continue
            if label not in (*mix.classes, TUMOUR):
                raise MixError(
                    f"source {source.name!r}: folder {sub.name!r} maps to no class (add it to labels)"
                )
            entries += [Entry(p, label, source_index, source.sequence, None) for p in iter_image_files(sub)]
    elif source.folder is not None:
        label = source.mapped(source.label or "")
        entries = [
            Entry(p, label, source_index, source.sequence, None) for p in iter_image_files(source.folder)
        ]
    elif source.is_mirror:
        entries = mirror_entries(mix, source_index)
    else:
        base = source.manifest.parent  # type: ignore[union-attr]
        for row in read_manifest(source.manifest):  # type: ignore[arg-type]
            try:
                label = source.mapped(row[source.label_column])
            except KeyError:
                raise MixError(f"{source.manifest}: no column {source.label_column!r}") from None
            if label == SKIP:
                continue
            if label not in (*mix.classes, TUMOUR):
                raise MixError(f"source {source.name!r}: label {label!r} maps to no class (add it to labels)")
            entries.append(
                Entry(
                    base / row["path"],
                    label,
                    source_index,
                    row[source.sequence_column] if source.sequence_column else source.sequence,
                    group_key(source, row),
                )
            )
    if not entries:
        raise MixError(f"source {source.name!r} has no images")
    return entries

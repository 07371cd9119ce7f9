"""`bt-classify ARCHIVE --csv OUT.csv --ray`: the same classification on a Ray cluster.

Ray Data does the distributed work; this module only says what to run:

1. Listing: the driver lists the archive's top level only; each sub-folder is walked
   (with the same `FolderWalk` as one PC) by a Ray task, in parallel, and the paths
   stream on as rows, so no machine holds the whole listing.
2. Classifying: a pool of actors, each loading the ONNX model once (onnxruntime threads
   = the CPUs the actor reserves), decodes and classifies batches of paths with the very
   `Classification` one PC runs, and turns each result into CSV cells with `result_row`.
   A killed actor is restarted by Ray and its batch retried.
3. Ordering: Ray Data sorts the rows by path (the engine's distributed sort, which
   spills to disk, not a hand-written merge); the driver streams them into the CSV.

Ray is imported only here, only when `--ray` is given (`pip install 'brain-tumor-edge[cluster]'`).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .classify import Classification, Settings
from .csv_report import result_row, sort_key, spreadsheet_safe
from .errors import MissingExtraError, RunError
from .files import FolderWalk, WalkRules
from .model import Classifier

COUNTS = "\x00counts"  # the key of rows that carry counts, not results (sorts first)


@dataclass(frozen=True)
class ClusterJob:
    model: str
    settings: Settings
    threads_per_actor: int = 2


def _top_level(folder: Path, recursive: bool, rules: WalkRules) -> tuple[list[str], list[str], dict]:
    """The archive's top level: sub-folders (walked in parallel), files, and what was passed over."""
    walk = FolderWalk(folder, recursive=False, rules=rules)
    files = [str(path) for path in walk]
    folders = []
    if recursive:
        real = Path(os.path.realpath(folder))
        for name in sorted(os.listdir(folder)):
            if real / name in rules.outputs or rules.excludes(name, name):
                continue  # counted (when excluded) by the walk above, which met it too
            try:
                if stat.S_ISDIR(os.stat(folder / name).st_mode):
                    folders.append(str(folder / name))
            except OSError:
                continue
    return folders, files, walk.counts()


def _list_folder(row: dict, done: frozenset[str], rules: WalkRules) -> list[dict]:
    """flat_map: one sub-folder -> its input files, plus one row of counts."""
    walk = FolderWalk(Path(row["folder"]), rules=rules)
    rows = [{"path": str(p)} for p in walk if spreadsheet_safe(str(p)) not in done]
    return [*rows, {"path": COUNTS + json.dumps(walk.counts())}]


class _ClassifyBatch:
    """map_batches actor: the model loaded once; paths in, CSV cells out."""

    def __init__(self, job: ClusterJob) -> None:
        self.job = job
        self.classifier = Classifier(Path(job.model), job.threads_per_actor)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        keys, cells = [], []
        paths = []
        for path in batch["path"]:
            if path.startswith(COUNTS):  # pass the listing's counts through
                keys.append(COUNTS)
                cells.append(path[len(COUNTS) :])
            else:
                paths.append(Path(path))
        classification = Classification(self.classifier, self.job.settings)
        names, fields = self.classifier.class_names, self.job.settings.dicom_fields
        for result in classification.run(paths):
            keys.append(sort_key(result.name))
            cells.append(json.dumps(result_row(result, names, fields)))
        if classification.skipped:
            keys.append(COUNTS)
            cells.append(json.dumps({"skipped": classification.skipped}))
        return {"key": keys, "cells": cells}


def classify_on_ray(
    folder: Path,
    job: ClusterJob,
    address: str | None,
    recursive: bool = True,
    done: frozenset[str] = frozenset(),
    rules: WalkRules = WalkRules(),  # noqa: B008 -- frozen, so one shared default is safe
    actors: int | None = None,
) -> Iterator[tuple[str, list[str] | dict]]:
    """Yields ("row", cells) in sorted path order, and ("counts", {...}) for what was passed over.

    `done` holds the path cells of rows already in the CSV (--resume): they are not redone.
    """
    try:
        import ray
    except ImportError:
        raise MissingExtraError("--ray", "cluster") from None
    if not ray.is_initialized():
        # Ray's own chatter (INFO lines, C++ warnings) is not for a CSV user's terminal.
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
        try:
            ray.init(
                address=address or None, include_dashboard=False, log_to_driver=False, logging_level="ERROR"
            )
        except Exception as exc:  # no cluster there, a refused connection, a version mismatch
            raise RunError(
                f"cannot start or join Ray at {address or 'a local cluster'} ({type(exc).__name__})"
            ) from None
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("ray")]:
        logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI shows its own bar, as on one PC
    cpus = int(ray.cluster_resources().get("CPU", 1))
    # One CPU stays free for the listing and sorting tasks: actors holding every CPU would
    # wait for input that no task can be scheduled to produce.
    threads = max(1, min(job.threads_per_actor, cpus - 1))
    job = ClusterJob(job.model, job.settings, threads)
    pool = actors or max(1, (cpus - 1) // threads)

    folders, files, counts = _top_level(folder, recursive, rules)
    yield "counts", counts
    parts = []
    if folders:
        listed = ray.data.from_items([{"folder": f} for f in folders])
        parts.append(listed.flat_map(_list_folder, fn_kwargs={"done": done, "rules": rules}))
    top = [{"path": p} for p in files if spreadsheet_safe(p) not in done]
    if top:
        parts.append(ray.data.from_items(top))
    if not parts:
        return
    paths = parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]
    results = paths.map_batches(
        _ClassifyBatch,
        fn_constructor_args=(job,),
        batch_size=job.settings.batch_size,
        compute=ray.data.ActorPoolStrategy(size=pool),
        num_cpus=threads,
        batch_format="numpy",
        # A killed actor is replaced and the batch it held retried on the new one: Ray Data's
        # default for actor pools (max_restarts and max_task_retries -1). Ray deprecates
        # passing remote arguments of its own, so the default is relied on, and
        # tests/runtime/test_cluster.py kills an actor to prove it still holds.
    )
    for row in results.sort("key").iter_rows():
        if row["key"] == COUNTS:
            yield "counts", json.loads(row["cells"])
        else:
            yield "row", json.loads(row["cells"])

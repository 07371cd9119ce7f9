"""A progress bar on a terminal, nothing otherwise; rich is imported only when one is shown."""

from __future__ import annotations

from types import TracebackType


class _Silent:
    def __enter__(self) -> _Silent:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def add_task(self, description: str, total: int | None = None, completed: int = 0) -> int:
        return 0

    def update(self, task: int, completed: int) -> None:
        return None


def progress_bar(show: bool, description: str):
    """A context manager with add_task/update: rich's bar when `show`, else a silent stand-in.

    Skipping the import of rich when it is not needed keeps `bt-classify --quiet` and
    batch jobs quick to start.
    """
    if not show:
        return _Silent()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )

"""The project's exceptions: one base, so a caller (or a CLI) catches the project's own errors
in one clause. Their messages are short enough for a CSV `error` cell or a one-line CLI error."""


class BrainTumorEdgeError(Exception):
    """Base of every error this project raises on purpose."""


class ImageError(BrainTumorEdgeError, ValueError):
    """One input file could not be turned into a network input."""


class ModelError(BrainTumorEdgeError, RuntimeError):
    """The model file is missing, unreadable or not one of ours."""


class RunError(BrainTumorEdgeError):
    """A run cannot start or go on: bad paths, a CSV another run holds, nothing to resume."""


class RunInterrupted(BrainTumorEdgeError):
    """The run was stopped (Ctrl-C, or SIGTERM when `terminated`); the rows written so far are
    kept for --resume."""

    def __init__(self, message: str, terminated: bool = False) -> None:
        super().__init__(message)
        self.terminated = terminated


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler, `kill`, a service stop), raised where the run is, so it ends as
    Ctrl-C does: finished rows kept, locks released, a message."""


def short_error(exc: BaseException) -> str:
    """An exception in a few words for an error cell: its type and its message's first line."""
    text = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def install_hint(extra: str) -> str:
    """The one spelling of an install hint: by the package's name, so it works from any folder
    (`'.[train]'` works only inside a checkout)."""
    return f"pip install 'brain-tumor-edge[{extra}]'"


class MissingExtraError(BrainTumorEdgeError, ImportError):
    """An optional extra (dicom, cluster, train) is needed and not installed."""

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} needs the {extra} extra: {install_hint(extra)}")
        self.extra = extra

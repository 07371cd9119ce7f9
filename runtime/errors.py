"""Exceptions whose message is short enough to stand in a CSV `error` cell or a one-line CLI error."""


class ImageError(ValueError):
    """One input file could not be turned into a network input."""


class ModelError(RuntimeError):
    """The model file is missing, unreadable or not one of ours."""

"""The installed version, read once from the package metadata (its one home is pyproject.toml)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("brain-tumor-edge")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

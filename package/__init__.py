"""brain_tumor_edge: brain-tumour MRI slice classification on CPU-only PCs.

The public API (`load_model`, `classify_folder`, `classify_file`, `classify_array`,
`classify_to_csv`, ...; README "From Python") is loaded on first use, so importing the
package and every command's `--version` stay instant.

Sub-packages: `brain_tumor_edge.runtime` (onnxruntime + OpenCV + numpy only),
`brain_tumor_edge.train` and `brain_tumor_edge.export` (need the `train` extra).
"""

from __future__ import annotations

from importlib import import_module

_API = (
    "Classifier",
    "ImageResult",
    "RunOptions",
    "Settings",
    "classify_array",
    "classify_file",
    "classify_folder",
    "classify_to_csv",
    "classify_volume",
    "default_model_path",
    "load_model",
)
__all__ = ["__version__", *_API]


def __dir__() -> list[str]:
    """The API, not this module's machinery (`import_module`, `annotations`)."""
    return sorted(__all__)


def __getattr__(name: str):
    # package/ is the parent of runtime/ only once installed, so these are looked up by
    # name: no import statement here names a path that the source tree does not have.
    # Type checkers read the names' types from this function (PEP 562).
    if name == "__version__":
        return import_module("brain_tumor_edge.runtime.version").__version__
    if name in _API:
        return getattr(import_module("brain_tumor_edge.runtime.api"), name)
    raise AttributeError(f"module 'brain_tumor_edge' has no attribute {name!r}")

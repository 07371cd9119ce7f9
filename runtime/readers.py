"""The optional readers' libraries, imported on first use, one import at a time.

nibabel imports pydicom as it loads (for DICOM tools of its own that this project never
uses): 0.2 s of the 0.5 s that `import nibabel` costs, paid by every run that meets a
volume and no DICOM file. nibabel is imported here with pydicom held back (a None entry in
`sys.modules`, which Python reads as "not installed", so nibabel simply goes without);
the lock keeps a DICOM file being decoded in another thread at that moment from meeting
the held-back entry, since pydicom is imported through here too.
"""

from __future__ import annotations

import sys
import threading
from types import ModuleType

_LOCK = threading.Lock()


def import_nibabel() -> ModuleType:
    """nibabel (ImportError when it is not installed)."""
    with _LOCK:
        held = "pydicom" not in sys.modules and "nibabel" not in sys.modules
        if held:
            sys.modules["pydicom"] = None  # type: ignore[assignment]
        try:
            import nibabel
        finally:
            if held and "pydicom" in sys.modules and sys.modules["pydicom"] is None:
                del sys.modules["pydicom"]
    return nibabel


def import_pydicom() -> ModuleType:
    """pydicom (ImportError when it is not installed)."""
    with _LOCK:
        import pydicom
    return pydicom

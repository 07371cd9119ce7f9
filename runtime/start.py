"""`bt-classify`'s entry point: start the command, or say in one line why it cannot start.

Loading onnxruntime, OpenCV and numpy maps large shared libraries; under a tight memory
limit (`ulimit -v`, a container's cap) or with a library broken by a bad install, that
fails inside an import, before any of the command's own error handling exists. Caught
here, it is a message and exit 2, not a traceback.
"""

from __future__ import annotations

import sys


def classify() -> None:
    try:
        from .cli import main
    except (ImportError, MemoryError, OSError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = (
            " (not enough memory to load it?)"
            if "map segment" in detail or isinstance(exc, MemoryError)
            else ""
        )
        sys.stderr.write(f"error: bt-classify cannot start: {detail[-200:]}{hint}\n")
        raise SystemExit(2) from None
    main()

"""Brain-tumour MRI classification runtime: onnxruntime + OpenCV + numpy + typer only.

Nothing here imports torch, torchvision or onnx; `train` and `export` build on this
package, never the reverse.
"""

import os

from .image_header import MAX_PIXELS

# OpenCV's own guard against huge images, for formats whose header we do not parse
# (TIFF); it must be set before cv2 is first imported.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))

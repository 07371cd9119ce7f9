"""Loading an ONNX classifier and running it on preprocessed batches."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .errors import ModelError
from .integrity import CHECKSUM_KEY, ChecksumError, verify
from .metadata import ModelMetadata
from .outputs import CAM, KNOWN, PROBABILITIES, SCOPE, ModelOutput
from .preprocess import normalize

DEFAULT_MODEL_NAME = "default.int8.onnx"


def default_model_path() -> Path:
    """The model shipped inside the package (see runtime/models/README.md)."""
    return Path(str(resources.files("brain_tumor_edge.runtime") / "models" / DEFAULT_MODEL_NAME))


ort.set_default_logger_severity(4)  # the process-wide logger too (sessions' own: below)


def session_options(threads: int | None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Fatal only: onnxruntime's own coloured log lines (a failed allocation under a memory
    # cap, say) would reach the user's terminal raw; every error it has is raised as an
    # exception too, and becomes our one-line message (ModelError) or the row's error.
    options.log_severity_level = 4
    # Decoding threads share the cores with the model; spinning model threads would steal
    # their time between batches (measured: +4% end to end on 2 cores without spinning).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class Classifier:
    """An ONNX model that maps Nx3xSxS float input to N x classes probabilities."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        try:
            data = path.read_bytes()  # read once: the bytes checked are the bytes run
        except OSError as exc:
            raise ModelError(f"cannot read model {path}: {exc.strerror}") from None
        try:
            self.session = ort.InferenceSession(
                data, session_options(threads), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises several private exception types
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"cannot load model {path}: {first_line[:200]}") from exc
        self.path = path
        props = self.session.get_modelmeta().custom_metadata_map
        if CHECKSUM_KEY in props:
            try:
                verify(data, props[CHECKSUM_KEY])
            except ChecksumError as exc:
                reason = f"{path} is damaged or was altered ({exc})"
                raise ModelError(f"{reason}; reinstall or re-export it") from None
        self.metadata = ModelMetadata.from_props(props)
        inputs = self.session.get_inputs()
        outputs = [output.name for output in self.session.get_outputs()]
        # Older exports have one unnamed-by-convention output: the probabilities.
        if len(outputs) == 1:
            outputs = [PROBABILITIES]
        if len(inputs) != 1 or outputs[0] != PROBABILITIES or not set(outputs) <= set(KNOWN):
            raise ModelError(f"{path} is not one of ours (expects one input and outputs {', '.join(KNOWN)})")
        self.output_names = outputs
        self.has_scope = SCOPE in outputs and self.metadata.scope_limit is not None
        self.has_maps = CAM in outputs
        self.input_name = inputs[0].name
        shape = inputs[0].shape
        size = self.metadata.preprocess.size
        if len(shape) != 4 or shape[1:] != [3, size, size]:
            raise ModelError(f"{path}: input shape {shape} does not match its metadata ({size}px)")

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.metadata.class_names

    def run(self, batch: np.ndarray, maps: bool = True) -> ModelOutput:
        """uint8 Nx3xSxS (as `load_image` gives) -> the model's outputs (maps only if asked)."""
        names = [name for name in self.output_names if maps or name != CAM]
        outputs = self.session.run(names, {self.input_name: self.normalize(batch)})
        values = dict(zip(names, outputs, strict=True))
        return ModelOutput(values[PROBABILITIES], values.get(SCOPE), values.get(CAM))

    def normalize(self, batch: np.ndarray) -> np.ndarray:
        return normalize(batch, self.metadata.preprocess)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """uint8 Nx3xSxS -> N x classes probabilities."""
        return self.run(batch, maps=False).probabilities

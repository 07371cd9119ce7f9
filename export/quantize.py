"""Static int8 quantization with onnxruntime's tools, calibrated through the runtime's preprocessing.

Scheme: QDQ, unsigned int8 activations and signed int8 weights (U8S8), per-channel weights,
reduced (7-bit) weight range. Most hospital PCs are AVX2-only; there onnxruntime's int8
kernels multiply u8 x s8 pairs (VPMADDUBSW). Signed activations have no such kernel and
cost a conversion per layer: on a 2-core AVX2 EPYC the compact network ran at 306 img/s
with S8S8 against 639 img/s with U8S8 (fp32: 366). The u8 x s8 products are summed in
16 bits, which saturate with full 8-bit weights (max |dp| 0.91 without reduced range,
0.09 with it); seven-bit weights keep every sum in range, so the model is as accurate on
a PC without VNNI as on one with it, and per-channel scales win back most of the lost bit.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from ..runtime.metadata import ModelMetadata
from ..runtime.outputs import CAM, PROBABILITIES, SCOPE
from ..runtime.preprocess import normalize
from .config import QuantizationConfig
from .onnx_export import save_sealed, write_metadata


class _CalibrationBatches(CalibrationDataReader):
    def __init__(self, input_name: str, batches: Iterator[np.ndarray]) -> None:
        self.input_name = input_name
        self.batches = batches

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self.batches, None)
        return None if batch is None else {self.input_name: batch}


def _ancestors(graph: onnx.GraphProto, outputs: set[str]) -> set[str]:
    """Names of the nodes that the given graph outputs depend on."""
    producer = {name: node for node in graph.node for name in node.output}
    seen: set[str] = set()
    stack = list(outputs)
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        stack.extend(node.input)
    return seen


def extra_output_nodes(model: onnx.ModelProto) -> list[str]:
    """Nodes that serve only the extra outputs (scope, cam), not the probabilities."""
    graph = model.graph
    extra = {output.name for output in graph.output if output.name in (SCOPE, CAM)}
    return sorted(_ancestors(graph, extra) - _ancestors(graph, {PROBABILITIES}))


def quantize_int8(
    fp32_path: Path,
    int8_path: Path,
    calibration_images: np.ndarray,
    metadata: ModelMetadata,
    config: QuantizationConfig | None = None,
) -> None:
    """Write an int8 QDQ model calibrated on uint8 N x 3 x S x S images."""
    config = config or QuantizationConfig()
    fp32 = onnx.load(fp32_path)
    input_name = fp32.graph.input[0].name
    float_nodes = [node.name for node in fp32.graph.node if node.op_type in config.keep_float]
    float_nodes += extra_output_nodes(fp32)
    # Equal-size batches only: onnxruntime's histogram calibrators reject a ragged last one.
    usable = len(calibration_images) - len(calibration_images) % config.calibration_batch
    batches = (
        normalize(calibration_images[start : start + config.calibration_batch], metadata.preprocess)
        for start in range(0, usable, config.calibration_batch)
    )
    with tempfile.TemporaryDirectory() as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared))
        quantize_static(
            str(prepared),
            str(int8_path),
            _CalibrationBatches(input_name, batches),
            quant_format=QuantFormat.QDQ,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=float_nodes,
        )
    int8 = onnx.load(int8_path)
    write_metadata(int8, metadata)
    onnx.checker.check_model(int8)
    save_sealed(int8, int8_path)

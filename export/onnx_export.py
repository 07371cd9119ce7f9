"""PyTorch checkpoint -> fp32 ONNX that outputs class probabilities and describes itself."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from runtime.integrity import CHECKSUM_KEY, PLACEHOLDER, seal_file
from runtime.metadata import ModelMetadata

INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"


class ProbabilityHead(nn.Module):
    """softmax(logits / temperature): the exported graph gives calibrated probabilities."""

    def __init__(self, network: nn.Module, temperature: float = 1.0) -> None:
        super().__init__()
        self.network = network
        self.temperature = temperature

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(image) / self.temperature, dim=1)


def write_metadata(model: onnx.ModelProto, metadata: ModelMetadata) -> None:
    """Describe the model; `save_sealed` later fills in the file checksum."""
    del model.metadata_props[:]
    for key, value in metadata.to_props().items():
        model.metadata_props.add(key=key, value=value)
    model.metadata_props.add(key=CHECKSUM_KEY, value=PLACEHOLDER)


def save_sealed(model: onnx.ModelProto, path: Path) -> None:
    """Save, then write the file's own SHA-256 into it (see runtime/integrity.py)."""
    onnx.save(model, path)
    seal_file(path)


def export_fp32(network: nn.Module, metadata: ModelMetadata, path: Path) -> None:
    """Export with a dynamic batch axis, attach metadata, validate with onnx.checker."""
    size = metadata.preprocess.size
    head = ProbabilityHead(network.eval(), metadata.temperature).eval()
    example = torch.zeros(2, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not for users
        program = torch.onnx.export(
            head,
            (example,),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    model = program.model_proto
    write_metadata(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    save_sealed(model, path)

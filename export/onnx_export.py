"""PyTorch checkpoint -> fp32 ONNX that outputs class probabilities and describes itself.

Outputs, by name (the runtime looks them up by these names):
- `probabilities`: softmax(logits / temperature), N x classes.
- `scope` (when a scope fit is given): distance to the training features, N.
- `cam` (networks that pool spatial maps): class-activation maps, N x classes x h x w,
  the classifier's weights applied to the last feature maps (Zhou et al., 2016); where
  the network offers `fine_feature_maps` (the last stage evaluated densely, twice the
  resolution, same weights: train/architectures.py), on those.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from ..runtime.integrity import CHECKSUM_KEY, PLACEHOLDER, seal_file
from ..runtime.metadata import ModelMetadata
from ..runtime.outputs import CAM, PROBABILITIES, SCOPE
from ..train.architectures import Network
from .scope import ScopeFit

INPUT_NAME = "image"


def has_maps(network: Network) -> bool:
    """True for networks whose classifier reads globally pooled spatial maps."""
    return network.spatial


class ExportHead(nn.Module):
    """The network plus its exported outputs, in one graph."""

    def __init__(
        self,
        network: Network,
        temperature: float,
        scope: ScopeFit | None,
        maps: bool,
        fine_maps: bool = False,
    ) -> None:
        super().__init__()
        self.network = network
        self.temperature = temperature
        self.maps = maps
        self.fine_maps = maps and fine_maps and network.fine_maps
        self.with_scope = scope is not None
        if scope is not None:
            self.register_buffer("whitening", torch.from_numpy(scope.whitening))
            self.register_buffer("centres", torch.from_numpy(scope.means @ scope.whitening))

    def output_names(self) -> list[str]:
        return [PROBABILITIES] + ([SCOPE] if self.with_scope else []) + ([CAM] if self.maps else [])

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        maps = self.network.forward_features(image)
        features = self.network.forward_head(maps, pre_logits=True)
        logits = self.network.classifier(features)
        outputs = [torch.softmax(logits / self.temperature, dim=1)]
        if self.with_scope:
            projected = features @ self.whitening
            squared = ((projected[:, None, :] - self.centres[None, :, :]) ** 2).sum(-1)
            outputs.append(squared.min(dim=1).values.sqrt())
        if self.maps:
            # The probabilities never depend on this branch, but onnxruntime runs every node
            # whatever outputs are fetched: a heavy branch here costs every call.
            cam_maps = self.network.fine_feature_maps(image) if self.fine_maps else maps
            outputs.append(torch.einsum("kc,nchw->nkhw", self.network.classifier.weight, cam_maps))
        return tuple(outputs)


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


def export_fp32(
    network: nn.Module,
    metadata: ModelMetadata,
    path: Path,
    scope: ScopeFit | None = None,
    fine_maps: bool = False,
) -> None:
    """Export with a dynamic batch axis, attach metadata, validate with onnx.checker."""
    size = metadata.preprocess.size
    head = ExportHead(network.eval(), metadata.temperature, scope, has_maps(network), fine_maps).eval()
    example = torch.zeros(2, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not for users
        program = torch.onnx.export(
            head,
            (example,),
            input_names=[INPUT_NAME],
            output_names=head.output_names(),
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},),
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    model = program.model_proto
    write_metadata(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    save_sealed(model, path)

"""A model file that does not hash to the checksum it carries is refused."""

import hashlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brain_tumor_edge.runtime.cli import app
from brain_tumor_edge.runtime.errors import ModelError
from brain_tumor_edge.runtime.integrity import PLACEHOLDER, ChecksumError, seal, verify
from brain_tumor_edge.runtime.model import Classifier, default_model_path


def test_seal_then_verify_round_trip_and_any_change_is_caught():
    data = b"header " + PLACEHOLDER.encode() + b" weights 0123456789"
    sealed = seal(data)
    recorded = sealed.split(b" ")[1].decode()
    assert recorded != PLACEHOLDER and len(recorded) == 64
    assert recorded == hashlib.sha256(data).hexdigest()
    verify(sealed, recorded)
    with pytest.raises(ChecksumError):
        verify(sealed.replace(b"weights", b"weighTs"), recorded)


def _bundled_bytes() -> bytes:
    return default_model_path().read_bytes()


def test_bundled_model_carries_a_checksum_that_verifies():
    model = Classifier(default_model_path())
    recorded = model.session.get_modelmeta().custom_metadata_map["bt.file_sha256"]
    verify(_bundled_bytes(), recorded)


def _flip_weight_bit(data: bytes) -> bytes:
    onnx = pytest.importorskip("onnx")
    weights = max(onnx.load_from_string(data).graph.initializer, key=lambda t: len(t.raw_data)).raw_data
    start = data.index(weights) + len(weights) // 2
    return data[:start] + bytes([data[start] ^ 0x01]) + data[start + 1 :]


@pytest.mark.parametrize(
    "tamper",
    [
        # Metadata: a class renamed (same length, so the file still parses).
        lambda data: data.replace(b'"meningioma"', b'"meningiomb"', 1),
        # Weights: one bit of the largest initializer.
        lambda data: _flip_weight_bit(data),
    ],
    ids=["metadata", "weights"],
)
def test_altered_model_is_refused_with_exit_2(tamper, tmp_path: Path, samples: Path):
    data = _bundled_bytes()
    altered = tamper(data)
    assert altered != data
    path = tmp_path / "altered.onnx"
    path.write_bytes(altered)
    with pytest.raises(ModelError, match="damaged or was altered"):
        Classifier(path)
    result = CliRunner().invoke(app, [str(samples), "--csv", str(tmp_path / "o.csv"), "--model", str(path)])
    assert result.exit_code == 2 and "damaged or was altered" in result.output

"""A model file's SHA-256, kept inside the file itself so a damaged or altered model is refused.

`bt-export` writes the metadata key with a placeholder of 64 zeros, hashes the whole
serialised file, and puts the digest where the placeholder was (same length, so the
protobuf stays valid). To verify, the digest is put back to zeros and the bytes hashed
again. This needs no ONNX parser, so the runtime can check it with hashlib alone, and
it covers everything in the file: weights, graph and the other metadata.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHECKSUM_KEY = "bt.file_sha256"
PLACEHOLDER = "0" * 64


def file_sha256(path: Path) -> str:
    """The SHA-256 of a whole file, read in 1 MiB blocks (a checkpoint, a run's model)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ChecksumError(ValueError):
    """The file does not hash to the checksum it carries."""


def _digest_without(data: bytes, value: str) -> str:
    if data.count(value.encode("ascii")) != 1:
        raise ChecksumError("checksum field not found exactly once")
    return hashlib.sha256(data.replace(value.encode("ascii"), PLACEHOLDER.encode("ascii"))).hexdigest()


def seal(data: bytes) -> bytes:
    """Replace the placeholder (written as the CHECKSUM_KEY value) with the file's digest."""
    digest = _digest_without(data, PLACEHOLDER)
    return data.replace(PLACEHOLDER.encode("ascii"), digest.encode("ascii"))


def seal_file(path: Path) -> None:
    path.write_bytes(seal(path.read_bytes()))


def verify(data: bytes, recorded: str) -> None:
    """Raise ChecksumError unless `data` carries `recorded` and hashes to it."""
    if len(recorded) != 64 or recorded == PLACEHOLDER:
        raise ChecksumError("the recorded checksum is malformed")
    if _digest_without(data, recorded) != recorded:
        raise ChecksumError("the file's content does not match its checksum")

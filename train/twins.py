"""Twins: perceptual hashing and grouping of exact and near-duplicate images.

pHash is the signs of the lowest 8x8 DCT frequencies of a 32x32 grey thumbnail; it
survives re-encoding, resizing and small shifts. Grouping keeps twins on one side of a
train/validation split, so validation accuracy is not inflated by seen images.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import cv2
import numpy as np

# Hamming distance (of 64 bits) at or below which two images count as near twins.
# Measured on this dataset: random pairs of Training images differ in >= 16 bits (1st
# percentile); re-encoded copies differ in 0, the same slice shifted or re-windowed in
# 2; at 4 and more, distinct slices of different patients start to match.
NEAR_BITS = 2


def perceptual_hash(image: np.ndarray) -> int:
    """64-bit pHash of an HxWx3 uint8 image (the first bit is always 0)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    small = cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8].flatten()
    bits = low[1:] > np.median(low[1:])  # skip DC: overall brightness is not identity
    return int(np.packbits(np.concatenate([[False], bits])).view(">u8")[0])


def _popcount(values: np.ndarray) -> np.ndarray:
    return np.unpackbits(values.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def near_pairs(a: np.ndarray, b: np.ndarray | None = None, bits: int = NEAR_BITS) -> list[tuple[int, int]]:
    """Index pairs (i in a, j in b) with Hamming distance <= bits; within `a` (i < j) if b is None."""
    pairs = []
    other = a if b is None else b
    for i, value in enumerate(a):
        if value == 0:  # undecodable file: no fingerprint
            continue
        distance = _popcount(np.bitwise_xor(other, value))
        distance[other == 0] = 64
        for j in np.flatnonzero(distance <= bits):
            if b is None and j <= i:
                continue
            pairs.append((i, int(j)))
    return pairs


def twin_groups(
    sha256: list[str], phash: np.ndarray, known_groups: Sequence[Hashable | None] | None = None
) -> list[int]:
    """A group id per image (union-find, chains of links included): images with equal bytes
    share one; so do images of one known group (a patient, a case); and so do near twins
    (pHash) among images whose group is not known.

    Near twins are not looked for where a source names its patients: slices of volumes
    registered to one atlas (BraTS) look alike across patients at the same level, and
    chains of such look-alikes would join most patients into one group.
    """
    count = len(sha256)
    known = list(known_groups) if known_groups is not None else [None] * count
    parent = list(range(count))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def join(i: int, j: int) -> None:
        parent[root(i)] = root(j)

    first_with: dict[str, int] = {}
    for index, digest in enumerate(sha256):
        join(index, first_with.setdefault(digest, index))
    first_of: dict[Hashable, int] = {}
    for index, key in enumerate(known):
        if key is not None:
            join(index, first_of.setdefault(key, index))
    ungrouped = np.flatnonzero([key is None for key in known])
    for i, j in near_pairs(np.asarray(phash)[ungrouped]):
        join(int(ungrouped[i]), int(ungrouped[j]))
    return [root(i) for i in range(count)]

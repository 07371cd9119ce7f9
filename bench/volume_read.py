"""NIfTI reading speed: .nii.gz against its .nii twin as slices grow, and a real volume end to
end against the same slices as JPEG files. Prints its figures; not part of the test run.

    python bench/volume_read.py [--slices 512 1024 2048] [--brats ../shared/data/extra/brats-volumes]

Part 1 reads each synthetic 256 x 256 x N int16 volume (a smooth head-like blob, so it
compresses as scans do) with `runtime.volumes.Volume`: the window pass and every slice,
best of two. Part 2 runs `bt-classify` on one BraTS FLAIR volume (155 slices) and on a
folder of its 155 slices written as JPEG, start-up included, best of two each.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from brain_tumor_edge.runtime.volumes import Volume

BT_CLASSIFY = str(Path(sys.executable).with_name("bt-classify"))


def head_like(depth: int, side: int = 256) -> np.ndarray:
    """A smooth ellipsoid of 'tissue' with noise: realistic compressibility, any depth."""
    z, y, x = np.ogrid[-1 : 1 : depth * 1j, -1 : 1 : side * 1j, -1 : 1 : side * 1j]
    inside = (x / 0.8) ** 2 + (y / 0.9) ** 2 + (z / 1.1) ** 2 < 1
    rng = np.random.default_rng(depth)
    volume = np.where(inside, 600 + 200 * np.cos(6 * x) * np.sin(5 * y), 0)
    volume = volume + rng.normal(0, 8, volume.shape) * inside
    return np.ascontiguousarray(volume.transpose(2, 1, 0)).astype(np.int16)  # x, y, z


def read_seconds(path: Path) -> float:
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        with Volume(path) as volume:
            info = volume.info()
            count = sum(1 for _ in volume.slices(info.window))
        assert count == info.slices
        best = min(best, time.perf_counter() - started)
    return best


def classify_seconds(target: Path, scratch: Path) -> float:
    best = float("inf")
    for attempt in range(2):
        out = scratch / f"{target.name}-{attempt}.csv"
        started = time.perf_counter()
        subprocess.run([BT_CLASSIFY, str(target), "--csv", str(out), "--quiet"], check=False)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    import nibabel

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[512, 1024, 2048])
    parser.add_argument("--brats", type=Path, default=Path("../shared/data/extra/brats-volumes"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        print("slices   .nii s   .nii.gz s   ratio")
        for depth in args.slices:
            data = head_like(depth)
            plain, packed = scratch / f"{depth}.nii", scratch / f"{depth}.nii.gz"
            nibabel.save(nibabel.Nifti1Image(data, np.eye(4)), str(plain))
            nibabel.save(nibabel.Nifti1Image(data, np.eye(4)), str(packed))
            del data
            a, b = read_seconds(plain), read_seconds(packed)
            print(f"{depth:>6} {a:>8.2f} {b:>11.2f} {b / a:>7.2f}x")
            plain.unlink()
            packed.unlink()
        volumes = sorted(args.brats.glob("*/flair.nii.gz"))
        if not volumes:
            print(f"no BraTS volume under {args.brats}: end-to-end comparison skipped")
            return
        volume = volumes[0]
        slices = scratch / "slices"
        slices.mkdir()
        with Volume(volume) as opened:
            info = opened.info()
            for index, grey in opened.slices(info.window):
                cv2.imwrite(str(slices / f"{index:03d}.jpg"), grey, [cv2.IMWRITE_JPEG_QUALITY, 95])
        single = scratch / "volume"
        single.mkdir()
        shutil.copy(volume, single / volume.name)
        as_volume, as_jpeg = classify_seconds(single, scratch), classify_seconds(slices, scratch)
        print(
            f"bt-classify, {info.slices}-slice BraTS FLAIR: as .nii.gz {as_volume:.2f} s, "
            f"as {info.slices} JPEG files {as_jpeg:.2f} s ({as_volume / as_jpeg:.2f}x)"
        )


if __name__ == "__main__":
    main()

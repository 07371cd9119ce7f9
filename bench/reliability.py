"""Reliability run: a generated tree with every awkward case, classified, and accounted for.

    python bench/reliability.py [--copies 20] [--keep DIR]

Builds a folder the way USB sticks, old shares and PACS exports hold them (each case
`--copies` times): good slices, multi-page TIFF, transparency, EXIF-rotated and padded
JPEGs, broken and empty files, names that are not UTF-8 or hold a line break, macOS and
NAS clutter, Siemens .IMA and multi-frame DICOM with one corrupt frame, a decimal-comma
window, a DICOM object without pixels, an MR image cut before its pixels, a file named like
a frame (`scan#7`), a FIFO, a dangling link to a folder, the run's own review folder inside
the input, a sub-folder whose share "drops" (listing it raises EIO: simulated in-process,
since a real share cannot be dropped on cue), and once each: a gzip bomb of a NIfTI, a
NIfTI pair and a lone header, a 4-D NIfTI, a tree 1,000 folders deep, a path over 4,096
bytes. Then:

1. one run: files in, rows out, what was excluded, skipped or failed, errors by kind,
   the peak memory of the process, the time;
2. the share "comes back" and `--retry-errors` runs: how many rows it redid, and whether
   every file is now a row (each accounted file's path appears in the CSV).

Prints the CPU with its SIMD flags, as every benchmark here does. Not a test.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import resource
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from run_bench import cpu_description  # bench/run_bench.py: this script's folder is first on sys.path

from brain_tumor_edge.runtime import files
from brain_tumor_edge.runtime.run import classify_to_csv

REPO = Path(__file__).resolve().parents[1]
SAMPLES = sorted((REPO / "samples").glob("*/*.jpg"))
DROPPED = "dropped-share"  # the sub-folder whose listing fails with EIO during the first run


def _dicom(path: Path, frames: np.ndarray, **tags) -> None:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, ds.file_meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID, ds.Modality = generate_uid(), "MR"
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = frames.astype(np.uint8).tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)


def _rle_with_a_bad_frame(path: Path, grey: np.ndarray) -> None:
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_encoder
    from pydicom.uid import RLELossless

    _dicom(path, np.stack([grey] * 4))
    ds = pydicom.dcmread(path)
    encoded = [get_encoder(RLELossless).encode(ds, index=i) for i in range(4)]
    encoded[1] = encoded[1][:64] + b"\xff" * 16
    ds.PixelData, ds.file_meta.TransferSyntaxUID = encapsulate(encoded), RLELossless
    ds["PixelData"].VR = "OB"
    ds.save_as(path)


def build_tree(root: Path, copies: int) -> Counter:
    """The tree; returns how many entries of each case it holds."""
    import pydicom

    cases: Counter = Counter()
    grey = cv2.resize(cv2.imread(str(SAMPLES[0]), cv2.IMREAD_GRAYSCALE), (128, 128))
    jpeg = SAMPLES[0].read_bytes()

    def put(case: str, relative: str, data: bytes) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        cases[case] += 1

    for index in range(copies):
        sub = f"patient{index:03d}"
        for number, sample in enumerate(SAMPLES[:4]):
            put("good image", f"{sub}/slice{number}.jpg", sample.read_bytes())
        put("jpeg padded after its end", f"{sub}/padded.jpg", jpeg + bytes(3000))
        rgba = cv2.cvtColor(cv2.imread(str(SAMPLES[1])), cv2.COLOR_BGR2BGRA)
        rgba[:, :, 3] = np.where(rgba[:, :, 0] > 20, 255, 0)
        rgba[rgba[:, :, 3] == 0, :3] = 255  # white where transparent
        put("transparent png", f"{sub}/alpha.png", cv2.imencode(".png", rgba)[1].tobytes())
        _, tiff = cv2.imencodemulti(".tiff", [cv2.imread(str(s)) for s in SAMPLES[:3]])
        put("3-page tiff", f"{sub}/film.tif", tiff.tobytes())
        put("truncated jpeg", f"{sub}/half.jpg", jpeg[: len(jpeg) // 2])
        put("empty file", f"{sub}/empty.png", b"")
        put("line break in name", f"{sub}/two\rlines.jpg", jpeg)
        put("latin-1 name", os.fsdecode(f"{sub}/caf".encode() + b"\xe9.jpg"), jpeg)
        put("clutter", f"{sub}/._slice0.jpg", b"\x00\x05\x16\x07AppleDouble")
        put("clutter", f"__MACOSX/{sub}/._slice0.jpg", b"\x00\x05\x16\x07")
        put("clutter", f"{sub}/@eaDir/slice0.jpg/SYNOPHOTO_THUMB_M.jpg", jpeg)
        put("not an image", f"{sub}/notes.txt", b"seen by Dr X")
        _dicom(root / sub / "MR000001.IMA", grey[None])
        cases["siemens .IMA"] += 1
        _rle_with_a_bad_frame(root / sub / "multi.dcm", grey)
        cases["4-frame RLE, one frame corrupt"] += 1
        _dicom(root / sub / "comma.dcm", grey[None], WindowCenter="120.0", WindowWidth="200.0")
        data = (root / sub / "comma.dcm").read_bytes().replace(b"120.0", b"120,0")
        (root / sub / "comma.dcm").write_bytes(data)
        cases["decimal-comma window"] += 1
        _dicom(root / sub / "report.dcm", grey[None], Modality="SR")
        report = pydicom.dcmread(root / sub / "report.dcm")
        for name in ("PixelData", "Rows", "Columns"):
            delattr(report, name)  # a report has no image module
        report.save_as(root / sub / "report.dcm")
        cases["DICOM without pixels"] += 1
        data = (root / sub / "MR000001.IMA").read_bytes()
        put("MR image cut before its pixels", f"{sub}/MR000002.IMA", data[: data.index(b"\xe0\x7f\x10\x00")])
        put("a name like a frame (scan#7)", f"{sub}/scan#7", data)
        put("on a share that drops", f"{DROPPED}/{sub}.jpg", jpeg)
    _round_four(root, cases, jpeg)
    os.mkfifo(root / "pipe.jpg")
    cases["fifo"] += 1
    (root / "unmounted").symlink_to(root.parent / "gone", target_is_directory=True)
    cases["dangling folder link"] += 1
    return cases


def _round_four(root: Path, cases: Counter, jpeg: bytes) -> None:
    """Once each: volumes that declare too much, NIfTI pairs, a 4-D file, a tree 1,000 folders
    deep and a path longer than the system opens (issue 38's cases)."""
    import gzip

    import nibabel

    volumes = root / "volumes"
    volumes.mkdir()
    header = nibabel.Nifti1Header()
    header.set_data_shape((8192, 8192, 1))
    header.set_data_dtype(np.uint8)
    header["vox_offset"] = 352
    with gzip.open(volumes / "bomb.nii.gz", "wb", compresslevel=9) as stream:
        stream.write(header.binaryblock + bytes(4))
        for _ in range(64):
            stream.write(bytes(1 << 20))
    cases["64 KiB .nii.gz declaring an 8192x8192 slice"] += 1
    blob = np.random.default_rng(0).integers(0, 900, (64, 64, 12)).astype(np.int16)
    nibabel.save(nibabel.Nifti1Pair(blob, np.eye(4)), str(volumes / "pair.img"))
    cases["NIfTI pair (.hdr + .img)"] += 1
    nibabel.save(nibabel.Nifti1Pair(blob, np.eye(4)), str(root / "lone.img"))
    (volumes / "lone.hdr").write_bytes((root / "lone.hdr").read_bytes())
    (root / "lone.img").unlink()
    (root / "lone.hdr").unlink()
    cases["NIfTI header without its .img"] += 1
    nibabel.save(nibabel.Nifti1Image(np.stack([blob, blob], axis=3), np.eye(4)), str(volumes / "four.nii.gz"))
    cases["4-D NIfTI"] += 1
    folder = os.open(root, os.O_RDONLY)
    for _ in range(1000):
        os.mkdir("deep", dir_fd=folder)
        inner = os.open("deep", os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = inner
    with os.fdopen(os.open("bottom.jpg", os.O_CREAT | os.O_WRONLY, dir_fd=folder), "wb") as handle:
        handle.write(jpeg)
    for _ in range(18):  # past PATH_MAX (4,096 bytes) from the root
        os.mkdir("x" * 250, dir_fd=folder)
        inner = os.open("x" * 250, os.O_RDONLY, dir_fd=folder)
        os.close(folder)
        folder = inner
    with os.fdopen(os.open("far.jpg", os.O_CREAT | os.O_WRONLY, dir_fd=folder), "wb") as handle:
        handle.write(jpeg)
    os.close(folder)
    cases["a tree 1,000 folders deep"] += 1
    cases["a path over 4,096 bytes"] += 1


def run(root: Path, out: Path, review: Path, retry: bool = False):
    started = time.perf_counter()
    summary = classify_to_csv(root, out, report_dir=review, retry_errors=retry, overwrite=not retry)
    return summary, time.perf_counter() - started


def error_kind(error: str) -> str:
    return re.split(r"[(:]", error, maxsplit=1)[0].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="build the tree here and keep it")
    args = parser.parse_args()
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="bt-reliability-"))
    root = scratch / "stick"
    if root.exists():
        shutil.rmtree(root)
    cases = build_tree(root, args.copies)
    out, review = root / "results.csv", root / "review"  # outputs inside the input, on purpose

    real_listdir = os.listdir
    files.os.listdir = lambda path: (  # the share drops: its folder cannot be listed
        (_ for _ in ()).throw(OSError(5, "Input/output error", str(path)))
        if Path(path).name == DROPPED
        else real_listdir(path)
    )
    try:
        first, seconds = run(root, out, review)
    finally:
        files.os.listdir = real_listdir
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    errors = Counter(error_kind(row["error"]) for row in rows if row["error"])
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"CPU: {cpu_description()}")
    print(f"tree: {sum(cases.values())} entries in, by case:")
    for case, count in sorted(cases.items()):
        print(f"  {count:5d}  {case}")
    passed = first.passed
    print(
        f"first run: {len(rows)} rows out in {seconds:.1f}s; {first.failed} failed; "
        f"{passed.excluded} excluded; {passed.ignored} non-images and {passed.special} special files "
        f"skipped; {sum(passed.skipped.values())} DICOM without pixels skipped; "
        f"peak memory {peak_mib:.0f} MiB"
    )
    print("errors by kind:")
    for kind, count in errors.most_common():
        print(f"  {count:5d}  {kind}")
    thumbs = sum("review" in Path(row["path"]).relative_to(root).parts[:1] for row in rows)
    print(f"rows from the run's own review folder: {thumbs}")

    second, seconds = run(root, out, review, retry=True)
    with out.open(encoding="utf-8", newline="") as handle:
        after = list(csv.DictReader(handle))
    print(
        f"--retry-errors after the share came back: {second.retried} files retried in {seconds:.1f}s; "
        f"{len(after)} rows; {second.failed} still failed (the files that are really broken)"
    )
    dropped = sum(Path(row["path"]).parent.name == DROPPED for row in after)
    print(f"files on the dropped share now in the CSV: {dropped} of {cases['on a share that drops']}")
    page = (review / "index.html").read_text(encoding="utf-8")
    data = page.partition('<script id="data" type="application/json">')[2].partition("</script>")[0]
    print(f"review page rows: {len(json.loads(data)['rows'])} (CSV rows: {len(after)})")
    if not args.keep:  # find, not shutil.rmtree: the 1,000-deep tree is past Python's recursion limit
        subprocess.run(["find", str(scratch), "-depth", "-delete"], check=False)


if __name__ == "__main__":
    main()

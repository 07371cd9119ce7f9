"""Build the out-of-scope measurement set: inputs that are not brain MR slices.

For measurement only: the scope score and its limit are fitted on Training alone, and
nothing here is ever used to fit or choose them, so the figures say how the tool does
on inputs nobody tuned it for. Sources, all offline:
- photographs and pictures that scikit-image ships (cat, clock, rocket, text, textures,
  retina, phantom, microscopy, faces ...), when scikit-image is installed;
- synthetic frames: noise, stripes, checkerboards, gradients, rendered text pages,
  blank and nearly blank frames, a tiny thumbnail;
- DICOM objects of other modalities and kinds, written with pydicom (CT, RT dose,
  colour ultrasound, segmentation, secondary capture without modality).

    python bench/out_of_scope_set.py OUT_FOLDER
"""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

PICTURE_SUFFIXES = {".png", ".jpg", ".gif", ".tif"}


def packaged_pictures(out: Path) -> int:
    """scikit-image's sample pictures, copied as files (read without importing skimage)."""
    try:
        folder = resources.files("skimage") / "data"
        entries = sorted(folder.iterdir(), key=lambda entry: entry.name)
    except (ModuleNotFoundError, FileNotFoundError):
        return 0
    count = 0
    for entry in entries:
        if Path(entry.name).suffix in PICTURE_SUFFIXES:
            (out / f"picture-{entry.name}").write_bytes(entry.read_bytes())
            count += 1
        elif entry.name == "lfw_subset.npy":  # 25 x 25 grey faces: upsample a few
            with resources.as_file(entry) as path:
                faces = np.load(path)
            for index in range(0, len(faces), 40):
                face = np.clip(faces[index] * 255, 0, 255).astype(np.uint8)
                cv2.imwrite(str(out / f"face-{index:03d}.png"), cv2.resize(face, (200, 200)))
                count += 1
    return count


def synthetic_frames(out: Path, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    size = 256
    y, x = np.mgrid[0:size, 0:size]
    frames: dict[str, np.ndarray] = {
        "noise-uniform": rng.integers(0, 256, (size, size), dtype=np.uint8),
        "noise-gaussian": np.clip(rng.normal(128, 40, (size, size)), 0, 255).astype(np.uint8),
        "noise-smooth": cv2.GaussianBlur(rng.integers(0, 256, (size, size), dtype=np.uint8), (0, 0), 6),
        "stripes": ((np.sin(x / 6.0) + 1) * 127).astype(np.uint8),
        "checkerboard": (((x // 32) + (y // 32)) % 2 * 255).astype(np.uint8),
        "gradient": (x * 255 // (size - 1)).astype(np.uint8),
        "radial": np.clip(255 - np.hypot(x - 128, y - 128) * 2, 0, 255).astype(np.uint8),
        "black": np.zeros((size, size), np.uint8),
        "white": np.full((size, size), 255, np.uint8),
        "grey-nearly-flat": (120 + rng.integers(0, 3, (size, size))).astype(np.uint8),
        "tiny-thumbnail": rng.integers(0, 256, (32, 32), dtype=np.uint8),
        "colour-blocks": np.dstack([x % 256, y % 256, (x + y) % 256]).astype(np.uint8),
    }
    for index in range(3):
        page = np.full((400, 300), 245, np.uint8)
        for line in range(14):
            text = "".join(rng.choice(list("abcdefghij klmnop qrstu vwxyz"), 24))
            cv2.putText(page, text, (10, 30 + line * 26), cv2.FONT_HERSHEY_SIMPLEX, 0.55, 20, 1)
        frames[f"text-page-{index}"] = page
    screenshot = np.full((300, 400, 3), 230, np.uint8)
    cv2.rectangle(screenshot, (0, 0), (400, 30), (180, 120, 40), -1)
    cv2.putText(
        screenshot, "PACS viewer - Series 3", (10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1
    )
    cv2.circle(screenshot, (200, 170), 90, (60, 60, 60), -1)
    frames["screenshot"] = screenshot
    for name, image in frames.items():
        cv2.imwrite(str(out / f"synthetic-{name}.png"), image)
    return len(frames)


def _body_slice(size: int = 256) -> np.ndarray:
    """A CT-like abdomen: an ellipse of soft tissue, a spine, two kidneys, in Hounsfield units."""
    y, x = np.mgrid[0:size, 0:size]
    hu = np.full((size, size), -1000.0)
    hu[((x - 128) / 110) ** 2 + ((y - 128) / 80) ** 2 < 1] = 40
    hu[((x - 128) / 14) ** 2 + ((y - 185) / 14) ** 2 < 1] = 700
    for cx in (80, 176):
        hu[((x - cx) / 18) ** 2 + ((y - 150) / 26) ** 2 < 1] = 150
    return hu


def dicom_objects(out: Path) -> int:
    try:
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian, generate_uid
    except ImportError:
        return 0

    def write(name: str, modality: str | None, sop_class: str, pixels: np.ndarray, **tags) -> None:
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        if modality:
            ds.Modality = modality
        colour = pixels.ndim == 3
        ds.Rows, ds.Columns = pixels.shape[:2]
        ds.SamplesPerPixel = 3 if colour else 1
        ds.PhotometricInterpretation = "RGB" if colour else "MONOCHROME2"
        if colour:
            ds.PlanarConfiguration = 0
        ds.BitsAllocated = ds.BitsStored = 8 if pixels.dtype == np.uint8 else 16
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = 0
        ds.PixelData = pixels.tobytes()
        for key, value in tags.items():
            setattr(ds, key, value)
        ds.save_as(out / f"dicom-{name}.dcm", enforce_file_format=True)

    hu = _body_slice()
    ct = np.clip(hu + 1024, 0, 4095).astype(np.uint16)
    write(
        "ct",
        "CT",
        "1.2.840.10008.5.1.4.1.1.2",
        ct,
        RescaleIntercept=-1024,
        RescaleSlope=1,
        WindowCenter=40,
        WindowWidth=400,
    )
    dose = (np.exp(-(((np.mgrid[0:128, 0:128] - 64) ** 2).sum(0)) / 800.0) * 60000).astype(np.uint16)
    write("rtdose", "RTDOSE", "1.2.840.10008.5.1.4.1.1.481.2", dose)
    ultrasound = np.zeros((240, 320, 3), np.uint8)
    cv2.ellipse(ultrasound, (160, 0), (200, 220), 90, -30, 30, (90, 90, 90), -1)
    ultrasound[100:140, 140:200] = (200, 40, 30)  # colour Doppler
    write("ultrasound", "US", "1.2.840.10008.5.1.4.1.1.6.1", ultrasound)
    segmentation = (((np.mgrid[0:128, 0:128] - 64) ** 2).sum(0) < 900).astype(np.uint8) * 255
    write("segmentation", "SEG", "1.2.840.10008.5.1.4.1.1.66.4", segmentation)
    capture = cv2.cvtColor(cv2.resize((hu > 0).astype(np.uint8) * 200, (256, 256)), cv2.COLOR_GRAY2RGB)
    write("secondary-capture", None, "1.2.840.10008.5.1.4.1.1.7", capture)
    return 5


def build(out: Path) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    return {
        "pictures": packaged_pictures(out),
        "synthetic": synthetic_frames(out),
        "dicom": dicom_objects(out),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    counts = build(parser.parse_args().out)
    print(", ".join(f"{n} {kind}" for kind, n in counts.items()))


if __name__ == "__main__":
    main()

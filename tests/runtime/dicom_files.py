"""DICOM objects for tests, written with pydicom from real slices."""

from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


def full_range(grey: np.ndarray) -> np.ndarray:
    """Stretched to 0..255, as a DICOM without a window is displayed (its own range)."""
    grey = grey.astype(np.float64)
    return np.round((grey - grey.min()) * 255.0 / (grey.max() - grey.min())).astype(np.uint8)


def full_range_grey(path: Path) -> np.ndarray:
    return full_range(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))


def dataset(pixels: np.ndarray, bits: int = 8, photometric: str = "MONOCHROME2", **tags) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.InstanceNumber = 7
    ds.Modality = "MR"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "SECRET-123"
    ds.PatientBirthDate = "19450317"
    ds.AccessionNumber = "ACC-98765"
    ds.InstitutionName = "St Elsewhere Hospital"
    ds.ReferringPhysicianName = "House^Gregory"
    frames = pixels if pixels.ndim == 3 else pixels[None]
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 8 if bits == 8 else 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = frames.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    for key, value in tags.items():
        setattr(ds, key, value)
    return ds

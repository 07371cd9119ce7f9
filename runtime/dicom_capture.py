"""`bt-classify --series-csv S.csv --dicom-sc DIR`: the verdict of each DICOM series as a DICOM
object a PACS can take back, filed under the same patient and study as the series.

A **Secondary Capture** with the verdict burned in, not a Structured Report: every PACS
viewer shows an image, and a radiologist reads it beside the series without a template-
aware SR viewer (a classification SR, TID 1500, is shown as a bare tree of codes by many
viewers, or not at all); it needs no further library (highdicom) in the runtime. The
price: the result is pixels, not coded values; the CSVs keep the values.

Each object: SOP class Secondary Capture Image Storage, a new series (SeriesDescription
"bt-classify verdict", SeriesNumber 9901) in the study of the series it is about, the
patient and study attributes copied from that series' first file (so it files in the
right place; nothing of them is written anywhere else), Modality OT, BurnedInAnnotation
YES, and a 768 x 384 grey image with the verdict, the counts, the strongest slice, the
model and the words "research use only, not for diagnosis".
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from .commands import plural
from .errors import RunError
from .series import SeriesSummary

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
SERIES_NUMBER = 9901
# Copied from the series' first file so that the object joins the patient's study.
PATIENT_AND_STUDY = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
)


def verdict_lines(summary: SeriesSummary, model: str) -> list[str]:
    strongest = (
        f"strongest slice: {summary.strongest_class} {summary.strongest_probability:.2f}"
        if summary.strongest_probability is not None
        else "no slice classified"
    )
    return [
        f"bt-classify verdict: {summary.verdict.upper()}",
        f"series: {summary.description or summary.series}"[:60],
        f"{plural(summary.slices, 'slice')}, {summary.classified} classified, "
        f"{summary.tumour_slices} with a tumour class",
        f"longest run of tumour slices: {summary.longest_run}; {strongest}",
        f"model: {model}"[:60],
        "RESEARCH USE ONLY - NOT FOR DIAGNOSIS",
    ]


def render(lines: list[str], width: int = 768, height: int = 384) -> np.ndarray:
    image = np.zeros((height, width), np.uint8)
    for index, line in enumerate(lines):
        scale = 0.9 if index == 0 else 0.6
        cv2.putText(image, line, (24, 60 + index * 52), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 2, cv2.LINE_AA)
    return image


def write_secondary_captures(summaries: list[SeriesSummary], folder: Path, model: str) -> list[Path]:
    """One Secondary Capture per DICOM series (NIfTI volumes have no study to join)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from .dicom import _read_dataset

    written = []
    now = datetime.now()
    for summary in summaries:
        if not summary.first_file or summary.first_file == summary.series:  # a NIfTI volume
            continue
        try:
            source = _read_dataset(summary.first_file, stop_before_pixels=True)
        except Exception as exc:  # the file went away or changed since it was classified
            raise RunError(
                f"--dicom-sc: cannot read {summary.first_file} again ({type(exc).__name__})"
            ) from None
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = SECONDARY_CAPTURE
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        for keyword in PATIENT_AND_STUDY:
            # Type 2: present even when the source lacks it (empty), as the IOD requires.
            setattr(ds, keyword, source[keyword].value if keyword in source else "")
        if not ds.StudyInstanceUID:
            ds.StudyInstanceUID = generate_uid()
        ds.SOPClassUID = SECONDARY_CAPTURE
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID = generate_uid()
        ds.SeriesNumber = SERIES_NUMBER
        ds.InstanceNumber = 1
        ds.SeriesDescription = "bt-classify verdict"
        ds.Modality = "OT"
        # General Series, type 2C; dciodvfy cannot judge its condition and wants it there:
        # empty (its one warning: "unknown") rather than absent (an error).
        ds.Laterality = ""
        ds.PatientOrientation = ""  # General Image, type 2C: a page of text has no orientation
        ds.ConversionType = "WSD"  # workstation
        ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
        ds.SeriesDate, ds.SeriesTime = ds.ContentDate, ds.ContentTime
        ds.Manufacturer = "brain-tumor-edge"
        ds.BurnedInAnnotation = "YES"
        ds.ImageComments = f"verdict {summary.verdict} for series {summary.series}"[:10240]
        pixels = render(verdict_lines(summary, model))
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = pixels.tobytes()
        target = folder / f"verdict-{ds.SOPInstanceUID}.dcm"
        try:
            ds.save_as(target, enforce_file_format=True)
        except OSError as exc:
            raise RunError(f"cannot write {target}: {exc.strerror or type(exc).__name__}") from None
        written.append(target)
    return written

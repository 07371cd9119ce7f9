"""DICOM input: files built with pydicom from real slices must classify like their source image."""

import csv
import shutil
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from brain_tumor_edge.runtime.classify import decode_file
from brain_tumor_edge.runtime.cli import app
from brain_tumor_edge.runtime.dicom import INSTALL_HINT, read_dicom
from brain_tumor_edge.runtime.errors import ImageError
from brain_tumor_edge.runtime.preprocess import PreprocessConfig
from tests.conftest import sample_files
from tests.runtime.dicom_files import dataset, full_range, full_range_grey

pydicom = pytest.importorskip("pydicom", reason="the dicom extra is not installed")
from pydicom.encaps import encapsulate  # noqa: E402
from pydicom.uid import (  # noqa: E402
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def sources() -> dict[str, np.ndarray]:
    return {path.stem: full_range_grey(path) for path in sample_files()[::3]}


def predictions(folder: Path, tmp_path: Path, *extra: str) -> tuple[dict[str, str], list[dict], str]:
    out = tmp_path / f"{folder.name}.csv"
    result = runner.invoke(app, [str(folder), "--csv", str(out), *extra])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_name = {
        Path(row["path"].split("#")[0]).stem + row["path"][len(row["path"].split("#")[0]) :]: row[
            "prediction"
        ]
        for row in rows
    }
    return by_name, rows, result.output


def test_dicom_variants_classify_like_their_source(tmp_path: Path, sources):
    reference = tmp_path / "reference"
    dicoms = tmp_path / "dicom"
    reference.mkdir()
    dicoms.mkdir()
    expected = {}
    for stem, grey in sources.items():
        cv2.imwrite(str(reference / f"{stem}.png"), grey)
        twelve = grey.astype(np.uint16) * 16
        variants = {
            "plain8": dataset(grey),
            # stored = 16 g + 1000, rescale intercept -1000: the modality LUT must be applied
            "rescaled": dataset(twelve + 1000, 16, RescaleSlope=1, RescaleIntercept=-1000),
            # a hot pixel far outside the window: min-max would darken everything, the window does not
            "windowed": dataset(
                np.where(np.arange(grey.size).reshape(grey.shape) == 0, 4095, twelve),
                12,
                WindowCenter=2040.5,
                WindowWidth=4081,
            ),
            "mono1": dataset(255 - grey, photometric="MONOCHROME1"),
        }
        for name, ds in variants.items():
            ds.save_as(dicoms / f"{stem}_{name}.dcm", enforce_file_format=True)
            expected[f"{stem}_{name}"] = stem
        # A PACS export without an extension, found by its DICM preamble.
        dataset(grey).save_as(dicoms / f"{stem}_noext", enforce_file_format=True)
        expected[f"{stem}_noext"] = stem
    truth, _, _ = predictions(reference, tmp_path)
    got, rows, _ = predictions(dicoms, tmp_path)
    assert len(rows) == len(expected)
    assert {name: got[name] for name in expected} == {name: truth[stem] for name, stem in expected.items()}


def test_multi_frame_gives_one_row_per_frame(tmp_path: Path, sources):
    folder = tmp_path / "multi"
    folder.mkdir()
    stems = list(sources)
    frames = [full_range(cv2.resize(sources[s], (256, 256), interpolation=cv2.INTER_AREA)) for s in stems]
    dataset(np.stack(frames)).save_as(folder / "series.dcm", enforce_file_format=True)
    ref = tmp_path / "ref"
    ref.mkdir()
    for stem, frame in zip(stems, frames, strict=True):
        cv2.imwrite(str(ref / f"{stem}.png"), frame)
    truth, _, _ = predictions(ref, tmp_path)
    _, rows, _ = predictions(folder, tmp_path)
    assert [Path(row["path"]).name for row in rows] == [f"series.dcm#{i}" for i in range(len(stems))]
    assert [row["prediction"] for row in rows] == [truth[s] for s in stems]


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless, JPEGBaseline8Bit])
def test_compressed_transfer_syntaxes(tmp_path: Path, sources, syntax):
    grey = next(iter(sources.values()))
    ds = dataset(grey)
    if syntax == JPEGBaseline8Bit:
        ok, jpeg = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, 98])
        assert ok
        ds.PixelData = encapsulate([jpeg.tobytes()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    else:
        try:
            ds.compress(syntax)
        except (RuntimeError, ValueError) as exc:
            pytest.skip(f"no encoder for {syntax.name} here: {exc}")
    folder = tmp_path / "c"
    folder.mkdir()
    ds.save_as(folder / "x.dcm", enforce_file_format=True)
    ref = tmp_path / "r"
    ref.mkdir()
    cv2.imwrite(str(ref / "x.png"), grey)
    assert predictions(folder, tmp_path)[0] == predictions(ref, tmp_path)[0]


def test_dicomdir_and_objects_without_pixels_are_skipped_and_counted(tmp_path: Path, sources):
    folder = tmp_path / "export"
    folder.mkdir()
    grey = next(iter(sources.values()))
    dataset(grey).save_as(folder / "IM0001", enforce_file_format=True)
    report = dataset(grey, Modality="SR")
    for name in ("PixelData", "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit"):
        delattr(report, name)  # a report has no image module
    report.save_as(folder / "SR0001", enforce_file_format=True)
    directory = dataset(grey)
    del directory.PixelData
    directory.DirectoryRecordSequence = []
    directory.save_as(folder / "DICOMDIR", enforce_file_format=True)
    _, rows, output = predictions(folder, tmp_path)
    assert [Path(row["path"]).name for row in rows] == ["IM0001"]
    assert "1 skipped: DICOM without pixel data (SR)" in output
    assert "1 non-image file skipped" in output


def test_no_patient_data_by_default_and_chosen_fields_on_request(tmp_path: Path, sources):
    folder = tmp_path / "d"
    folder.mkdir()
    ds = dataset(next(iter(sources.values())))
    ds.save_as(folder / "a.dcm", enforce_file_format=True)
    _, rows, output = predictions(folder, tmp_path)
    text = (tmp_path / "d.csv").read_text(encoding="utf-8")
    page = runner.invoke(
        app, [str(folder), "--csv", str(tmp_path / "page.csv"), "--report", str(tmp_path / "r")]
    )
    assert page.exit_code == 0, page.output
    shown = [text, output, page.output, (tmp_path / "r" / "index.html").read_text(encoding="utf-8")]
    for value in ("Doe", "Jane", "SECRET", "19450317", "ACC-98765", "Elsewhere", "Gregory"):
        assert not any(value in where for where in shown), value  # CSV, stdout, the page
    (tmp_path / "d.csv").unlink()
    _, rows, _ = predictions(folder, tmp_path, "--dicom-fields", "SOPInstanceUID,InstanceNumber")
    assert rows[0]["SOPInstanceUID"] == ds.SOPInstanceUID and rows[0]["InstanceNumber"] == "7"
    refused = runner.invoke(
        app, [str(folder), "--csv", str(tmp_path / "p.csv"), "--dicom-fields", "PatientID"]
    )
    assert refused.exit_code == 2 and "patient privacy" in refused.output


def test_without_the_extra_dicom_gets_an_error_row_that_says_how(monkeypatch, sources, tmp_path: Path):
    path = tmp_path / "a.dcm"
    dataset(next(iter(sources.values()))).save_as(path, enforce_file_format=True)
    monkeypatch.setitem(sys.modules, "pydicom", None)
    with pytest.raises(ImageError, match="pip install"):
        read_dicom(path.read_bytes())
    # Through bt-classify's own path: an error row that says how to enable DICOM.
    (item,) = decode_file(path, PreprocessConfig()).items
    assert item.image is None and item.error == INSTALL_HINT and "[dicom]" in item.error


def _dicom_bytes(ds) -> bytes:
    import io

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_rescale_then_window_gives_the_hand_computed_grey_levels():
    """Stored values go through the modality LUT (slope 2, intercept -100) and then the
    linear window of PS3.3 C.11.2.1.2 (centre 500, width 200): computed by hand below.
    Plain min-max, or a window applied to stored values, gives other numbers."""
    stored = np.array([0, 250, 275, 300, 325, 350, 1000], np.uint16)  # real: -100, 400 ... 1900
    pixels = np.repeat(np.repeat(stored[None, :], 8, axis=0), 8, axis=1)  # 8 x 56, each value a tile
    ds = dataset(pixels, bits=12, RescaleSlope=2, RescaleIntercept=-100, WindowCenter=500, WindowWidth=200)
    frame = next(read_dicom(_dicom_bytes(ds)).frames()).pixels
    # x <= c - 0.5 - (w - 1)/2 = 400 -> 0; x > c - 0.5 + (w - 1)/2 = 599 -> 255;
    # else ((x - 499.5) / 199 + 0.5) * 255: 450 -> 64.07, 500 -> 128.14, 550 -> 192.2.
    assert frame[0, ::8].tolist() == [0, 0, 64, 128, 192, 255, 255]


def test_a_narrow_window_is_a_threshold_and_monochrome1_inverts():
    stored = np.array([99, 100, 101, 102], np.uint16)
    pixels = np.repeat(np.repeat(stored[None, :], 4, axis=0), 4, axis=1)
    ds = dataset(pixels, bits=12, WindowCenter=100.5, WindowWidth=1)
    assert next(read_dicom(_dicom_bytes(ds)).frames()).pixels[0, ::4].tolist() == [0, 0, 255, 255]
    inverted = dataset(pixels, bits=12, photometric="MONOCHROME1", WindowCenter=100.5, WindowWidth=1)
    assert next(read_dicom(_dicom_bytes(inverted)).frames()).pixels[0, ::4].tolist() == [255, 255, 0, 0]


def test_without_a_window_the_real_values_fill_the_range():
    stored = np.array([10, 20, 30, 50], np.uint16)
    pixels = np.repeat(np.repeat(stored[None, :], 4, axis=0), 4, axis=1)
    ds = dataset(pixels, bits=12, RescaleSlope=3, RescaleIntercept=7)  # 37, 67, 97, 157: min-max
    assert next(read_dicom(_dicom_bytes(ds)).frames()).pixels[0, ::4].tolist() == [0, 64, 128, 255]


# Round 3: DICOM as real writers make it.


def test_dicom_is_recognised_by_content_whatever_the_extension(tmp_path: Path, sources):
    """Siemens writes .IMA, others .MR or nothing or a UID: all classify like .dcm."""
    folder = tmp_path / "vendor"
    folder.mkdir()
    grey = next(iter(sources.values()))
    for name in ("SCAN.IMA", "scan.MR", "1.3.12.2.1107.5.2.30"):
        dataset(grey).save_as(folder / name, enforce_file_format=True)
    (folder / "notes.IMA").write_bytes(b"not a dicom at all")
    _, rows, output = predictions(folder, tmp_path)
    assert sorted(Path(row["path"]).name for row in rows) == ["1.3.12.2.1107.5.2.30", "SCAN.IMA", "scan.MR"]
    assert len({row["prediction"] for row in rows}) == 1 and "1 non-image file skipped" in output


def test_vendor_per_frame_data_is_not_counted_against_the_pixel_limit(tmp_path: Path, sources):
    """An enhanced multi-frame MR whose per-frame groups outweigh its pixels (old limit:
    the pixels plus 1 MiB) is read, one row per frame."""
    from pydicom.dataset import Dataset as Item

    grey = cv2.resize(next(iter(sources.values())), (64, 64), interpolation=cv2.INTER_AREA)
    frames = np.stack([grey] * 40)
    ds = dataset(frames)
    groups = []
    for _ in range(40):
        item = Item()
        item.add_new(0x00291010, "OB", bytes(60_000))  # a vendor's private per-frame block
        groups.append(item)
    ds.PerFrameFunctionalGroupsSequence = groups
    folder = tmp_path / "enhanced"
    folder.mkdir()
    ds.save_as(folder / "enhanced.dcm", enforce_file_format=True)
    assert (folder / "enhanced.dcm").stat().st_size > frames.nbytes + (1 << 20)
    _, rows, _ = predictions(folder, tmp_path)
    assert len(rows) == 40 and not any(row["error"] for row in rows)


def test_a_decimal_comma_window_is_read_as_a_point_with_a_note(tmp_path: Path):
    stored = np.array([0, 250, 275, 300, 325, 350, 1000], np.uint16)
    pixels = np.repeat(np.repeat(stored[None, :], 8, axis=0), 8, axis=1)
    point = dataset(pixels, bits=12, WindowCenter="300.0", WindowWidth="100.0")
    # As a comma-locale writer puts it (pydicom will not write it, so the bytes are edited).
    comma = _dicom_bytes(point).replace(b"300.0", b"300,0").replace(b"100.0", b"100,0")
    expected = next(read_dicom(_dicom_bytes(point)).frames())
    frame = next(read_dicom(comma).frames())
    assert np.array_equal(frame.pixels, expected.pixels)
    assert frame.reasons == ["dicom: window written with a decimal comma, read as a point"]
    broken = _dicom_bytes(point).replace(b"300.0", b"about").replace(b"100.0", b"wide!")
    frame = next(read_dicom(broken).frames())
    assert frame.pixels is not None and frame.reasons == [
        "dicom: window unreadable, the frame's own range shown"
    ]
    assert frame.pixels.min() == 0 and frame.pixels.max() == 255


def test_zero_and_negative_numbers_are_written_as_numbers(tmp_path: Path, sources):
    folder = tmp_path / "d"
    folder.mkdir()
    grey = next(iter(sources.values()))
    dataset(grey, SliceLocation="0", InstanceNumber=1).save_as(folder / "a.dcm", enforce_file_format=True)
    dataset(grey, SliceLocation="-12.5", InstanceNumber=2).save_as(folder / "b.dcm", enforce_file_format=True)
    _, rows, _ = predictions(folder, tmp_path, "--dicom-fields", "SliceLocation")
    assert [row["SliceLocation"] for row in rows] == ["0", "-12.5"]  # as written, not empty, not quoted


def test_palette_colour_is_shown_through_its_lookup_table(tmp_path: Path, sources):
    """PALETTE COLOR stores indices into a colour table: the model must see the colours
    (here a grey table that inverts), not the raw indices."""
    grey = cv2.resize(next(iter(sources.values())), (128, 128), interpolation=cv2.INTER_AREA)
    ds = dataset(grey, photometric="PALETTE COLOR")
    table = (np.arange(256)[::-1] * 257).astype(np.uint16).tobytes()  # 16-bit entries, inverted
    for colour in ("Red", "Green", "Blue"):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", table)
    frame = next(read_dicom(_dicom_bytes(ds)).frames())
    assert frame.error == "" and frame.reasons == []  # grey colours: in scope
    expected = full_range(255 - grey.astype(np.int32))
    assert np.abs(frame.pixels.astype(int) - expected).max() <= 1


def test_one_corrupt_frame_costs_one_row_not_the_file(tmp_path: Path, sources):
    from pydicom.pixels import get_encoder

    grey = cv2.resize(next(iter(sources.values())), (64, 64), interpolation=cv2.INTER_AREA)
    frames = np.stack([grey] * 5)
    ds = dataset(frames)
    encoder = get_encoder(RLELossless)
    encoded = [encoder.encode(ds, index=i) for i in range(5)]
    encoded[2] = encoded[2][:64] + b"\xff" * 16  # a damaged fragment
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = RLELossless
    folder = tmp_path / "rle"
    folder.mkdir()
    ds.save_as(folder / "series.dcm", enforce_file_format=False)
    out = tmp_path / "o.csv"
    result = runner.invoke(app, [str(folder), "--csv", str(out)])
    assert result.exit_code == 1, result.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [Path(row["path"]).name for row in rows] == [f"series.dcm#{i}" for i in range(5)]
    assert [bool(row["error"]) for row in rows] == [False, False, True, False, False]
    assert rows[2]["error"].startswith("DICOM frame not decodable")


def test_no_element_text_reaches_a_message(tmp_path: Path, sources):
    """Free text written into coded elements (a name in Modality, a note in the transfer
    syntax) never reaches the error cell, the skip reason or stderr."""
    grey = next(iter(sources.values()))
    folder = tmp_path / "leaky"
    folder.mkdir()
    secret = "Doe^Jane SECRET-123"
    nopixels = dataset(grey, Modality=secret)
    for name in ("PixelData", "Rows", "Columns"):
        delattr(nopixels, name)  # a non-image object
    nopixels.save_as(folder / "a.dcm", enforce_file_format=True)
    odd = dataset(grey)
    odd.save_as(folder / "b.dcm", enforce_file_format=True)
    written = (folder / "b.dcm").read_bytes()  # an unknown transfer syntax, same length
    (folder / "b.dcm").write_bytes(written.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.3.4.99999999999\x00", 1))
    out = tmp_path / "o.csv"
    result = runner.invoke(app, [str(folder), "--csv", str(out)])
    text = out.read_text(encoding="utf-8") + result.output
    assert "SECRET" not in text and "Doe" not in text and "9999999999" not in text, text
    assert "DICOM without pixel data (unrecognised)" in result.output


def test_memory_per_multi_frame_file_is_about_its_pixel_data_not_four_times_it(tmp_path: Path):
    """300 frames of 512 x 512 at 16 bits (150 MiB): decoded frame by frame, the run's
    peak stays well under two copies of the file (it was about four)."""
    import subprocess

    from tests.conftest import REPO

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 4096, (300, 512, 512), dtype=np.uint16)
    folder = tmp_path / "big"
    folder.mkdir()
    dataset(frames, bits=12).save_as(folder / "big.dcm", enforce_file_format=True)
    del frames
    size_mib = (folder / "big.dcm").stat().st_size / 2**20
    script = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, '-m', 'brain_tumor_edge.runtime', *sys.argv[1:]])\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        "sys.exit(r.returncode)\n"
    )

    def peak_mib(target: Path) -> float:
        out = tmp_path / f"{target.name}.csv"
        process = subprocess.run(
            [sys.executable, "-c", script, str(target), "--csv", str(out)],
            cwd=REPO, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert process.returncode == 0, process.stderr
        return int(process.stdout.strip().splitlines()[-1]) / 1024

    small = tmp_path / "small"
    small.mkdir()
    shutil.copy(sample_files()[0], small / "one.jpg")
    baseline = peak_mib(small)  # the model, onnxruntime and the libraries
    extra = peak_mib(folder) - baseline
    assert extra < 1.6 * size_mib, f"{extra:.0f} MiB above the baseline for a {size_mib:.0f} MiB file"


def test_page_data_always_parses_and_free_text_never_leaves_a_uid(tmp_path: Path, sources):
    """A position of NaN or 1e999 falls back to the instance number (the page's data would not
    parse: Chromium showed 0 rows), and a SeriesInstanceUID holding patient text is shown as
    a short hash, in the series CSV, the page and its rows.json alike."""
    import json

    folder = tmp_path / "series"
    folder.mkdir()
    grey = next(iter(sources.values()))
    for index, position in enumerate(("1.0", "123.0", "5.0")):
        ds = dataset(grey, SeriesInstanceUID="1.2.3.4.5.6.7.8.9", InstanceNumber=index + 1,
                     ImageOrientationPatient=["1", "0", "0", "0", "1", "0"],
                     ImagePositionPatient=["0", "0", position])  # fmt: skip
        data = _dicom_bytes(ds).replace(b"1.2.3.4.5.6.7.8.9", b"DOE^JOHN MRN12345")
        data = data.replace(b"\\123.0", b"\\1e999").replace(b"\\1.0", b"\\NaN")
        (folder / f"{index}.dcm").write_bytes(data)
    out, series, report = tmp_path / "o.csv", tmp_path / "s.csv", tmp_path / "report"
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--series-csv", str(series),
                                 "--report", str(report)])  # fmt: skip
    assert result.exit_code == 0, result.output
    page = (report / "index.html").read_text(encoding="utf-8")
    data = page.partition('<script id="data" type="application/json">')[2].partition("</script>")[0]

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the page's data")

    rows = json.loads(data, parse_constant=refuse)["rows"]
    assert len(rows) == 3 and all(row["position"] is not None for row in rows)
    sidecar = (report / "rows.json").read_text(encoding="utf-8")
    for text in (page, series.read_text(encoding="utf-8"), sidecar):
        assert "DOE" not in text and "MRN" not in text
    with series.open(encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["series"].startswith("series-") and row["slices"] == "3"


def test_an_mr_image_cut_before_its_pixels_is_an_error_row_not_a_skip(tmp_path: Path, sources):
    folder = tmp_path / "cut"
    folder.mkdir()
    data = _dicom_bytes(dataset(next(iter(sources.values()))))
    (folder / "IM0002").write_bytes(data[: data.index(b"\xe0\x7f\x10\x00")])  # before (7FE0,0010)
    out = tmp_path / "o.csv"
    result = runner.invoke(app, [str(folder), "--csv", str(out)])
    assert result.exit_code == 1 and "skipped: DICOM" not in result.output, result.output
    with out.open(encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["error"].startswith("truncated DICOM (declares a ")


def test_a_file_named_like_a_frame_is_retried_and_kept(tmp_path: Path, sources):
    """`scan#7` reads like frame 7 of `scan`: failed, then repaired, --retry-errors gives it
    its row back (it lost it: 3 rows for 4 files)."""
    folder = tmp_path / "named"
    folder.mkdir()
    for index, grey in enumerate(list(sources.values())[:3]):
        dataset(grey).save_as(folder / f"IM{index}", enforce_file_format=True)
    broken = folder / "scan#7"
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI")  # cut in its first element
    out = tmp_path / "o.csv"
    assert runner.invoke(app, [str(folder), "--csv", str(out)]).exit_code == 1
    dataset(next(iter(sources.values()))).save_as(broken, enforce_file_format=True)
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--retry-errors"])
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all(row["prediction"] for row in rows)
    assert sorted(Path(row["path"]).name for row in rows) == ["IM0", "IM1", "IM2", "scan#7"]


def test_the_series_csv_says_what_each_series_is_and_a_ct_series_is_out_of_scope(tmp_path: Path, sources):
    """Sequence facts are allowed in --dicom-fields (results differ by sequence); a series
    row names its folder, first file and description; a CT series gets `out of scope`."""
    folder = tmp_path / "study"
    grey = next(iter(sources.values()))
    for series, modality, description in (("flair", "MR", "AX  FLAIR"), ("ct", "CT", "HEAD CT")):
        (folder / series).mkdir(parents=True)
        for index in range(3):
            dataset(grey, Modality=modality, SeriesInstanceUID=f"1.2.3.{len(series)}",
                    InstanceNumber=index + 1, SeriesDescription=description,
                    EchoTime="90", RepetitionTime="9000",
                    ImageOrientationPatient=["1", "0", "0", "0", "1", "0"],
                    ImagePositionPatient=["0", "0", str(5 * index)],
                    ).save_as(folder / series / f"IM{index}", enforce_file_format=True)  # fmt: skip
    out, series_csv = tmp_path / "o.csv", tmp_path / "s.csv"
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--series-csv", str(series_csv),
                                 "--dicom-fields", "SeriesDescription,EchoTime,RepetitionTime"])  # fmt: skip
    assert result.exit_code == 0, result.output
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {(row["SeriesDescription"], row["EchoTime"], row["RepetitionTime"]) for row in rows} == {
        ("AX  FLAIR", "90", "9000"), ("HEAD CT", "90", "9000")}  # fmt: skip
    with series_csv.open(encoding="utf-8") as handle:
        by_description = {row["description"]: row for row in csv.DictReader(handle)}
    flair, ct = by_description["AX FLAIR"], by_description["HEAD CT"]
    assert flair["folder"] == str(folder / "flair") and flair["first_file"] == str(folder / "flair" / "IM0")
    assert flair["slices"] == "3" and flair["plane"] == "axial" and flair["verdict"] != "out of scope"
    assert ct["verdict"] == "out of scope" and ct["classified"] == "0"
    refused = runner.invoke(
        app, [str(folder), "--csv", str(tmp_path / "p.csv"), "--dicom-fields", "PatientID"]
    )
    assert refused.exit_code == 2 and "PatientID not allowed" in refused.output


def test_a_failed_frame_says_what_pydicom_said_without_any_elements_value(tmp_path: Path, sources):
    """ "DICOM frame not decodable (AttributeError)" hid pydicom's "Missing required element:
    (0028,0004) 'Photometric Interpretation'"; the library's words now follow, with any
    quoted text that is not an element's name (a value, possibly a name) replaced."""
    from brain_tumor_edge.runtime.dicom import library_words

    missing = dataset(next(iter(sources.values())))
    del missing.PhotometricInterpretation
    frame = next(read_dicom(_dicom_bytes(missing)).frames())
    assert frame.error == (
        "DICOM frame not decodable (AttributeError: Missing required element: (0028,0004) "
        "'Photometric Interpretation')"
    )
    leaky = ValueError("The (0028,0004) 'Photometric Interpretation' value 'Doe^Jane MRN123' is invalid")
    assert library_words(leaky) == (
        "ValueError: The (0028,0004) 'Photometric Interpretation' value '...' is invalid"
    )


def test_a_readers_warning_goes_into_its_files_row_not_the_console(tmp_path: Path):
    """pydicom's UserWarnings reached the console, without a file's name; routed (as
    bt-classify does), they are a `dicom:` note in the row of the file they are about."""
    import subprocess
    import sys

    from pydicom.data import get_testdata_file

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(get_testdata_file("MR_small_padded.dcm"), folder / "padded.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), folder / "plain.dcm")
    out = tmp_path / "o.csv"
    script = ("import sys; from brain_tumor_edge.runtime.cli import main; "
              f"sys.argv = ['bt-classify', {str(folder)!r}, '--csv', {str(out)!r}]; main()")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "Warning" not in done.stderr and "excess padding" not in done.stderr, done.stderr
    with out.open(encoding="utf-8") as handle:
        rows = {Path(row["path"]).name: row for row in csv.DictReader(handle)}
    assert "dicom: The pixel data is 8320 bytes long" in rows["padded.dcm"]["review"]
    assert "excess padding" not in rows["plain.dcm"]["review"]


def test_each_series_verdict_is_a_secondary_capture_a_pacs_can_file(tmp_path: Path, sources):
    """--dicom-sc: one Secondary Capture per DICOM series, in the series' own patient and study,
    that reads back with pydicom and (where dicom3tools is installed) passes dciodvfy."""
    import subprocess

    folder = tmp_path / "study"
    folder.mkdir()
    grey = next(iter(sources.values()))
    for index in range(3):
        dataset(grey, SeriesInstanceUID="1.2.3.4", StudyInstanceUID="1.2.3", InstanceNumber=index + 1,
                SeriesDescription="AX T2", ImageOrientationPatient=["1", "0", "0", "0", "1", "0"],
                ImagePositionPatient=["0", "0", str(5 * index)],
                ).save_as(folder / f"IM{index}", enforce_file_format=True)  # fmt: skip
    out, verdicts = tmp_path / "o.csv", tmp_path / "verdicts"
    result = runner.invoke(app, [str(folder), "--csv", str(out), "--series-csv", str(tmp_path / "s.csv"),
                                 "--dicom-sc", str(verdicts)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "DICOM verdicts: 1 Secondary Captures" in result.output
    (written,) = list(verdicts.iterdir())
    ds = pydicom.dcmread(written)
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and ds.Modality == "OT"
    assert ds.StudyInstanceUID == "1.2.3" and ds.SeriesInstanceUID != "1.2.3.4"
    assert ds.PatientID == "SECRET-123"  # files under the right patient, in DICOM only
    with (tmp_path / "s.csv").open(encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert f"verdict {row['verdict']}" in ds.ImageComments and ds.BurnedInAnnotation == "YES"
    assert ds.pixel_array.shape == (384, 768) and ds.pixel_array.max() == 255  # the text is there
    assert "SECRET" not in out.read_text(encoding="utf-8") + (tmp_path / "s.csv").read_text(encoding="utf-8")
    if shutil.which("dciodvfy"):
        checked = subprocess.run(["dciodvfy", str(written)], capture_output=True, text=True)
        errors = [line for line in (checked.stdout + checked.stderr).splitlines() if line.startswith("Error")]
        assert not errors, errors
    refused = runner.invoke(app, [str(folder), "--csv", str(tmp_path / "p.csv"), "--dicom-sc", str(verdicts)])
    assert refused.exit_code == 2 and "needs --series-csv" in refused.output

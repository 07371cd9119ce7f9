"""Installed as README says, used from the checkout it was cloned into.

The wheel is built and installed (not editable) into a fresh venv with the `cluster` extra
only: no torch, no onnx. Then everything a newcomer does right after README's command 1
runs *from the repository root*, where Python puts the checkout's folders first on the
import path (the layout must not let them shadow the installed package).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, sample_files, samples_the_bundled_model_gets_right
from tests.runtime.test_isolation import API_WITHOUT_TORCH, SCRIPTS
from tests.test_readme import code_blocks, section

pytestmark = pytest.mark.slow


def _run(command: list[str], cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scratch = tmp_path_factory.mktemp("wheel")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    dist = scratch / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), str(REPO)],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("brain_tumor_edge-*.whl")
    venv = scratch / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", f"{wheel}[cluster]"],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    return venv


def test_only_the_runtime_and_one_import_name_are_installed(venv: Path):
    python = str(venv / "bin" / "python")
    found = _run(
        [python, "-c", "import importlib.util as u; print(u.find_spec('torch'), u.find_spec('onnx'))"]
    )
    assert found.stdout.split() == ["None", "None"], found.stdout + found.stderr
    # One top-level import name of ours in site-packages, plus its dist-info.
    (dist_info,) = venv.glob("lib/python*/site-packages/brain_tumor_edge-*.dist-info")
    record = (dist_info / "RECORD").read_text(encoding="utf-8").splitlines()
    tops = {line.split(",")[0].split("/")[0] for line in record if not line.startswith("..")}
    assert tops == {"brain_tumor_edge", dist_info.name}, tops
    # Every console script answers --version from the one version in pyproject.toml.
    from brain_tumor_edge import __version__

    for script in SCRIPTS:
        answer = _run([str(venv / "bin" / script), "--version"])
        assert answer.returncode == 0, (script, answer.stderr)
        assert answer.stdout.splitlines()[0] == f"brain-tumor-edge {__version__}", script
        assert "missing" not in answer.stdout, answer.stdout  # every decoder in the plain install


def test_the_readme_python_example_runs_from_the_repository_root(venv: Path):
    (example,) = code_blocks(section("From Python"), "python")
    result = _run([str(venv / "bin" / "python"), "-c", example])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(sample_files()), result.stdout
    assert "Te-gl_0010.jpg glioma" in result.stdout
    # The API, with torch, torchvision and onnx unimportable, gives the answers it gives here.
    api = _run([str(venv / "bin" / "python"), "-c", API_WITHOUT_TORCH, "samples"])
    assert api.returncode == 0, api.stderr
    assert api.stdout.split() == [str(len(sample_files())), str(samples_the_bundled_model_gets_right())]


def test_python_dash_m_runtime_runs_from_the_repository_root(venv: Path, tmp_path: Path):
    out = tmp_path / "m.csv"
    result = _run(
        [str(venv / "bin" / "python"), "-m", "brain_tumor_edge.runtime", "samples", "--csv", str(out)]
    )
    assert result.returncode == 0, result.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1 + len(sample_files())


def test_bt_classify_with_ray_from_the_repository_root_writes_the_same_csv(venv: Path, tmp_path: Path):
    """Ray's workers start with the driver's working directory on their import path."""
    plain, clustered = tmp_path / "plain.csv", tmp_path / "ray.csv"
    bt_classify = str(venv / "bin" / "bt-classify")
    first = _run([bt_classify, "samples", "--csv", str(plain), "--quiet"])
    assert first.returncode == 0, first.stderr
    second = _run([bt_classify, "samples", "--csv", str(clustered), "--ray", "--quiet"])
    assert second.returncode == 0, second.stderr[-3000:]
    assert clustered.read_bytes() == plain.read_bytes()


def test_the_plain_install_reads_dicom_series_and_nifti_volumes(venv: Path, tmp_path: Path):
    """README's first command is the hospital PC's: its install reads DICOM (every transfer
    syntax pydicom's own test files use for an MR slice) and NIfTI, with no error row."""
    python = str(venv / "bin" / "python")
    where = _run([python, "-c", "import pydicom.data as d, pathlib; print(pathlib.Path(d.__file__).parent)"])
    assert where.returncode == 0, where.stderr
    test_files = Path(where.stdout.strip()) / "test_files"
    folder = tmp_path / "pacs"
    folder.mkdir()
    names = ["MR_small.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
             "MR_small_bigendian.dcm", "MR_small_implicit.dcm", "JPEG2000.dcm"]  # fmt: skip
    for name in names:
        (folder / name).write_bytes((test_files / name).read_bytes())
    brats = REPO.parent / "shared" / "data" / "extra" / "brats-volumes"
    volumes = sorted(brats.glob("*/flair.nii.gz"))[:1]
    if volumes:
        (folder / "flair.nii.gz").write_bytes(volumes[0].read_bytes())
    else:  # a fresh clone without ../shared: a volume made with the venv's own nibabel
        made = _run([python, "-c", "import nibabel, numpy as n; nibabel.save(nibabel.Nifti1Image("
                     "(n.random.default_rng(0).random((96, 96, 20)) * 900).astype('int16'), n.eye(4)), "
                     f"{str(folder / 'flair.nii.gz')!r})"])  # fmt: skip
        assert made.returncode == 0, made.stderr
    out = tmp_path / "o.csv"
    result = _run([str(venv / "bin" / "bt-classify"), str(folder), "--csv", str(out)])
    assert result.returncode == 0, result.stdout + result.stderr
    import csv

    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert not [row for row in rows if row["error"]]
    assert {Path(row["path"].split("#")[0]).name for row in rows} == {*names, "flair.nii.gz"}
    assert sum(row["path"].endswith(("z=0", "z=1")) for row in rows) == 2  # a row per slice

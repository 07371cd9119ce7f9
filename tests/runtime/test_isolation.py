"""The runtime must work where torch, torchvision and onnx are absent."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, run_python, sample_files, samples_the_bundled_model_gets_right

BLOCK_HEAVY = textwrap.dedent(
    """
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "torchvision", "onnx"}:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    """
)
BLOCKER = BLOCK_HEAVY + textwrap.dedent(
    """
    sys.argv = ["bt-classify", *sys.argv[1:]]
    from brain_tumor_edge.runtime.cli import main
    main()
    """
)
API_WITHOUT_TORCH = BLOCK_HEAVY + textwrap.dedent(
    """
    from pathlib import Path
    from brain_tumor_edge import classify_folder, load_model

    results = list(classify_folder(sys.argv[1], load_model()))
    right = [r.name for r in results if r.prediction == Path(r.name).parent.name and not r.review]
    print(len(results), len(right))
    """
)
SCRIPTS = ("bt-classify", "bt-train", "bt-evaluate", "bt-audit", "bt-export")


def test_classify_runs_with_torch_torchvision_and_onnx_blocked(samples: Path, tmp_path: Path):
    out = tmp_path / "out.csv"
    result = run_python(BLOCKER, samples, "--csv", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1 + 17


@pytest.mark.slow
def test_fresh_venv_with_pip_install_dot_runs_bt_classify(samples: Path, tmp_path: Path):
    """`pip install .` alone (no extras) must give a working bt-classify with the bundled model."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = venv / "bin" / "pip"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    install = subprocess.run(
        [str(pip), "install", "--quiet", str(REPO)], capture_output=True, text=True, env=env, timeout=900
    )
    assert install.returncode == 0, install.stderr[-2000:]
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import importlib.util as u; print(u.find_spec('torch'))"],
        capture_output=True,
        text=True,
    )
    assert installed.stdout.strip() == "None"
    out = tmp_path / "out.csv"
    run = subprocess.run(
        [str(venv / "bin" / "bt-classify"), str(samples), "--csv", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1 + 17
    # One top-level import name of ours in site-packages, plus its dist-info.
    (dist_info,) = venv.glob("lib/python*/site-packages/brain_tumor_edge-*.dist-info")
    record = (dist_info / "RECORD").read_text(encoding="utf-8").splitlines()
    tops = {line.split(",")[0].split("/")[0] for line in record if not line.startswith("..")}
    assert tops == {"brain_tumor_edge", dist_info.name}, tops
    # The Python API, with torch, torchvision and onnx unimportable.
    api = subprocess.run(
        [str(venv / "bin" / "python"), "-c", API_WITHOUT_TORCH, str(samples)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert api.returncode == 0, api.stderr
    # The same answers as the API gives here, with torch importable.
    assert api.stdout.split() == [str(len(sample_files())), str(samples_the_bundled_model_gets_right())]
    # Every console script answers --version from the one version in pyproject.toml.
    from brain_tumor_edge import __version__

    for script in SCRIPTS:
        answer = subprocess.run([str(venv / "bin" / script), "--version"], capture_output=True, text=True)
        assert answer.returncode == 0, (script, answer.stderr)
        assert answer.stdout.strip() == f"brain-tumor-edge {__version__}", script
    size_mb = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file()) / 1e6
    print(f"runtime venv size: {size_mb:.0f} MB")

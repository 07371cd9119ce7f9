"""The runtime must work where torch, torchvision and onnx are absent."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import REPO, run_python

BLOCKER = textwrap.dedent(
    """
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"torch", "torchvision", "onnx"}:
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Block())
    sys.argv = ["bt-classify", *sys.argv[1:]]
    from brain_tumor_edge.runtime.cli import main
    main()
    """
)


def test_classify_runs_with_torch_torchvision_and_onnx_blocked(samples: Path, tmp_path: Path):
    out = tmp_path / "out.csv"
    result = run_python(BLOCKER, samples, "--csv", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1 + 17


def test_no_runtime_module_imports_a_heavy_package():
    for path in (REPO / "runtime").rglob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            words = line.split()
            if words[:1] in (["import"], ["from"]) and len(words) > 1:
                top = words[1].split(".")[0]
                assert top not in {"torch", "torchvision", "onnx"}, f"{path}: {line}"


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
    size_mb = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file()) / 1e6
    print(f"runtime venv size: {size_mb:.0f} MB")

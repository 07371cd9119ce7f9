"""The suite fails on a DeprecationWarning from the project's own code, not on a library's own."""

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import REPO

WARN_FROM = textwrap.dedent(
    """
    def test_warns():
        # The warning is attributed to the module named by the code's globals, as for real code.
        code = "import warnings; warnings.warn('going away', DeprecationWarning)"
        exec(compile(code, "fake.py", "exec"), {{"__name__": "{module}"}})
    """
)


def _pytest_on(module: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    test = tmp_path / f"test_{module.replace('.', '_')}.py"
    test.write_text(WARN_FROM.format(module=module), encoding="utf-8")
    settings = str(REPO / "pyproject.toml")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", settings,
               "--rootdir", str(tmp_path), str(test)]  # fmt: skip
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_a_deprecation_in_our_code_fails_the_suite(tmp_path: Path):
    ours = _pytest_on("brain_tumor_edge.runtime.somewhere", tmp_path)
    assert ours.returncode == 1, ours.stdout
    assert "DeprecationWarning: going away" in ours.stdout


def test_a_deprecation_inside_a_library_is_only_reported(tmp_path: Path):
    theirs = _pytest_on("somelibrary.internals", tmp_path)
    assert theirs.returncode == 0, theirs.stdout

"""The runtime must work where torch, torchvision and onnx are absent."""

import textwrap
from pathlib import Path

from tests.conftest import run_python

BLOCK_HEAVY = textwrap.dedent(
    """
    import sys

    # README promises the runtime imports neither torch nor onnx, nor the package's own
    # training and export layers (which would bring them in).
    BLOCKED_ROOTS = {"torch", "torchvision", "onnx"}
    BLOCKED = ("brain_tumor_edge.train", "brain_tumor_edge.export")

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED_ROOTS or name.startswith(BLOCKED):
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
    right = [r.name for r in results if r.prediction == Path(r.name).parent.name]
    print(len(results), len(right))
    """
)
SCRIPTS = ("bt-classify", "bt-train", "bt-evaluate", "bt-audit", "bt-average", "bt-export")


def test_classify_runs_with_torch_torchvision_and_onnx_blocked(samples: Path, tmp_path: Path):
    out = tmp_path / "out.csv"
    result = run_python(BLOCKER, samples, "--csv", out, "--quiet")
    assert result.returncode == 0, result.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1 + 17

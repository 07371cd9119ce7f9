"""README's promises, run as written: the "From Python" example, the options every document
shows, and the front page's length."""

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

README = (REPO / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_from_python_example_runs_as_written_from_the_repository_root():
    """Where a newcomer stands after README's commands (tests/test_install.py: the wheel too)."""
    (example,) = code_blocks(section("From Python"), "python")
    result = subprocess.run(
        [sys.executable, "-c", example], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(list((REPO / "samples").glob("*/*.jpg")))
    assert "Te-gl_0010.jpg glioma" in result.stdout


def test_every_bt_command_in_the_docs_names_a_real_option():
    """Options that README, the model card and the models README show exist in the --help."""
    documents = [
        REPO / "README.md",
        REPO / "runtime/models/MODEL_CARD.md",
        REPO / "runtime/models/README.md",
        *sorted((REPO / "docs").glob("*.md")),
    ]
    for document in documents:
        for block in code_blocks(document.read_text(encoding="utf-8"), "bash"):
            for line in block.replace("\\\n", " ").splitlines():
                words = line.split()
                if not words or not words[0].startswith("bt-"):
                    continue
                help_text = subprocess.run(
                    [str(Path(sys.executable).parent / words[0]), "--help"],
                    capture_output=True,
                    text=True,
                    env={"COLUMNS": "200", "PATH": ""},
                ).stdout
                # Whole option names, so --ray does not pass through --ray-address.
                offered = set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", help_text))
                for option in (w.split("=")[0] for w in words if w.startswith("--")):
                    assert option in offered, f"{document.name}: {line!r} uses {option}"


def test_the_readme_is_a_front_page_and_links_to_pages_that_exist():
    assert len(README.splitlines()) <= 150
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README):
        assert (REPO / target).exists(), target

"""What every `bt-*` command shares: exit codes, error messages, `--version`, wording."""

from __future__ import annotations

from typing import Annotated

import typer

EXIT_OK = 0
EXIT_FAILED = 1  # bt-classify: some files failed; bt-export: the parity gate refused
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


def new_app() -> typer.Typer:
    # No Rich markup in help texts: it took "[cluster]" in an install hint for a style tag.
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def say(message: str) -> None:
    typer.echo(message, err=True)


def fail(message: str, status: int = EXIT_USAGE) -> typer.Exit:
    """Print `error: message` and return the Exit to raise: `raise fail(...)`."""
    say(f"error: {message}")
    return typer.Exit(status)


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 image', '2 images', '1 non-image file', '3 non-image files'."""
    return f"{count} {word if count == 1 else many or word + 's'}"


# What reads each input format, by distribution name (read from the installed metadata:
# nothing is imported, so --version stays instant).
DECODERS = (
    ("DICOM", "pydicom"),
    ("JPEG and JPEG-LS in DICOM", "pylibjpeg-libjpeg"),
    ("JPEG 2000 in DICOM", "pylibjpeg-openjpeg"),
    ("RLE in DICOM", "pylibjpeg-rle"),
    ("NIfTI", "nibabel"),
)


def decoders() -> list[str]:
    """One line per input decoder: what it reads and its version, or that it is missing."""
    from importlib.metadata import PackageNotFoundError, version

    lines = []
    for what, distribution in DECODERS:
        try:
            lines.append(f"{what}: {distribution} {version(distribution)}")
        except PackageNotFoundError:
            lines.append(f"{what}: missing (pip install {distribution})")
    return lines


def _show_version(value: bool) -> None:
    if value:
        from .version import __version__

        typer.echo(f"brain-tumor-edge {__version__}")
        typer.echo("images: OpenCV (JPEG, PNG, TIFF, BMP, WebP); " + "; ".join(decoders()))
        raise typer.Exit(EXIT_OK)


# Add `version: VersionOption = False` to a command's parameters.
VersionOption = Annotated[
    bool,
    typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
]

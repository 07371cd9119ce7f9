"""`bt-export RUN_DIR_OR_CHECKPOINT --out PATH.onnx [--quantize]`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Annotated

import typer

from brain_tumor_edge.export.config import ExportConfig, QuantizationConfig
from brain_tumor_edge.runtime.commands import EXIT_FAILED, VersionOption, fail, new_app, say

app = new_app()
DEFAULTS = ExportConfig(checkpoint=Path(), out=Path())
MIN_CALIBRATION_BATCH = QuantizationConfig().calibration_batch
FEW_CALIBRATION_IMAGES = 200


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="Run directory or .pt checkpoint.")],
    out: Annotated[Path, typer.Option(help="Path of the fp32 model, ending in .onnx.")],
    quantize: Annotated[
        bool, typer.Option(help="Also write a static int8 model beside it as PATH.int8.onnx.")
    ] = False,
    calibration_data: Annotated[
        Path | None, typer.Option(help="Labelled folder for int8 calibration (default: training data).")
    ] = None,
    check_data: Annotated[
        Path | None, typer.Option(help="Labelled folder for the parity check (default: training data).")
    ] = None,
    calibration_images: Annotated[
        int, typer.Option(min=1, help="Images for int8 calibration (at least one batch).")
    ] = DEFAULTS.calibration_images,
    check_images: Annotated[int, typer.Option(min=8)] = DEFAULTS.check_images,
    scope: Annotated[
        bool, typer.Option(help="Fit and export the out-of-scope score (needs the training folder).")
    ] = True,
    rule_out: Annotated[
        bool, typer.Option(help="Fit the rule-out level for 'no tumour' answers (needs the training folder).")
    ] = True,
    threads: Annotated[int, typer.Option(min=1)] = DEFAULTS.threads,
    version: VersionOption = False,
) -> None:
    """Export a checkpoint to ONNX; the files are kept only if they pass the parity gate."""
    missing = [m for m in ("torch", "onnx", "matplotlib") if not importlib.util.find_spec(m)]
    if missing:
        raise fail(f"{', '.join(missing)} not installed; export needs: pip install '.[train]'")
    if quantize and calibration_images < MIN_CALIBRATION_BATCH:
        raise fail(
            f"--calibration-images {calibration_images} is less than one calibration batch "
            f"({MIN_CALIBRATION_BATCH}); use a few hundred"
        )
    if quantize and calibration_images < FEW_CALIBRATION_IMAGES:
        say(f"warning: {calibration_images} calibration images is few; int8 accuracy may vary (use 500+)")
    from brain_tumor_edge.export.pipeline import ExportError, run_export
    from brain_tumor_edge.train.data import DataError

    config = ExportConfig(
        checkpoint=checkpoint,
        out=out,
        quantize=quantize,
        calibration_data=calibration_data,
        check_data=check_data,
        calibration_images=calibration_images,
        check_images=check_images,
        scope=DEFAULTS.scope if scope else None,
        rule_out=DEFAULTS.rule_out if rule_out else None,
        threads=threads,
        show_progress=sys.stderr.isatty(),
    )
    try:
        result = run_export(config)
    except (ExportError, DataError) as exc:
        raise fail(str(exc)) from None
    typer.echo(result.parity.table())
    sizes = ", ".join(f"{k.removesuffix('_bytes')} {v / 1e6:.2f} MB" for k, v in result.sizes.items())
    speed = ", ".join(f"{k} {v:.0f} img/s" for k, v in result.images_per_second.items())
    typer.echo(f"sizes: {sizes}; model-only throughput ({threads} threads): {speed}")
    typer.echo(f"parity report: {result.parity_path}")
    if not result.parity.passed:
        raise fail("parity gate failed: no model written", EXIT_FAILED)
    written = [result.fp32_path] + ([result.int8_path] if result.int8_path else [])
    typer.echo("written: " + ", ".join(str(p) for p in written))


def main() -> None:
    app()

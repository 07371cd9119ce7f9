"""`bt-export RUN_DIR_OR_CHECKPOINT --out PATH.onnx [--quantize]`."""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from ..runtime.commands import EXIT_FAILED, VersionOption, fail, new_app, say
from ..runtime.errors import install_hint
from .config import ExportConfig, QuantizationConfig

app = new_app()
DEFAULTS = ExportConfig(checkpoint=Path(), out=Path())
MIN_CALIBRATION_BATCH = QuantizationConfig().calibration_batch
FEW_CALIBRATION_IMAGES = 200


# The longer options' declarations, named here so the command reads as its list of flags.
FineMapsOption = Annotated[
    bool,
    typer.Option(
        help="Activation maps at twice the resolution (the last stage evaluated densely). "
        "They point more precisely, but onnxruntime computes them on every call: about 3.7x "
        "slower classification (docs/export.md).",
    ),
]
MinAgreementOption = Annotated[
    float | None,
    typer.Option(
        min=0.5,
        max=1.0,
        help="Accept an int8 model whose top-1 agreement with fp32 is at least this (default "
        f"{DEFAULTS.thresholds.int8_min_agreement}). Lowering it is a risk you take: it is "
        "recorded in the parity report and the model's metadata.",
    ),
]
MinScopeAgreementOption = Annotated[
    float | None,
    typer.Option(
        min=0.5,
        max=1.0,
        help="Accept an int8 model whose out-of-scope flags agree with fp32's on at least this "
        f"share of the check images (default {DEFAULTS.thresholds.int8_min_scope_agreement}); "
        "recorded like --min-agreement.",
    ),
]
SeriesMinRunOption = Annotated[
    int,
    typer.Option(
        min=1,
        help="Consecutive tumour slices (a tumour class, no review reason) for a series verdict "
        "'tumour likely' (runtime/series.py; carried in the model's metadata).",
    ),
]


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
    fine_maps: FineMapsOption = DEFAULTS.fine_maps,
    min_agreement: MinAgreementOption = None,
    min_scope_agreement: MinScopeAgreementOption = None,
    series_min_run: SeriesMinRunOption = DEFAULTS.series.min_run,
    threads: Annotated[int, typer.Option(min=1)] = DEFAULTS.threads,
    version: VersionOption = False,
) -> None:
    """Export a checkpoint to ONNX; the files are kept only if they pass the parity gate."""
    missing = [m for m in ("torch", "onnx") if not importlib.util.find_spec(m)]
    if missing:
        raise fail(f"{', '.join(missing)} not installed; export needs the extra: {install_hint('train')}")
    _check_calibration(quantize, calibration_images)
    from ..train.data import DataError
    from .pipeline import ExportError, run_export

    overrides = {"int8_min_agreement": min_agreement, "int8_min_scope_agreement": min_scope_agreement}
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
        fine_maps=fine_maps,
        series=replace(DEFAULTS.series, min_run=series_min_run),
        thresholds=replace(DEFAULTS.thresholds, **{k: v for k, v in overrides.items() if v is not None}),
        threads=threads,
        show_progress=sys.stderr.isatty(),
    )
    try:
        result = run_export(config)
    except (ExportError, DataError) as exc:
        raise fail(str(exc)) from None
    _report(result, config)


def _check_calibration(quantize: bool, calibration_images: int) -> None:
    if quantize and calibration_images < MIN_CALIBRATION_BATCH:
        raise fail(
            f"--calibration-images {calibration_images} is less than one calibration batch "
            f"({MIN_CALIBRATION_BATCH}); use a few hundred"
        )
    if quantize and calibration_images < FEW_CALIBRATION_IMAGES:
        say(f"warning: {calibration_images} calibration images is few; int8 accuracy may vary (use 500+)")


def _report(result, config: ExportConfig) -> None:
    """What was measured and written; a failed gate fails the command, naming what would pass."""
    typer.echo(result.parity.table())
    sizes = ", ".join(f"{k.removesuffix('_bytes')} {v / 1e6:.2f} MB" for k, v in result.sizes.items())
    speed = ", ".join(f"{k} {v:.0f} img/s" for k, v in result.images_per_second.items())
    typer.echo(f"sizes: {sizes}; model-only throughput ({config.threads} threads): {speed}")
    typer.echo(f"parity report: {result.parity_path}")
    changed = config.thresholds.changed()
    if changed:
        typer.echo(
            "parity thresholds changed from their defaults "
            "(recorded in the report and the model's metadata): "
            + ", ".join(
                f"{name} {value['used']} (default {value['default']})" for name, value in changed.items()
            )
        )
    written = [path for path in (result.fp32_path, result.int8_path) if path is not None]
    if written:
        typer.echo("written: " + ", ".join(str(p) for p in written))
    parity = result.parity
    if not parity.fp32_passed:
        raise fail(
            "parity gate failed for fp32 (" + "; ".join(parity.fp32_failures) + "): no model written",
            EXIT_FAILED,
        )
    if result.int8_requested and result.int8_path is None:
        why = "; ".join(parity.int8_failures)
        ties = parity.near_tie_note()
        raise fail(
            f"int8 model not written: {why}"
            + (f"; {ties}" if ties else "")
            + f". The fp32 model passed and was written. {_override_advice(parity, config.thresholds)}",
            EXIT_FAILED,
        )


def _override_advice(parity, thresholds) -> str:
    """The options that would accept this int8 model, each at the figure it measured (a gate
    with no option is named as such): advice that names the real option and value."""
    options = []
    if parity.int8_agreement is not None and parity.int8_agreement < thresholds.int8_min_agreement:
        options.append(f"--min-agreement {_floor(parity.int8_agreement)}")
    scope = parity.int8_scope_agreement
    if scope is not None and scope < thresholds.int8_min_scope_agreement:
        options.append(f"--min-scope-agreement {_floor(scope)}")
    others = [f for f in parity.int8_failures if not f.startswith(("int8 top-1", "int8 scope flag"))]
    advice = ""
    if options:
        advice = f"To accept the int8 model anyway, pass {' '.join(options)} (recorded in its metadata)"
    if others:
        # "int8 accuracy drop 0.0300 > 0.02" -> "accuracy drop"
        gates = ", ".join(
            re.sub(r" [0-9.]+$", "", re.split(" [<>] ", f)[0]).removeprefix("int8 ") for f in others
        )
        advice += ("; " if advice else "") + f"no option overrides the {gates} gate"
    return advice + "."


def _floor(value: float) -> str:
    """The measured figure rounded down to two decimals, never below the option's minimum."""
    return f"{max(0.5, int(value * 100) / 100):.2f}"


def main() -> None:
    app()

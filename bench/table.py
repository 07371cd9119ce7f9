"""Render a bench/results.json as the Markdown tables of the README's Performance section.

python bench/table.py bench/results.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def end_to_end_table(rows: list[dict]) -> list[str]:
    lines = [
        "| model | threads | batch | end to end img/s | decode floor | model floor | efficiency |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['threads']} | {row['batch']} | {row['end_to_end_images_per_s']:.0f} "
            f"| {row['decode_floor']:.0f} | {row['model_floor']:.0f} | {row['efficiency']:.0%} |"
        )
    return lines


def targets_table(report: dict) -> list[str]:
    best = report["best"]["int8"]
    cold = report["cold_start"]
    memory = report["memory"]
    lines = ["| measure | figure | target |", "|---|---|---|"]
    if "peer_detect_tumor" in report:
        peer = report["peer_detect_tumor"]
        lines.append(
            f"| int8 end to end vs peer `detect-tumor` ({peer['images_per_s']:.1f} img/s, "
            f"{peer['accuracy']:.1%} on its sample) | {report['int8_end_to_end_over_peer']}x | >= 50x |"
        )
    lines += [
        f"| int8 end to end / lower floor (best setting) | {best['efficiency']:.0%} | >= 80% |",
        f"| cold start: one image, process start to CSV | {cold['bt_classify_one_image_s']} s vs "
        f"{cold['bare_imports_s']} s bare imports = {cold['ratio']}x | <= 1.5x |",
        f"| peak RSS, 1,000 vs 20,000 files | {memory['peak_rss_mib_1000_files']} vs "
        f"{memory['peak_rss_mib_20000_files']} MiB = {memory['ratio']}x | <= 1.1x |",
        f"| int8 / fp32 model only | {report['int8_over_fp32_model_only']}x | >= 1.8x |",
    ]
    if "training" in report:
        training = report["training"]
        lines.append(
            f"| training: epoch {training['epoch_images_per_s']} img/s vs forward+backward "
            f"{training['forward_backward_images_per_s']} img/s "
            f"| {training['overhead']:.1%} overhead | <= 10% |"
        )
    lines.append(f"| runtime-only venv (`pip install .`) | {cold['runtime_venv_mib']} MiB | |")
    return lines


def render(report: dict) -> str:
    header = f"Machine: {report['machine']}, Python {report['python']}."
    return "\n".join([header, "", *end_to_end_table(report["end_to_end"]), "", *targets_table(report)])


if __name__ == "__main__":
    print(render(json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results.json").read_text())))

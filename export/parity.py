"""The parity gate: an exported model must agree with the network it came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class ParityThresholds:
    fp32_max_abs_diff: float = 1e-4
    fp32_min_agreement: float = 1.0
    int8_min_agreement: float = 0.99
    int8_max_accuracy_drop: float = 0.005


@dataclass
class ParityReport:
    images: int
    thresholds: ParityThresholds
    fp32_max_abs_diff: float
    fp32_agreement: float
    torch_accuracy: float | None = None
    fp32_accuracy: float | None = None
    int8_agreement: float | None = None
    int8_max_abs_diff: float | None = None
    int8_accuracy: float | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict:
        record = asdict(self)
        record["passed"] = self.passed
        return record

    def table(self) -> str:
        """A small fixed-width table for the terminal."""

        def show(value: float | None, digits: int = 4) -> str:
            return "-" if value is None else f"{value:.{digits}f}"

        rows = [
            ("comparison", "max |diff|", "top-1 agree", "accuracy"),
            ("torch", "", "", show(self.torch_accuracy)),
            (
                "onnx fp32 vs torch",
                f"{self.fp32_max_abs_diff:.2e}",
                show(self.fp32_agreement),
                show(self.fp32_accuracy),
            ),
        ]
        if self.int8_agreement is not None:
            rows.append(
                (
                    "onnx int8 vs fp32",
                    f"{self.int8_max_abs_diff:.2e}",
                    show(self.int8_agreement),
                    show(self.int8_accuracy),
                )
            )
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
        lines.append(f"{self.images} check images: " + ("PASSED" if self.passed else "FAILED"))
        lines += [f"  - {failure}" for failure in self.failures]
        return "\n".join(lines)


def _accuracy(probabilities: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None:
        return None
    return float((probabilities.argmax(1) == labels).mean())


def compare(
    torch_probs: np.ndarray,
    fp32_probs: np.ndarray,
    int8_probs: np.ndarray | None,
    labels: np.ndarray | None,
    thresholds: ParityThresholds,
) -> ParityReport:
    report = ParityReport(
        images=len(torch_probs),
        thresholds=thresholds,
        fp32_max_abs_diff=float(np.abs(torch_probs - fp32_probs).max()),
        fp32_agreement=float((torch_probs.argmax(1) == fp32_probs.argmax(1)).mean()),
        torch_accuracy=_accuracy(torch_probs, labels),
        fp32_accuracy=_accuracy(fp32_probs, labels),
    )
    if report.fp32_max_abs_diff > thresholds.fp32_max_abs_diff:
        report.failures.append(
            f"fp32 max |diff| {report.fp32_max_abs_diff:.2e} > {thresholds.fp32_max_abs_diff:.0e}"
        )
    if report.fp32_agreement < thresholds.fp32_min_agreement:
        report.failures.append(
            f"fp32 top-1 agreement {report.fp32_agreement:.4f} < {thresholds.fp32_min_agreement}"
        )
    if int8_probs is not None:
        report.int8_agreement = float((fp32_probs.argmax(1) == int8_probs.argmax(1)).mean())
        report.int8_max_abs_diff = float(np.abs(fp32_probs - int8_probs).max())
        report.int8_accuracy = _accuracy(int8_probs, labels)
        if report.int8_agreement < thresholds.int8_min_agreement:
            report.failures.append(
                f"int8 top-1 agreement {report.int8_agreement:.4f} < {thresholds.int8_min_agreement}"
            )
        if labels is not None:
            drop = report.fp32_accuracy - report.int8_accuracy
            if drop > thresholds.int8_max_accuracy_drop:
                report.failures.append(f"int8 accuracy drop {drop:.4f} > {thresholds.int8_max_accuracy_drop}")
    return report

"""The parity gate: an exported model must agree with the network it came from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..runtime.metrics import accuracy
from ..runtime.outputs import ModelOutput

# A disagreement where fp32's top two probabilities lie closer than this is a near-tie:
# quantisation noise, not a changed model (typical of undertrained smoke runs).
NEAR_TIE_MARGIN = 0.05


@dataclass(frozen=True)
class ParityThresholds:
    fp32_max_abs_diff: float = 1e-4
    fp32_min_agreement: float = 1.0
    int8_min_agreement: float = 0.99
    int8_max_accuracy_drop: float = 0.005
    # The extra outputs: int8 must flag (scope > limit) the same images as fp32, and its
    # class-activation maps must look like fp32's (mean Pearson correlation per map).
    int8_min_scope_agreement: float = 0.99
    int8_min_cam_correlation: float = 0.9

    def changed(self) -> dict:
        """The thresholds set away from their defaults, with the defaults (for the model's metadata)."""
        defaults = ParityThresholds()
        return {
            name: {"used": value, "default": getattr(defaults, name)}
            for name, value in asdict(self).items()
            if value != getattr(defaults, name)
        }


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
    int8_scope_agreement: float | None = None
    int8_cam_correlation: float | None = None
    # Of the int8/fp32 top-1 disagreements, how many are fp32 near-ties.
    int8_disagreements: int | None = None
    int8_near_ties: int | None = None
    # Each model is judged on its own: fp32 against torch, int8 against fp32. An int8
    # model is only as good as the fp32 model it came from, so it needs both.
    fp32_failures: list[str] = field(default_factory=list)
    int8_failures: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return self.fp32_failures + self.int8_failures

    @property
    def fp32_passed(self) -> bool:
        return not self.fp32_failures

    @property
    def int8_passed(self) -> bool:
        return self.fp32_passed and not self.int8_failures

    @property
    def passed(self) -> bool:
        return not self.failures

    def near_tie_note(self) -> str:
        """Why int8 disagreed, in words, e.g. "6 of 7 disagreements are near-ties (...)"."""
        if not self.int8_disagreements:
            return ""
        return (
            f"{self.int8_near_ties} of {self.int8_disagreements} disagreements are near-ties "
            f"(fp32 top-2 margin < {NEAR_TIE_MARGIN})"
        )

    def as_dict(self) -> dict:
        record = asdict(self)
        record["failures"] = self.failures
        record["fp32_passed"] = self.fp32_passed
        record["int8_passed"] = self.int8_passed if self.int8_agreement is not None else None
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
        if self.int8_scope_agreement is not None:
            lines.append(f"int8 vs fp32 scope flag agreement {self.int8_scope_agreement:.4f}")
        if self.int8_cam_correlation is not None:
            lines.append(f"int8 vs fp32 activation-map correlation {self.int8_cam_correlation:.4f}")
        if self.int8_disagreements:
            lines.append(f"int8 vs fp32: {self.near_tie_note()}")
        lines.append(f"{self.images} check images: " + ("PASSED" if self.passed else "FAILED"))
        lines += [f"  - {failure}" for failure in self.failures]
        return "\n".join(lines)


def _accuracy(probabilities: np.ndarray, labels: np.ndarray | None) -> float | None:
    return None if labels is None else accuracy(labels, probabilities)


def map_correlation(first: np.ndarray, second: np.ndarray) -> float:
    """Mean Pearson correlation between corresponding maps (N x classes x h x w)."""
    a = first.reshape(-1, first.shape[-2] * first.shape[-1]).astype(np.float64)
    b = second.reshape(a.shape).astype(np.float64)
    a -= a.mean(1, keepdims=True)
    b -= b.mean(1, keepdims=True)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean((a * b).sum(1) / np.maximum(norms, 1e-12)))


def compare(
    torch_probs: np.ndarray,
    fp32: ModelOutput,
    int8: ModelOutput | None,
    labels: np.ndarray | None,
    thresholds: ParityThresholds,
    scope_limit: float | None = None,
) -> ParityReport:
    fp32_probs = fp32.probabilities
    int8_probs = None if int8 is None else int8.probabilities
    report = ParityReport(
        images=len(torch_probs),
        thresholds=thresholds,
        fp32_max_abs_diff=float(np.abs(torch_probs - fp32_probs).max()),
        fp32_agreement=float((torch_probs.argmax(1) == fp32_probs.argmax(1)).mean()),
        torch_accuracy=_accuracy(torch_probs, labels),
        fp32_accuracy=_accuracy(fp32_probs, labels),
    )
    if report.fp32_max_abs_diff > thresholds.fp32_max_abs_diff:
        report.fp32_failures.append(
            f"fp32 max |diff| {report.fp32_max_abs_diff:.2e} > {thresholds.fp32_max_abs_diff:.0e}"
        )
    if report.fp32_agreement < thresholds.fp32_min_agreement:
        report.fp32_failures.append(
            f"fp32 top-1 agreement {report.fp32_agreement:.4f} < {thresholds.fp32_min_agreement}"
        )
    if int8_probs is not None:
        disagree = fp32_probs.argmax(1) != int8_probs.argmax(1)
        report.int8_agreement = float((~disagree).mean())
        report.int8_max_abs_diff = float(np.abs(fp32_probs - int8_probs).max())
        report.int8_accuracy = _accuracy(int8_probs, labels)
        top_two = np.sort(fp32_probs[disagree], axis=1)[:, -2:]
        report.int8_disagreements = int(disagree.sum())
        report.int8_near_ties = int((top_two[:, 1] - top_two[:, 0] < NEAR_TIE_MARGIN).sum())
        if report.int8_agreement < thresholds.int8_min_agreement:
            report.int8_failures.append(
                f"int8 top-1 agreement {report.int8_agreement:.4f} < {thresholds.int8_min_agreement}"
            )
        if labels is not None:
            drop = report.fp32_accuracy - report.int8_accuracy
            if drop > thresholds.int8_max_accuracy_drop:
                report.int8_failures.append(
                    f"int8 accuracy drop {drop:.4f} > {thresholds.int8_max_accuracy_drop}"
                )
        if scope_limit is not None and fp32.scope is not None and int8.scope is not None:
            agreement = float(((fp32.scope > scope_limit) == (int8.scope > scope_limit)).mean())
            report.int8_scope_agreement = agreement
            if agreement < thresholds.int8_min_scope_agreement:
                report.int8_failures.append(
                    f"int8 scope flag agreement {agreement:.4f} < {thresholds.int8_min_scope_agreement}"
                )
        if fp32.cam is not None and int8.cam is not None:
            correlation = map_correlation(fp32.cam, int8.cam)
            report.int8_cam_correlation = correlation
            if correlation < thresholds.int8_min_cam_correlation:
                minimum = thresholds.int8_min_cam_correlation
                report.int8_failures.append(f"int8 activation-map correlation {correlation:.4f} < {minimum}")
    return report

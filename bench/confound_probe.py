"""Can `notumor` be told from the tumour classes without looking at anatomy?

A probe on features that carry no anatomy: the intensity histogram's percentiles, the
share of black background, the border's statistics, the noise level in the background,
the JPEG quantisation (quality) and file size, colour tint and sharpness. A logistic
regression on them is fitted on Training and scored on Testing. If it does well, the
dataset has a shortcut a network can take instead of learning what a tumour looks like.

    python bench/confound_probe.py --train ../shared/data/brain-tumor-mri/Training \
        --test ../shared/data/brain-tumor-mri/Testing [--external ../shared/data/external/tumour-positive]

`probe_mix` (used by bench/model_report.py) asks the same of the data a network trains on:
the probe's cross-validated AUROC on Training, and on Training plus a folder of tumour
slices from the `notumor` images' own source (`bt-train --tumour-unknown`). The lower it
is, the less the source can stand in for the anatomy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from brain_tumor_edge.runtime.files import FolderWalk
from brain_tumor_edge.runtime.metrics import auroc
from brain_tumor_edge.train.mix import DEFAULT_NEGATIVE

NEGATIVE = DEFAULT_NEGATIVE  # the Kaggle folders' "no tumour" class
FEATURES = [
    *(f"p{p}" for p in (1, 5, 25, 50, 75, 95, 99)),
    "mean", "std", "background share", "border mean", "border std", "background noise",
    "jpeg luminance q0", "jpeg mean q", "bytes per pixel", "colour tint", "red-blue", "sharpness",
]  # fmt: skip


def jpeg_quantisation(data: bytes) -> tuple[float, float]:
    """First coefficient and mean of the first quantisation table (0, 0 for non-JPEG)."""
    position = data.find(b"\xff\xdb")
    if not data.startswith(b"\xff\xd8") or position < 0 or len(data) < position + 69:
        return 0.0, 0.0
    table = data[position + 5 : position + 69]
    return float(table[0]), float(np.mean(list(table)))


def features(path: Path) -> np.ndarray:
    data = path.read_bytes()
    colour = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).astype(np.float32)
    grey = colour.mean(axis=2)
    border = np.concatenate([grey[:8].ravel(), grey[-8:].ravel(), grey[:, :8].ravel(), grey[:, -8:].ravel()])
    background = grey < 10
    residual = grey - cv2.medianBlur(grey.astype(np.uint8), 3).astype(np.float32)
    q0, qmean = jpeg_quantisation(data)
    tint = float(np.abs(colour - grey[:, :, None]).mean())
    return np.array(
        [
            *np.percentile(grey, [1, 5, 25, 50, 75, 95, 99]),
            grey.mean(), grey.std(), background.mean(), border.mean(), border.std(),
            residual[background].std() if background.any() else 0.0,
            q0, qmean, len(data) / grey.size, tint,
            float((colour[:, :, 2] - colour[:, :, 0]).mean()),
            float(cv2.Laplacian(grey, cv2.CV_32F).var()),
        ],
        np.float64,
    )  # fmt: skip


def load(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    paths = list(FolderWalk(folder))
    x = np.stack([features(p) for p in paths])
    y = np.array([p.parent.name != NEGATIVE for p in paths], float)  # 1 = tumour
    return x, y


def cross_validated_auroc(x: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """AUROC of the probe on held-out folds (standardised on each fold's training part)."""
    order = np.random.default_rng(seed).permutation(len(y))
    scores = np.empty(len(y))
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part)
        mean, std = x[rest].mean(0), x[rest].std(0) + 1e-9

        def design(rows: np.ndarray, mean=mean, std=std) -> np.ndarray:
            return np.hstack([(x[rows] - mean) / std, np.ones((len(rows), 1))])

        scores[part] = design(part) @ fit_logistic(design(rest), y[rest])
    return auroc(scores[y == 0], scores[y == 1])


def probe_mix(train: Path, tumour_unknown: Path | None, test: Path) -> dict:
    """The probe on Training alone and on Training + tumour-unknown images (all tumour)."""
    x_train, y_train = load(train)
    figures = {
        "training_images": len(y_train),
        "training_cv_auroc": round(cross_validated_auroc(x_train, y_train), 4),
    }
    x_fit, y_fit = x_train, y_train
    if tumour_unknown is not None:
        x_extra = np.stack([features(p) for p in FolderWalk(tumour_unknown)])
        x_fit = np.vstack([x_train, x_extra])
        y_fit = np.concatenate([y_train, np.ones(len(x_extra))])
        figures["tumour_unknown_images"] = len(x_extra)
        figures["mix_cv_auroc"] = round(cross_validated_auroc(x_fit, y_fit), 4)
    x_test, y_test = load(test)
    mean, std = x_fit.mean(0), x_fit.std(0) + 1e-9
    weights = fit_logistic(np.hstack([(x_fit - mean) / std, np.ones((len(x_fit), 1))]), y_fit)
    score = np.hstack([(x_test - mean) / std, np.ones((len(x_test), 1))]) @ weights
    figures["testing_auroc"] = round(auroc(score[y_test == 0], score[y_test == 1]), 4)
    return figures


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-2, steps: int = 50) -> np.ndarray:
    """Newton's method on the L2-regularised log-loss; x already standardised, bias added."""
    weights = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ weights))
        gradient = x.T @ (p - y) / len(y) + l2 * weights
        hessian = (x * (p * (1 - p))[:, None]).T @ x / len(y) + l2 * np.eye(len(weights))
        weights -= np.linalg.solve(hessian, gradient)
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--external", type=Path, default=None)
    args = parser.parse_args()
    x_train, y_train = load(args.train)
    x_test, y_test = load(args.test)
    mean, std = x_train.mean(0), x_train.std(0) + 1e-9

    def design(x: np.ndarray) -> np.ndarray:
        return np.hstack([(x - mean) / std, np.ones((len(x), 1))])

    weights = fit_logistic(design(x_train), y_train)
    for name, x, y in (("Training (fit)", x_train, y_train), ("Testing", x_test, y_test)):
        score = design(x) @ weights
        accuracy = float(((score > 0) == (y == 1)).mean())
        print(f"{name}: tumour vs notumor from style alone: accuracy {accuracy:.3f}, "
              f"AUROC {auroc(score[y == 0], score[y == 1]):.3f} ({len(y)} images)")  # fmt: skip
    if args.external:
        x_ext = np.stack([features(p) for p in FolderWalk(args.external)])
        called = float((design(x_ext) @ weights > 0).mean())
        print(f"external tumour-positive: the style probe calls {called:.1%} of them tumour")
    order = np.argsort(-np.abs(weights[:-1]))[:6]
    print("strongest cues: " + ", ".join(f"{FEATURES[i]} ({weights[i]:+.2f})" for i in order))


if __name__ == "__main__":
    main()

"""The scope score: how far an image's features lie from everything the network trained on.

Method (Lee et al., 2018, "A simple unified framework for detecting out-of-distribution
samples"): class-conditional Gaussians with one shared covariance, fitted on the pooled
features of the training split; the score is the Mahalanobis distance to the nearest
class mean. Its limit is the `in_scope_quantile` of the scores of the validation split,
images the network never trained on, so about 1 - quantile of in-scope images are
flagged by design. Nothing out of scope is ever used to fit or choose it.

The distance is computed inside the exported graph (see `onnx_export.ExportHead`), so the
runtime reads it as one more output, with no numpy of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHOD = "mahalanobis distance of pooled features to the nearest class mean (shared covariance)"


@dataclass(frozen=True)
class ScopeConfig:
    in_scope_quantile: float = 0.998  # validation images at or under the limit
    shrinkage: float = 0.01  # covariance + shrinkage * mean variance * I, for a stable inverse


@dataclass(frozen=True)
class ScopeFit:
    means: np.ndarray  # classes x D
    whitening: np.ndarray  # D x D, W with W W^T = inverse covariance
    limit: float
    record: dict  # what the model's metadata says about it

    def scores(self, features: np.ndarray) -> np.ndarray:
        """The same distance the graph computes, in numpy (for fitting and tests)."""
        return mahalanobis_scores(features, self.means, self.whitening)


def mahalanobis_scores(features: np.ndarray, means: np.ndarray, whitening: np.ndarray) -> np.ndarray:
    projected = features @ whitening
    centres = means @ whitening
    squared = ((projected[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    return np.sqrt(squared.min(axis=1))


def fit_scope(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    val_features: np.ndarray,
    config: ScopeConfig | None = None,
) -> ScopeFit:
    config = config or ScopeConfig()
    train_features = train_features.astype(np.float64)
    classes = np.unique(train_labels)
    means = np.stack([train_features[train_labels == c].mean(0) for c in classes])
    centred = train_features - means[np.searchsorted(classes, train_labels)]
    covariance = centred.T @ centred / len(centred)
    covariance += config.shrinkage * np.trace(covariance) / len(covariance) * np.eye(len(covariance))
    whitening = np.linalg.cholesky(np.linalg.inv(covariance))
    val_scores = mahalanobis_scores(val_features.astype(np.float64), means, whitening)
    limit = float(np.quantile(val_scores, config.in_scope_quantile))
    record = {
        "method": METHOD,
        "limit": round(limit, 4),
        "in_scope_quantile": config.in_scope_quantile,
        "fitted_on_images": len(train_features),
        "limit_chosen_on_images": len(val_scores),
        "validation_flagged": round(float((val_scores > limit).mean()), 4),
        "validation_median": round(float(np.median(val_scores)), 4),
    }
    return ScopeFit(means.astype(np.float32), whitening.astype(np.float32), limit, record)

"""SSIM (Wang et al. 2004) in numpy, cheap enough to run on the fitter's mosaic.

The same definition as scikit-image's ``structural_similarity`` with its defaults
(7 × 7 uniform window, sample covariance, ``K1 = 0.01``, ``K2 = 0.03``, data range 255),
averaged over the RGB channels, so the fitter's target and the benchmark's figure are
the same measure. Box sums come from 2-D cumulative sums: a 0.2 MP mosaic takes a few
milliseconds, and nothing beyond numpy is needed at run time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_WIN = 7
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def _box_means(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Means over every full 7 × 7 window of each plane of ``x`` (planes × H × W),
    'valid' positions only, as skimage crops its border."""
    c = np.zeros((x.shape[0], x.shape[1] + 1, x.shape[2] + 1), np.float64)
    np.cumsum(np.cumsum(x, axis=1, dtype=np.float64), axis=2, out=c[:, 1:, 1:])
    w = _WIN
    total = c[:, w:, w:] - c[:, :-w, w:] - c[:, w:, :-w] + c[:, :-w, :-w]
    return total / (w * w)


def ssim(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    """Mean SSIM of two same-shaped uint8 images (H×W or H×W×C), averaged over channels."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs images of one shape, got {a.shape} and {b.shape}")
    if min(a.shape[:2]) < _WIN:
        return 1.0 if np.array_equal(a, b) else 0.0
    # Channels first; the five local statistics of every channel in one pass of sums.
    x = np.moveaxis(np.atleast_3d(a), 2, 0).astype(np.float64)
    y = np.moveaxis(np.atleast_3d(b), 2, 0).astype(np.float64)
    channels = x.shape[0]
    means = _box_means(np.concatenate([x, y, x * x, y * y, x * y]))
    ux, uy, xx, yy, xy = (means[i * channels : (i + 1) * channels] for i in range(5))
    n = _WIN * _WIN
    cov_norm = n / (n - 1)  # sample covariance, as skimage's default
    vx = cov_norm * (xx - ux * ux)
    vy = cov_norm * (yy - uy * uy)
    vxy = cov_norm * (xy - ux * uy)
    s = ((2 * ux * uy + _C1) * (2 * vxy + _C2)) / ((ux * ux + uy * uy + _C1) * (vx + vy + _C2))
    return float(s.mean())

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


def _box_mean(x: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Mean over every full 7 × 7 window ('valid' positions only, as skimage crops)."""
    c = np.cumsum(np.cumsum(x, axis=0), axis=1)
    c = np.pad(c, ((1, 0), (1, 0)))
    w = _WIN
    total = c[w:, w:] - c[:-w, w:] - c[w:, :-w] + c[:-w, :-w]
    return total / (w * w)  # type: ignore[no-any-return]


def _ssim_channel(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    n = _WIN * _WIN
    cov_norm = n / (n - 1)  # sample covariance, as skimage's default
    ux, uy = _box_mean(x), _box_mean(y)
    vx = cov_norm * (_box_mean(x * x) - ux * ux)
    vy = cov_norm * (_box_mean(y * y) - uy * uy)
    vxy = cov_norm * (_box_mean(x * y) - ux * uy)
    s = ((2 * ux * uy + _C1) * (2 * vxy + _C2)) / ((ux * ux + uy * uy + _C1) * (vx + vy + _C2))
    return float(s.mean())


def ssim(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    """Mean SSIM of two same-shaped uint8 images (H×W or H×W×C), averaged over channels."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs images of one shape, got {a.shape} and {b.shape}")
    if min(a.shape[:2]) < _WIN:
        return 1.0 if np.array_equal(a, b) else 0.0
    if a.ndim == 2:
        return _ssim_channel(a, b)
    return float(np.mean([_ssim_channel(a[..., i], b[..., i]) for i in range(a.shape[2])]))

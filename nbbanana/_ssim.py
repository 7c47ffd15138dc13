"""SSIM (Wang et al. 2004) in numpy, cheap enough to run on the fitter's mosaic.

The same definition as scikit-image's ``structural_similarity`` with its defaults
(7 × 7 uniform window, sample covariance, ``K1 = 0.01``, ``K2 = 0.03``, data range 255),
averaged over the RGB channels, so the fitter's target and the benchmark's figure are
the same measure. Box sums come from 2-D cumulative sums: the fitter's mosaic, seen at
1024 px scale (about 20 K pixels), takes about 10 ms, and nothing beyond numpy is needed
at run time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_WIN = 7
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def _box_means(planes: list[np.ndarray[Any, Any]]) -> list[np.ndarray[Any, Any]]:
    """Means over every full 7 × 7 window of each plane, 'valid' positions only (as
    skimage crops its border); one plane at a time, in place, so big images stay in cache."""
    w = _WIN
    means = []
    for plane in planes:
        c = np.zeros((plane.shape[0] + 1, plane.shape[1] + 1), np.float64)
        c[1:, 1:] = plane
        c.cumsum(axis=0, out=c)
        c.cumsum(axis=1, out=c)
        means.append((c[w:, w:] - c[:-w, w:] - c[w:, :-w] + c[:-w, :-w]) / (w * w))
    return means


def ssim(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    """Mean SSIM of two same-shaped uint8 images (H×W or H×W×C), averaged over channels."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs images of one shape, got {a.shape} and {b.shape}")
    if min(a.shape[:2]) < _WIN:
        return 1.0 if np.array_equal(a, b) else 0.0
    a3, b3 = np.atleast_3d(a), np.atleast_3d(b)
    n = _WIN * _WIN
    cov_norm = n / (n - 1)  # sample covariance, as skimage's default
    total = 0.0
    for channel in range(a3.shape[2]):
        x = a3[..., channel].astype(np.float64)
        y = b3[..., channel].astype(np.float64)
        ux, uy, xx, yy, xy = _box_means([x, y, x * x, y * y, x * y])
        vx = cov_norm * (xx - ux * ux)
        vy = cov_norm * (yy - uy * uy)
        vxy = cov_norm * (xy - ux * uy)
        s = ((2 * ux * uy + _C1) * (2 * vxy + _C2)) / ((ux * ux + uy * uy + _C1) * (vx + vy + _C2))
        total += float(s.mean())
    return total / int(a3.shape[2])

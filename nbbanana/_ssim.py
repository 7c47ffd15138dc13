"""SSIM (Wang et al. 2004) in numpy, cheap enough to run on the fitter's mosaic.

The measure of the paper and of its reference implementation: luma only (ITU-R BT.601
weights, as the reference's ``rgb2gray``), an 11 × 11 Gaussian window of σ = 1.5,
population statistics, ``K1 = 0.01``, ``K2 = 0.03``, data range 255. That is
scikit-image's ``structural_similarity(y_a, y_b, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=255)`` on the luma planes, so the fitter's
target and the benchmark's figure are the same measure.

Why luma: SSIM was defined on luminance, and the eye resolves colour at about half the
resolution of brightness (why nearly every JPEG, camera and video codec stores chroma at
half resolution). Averaging SSIM over R, G and B instead counts a softened colour edge as
much as a blurred one. The fitter used that RGB mean (scikit-image's defaults: 7 × 7
uniform window, per channel) before; the benchmark still prints it beside this one.

Window sums are separable: 11 shifted, weighted slices per axis, so the mosaic, seen at 1024 px scale (about 20 K pixels), takes
a few milliseconds, and nothing beyond numpy is needed at run time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["luma", "ssim"]

_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
_SIGMA = 1.5
_RADIUS = 5  # scikit-image's: int(3.5 σ + 0.5), an 11-tap window
_GAUSS = np.exp(-0.5 * (np.arange(-_RADIUS, _RADIUS + 1) / _SIGMA) ** 2)
_GAUSS /= _GAUSS.sum()
#: ITU-R BT.601 luma weights (Pillow's ``convert("L")``, the reference's ``rgb2gray``).
_LUMA = np.array([0.299, 0.587, 0.114])

Array = np.ndarray[Any, Any]


def luma(image: Array) -> Array:
    """BT.601 luma (float64) of an H×W×C uint8 image (alpha ignored); H×W as it is."""
    if image.ndim == 2:
        return image.astype(np.float64)
    if image.shape[2] < 3:
        return image[..., 0].astype(np.float64)
    return np.asarray(image[..., :3], np.float64) @ _LUMA


def _gaussian_means(planes: list[Array]) -> list[Array]:
    """Gaussian-weighted means over every full 11 × 11 window ('valid' positions only, as
    scikit-image crops its border)."""
    k = _GAUSS
    n = len(k)
    means = []
    for plane in planes:
        rows = sum(k[i] * plane[i : plane.shape[0] - n + 1 + i] for i in range(n))
        means.append(sum(k[j] * rows[:, j : plane.shape[1] - n + 1 + j] for j in range(n)))
    return means


def _ssim_plane(x: Array, y: Array) -> float:
    ux, uy, xx, yy, xy = _gaussian_means([x, y, x * x, y * y, x * y])
    vx = xx - ux * ux  # population statistics, as the paper
    vy = yy - uy * uy
    vxy = xy - ux * uy
    s = ((2 * ux * uy + _C1) * (2 * vxy + _C2)) / ((ux * ux + uy * uy + _C1) * (vx + vy + _C2))
    return float(s.mean())


def ssim(a: Array, b: Array) -> float:
    """Mean SSIM of the luma of two same-shaped uint8 images (H×W or H×W×C)."""
    if a.shape != b.shape:
        raise ValueError(f"SSIM needs images of one shape, got {a.shape} and {b.shape}")
    if min(a.shape[:2]) < 2 * _RADIUS + 1:
        return 1.0 if np.array_equal(a, b) else 0.0
    return _ssim_plane(luma(a), luma(b))

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

__all__ = ["Reference", "luma", "ssim"]

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
    weighted: Array = np.asarray(image[..., :3], np.float64) @ _LUMA
    return weighted


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


class Reference:
    """One image's luma and window statistics, kept to compare many candidates with it
    (the fitter's mosaic against each probe): two of the five filtered planes, once."""

    def __init__(self, image: Array) -> None:
        self.shape = image.shape
        self._x = luma(image)
        self._small = min(image.shape[:2]) < 2 * _RADIUS + 1  # no full window: compare
        if not self._small:
            self._ux, self._xx = _gaussian_means([self._x, self._x * self._x])

    def ssim(self, other: Array) -> float:
        """Mean SSIM of ``other``'s luma against this image's."""
        if other.shape != self.shape:
            raise ValueError(f"SSIM needs images of one shape, got {self.shape} and {other.shape}")
        if self._small:
            return 1.0 if np.array_equal(self._x, luma(other)) else 0.0
        x, ux, xx = self._x, self._ux, self._xx
        y = luma(other)
        uy, yy, xy = _gaussian_means([y, y * y, x * y])
        vx = xx - ux * ux  # population statistics, as the paper
        vy = yy - uy * uy
        vxy = xy - ux * uy
        s = ((2 * ux * uy + _C1) * (2 * vxy + _C2)) / ((ux * ux + uy * uy + _C1) * (vx + vy + _C2))
        return float(s.mean())


def ssim(a: Array, b: Array) -> float:
    """Mean SSIM of the luma of two same-shaped uint8 images (H×W or H×W×C)."""
    return Reference(a).ssim(b)

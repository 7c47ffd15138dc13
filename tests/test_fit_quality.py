"""Quality by what is seen: the perceptual default, quality="max", and the SSIM behind it."""

from __future__ import annotations

import io
import math
from collections.abc import Callable

import numpy as np
import pytest
from _imagegen import jpeg_bytes, photo_like, png_bytes, screenshot_like
from PIL import Image
from skimage.metrics import structural_similarity

from nbbanana._ssim import luma, ssim
from nbbanana.budget import RequestBudget
from nbbanana.fit import (
    PERCEPTUAL_SIDE,
    PERCEPTUAL_SSIM_LOSS,
    QUALITY_CAP,
    QUALITY_FLOOR,
    _Encoder,
    _Mosaic,
    fit_image,
)

SIDE = 2048
BUDGET = 1_000_000  # below what the perceptual quality needs at 2048 px: the budget wins


@pytest.fixture(scope="module")
def photo() -> bytes:
    """A 2200×1650 camera-like JPEG (q95), fitted to 2048 px below."""
    return jpeg_bytes(photo_like(2200, 1650, seed=21), quality=95)


def _seen(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """The picture as the reference sees it: RGB at PERCEPTUAL_SIDE px."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB").resize(size, Image.Resampling.LANCZOS))


def test_default_sends_fewer_bytes_that_look_the_same(photo: bytes) -> None:
    best = fit_image(photo, max_side=SIDE, quality="max")
    fitted = fit_image(photo, max_side=SIDE)
    assert best.quality == QUALITY_CAP
    assert fitted.quality is not None and QUALITY_FLOOR <= fitted.quality < QUALITY_CAP
    assert (fitted.width, fitted.height) == (best.width, best.height)
    assert len(fitted.data) < 0.9 * len(best.data)
    size = (PERCEPTUAL_SIDE, PERCEPTUAL_SIDE * 3 // 4)
    reference = _seen(photo, size)
    loss = ssim(reference, _seen(best.data, size)) - ssim(reference, _seen(fitted.data, size))
    assert loss <= 0.002  # the documented target (0.0015) plus the mosaic's estimate


def test_perceptual_quality_never_exceeds_the_budget(photo: bytes) -> None:
    budget = BUDGET
    fitted = fit_image(photo, max_side=SIDE, budget=budget)
    assert fitted.request_bytes <= budget
    unlimited = fit_image(photo, max_side=SIDE)
    assert fitted.quality is not None and unlimited.quality is not None
    assert fitted.quality < unlimited.quality
    assert RequestBudget(limit=None).request_bytes("", [(len(fitted.data), fitted.mime)]) <= budget


def test_max_keeps_the_highest_quality_that_fits(photo: bytes) -> None:
    fitted = fit_image(photo, max_side=SIDE, budget=BUDGET, quality="max")
    assert fitted.request_bytes <= BUDGET
    assert fitted.quality is not None and QUALITY_FLOOR < fitted.quality < QUALITY_CAP
    # The next quality up (full-resolution chroma from FULL_CHROMA_QUALITY on) is over.
    image = Image.open(io.BytesIO(photo)).resize((fitted.width, fitted.height))
    allowance = RequestBudget(limit=BUDGET).image_allowance("", mime="image/jpeg")
    assert len(_Encoder("image/jpeg").encode(image, fitted.quality + 1)) > allowance * 0.97


def test_webp_gets_the_perceptual_quality_too() -> None:
    data = png_bytes(photo_like(1200, 900, seed=4))
    best = fit_image(data, format="webp", quality="max")
    fitted = fit_image(data, format="webp", budget=150_000)
    assert fitted.mime == best.mime == "image/webp"
    assert fitted.request_bytes <= 150_000
    assert fitted.quality is not None and best.quality == QUALITY_CAP
    assert len(fitted.data) <= len(best.data)


def test_screenshots_stay_lossless() -> None:
    data = png_bytes(screenshot_like(1400, 900, seed=2))
    fitted = fit_image(data)
    assert fitted.mime == "image/png" and fitted.quality is None


def test_a_source_that_already_fits_is_passed_through_not_grown() -> None:
    # A small q60 JPEG: re-encoding at any perceptual quality would make it larger.
    data = jpeg_bytes(photo_like(1200, 900, seed=5), quality=60)
    fitted = fit_image(data)
    assert fitted.report.passthrough and fitted.data == data


def test_unknown_quality_is_refused_in_one_sentence(photo: bytes) -> None:
    with pytest.raises(ValueError, match=r"^quality must be 'perceptual' or 'max' \(got 'high'\)"):
        fit_image(photo, quality="high")  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(64, 80, 3), (40, 33), (90, 70, 4), (11, 11, 3)])
def test_ssim_is_the_papers_on_luma_as_scikit_image_computes_it(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(len(shape))
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    b = np.clip(a.astype(np.int16) + rng.integers(-25, 26, shape), 0, 255).astype(np.uint8)
    expected = structural_similarity(
        luma(a), luma(b), gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=255,
    )  # fmt: skip
    assert ssim(a, b) == pytest.approx(expected, abs=1e-9)
    assert ssim(a, a) == pytest.approx(1.0)


def test_luma_is_bt601() -> None:
    pixels = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    grey = np.asarray(Image.fromarray(pixels).convert("L"), np.float64)
    assert np.allclose(luma(pixels), grey, atol=0.5)


class _Curve(_Mosaic):
    """A mosaic whose fidelity follows a given loss curve, counting the probes."""

    def __init__(self, loss: Callable[[int], float]) -> None:
        super().__init__(_Encoder("image/jpeg"), (64, 64), Image.new("RGB", (64, 64)), True)
        self.loss = loss
        self.probes: list[int] = []

    def reference_fidelity(self) -> float:
        return 1.0

    def fidelity(self, quality: int) -> float:
        if quality not in self._fidelity:
            self.probes.append(quality)
            self._fidelity[quality] = 1.0 - self.loss(quality)
        return self._fidelity[quality]


def _power_loss(at_88: float, exponent: float) -> Callable[[int], float]:
    """Loss growing as JPEG's quantiser scale to ``exponent``, ``at_88`` at quality 88."""
    return lambda q: at_88 * ((200 - 2 * q) / 24) ** exponent


@pytest.mark.parametrize("exponent", [0.8, 1.0, 1.4, 2.0, 3.0])
@pytest.mark.parametrize("at_88", [0.0002, 0.0006, 0.00095, 0.0011, 0.002, 0.006])
@pytest.mark.parametrize("upto", [QUALITY_CAP, 90, 70])
def test_the_perceptual_search_finds_the_lowest_quality_alike_in_few_probes(
    exponent: float, at_88: float, upto: int
) -> None:
    """The interpolation search returns what a walk over every quality would, within
    a bisection's number of probes (six here), and in at most four when the loss grows as
    photos' do: the first guess, one step by the model, one by the secant, and the
    neighbour that proves the answer."""
    loss = _power_loss(at_88, exponent)
    walk = next((q for q in range(QUALITY_FLOOR, upto) if loss(q) <= PERCEPTUAL_SSIM_LOSS), upto)
    curve = _Curve(loss)
    assert curve.lowest_alike(upto) == walk
    assert len(curve.probes) <= math.ceil(math.log2(upto - QUALITY_FLOOR + 1))
    if upto == QUALITY_CAP and QUALITY_FLOOR < walk < upto and 1.0 <= exponent <= 2.0:
        assert len(curve.probes) <= 4, curve.probes


def test_the_perceptual_search_survives_a_loss_that_is_not_monotonic() -> None:
    """Real curves have steps and small reversals (quality 74 encodes like 75): the
    answer still reaches the goal and the one below it does not."""
    steps = {86: 0.00125, 87: 0.00113, 88: 0.00098, 89: 0.00087, 74: 0.00365, 75: 0.00365}
    base = _power_loss(0.00098, 1.4)
    curve = _Curve(lambda q: steps.get(q, base(q)))
    quality = curve.lowest_alike()
    assert quality == 88
    assert curve.loss(quality) <= PERCEPTUAL_SSIM_LOSS < curve.loss(quality - 1)

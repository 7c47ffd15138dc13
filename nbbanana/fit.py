"""Fit an image into a request budget: the resolution the model uses, the fewest bytes
that look the same at the model's resolution, and never a byte over.

:func:`fit_image` turns anything :func:`~nbbanana.images.load_image` accepts into bytes
ready for ``types.Part.from_bytes``:

1. **Budget.** ``budget`` is the *request* budget (the whole JSON body as the server
   counts it); the image's own allowance follows from it through
   :class:`~nbbanana.budget.RequestBudget`, with the prompt counted.
2. **Resolution.** ``max_side="model"`` caps the long side at the model's
   ``fit_max_side`` (a documented choice, see :mod:`nbbanana.models`); an int caps it
   there; ``"keep"`` keeps every pixel and only meets the byte budget. The loader decodes
   and resizes through libvips (JPEGs shrink on load by DCT scaling), so a 48 MP photo is
   never decoded at full size for a 3072 px target; see ``docs/architecture.md``.
3. **Pass-through.** An input that is already acceptable (upright, sRGB, no metadata to
   strip, within the size and the budget) is returned unchanged, with no encode at all.
4. **Quality by what is seen.** A mosaic of tiles cut across the resized image (about
   3 % of its pixels) is encoded at a few qualities; that measures the image's own
   rate–quality curve. By default (``quality="perceptual"``) the quality is the lowest
   whose mosaic, seen at :data:`PERCEPTUAL_SIDE` px, keeps its SSIM (on luma; JPEG
   chroma at half resolution) within :data:`PERCEPTUAL_SSIM_LOSS` of the
   :data:`QUALITY_CAP` encode's: fewer bytes, the same picture for the model.
   ``quality="max"`` takes the highest quality that fits
   instead. Either way the budget wins: the highest quality that fits is read off the
   curve with a small margin. One full encode usually lands; if it overshoots, the
   observed ratio corrects the prediction for a second. When even quality
   :data:`QUALITY_FLOOR` cannot fit, the scale shrinks by the predicted factor and the
   search repeats.
5. **Format.** Photos become JPEG. Alpha that matters stays: PNG when it fits, else WebP
   with alpha. Screenshots and line art (few colours, detected on a thumbnail) stay PNG
   (palette PNG when lossless) when that is smaller than a near-lossless JPEG.
6. **Never over.** Every result passes a final ``len(data) <= allowance`` check that keeps
   shrinking until it holds; when not even a 16 px image fits, :class:`DoesNotFitError`.
"""

from __future__ import annotations

import hashlib
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
from google.genai import types
from PIL import Image, ImageChops

from ._ssim import Reference
from .budget import RequestBudget
from .errors import DoesNotFitError
from .models import FORMAT_MIME, SENT_FORMATS, EndpointProfile, ModelInfo, get_model, get_profile

if TYPE_CHECKING:
    from ._types import ImageSource
    from .images import LoadedImage

__all__ = [
    "FULL_CHROMA_QUALITY",
    "MIN_SIDE",
    "PERCEPTUAL_SIDE",
    "PERCEPTUAL_SSIM_LOSS",
    "QUALITY_CAP",
    "QUALITY_FLOOR",
    "FitReport",
    "FittedImage",
    "ImageCheck",
    "check_image",
    "fit_image",
]

#: Highest JPEG/WebP quality used: above 95 files grow fast for no visible gain.
QUALITY_CAP = 95
#: Lowest quality before the image is scaled down instead: below ~50 blocking shows.
QUALITY_FLOOR = 50
#: Quality aimed for when the image has to be scaled down to fit: resolution and quality
#: are traded evenly rather than ending at the floor.
QUALITY_WHEN_SCALING = 80
#: The smallest long side tried before giving up with :class:`DoesNotFitError`.
MIN_SIDE = 16
#: Relative margin between the predicted size and the allowance for the first full
#: encode (the mosaic predicts within about ±3 % on photos).
PREDICTION_MARGIN = 0.03
#: The scale at which fidelity is judged: the long side, in pixels, the mosaic is seen at.
#: About the megapixel the image models output; artefacts that vanish at this scale cost
#: bytes and show little. No document states the models' internal resolution, so this is
#: a documented choice, like ``fit_max_side``.
PERCEPTUAL_SIDE = 1024
#: The perceptual target: the SSIM (Wang et al.'s, on luma: :mod:`nbbanana._ssim`, at
#: :data:`PERCEPTUAL_SIDE`) the chosen quality may lose against what ``quality="max"``
#: sends (:data:`QUALITY_CAP`, 4:4:4). The bound is 0.002; 0.001 leaves room for the
#: mosaic's estimate (on the benchmark's photos the whole image loses 0.0011–0.0012).
PERCEPTUAL_SSIM_LOSS = 0.001
#: Where the search for the perceptual quality starts (where most photos land).
PERCEPTUAL_GUESS = 88
#: How the SSIM loss against quality 95 grows with JPEG's quantiser scale (loss ∝
#: scale^k), for the search's first step: 1.3–1.6 on the benchmark's photos and scans.
_LOSS_EXPONENT = 1.4
#: JPEG's and WebP's largest dimension.
_MAX_DIMENSION = {"image/jpeg": 65_500, "image/png": 2**31 - 1, "image/webp": 16_383}
#: With ``quality="max"``, from this JPEG quality on, chroma is kept at full resolution
#: (4:4:4), as most encoders do: at high quality, 4:2:0 subsampling is the largest loss
#: left in colour (colour edges, red text), for ~1.5× the bytes. ``quality="perceptual"``
#: judges luma, which 4:2:0 leaves intact at the perceptual scale, and always subsamples.
FULL_CHROMA_QUALITY = 90
#: How encoded size follows pixel count when an image is scaled down (bytes ∝ pixels^k).
_BYTES_PER_PIXELS_EXPONENT = 0.8
#: No image file is smaller than this: below it, give up without trying.
_SMALLEST_FILE = 64

Format = Literal["auto", "jpeg", "png", "webp"]
Quality = Literal["perceptual", "max"]
_MIME = {fmt.lower(): FORMAT_MIME[fmt] for fmt in SENT_FORMATS}
_PIL_FORMAT = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
_ACCEPTED_AS_IS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "HEIF": "image/heif",
    "HEIC": "image/heic",
}


@dataclass(frozen=True)
class FitReport:
    """What :func:`fit_image` did, for tables and logs."""

    input_name: str
    input_bytes: int | None
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    quality: int | None
    mime: str
    #: Full-size encodes performed (mosaic probes not counted; 0 for a pass-through).
    encodes: int
    seconds: float
    warnings: tuple[str, ...]
    passthrough: bool


@dataclass(frozen=True)
class FittedImage:
    """Encoded image bytes that fit the budget, with what the request will cost."""

    data: bytes = field(repr=False)
    mime: str
    width: int
    height: int
    quality: int | None
    #: Estimated input tokens for the model (:meth:`ModelInfo.input_image_tokens`).
    tokens: int
    #: Bytes of a request carrying just this image (and the prompt given to fit_image).
    request_bytes: int
    #: SHA-256 (hex) of :attr:`data`, the bytes that are sent.
    sent_sha256: str
    #: SHA-256 (hex) of the input as given (:attr:`LoadedImage.source_sha256`).
    source_sha256: str
    name: str
    report: FitReport

    def part(self) -> types.Part:
        """The image as a google-genai part, sent as these exact bytes."""
        return types.Part.from_bytes(data=self.data, mime_type=self.mime)

    def to_pil(self) -> Image.Image:
        """Decode the fitted bytes (what the model will see)."""
        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image


@dataclass(frozen=True)
class ImageCheck:
    """Whether an image can be sent inline exactly as it is, and what that costs."""

    name: str
    #: True when the original bytes are an accepted type and fit the endpoint inline.
    fits_inline: bool
    #: Why not, in plain words (empty when it fits).
    reason: str
    input_bytes: int | None
    #: MIME type the original would be sent as (``None`` for a type the API refuses).
    mime: str | None
    #: Bytes of a request carrying the original as is (``None`` without encoded bytes).
    request_bytes: int | None
    #: The endpoint's request limit (``None``: no request limit).
    limit: int | None
    width: int
    height: int
    tokens: int
    cost_usd: float | None  # None: the model's price is unknown

    @property
    def pixels(self) -> int:
        return self.width * self.height


# --------------------------------------------------------------------------- encoding


@dataclass
class _Encoder:
    """Encodes one prepared image in one format; counts full encodes."""

    mime: str
    #: JPEG qualities from this one on keep chroma at full resolution (4:4:4);
    #: ``quality="perceptual"`` never does (see :data:`FULL_CHROMA_QUALITY`).
    full_chroma: int = FULL_CHROMA_QUALITY
    encodes: int = 0

    def encode(self, image: Image.Image, quality: int | None, *, probe: bool = False) -> bytes:
        buffer = io.BytesIO()
        fmt = _PIL_FORMAT[self.mime]
        if fmt == "JPEG":
            subsampling = 0 if (quality or 0) >= self.full_chroma else 2  # 4:4:4 or 4:2:0
            # No Huffman optimisation: ~5 % smaller, but up to 3× slower at high quality,
            # and Pillow's output buffer for it is sized for 4:2:0 (4:4:4 can overflow it).
            image.save(buffer, "JPEG", quality=quality, subsampling=subsampling)
        elif fmt == "WEBP":
            image.save(buffer, "WEBP", quality=quality, method=4)
        else:
            image.save(buffer, "PNG", compress_level=6)
        if not probe:
            self.encodes += 1
        return buffer.getvalue()


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Downscale with Lanczos after an integer ``reduce`` (``reducing_gap``): fast and
    alias-free even from 48 MP."""
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _scaled_size(size: tuple[int, int], long_side: int) -> tuple[int, int]:
    w, h = size
    if max(w, h) <= long_side:
        return size
    scale = long_side / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


class _Mosaic:
    """Predicts full-image encoded size from tiles sampled across the image.

    Tiles of 64 px aligned to the 16 px JPEG block grid are cut on a regular grid and
    packed into one small image (about 3 % of the pixels, 24 to 256 tiles). Its encoded
    bytes per pixel at a given quality, times the image's pixels, plus the fixed header,
    predict the full encode; probes are cached per quality. A small image is its own
    mosaic: then the probes are full encodes, counted as such and reused.

    The same probes, decoded, tell how the image looks at each quality
    (:meth:`fidelity`): SSIM against the mosaic itself, both scaled as the whole image
    would be to :data:`PERCEPTUAL_SIDE`.
    """

    TILE = 64
    FRACTION = 0.03
    MIN_TILES = 24
    MAX_TILES = 256

    def __init__(self, encoder: _Encoder, size: tuple[int, int], mosaic: Image.Image, exact: bool):
        self.encoder = encoder
        self.size = size
        self.pixels = size[0] * size[1]
        self.mosaic = mosaic
        self.exact = exact
        self.header = (
            0 if exact else len(encoder.encode(Image.new(mosaic.mode, (16, 16)), 90, probe=True))
        )
        self._sizes: dict[int, float] = {}
        self._data: dict[int, bytes] = {}
        self._fidelity: dict[int, float] = {}
        self._seen_original: Reference | None = None
        self._reference: float | None = None

    @classmethod
    def of(cls, image: Image.Image, encoder: _Encoder) -> _Mosaic:
        """The mosaic of ``image``."""
        mosaic = cls._build(image.size, image.crop)
        return cls(encoder, image.size, mosaic or image, exact=mosaic is None)

    @classmethod
    def scaled(cls, job: _Job, long_side: int, encoder: _Encoder) -> _Mosaic:
        """The mosaic ``job.image(long_side)`` would have, without resizing the whole
        source: each tile is resampled from the matching box of the source."""
        size = _scaled_size(job.target_size, long_side)
        source = job.source
        sx, sy = source.width / size[0], source.height / size[1]

        def cut(box: tuple[int, int, int, int]) -> Image.Image:
            x0, y0, x1, y1 = box
            scaled_box = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
            tile = source.resize((x1 - x0, y1 - y0), Image.Resampling.LANCZOS, box=scaled_box)
            return job.prepare(tile)

        mosaic = cls._build(size, cut)
        if mosaic is None:  # small: the real thing is cheap and exact
            return cls.of(job.image(long_side), encoder)
        return cls(encoder, size, mosaic, exact=False)

    @classmethod
    def _build(
        cls, size: tuple[int, int], cut: Callable[[tuple[int, int, int, int]], Image.Image]
    ) -> Image.Image | None:
        """Tiles cut on a regular grid, packed; ``None`` when the image is small enough
        to be measured whole."""
        w, h = size
        tile = cls.TILE
        count = max(cls.MIN_TILES, min(cls.MAX_TILES, int(w * h * cls.FRACTION) // tile**2))
        if w * h <= 3 * count * tile**2 or w < 2 * tile or h < 2 * tile:
            return None
        cols = max(1, min(w // tile, round(math.sqrt(count * w / h))))
        rows = max(1, min(h // tile, count // cols))
        mosaic: Image.Image | None = None
        for r in range(rows):
            for c in range(cols):
                x = int((c + 0.5) * w / cols - tile / 2)
                y = int((r + 0.5) * h / rows - tile / 2)
                x = max(0, min(w - tile, x)) // 16 * 16
                y = max(0, min(h - tile, y)) // 16 * 16
                piece = cut((x, y, x + tile, y + tile))
                if mosaic is None:
                    mosaic = Image.new(piece.mode, (cols * tile, rows * tile))
                mosaic.paste(piece, (c * tile, r * tile))
        return mosaic

    def predict(self, quality: int) -> float:
        """Predicted bytes of the full image at ``quality``."""
        if quality not in self._sizes:
            if self.exact:
                data = self.encoder.encode(self.mosaic, quality)
                self._data[quality] = data
                self._sizes[quality] = float(len(data))
            else:
                data = self.encoder.encode(self.mosaic, quality, probe=True)
                self._data[quality] = data
                per_pixel = max(len(data) - self.header, 0) / (
                    self.mosaic.width * self.mosaic.height
                )
                self._sizes[quality] = self.header + per_pixel * self.pixels
        return self._sizes[quality]

    def _seen(self, image: Image.Image) -> np.ndarray:
        """``image`` (the mosaic or a decoded probe) at the scale :data:`PERCEPTUAL_SIDE`
        puts the whole image at, as an array."""
        scale = min(1.0, PERCEPTUAL_SIDE / max(self.size))
        if scale < 1.0:
            size = (max(8, round(image.width * scale)), max(8, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.LANCZOS)
        return np.asarray(image)

    def _fidelity_of(self, data: bytes) -> float:
        if self._seen_original is None:
            self._seen_original = Reference(self._seen(self.mosaic))
        with Image.open(io.BytesIO(data)) as decoded:
            seen = self._seen(decoded.convert(self.mosaic.mode))
        return self._seen_original.ssim(seen)

    def fidelity(self, quality: int) -> float:
        """SSIM of the mosaic encoded at ``quality`` against the mosaic, both at the
        perceptual scale."""
        if quality not in self._fidelity:
            self.predict(quality)
            self._fidelity[quality] = self._fidelity_of(self._data[quality])
        return self._fidelity[quality]

    def reference_fidelity(self) -> float:
        """The fidelity of what ``quality="max"`` sends when nothing limits it: quality
        :data:`QUALITY_CAP` with the default chroma rule (full-resolution chroma)."""
        if self._reference is None:
            reference = _Encoder(self.encoder.mime)
            if reference.full_chroma == self.encoder.full_chroma:
                self._reference = self.fidelity(QUALITY_CAP)
            else:
                data = reference.encode(self.mosaic, QUALITY_CAP, probe=True)
                self._reference = self._fidelity_of(data)
        return self._reference

    def lowest_alike(self, upto: int = QUALITY_CAP) -> int:
        """The lowest quality in [floor, ``upto``] whose fidelity is within
        :data:`PERCEPTUAL_SSIM_LOSS` of :meth:`reference_fidelity` (``upto`` itself when
        none is).

        Fidelity rises with quality, and its loss against the reference falls about as a
        power of JPEG's quantiser scale, so this is an interpolation search like
        :meth:`best_quality`'s: it starts at :data:`PERCEPTUAL_GUESS`, where most photos
        land, and each next probe is where the loss, log-linear in the log of the scale
        through the nearest measured qualities, meets the goal. Two or three probes of a
        few milliseconds each settle most photos (the bracket shrinks at every probe, so
        it ends in at most as many as a bisection)."""
        goal = self.reference_fidelity() - PERCEPTUAL_SSIM_LOSS
        # fidelity(upto) is not measured: when even it misses the goal (the budget, not
        # the eye, limits the quality), every probe below fails too and upto is returned.
        lo, hi = QUALITY_FLOOR - 1, upto  # fidelity(hi) reaches the goal; lo does not
        guess = float(PERCEPTUAL_GUESS)
        if min(PERCEPTUAL_GUESS, upto - 1) < QUALITY_FLOOR:
            return upto
        while hi - lo > 1:
            # The lowest integer at or above the estimate (a hair's rounding aside).
            quality = min(hi - 1, max(lo + 1, math.ceil(guess - 1e-6)))
            if self.fidelity(quality) >= goal:
                hi = quality
            else:
                lo = quality
            guess = self._where_loss_meets(lo, hi, goal)
        return hi

    def _where_loss_meets(self, lo: int, hi: int, goal: float) -> float:
        """The (fractional) quality where the loss meets ``goal``: interpolated through
        the two measured qualities nearest the bracket ``(lo, hi)`` (log-loss against
        log-scale), or, with one, a loss growing as the scale to the power
        :data:`_LOSS_EXPONENT` through it."""
        reference = self.reference_fidelity()
        allowed = reference - goal
        middle = (lo + hi) / 2
        measured = sorted(
            (q for q, f in self._fidelity.items() if reference - f > 0),
            key=lambda q: abs(q - middle),
        )
        points = [
            (math.log(_quantiser_scale(q)), math.log(reference - self._fidelity[q]))
            for q in measured[:2]
        ]
        if not points or allowed <= 0:
            return middle
        (x0, y0), slope = points[0], _LOSS_EXPONENT
        if len(points) == 2 and points[0][0] != points[1][0]:
            (x1, y1) = points[1]
            slope = (y1 - y0) / (x1 - x0)
        if slope <= 0:  # a step or a reversal in the curve: bisect
            return middle
        return _quality_for_fractional_scale(math.exp(x0 + (math.log(allowed) - y0) / slope))

    def encode_full(self, image: Image.Image, quality: int) -> bytes:
        """The full encode at ``quality`` (reused when the probe was the full image)."""
        if self.exact:
            self.predict(quality)
            return self._data[quality]
        return self.encoder.encode(image, quality)

    def best_quality(
        self, target: float, *, correction: float = 1.0, cap: int = QUALITY_CAP
    ) -> int | None:
        """The highest quality in [floor, ``cap``] predicted to be at most ``target``
        bytes, or ``None`` when even the floor is predicted over.

        An interpolation search: between a quality that fits and one that does not, the
        next probe is where the log-size, linear in the log of JPEG's quantiser scale,
        meets the target. Two or three probes usually settle it.
        """

        def size(q: int) -> float:
            return self.predict(q) * correction

        if size(cap) <= target:
            return cap
        if size(QUALITY_FLOOR) > target:
            return None
        lo, hi = QUALITY_FLOOR, cap  # size(lo) fits, size(hi) does not
        while hi - lo > 1:
            x_lo, x_hi = math.log(_quantiser_scale(lo)), math.log(_quantiser_scale(hi))
            y_lo, y_hi = math.log(size(lo)), math.log(size(hi))
            x = x_lo + (math.log(target) - y_lo) * (x_hi - x_lo) / (y_hi - y_lo)
            guess = min(hi - 1, max(lo + 1, _quality_for_scale(math.exp(x))))
            if size(guess) <= target:
                lo = guess
                if size(guess + 1) > target:  # usually the neighbour settles it
                    return guess
            else:
                hi = guess
        return lo


def _quantiser_scale(quality: int) -> float:
    """libjpeg's quality → quantisation-table scale (percent)."""
    return 5000 / quality if quality < 50 else 200 - 2 * quality


def _quality_for_scale(scale: float) -> int:
    return math.floor(_quality_for_fractional_scale(scale))


def _quality_for_fractional_scale(scale: float) -> float:
    """The inverse of :func:`_quantiser_scale`, between integer qualities too."""
    return (200 - scale) / 2 if scale <= 100 else 5000 / scale


# --------------------------------------------------------------------------- fitting


@dataclass
class _Job:
    """State of one fit: the loaded image, how to prepare a resized copy of it for the
    chosen format, the allowance per MIME type, and bookkeeping."""

    source: Image.Image
    target_size: tuple[int, int]
    allowance: Callable[[str], int]
    warnings: list[str]
    #: ``quality="perceptual"``: no higher than the lowest quality that looks the same.
    perceptual: bool = True
    prepare: Callable[[Image.Image], Image.Image] = lambda image: image
    encodes: int = 0
    _last: tuple[tuple[int, int], Image.Image] | None = None

    def image(self, long_side: int | None = None) -> Image.Image:
        """The source at ``target_size`` (or scaled to ``long_side``), prepared; the last
        one is kept, as the search often asks for the same size twice."""
        size = self.target_size if long_side is None else _scaled_size(self.target_size, long_side)
        if self._last is None or self._last[0] != size:
            self._last = (size, self.prepare(_resize(self.source, size)))
        return self._last[1]

    def result(
        self, data: bytes, mime: str, size: tuple[int, int], quality: int | None
    ) -> _Encoded:
        if len(data) > self.allowance(mime):  # the invariant every path ends with
            raise AssertionError("internal error: fitted image over its allowance")
        return _Encoded(data, mime, size, quality)


@dataclass(frozen=True)
class _Encoded:
    data: bytes
    mime: str
    size: tuple[int, int]
    quality: int | None


def _does_not_fit(allowance: int, budget: RequestBudget, name: str) -> DoesNotFitError:
    limit = (
        f"a request budget of {budget.limit:,} bytes"
        if budget.limit is not None
        else f"a per-image limit of {budget.per_image_limit:,} base64 characters"
    )
    return DoesNotFitError(
        f"{name}: not even a {MIN_SIDE} px version fits: {limit} leaves {allowance:,} bytes "
        "for the image after the prompt, config and a safety margin. Raise the budget, "
        "shorten the prompt, or send the image through the Files API.",
        source=name,
    )


def _lossy(job: _Job, image: Image.Image, mime: str) -> _Encoded:
    """Highest quality at the target size, else the largest size at which
    :data:`QUALITY_WHEN_SCALING` fits, as JPEG or WebP."""
    # Perceptual JPEGs keep chroma at half resolution at every quality: at the perceptual
    # scale it costs no luma fidelity and saves a third of the bytes (docs/architecture.md).
    subsample_always = job.perceptual and mime == "image/jpeg"
    encoder = _Encoder(mime, full_chroma=QUALITY_CAP + 1) if subsample_always else _Encoder(mime)
    full_side = min(max(image.size), _MAX_DIMENSION[mime])
    if max(image.size) > full_side:
        image = job.image(full_side)
    try:
        mosaic = _Mosaic.of(image, encoder)
        fitted, correction = _best_encode(job, image, mime, mosaic)
        if fitted is not None:
            return fitted
        side = _scale_search(
            job, full_side, mosaic.predict(QUALITY_WHEN_SCALING) * correction, encoder
        )
        while True:  # the hard loop: shrink until it fits
            image = job.image(side)
            fitted, _ = _best_encode(job, image, mime, _Mosaic.of(image, encoder))
            if fitted is not None:
                return fitted
            if side <= MIN_SIDE:
                raise _TooSmall
            side = max(MIN_SIDE, math.floor(side * 0.85))
    finally:
        job.encodes += encoder.encodes


def _best_encode(
    job: _Job, image: Image.Image, mime: str, mosaic: _Mosaic
) -> tuple[_Encoded | None, float]:
    """Encode ``image`` at the highest predicted quality that fits; after an overshoot,
    correct the prediction by the observed ratio and encode once more, down to the floor.
    Returns the result (``None`` if even the floor is over) and the correction learned."""
    allowance = job.allowance(mime)
    margin = 0.0 if mosaic.exact else PREDICTION_MARGIN
    correction = 1.0
    quality = mosaic.best_quality(allowance / (1 + margin))
    if quality is not None and job.perceptual:
        quality = mosaic.lowest_alike(quality)
    while quality is not None:
        data = mosaic.encode_full(image, quality)
        if len(data) <= allowance:
            return job.result(data, mime, image.size, quality), correction
        correction = max(correction, len(data) / mosaic.predict(quality) * 1.005)
        lower = mosaic.best_quality(allowance, correction=correction)
        quality = None if lower is None else min(lower, quality - 1)
    return None, correction


def _scale_search(job: _Job, full_side: int, full_bytes: float, encoder: _Encoder) -> int:
    """The long side at which :data:`QUALITY_WHEN_SCALING` is predicted to fit, found by a
    secant search on log-bytes against log-side (bytes fall about as the square of the
    side, less when detail gets denser); a few mosaic probes, no full encodes."""
    target = job.allowance(encoder.mime) / (1 + PREDICTION_MARGIN)
    points = [(full_side, full_bytes)]
    best = 0
    slope = 2.0
    for _ in range(4):
        side, size = points[-1]
        if len(points) >= 2:
            (s0, b0), (s1, b1) = points[-2], points[-1]
            if s0 != s1 and b0 > 0 and b1 > 0:
                slope = min(2.5, max(1.0, math.log(b0 / b1) / math.log(s0 / s1)))
        side = math.floor(side * (target / size) ** (1 / slope))
        side = max(MIN_SIDE, min(full_side - 1, side))
        if side in (s for s, _ in points):
            break
        size = _Mosaic.scaled(job, side, encoder).predict(QUALITY_WHEN_SCALING)
        points.append((side, size))
        if size <= target:
            best = max(best, side)
            if size >= 0.85 * target:
                break
    if best:
        return best
    return max(MIN_SIDE, min(s for s, _ in points))


class _TooSmall(Exception):
    """Internal: not even a MIN_SIDE image fits."""


def _png(job: _Job, image: Image.Image, *, shrink: bool) -> _Encoded | None:
    """PNG (palette PNG when that is lossless) at the image's size; with ``shrink``, scale
    down until it fits, else ``None`` when it does not fit as is."""
    allowance = job.allowance("image/png")
    encoder = _Encoder("image/png")
    try:
        while True:
            data = encoder.encode(_palette_if_lossless(image), None)
            if len(data) <= allowance:
                return job.result(data, "image/png", image.size, None)
            if not shrink:
                return None
            if max(image.size) <= MIN_SIDE:
                raise _TooSmall
            scale = min(0.9, math.sqrt(allowance / len(data)) * 0.95)
            image = job.image(max(MIN_SIDE, math.floor(max(image.size) * scale)))
    finally:
        job.encodes += encoder.encodes


def _palette_if_lossless(image: Image.Image) -> Image.Image:
    """The image as a palette image when it has at most 256 colours and the conversion
    is exact (much smaller PNGs for charts and screenshots); else unchanged."""
    if image.mode not in ("RGB", "RGBA") or image.getcolors(256) is None:
        return image
    palette = image.quantize(
        colors=256,
        method=Image.Quantize.FASTOCTREE if image.mode == "RGBA" else Image.Quantize.MEDIANCUT,
    )
    if ImageChops.difference(palette.convert(image.mode), image).getbbox() is None:
        return palette
    return image


def _few_colours(image: Image.Image) -> bool:
    """Screenshot or line art? At most 256 colours (128 grey levels: grey has only 256 in
    all) on a nearest-neighbour thumbnail."""
    thumb = image.resize(_scaled_size(image.size, 256), Image.Resampling.NEAREST)
    return thumb.getcolors(128 if thumb.mode == "L" else 256) is not None


def _to_rgb(image: Image.Image) -> Image.Image:
    return image.convert("RGB")


def _flatten(image: Image.Image) -> Image.Image:
    """RGBA → RGB composited on white (for formats without transparency)."""
    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, image).convert("RGB")


def _encode_fitted(job: _Job, fmt: Format, has_alpha: bool) -> _Encoded:
    mode = job.source.mode
    if (mode == "RGBA" and not has_alpha) or (fmt == "webp" and mode not in ("RGB", "RGBA")):
        job.prepare = _to_rgb
    elif mode == "RGBA" and fmt == "jpeg":
        job.warnings.append("alpha dropped: JPEG has no transparency (composited on white)")
        job.prepare = _flatten
    image = job.image()
    if fmt == "png":
        result = _png(job, image, shrink=True)
        assert result is not None
        return result
    if fmt == "webp":
        return _lossy(job, image, "image/webp")
    if image.mode != "RGBA":
        if fmt == "auto" and _few_colours(job.source):
            png = _png(job, image, shrink=False)
            if png is not None:
                jpeg_estimate = _Mosaic.of(image, _Encoder("image/jpeg")).predict(QUALITY_CAP)
                if len(png.data) <= jpeg_estimate:
                    return png
        return _lossy(job, image, "image/jpeg")
    # Alpha that matters: lossless PNG if it fits, else WebP, which keeps alpha.
    png = _png(job, image, shrink=False)
    if png is not None:
        return png
    job.warnings.append("alpha kept as lossy WebP: the lossless PNG was over the budget")
    return _lossy(job, image, "image/webp")


def _resolve_budget(
    budget: int | RequestBudget | None, endpoint: str | EndpointProfile
) -> RequestBudget:
    if isinstance(budget, RequestBudget):
        return budget
    if budget is None:
        return RequestBudget.for_endpoint(endpoint)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget <= 0:
        raise ValueError(f"budget must be a positive number of request bytes (got {budget!r}).")
    profile = get_profile(endpoint)
    return RequestBudget(
        limit=budget, per_image_limit=profile.per_image_limit, files_api=profile.files_api
    )


def _resolve_max_side(max_side: int | Literal["model", "keep"], model: ModelInfo) -> int | None:
    if max_side == "model":
        return model.fit_max_side
    if max_side == "keep":
        return None
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < MIN_SIDE:
        raise ValueError(
            f"max_side must be 'model', 'keep' or a long side of at least {MIN_SIDE} px "
            f"(got {max_side!r})."
        )
    return max_side


def fit_image(
    source: ImageSource | LoadedImage,
    *,
    model: str | ModelInfo | None = None,
    budget: int | RequestBudget | None = None,
    max_side: int | Literal["model", "keep"] = "model",
    format: Format = "auto",
    endpoint: str | EndpointProfile = "gemini",
    prompt: str = "",
    quality: Quality = "perceptual",
) -> FittedImage:
    """Fit ``source`` so that a request carrying it (and ``prompt``) stays within
    ``budget`` request bytes, in the fewest bytes that look the same to the model.

    ``quality="perceptual"`` (the default) picks the lowest JPEG/WebP quality whose SSIM
    (on luma) at :data:`PERCEPTUAL_SIDE` px stays within :data:`PERCEPTUAL_SSIM_LOSS` of
    quality :data:`QUALITY_CAP`'s, with JPEG chroma at half resolution; ``"max"`` the
    highest quality that fits, full-resolution chroma from :data:`FULL_CHROMA_QUALITY` on.
    ``budget`` defaults to the ``endpoint`` profile's request limit. ``max_side`` is the
    long side in pixels, ``"model"`` (the model's ``fit_max_side``) or ``"keep"`` (full
    resolution). ``format`` forces ``"jpeg"``, ``"png"`` or ``"webp"``. Raises
    :class:`~nbbanana.errors.DoesNotFitError` when not even a tiny version fits, and the
    loader's :class:`~nbbanana.errors.ImageError` subclasses for unusable input.
    """
    from .images import LoadedImage, load_image

    started = time.perf_counter()
    info = get_model(model)
    request_budget = _resolve_budget(budget, endpoint)
    side = _resolve_max_side(max_side, info)
    if format not in ("auto", "jpeg", "png", "webp"):
        raise ValueError(f"format must be 'auto', 'jpeg', 'png' or 'webp' (got {format!r}).")
    if quality not in ("perceptual", "max"):
        raise ValueError(f"quality must be 'perceptual' or 'max' (got {quality!r}).")
    loaded = source if isinstance(source, LoadedImage) else load_image(source, target_side=side)

    allowances: dict[str, int] = {}

    def allowance(mime: str) -> int:
        if mime not in allowances:
            allowances[mime] = request_budget.image_allowance(prompt, mime=mime)
        return allowances[mime]

    original = loaded.original_size
    target = _scaled_size(original, side) if side is not None else original
    loaded_w, loaded_h = loaded.image.size
    if target[0] > loaded_w or target[1] > loaded_h:
        target = _scaled_size(target, max(loaded_w, loaded_h))
    warnings = list(loaded.warnings)

    encoded: _Encoded | None = None
    passthrough = False
    if (
        loaded.passthrough is not None
        and loaded.passthrough_mime is not None
        and format in ("auto", _mime_format(loaded.passthrough_mime))
        and target == original
        and len(loaded.passthrough) <= allowance(loaded.passthrough_mime)
    ):
        encoded = _Encoded(loaded.passthrough, loaded.passthrough_mime, original, None)
        passthrough = True

    job = _Job(
        source=loaded.image,
        target_size=target,
        allowance=allowance,
        warnings=warnings,
        perceptual=quality == "perceptual",
    )
    if encoded is None:
        if max(allowance(m) for m in _MIME.values()) < _SMALLEST_FILE:
            raise _does_not_fit(allowance("image/jpeg"), request_budget, loaded.name)
        try:
            encoded = _encode_fitted(job, format, loaded.has_alpha)
        except _TooSmall:
            raise _does_not_fit(allowance("image/jpeg"), request_budget, loaded.name) from None
        if max(encoded.size) < max(target):
            warnings.append(
                f"scaled to {encoded.size[0]}×{encoded.size[1]} (below the "
                f"{max(target)} px target) to fit the budget"
            )

    data = encoded.data
    width, height = encoded.size
    report = FitReport(
        input_name=loaded.name,
        input_bytes=loaded.original_bytes,
        input_size=original,
        output_size=(width, height),
        quality=encoded.quality,
        mime=encoded.mime,
        encodes=job.encodes,
        seconds=time.perf_counter() - started,
        warnings=tuple(warnings),
        passthrough=passthrough,
    )
    return FittedImage(
        data=data,
        mime=encoded.mime,
        width=width,
        height=height,
        quality=encoded.quality,
        tokens=info.input_image_tokens(width, height),
        request_bytes=request_budget.request_bytes(prompt, [(len(data), encoded.mime)]),
        sent_sha256=hashlib.sha256(data).hexdigest(),
        source_sha256=loaded.source_sha256,
        name=loaded.name,
        report=report,
    )


def _mime_format(mime: str) -> str:
    return {v: k for k, v in _MIME.items()}.get(mime, "")


def check_image(
    source: ImageSource | LoadedImage,
    *,
    model: str | ModelInfo | None = None,
    endpoint: str | EndpointProfile = "gemini",
) -> ImageCheck:
    """Would ``source`` fit inline exactly as it is? Its request size, pixels, estimated
    input tokens and their cost, without encoding anything."""
    from .images import LoadedImage, load_image

    info = get_model(model)
    budget = RequestBudget.for_endpoint(endpoint)
    loaded = source if isinstance(source, LoadedImage) else load_image(source, target_side=256)
    width, height = loaded.original_size
    tokens = info.input_image_tokens(width, height)
    fmt = (loaded.original_format or "").upper()
    mime = _ACCEPTED_AS_IS.get(fmt)
    request_bytes: int | None = None
    if loaded.original_bytes is None:
        reason = "not an encoded file (pixels only): fit it to get bytes to send"
    elif mime is None:
        reason = f"{fmt or 'this format'} is not accepted by the API: fit it (JPEG/PNG/WebP)"
    else:
        request_bytes = budget.request_bytes("", [(loaded.original_bytes, mime)])
        plan = budget.plan_or_none("", [(loaded.original_bytes, mime)], files_api=False)
        if plan is None:
            limit = budget.usable if budget.limit is not None else budget.per_image_limit
            reason = f"the request would be {request_bytes:,} bytes, over {limit:,}: fit it"
        else:
            reason = ""
    return ImageCheck(
        name=loaded.name,
        fits_inline=not reason,
        reason=reason,
        input_bytes=loaded.original_bytes,
        mime=mime,
        request_bytes=request_bytes,
        limit=budget.limit,
        width=width,
        height=height,
        tokens=tokens,
        cost_usd=info.cost_usd(input_tokens=tokens),
    )

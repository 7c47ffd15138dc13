"""Regional edits at full resolution: change one part of a large photo, keep every other pixel.

The image models answer with about 1 MP (Flash) to 4K (Pro) and redraw the whole frame, so
editing a 48 MP photo directly gives back a smaller, different picture. Instead,
:func:`edit_region`:

1. **parses the region** — a box ``(left, top, right, bottom)`` in the upright source's
   pixels, or a mask (PIL image, numpy array or path; any non-zero pixel is "edit here")
   — :func:`parse_region`;
2. **plans the crop** — the region's bounding box plus a context margin (a fraction of its
   size by default), clipped to the image, and the feather — :func:`plan_crop`;
3. **cuts the crop** from the upright, sRGB, full-resolution source and sends it with the
   session's public :meth:`~nbbanana.session.Session.edit` (so fitting applies as usual);
4. **registers** the answer to the crop it came from — the model may rescale, shift or
   reframe — by estimating a scale and a translation on the context around the region;
   where the context is feature-poor (sky, a smooth gradient) the answer is placed the
   way the model frames its input, searched over the zooms and shifts a model's
   reframing allows and pinned by the context's finest detail (its grain); it refuses
   (:class:`RegistrationError`, with the unblended answer kept) when the context does
   not confirm the placement to a pixel or so — :func:`register`;
5. **composites** the answer, resampled to the crop's full resolution, into the original
   through a feathered mask — :func:`composite`. Outside the mask and its feather the
   output's pixels are the upright source's, bit for bit.

The result is a :class:`RegionResult`: a :class:`~nbbanana.result.Result` whose image is
the full-size composite, with the region, crop, registration and feather in its provenance,
saved as PNG (lossless, so the untouched pixels stay exact; written fast by
:mod:`nbbanana._png`) or, on request, as a high-quality JPEG.

Memory: the full-size source is decoded once and never turned into a numpy array; the
composite is made by pasting one patch into it (in place when the decoded image is ours,
else into one copy). Registration works on grey images of at most about 1 MP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import math
import os
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

import numpy as np
from PIL import Image, ImageChops

from ._files import write_atomic
from ._png import write_png
from ._version import __version__
from .errors import InvalidRequest, NbbananaError
from .images import LoadedImage, load_image
from .result import Result

__all__ = [
    "DEFAULT_FEATHER",
    "DEFAULT_MARGIN",
    "DEFAULT_MIN_CONFIDENCE",
    "Box",
    "CropPlan",
    "Editor",
    "Region",
    "RegionResult",
    "Registration",
    "RegistrationError",
    "aedit_region",
    "composite",
    "edit_region",
    "feather_mask",
    "measure_seam",
    "parse_box",
    "parse_region",
    "plan_crop",
    "register",
    "seam_score",
]

#: Context on each side of the region: this fraction of the region's longer side
#: (an ``int`` is pixels). The model needs to see what surrounds the region, and the
#: registration anchors on it.
DEFAULT_MARGIN = 0.25
#: Width of the blend from the answer to the original, outside the region: this fraction
#: of the region's longer side (an ``int`` is pixels), within [2, 64] px and never wider
#: than the margin.
DEFAULT_FEATHER = 0.03
#: Below this correlation of fine detail between the answer and its crop (on the context
#: outside the region), the answer is not blended.
DEFAULT_MIN_CONFIDENCE = 0.7
_MIN_MARGIN_PX = 32
_FEATHER_PX = (2, 64)
#: Long side of the finest registration level (px): about the answer's own resolution.
_FINE_SIDE = 768
_COARSE_SIDE = 160
#: The scale search spans this factor on either side of the "cover" and "contain" fits.
_SCALE_SPAN = 1.6
_SCALE_STEP = 1.012
#: The first scales searched: the "cover" fit, zoomed in by up to this many steps (≈ 10 %)
#: or out by two; taken when their best scores at least _PRIOR_SCORE inside that span.
_PRIOR_STEPS = 8
_PRIOR_SCORE = 0.3
#: How far the detail filter reaches (px).
_HP_REACH = 5
#: Below this, the context's detail runs in one direction only (see _isotropy).
_MIN_ISOTROPY = 0.02
#: Fewer context pixels than this on a level: register on the whole crop instead.
_MIN_CONTEXT = 400
#: Side of the tiles the confidence is judged on (px of its level).
_TILE = 12
#: A tile whose detail varies less than this (grey levels) has nothing to judge by.
_MIN_DETAIL = 1.0
#: Fewer informative tiles than this: the context is feature-poor (it cannot refute the
#: sizes' placement) ...
_MIN_TILES = 6
#: ... though this many can confirm a placement.
_CONFIRM_TILES = 3
#: Fewer than this: a placement from the first scales searched is checked against the
#: whole range.
_SURE_TILES = 12
#: How far (px of the confidence's level) each tile looks for a better match, and by how
#: much that match must beat the placement's own to count against it ...
_SHIFT_REACH = 6
_SHIFT_MARGIN = 0.01
#: A tile matched this well somewhere has a vote (below, the model redrew it).
_MATCHED = 0.9
#: ... and the share of the informative tiles that must match best where the placement
#: puts them (see :func:`_aligned_share`).
_MIN_ALIGNED = 0.7
#: How many other peaks of the first scales' scores a placement that fails starts from.
_RETRY_PEAKS = 3
#: Long side (px) of the grey images a feature-poor context is compared on.
_AGREEMENT_SIDE = 64
#: A residual (grey levels) that a feature-poor context tolerates whatever its spread.
_FLAT_LEVELS = 4.0
#: The share of a feature-poor context that must agree with the sizes' placement.
_MIN_AGREEMENT = 0.75
#: Side (px of the finest level) of the tiles the finest detail is judged on (see :func:`_pin`).
_PIN_TILE = 24
#: The finest detail can pin a placement when it correlates at least this well there (the
#: median tile; unrelated detail gives 0 ± 0.02, kept grain 0.3 to 0.85), and does when
#: it matches much less two pixels off (see :attr:`_Pin.sharpness`: kept grain falls to
#: nothing, an edge slides along itself, a gradient matches anywhere).
_PINNED = 0.25
#: The zoom steps the finest detail is searched in, and how many of them (≈ 8 %) a model's
#: reframing may zoom in by.
_PIN_STEP = 1.005
_SIZES_ZOOM_STEPS = 16


class RegistrationError(NbbananaError):
    """The answer could not be placed back into the photo with confidence; nothing was blended.

    ``answer`` is the model's unblended :class:`~nbbanana.result.Result` (paid for: keep
    it), ``estimate`` the best :class:`Registration` found (``None`` if none was).
    """

    def __init__(
        self,
        message: str,
        *,
        estimate: Registration | None = None,
        answer: Result | None = None,
    ) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.answer = answer


# --------------------------------------------------------------------------- regions


@dataclass(frozen=True)
class Box:
    """A pixel box ``[left, right) × [top, bottom)`` in the upright source."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    def as_tuple(self) -> tuple[int, int, int, int]:
        return self.left, self.top, self.right, self.bottom

    def expand(self, dx: int, dy: int, size: tuple[int, int]) -> Box:
        """Grown by ``dx``/``dy`` on each side, clipped to an image of ``size``."""
        return Box(
            max(0, self.left - dx),
            max(0, self.top - dy),
            min(size[0], self.right + dx),
            min(size[1], self.bottom + dy),
        )

    def relative_to(self, outer: Box) -> Box:
        """This box in ``outer``'s coordinates."""
        return Box(
            self.left - outer.left,
            self.top - outer.top,
            self.right - outer.left,
            self.bottom - outer.top,
        )

    def __str__(self) -> str:
        return f"{self.left},{self.top},{self.right},{self.bottom}"


@dataclass(frozen=True)
class Region:
    """What to edit, in the upright source's pixels.

    ``box`` bounds the edit; ``mask`` (mode ``"L"``, ``box``'s size, 255 = edit) says which
    pixels of the box, or ``None`` for all of them.
    """

    box: Box
    mask: Image.Image | None
    source_size: tuple[int, int]

    @property
    def kind(self) -> Literal["box", "mask"]:
        return "box" if self.mask is None else "mask"


MaskSource = Image.Image | np.ndarray[Any, Any] | str | os.PathLike[str] | bytes


def parse_box(value: object, size: tuple[int, int]) -> Box:
    """A box from ``(left, top, right, bottom)`` or the text ``"L,T,R,B"``, checked
    against an upright image of ``size``."""
    if isinstance(value, Box):
        numbers: Sequence[object] = value.as_tuple()
    elif isinstance(value, str):
        numbers = [piece.strip() for piece in value.split(",")]
    elif isinstance(value, (tuple, list)):
        numbers = value
    else:
        raise InvalidRequest(
            f"region must be a box (left, top, right, bottom) in pixels, not {type(value).__name__}."
        )
    try:
        if len(numbers) != 4:
            raise ValueError
        left, top, right, bottom = (_pixel(n) for n in numbers)
    except (TypeError, ValueError):
        raise InvalidRequest(
            f"region {value!r} is not a box: give four whole pixel numbers "
            "(left, top, right, bottom), e.g. (100, 200, 900, 800)."
        ) from None
    width, height = size
    if not (0 <= left < right <= width and 0 <= top < bottom <= height):
        raise InvalidRequest(
            f"region ({left}, {top}, {right}, {bottom}) is not inside the upright image "
            f"({width}×{height}): need 0 ≤ left < right ≤ {width} and 0 ≤ top < bottom ≤ "
            f"{height} (EXIF orientation is applied before the box is read)."
        )
    return Box(left, top, right, bottom)


def _pixel(value: object) -> int:
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value)
    raise TypeError


def parse_region(
    region: object = None, mask: MaskSource | None = None, *, size: tuple[int, int]
) -> Region:
    """A :class:`Region` from a box or a mask (exactly one), for an upright image of ``size``.

    A mask may be a PIL image, a numpy array (2-D, or 3-D with channels last) or a path;
    any non-zero pixel (of any channel; transparent pixels count as zero) is "edit here".
    It must have the upright image's size, or the same aspect ratio (a mask drawn on a
    thumbnail is scaled up).
    """
    if (region is None) == (mask is None):
        raise InvalidRequest(
            "Give either region=(left, top, right, bottom) or mask=... (an image whose "
            "non-zero pixels mark what to edit), not "
            + ("both." if region is not None else "neither.")
        )
    if region is not None:
        return Region(parse_box(region, size), None, size)
    assert mask is not None
    binary = _binary_mask(mask)
    bbox = binary.getbbox()
    if bbox is None:
        raise InvalidRequest("The mask is empty: paint the area to edit (any non-zero pixel).")
    if binary.size == size:
        box = Box(*bbox)
        return Region(box, binary.crop(bbox), size)
    mw, mh = binary.size
    width, height = size
    if abs(mw * height - mh * width) > max(mw, mh, width, height):
        hint = ""
        if (mw, mh) == (height, width):
            hint = " It looks drawn on the image before its EXIF rotation; draw it on the upright image."
        raise InvalidRequest(
            f"The mask is {mw}×{mh} but the upright image is {width}×{height}: give a mask of "
            f"the image's size or aspect ratio.{hint}"
        )
    # A mask drawn on a smaller (or larger) copy: scale its bounding box out to whole
    # source pixels and resample just that part.
    sx, sy = width / mw, height / mh
    box = Box(
        max(0, math.floor(bbox[0] * sx)),
        max(0, math.floor(bbox[1] * sy)),
        min(width, math.ceil(bbox[2] * sx)),
        min(height, math.ceil(bbox[3] * sy)),
    )
    part = binary.resize(
        box.size,
        Image.Resampling.NEAREST,
        box=(box.left / sx, box.top / sy, box.right / sx, box.bottom / sy),
    )
    if part.getbbox() is None:  # pragma: no cover - the bbox holds non-zero pixels
        raise InvalidRequest("The mask is empty once scaled to the image.")
    return Region(box, part, size)


def _binary_mask(mask: MaskSource) -> Image.Image:
    """Mode "L", 255 where the mask is non-zero."""
    if isinstance(mask, np.ndarray):
        array = np.asarray(mask)
        if array.ndim == 3:
            nonzero = np.any(array[..., :3] != 0, axis=2) if array.shape[2] >= 3 else None
            if array.shape[2] == 4:
                assert nonzero is not None
                nonzero &= array[..., 3] != 0
            elif nonzero is None:
                nonzero = np.any(array != 0, axis=2)
        elif array.ndim == 2:
            nonzero = array != 0
        else:
            raise InvalidRequest(
                f"A mask array must be 2-D (height, width) or 3-D with channels last, not {array.shape}."
            )
        return Image.fromarray(nonzero.astype(np.uint8) * 255, "L")
    # A file's own EXIF orientation is applied, like the photo's.
    image = mask if isinstance(mask, Image.Image) else load_image(mask).image
    bands = image.getbands()
    if image.mode == "1":
        image = image.convert("L")
    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in bands else "RGB")
    if image.mode == "L":
        return image.point(lambda v: 255 if v else 0)
    red, green, blue, *alpha = image.split()
    colour = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    if alpha:
        colour = ImageChops.multiply(colour, alpha[0].point(lambda v: 255 if v else 0))
    return colour.point(lambda v: 255 if v else 0)


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class CropPlan:
    """What is cut, sent and blended back, in the upright source's pixels.

    ``crop`` (sent to the model) is the region's box plus ``margin`` on each side, clipped;
    ``blend`` is the box plus ``feather``, clipped to the crop: the only pixels that can
    change.
    """

    region: Region
    crop: Box
    margin: int
    feather: int

    @property
    def blend(self) -> Box:
        return self.region.box.expand(self.feather, self.feather, self.region.source_size)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.region.kind,
            "box": list(self.region.box.as_tuple()),
            "crop": list(self.crop.as_tuple()),
            "margin": self.margin,
            "feather": self.feather,
            "source_size": list(self.region.source_size),
        }


def _pixels_of(amount: float | int, long_side: int, what: str) -> int:
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
        raise InvalidRequest(
            f"{what} must be a fraction of the region's size (e.g. 0.25) or whole pixels "
            f"(e.g. 64), not {amount!r}."
        )
    if isinstance(amount, int):
        return amount
    return round(amount * long_side)


def plan_crop(
    region: Region,
    *,
    margin: float | int = DEFAULT_MARGIN,
    feather: float | int | None = None,
) -> CropPlan:
    """The crop to send and the feather to blend with (see :class:`CropPlan`).

    ``margin`` and ``feather``: a ``float`` is a fraction of the region's longer side, an
    ``int`` whole pixels. The margin is at least 32 px (unless 0); the feather defaults to
    :data:`DEFAULT_FEATHER` within [2, 64] px and is never wider than the margin.
    """
    box = region.box
    long_side = max(box.width, box.height)
    margin_px = _pixels_of(margin, long_side, "margin")
    if margin_px:
        margin_px = max(margin_px, _MIN_MARGIN_PX)
    if feather is None:
        feather_px = min(max(round(DEFAULT_FEATHER * long_side), _FEATHER_PX[0]), _FEATHER_PX[1])
    else:
        feather_px = _pixels_of(feather, long_side, "feather")
    feather_px = min(feather_px, margin_px)
    crop = box.expand(margin_px, margin_px, region.source_size)
    return CropPlan(region, crop, margin_px, feather_px)


# --------------------------------------------------------------------------- feather


def _smoothstep(t: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    t = np.clip(t, 0.0, 1.0)
    result: np.ndarray[Any, Any] = t * t * (3.0 - 2.0 * t)
    return result


def _ramp(length: int, start: int, stop: int, feather: int) -> np.ndarray[Any, Any]:
    """1 on ``[start, stop)``, falling smoothly to 0 at ``feather`` pixels outside."""
    pos = np.arange(length, dtype=np.float32) + 0.5
    outside = np.maximum(start - pos + 0.5, pos - 0.5 - (stop - 1))  # ≤ 0 inside
    if feather <= 0:
        hard: np.ndarray[Any, Any] = (outside <= 0).astype(np.float32)
        return hard
    return _smoothstep(1.0 - outside / (feather + 0.5))


def _box_sum(array: np.ndarray[Any, Any], radius: int, axis: int) -> np.ndarray[Any, Any]:
    """Sum over a window of ±radius along ``axis`` (zero outside), by cumulative sums:
    linear time whatever the radius."""
    moved = np.moveaxis(array, axis, 0)
    n = moved.shape[0]
    total = np.zeros((n + 2 * radius + 1, *moved.shape[1:]), dtype=np.float64)
    np.cumsum(moved, axis=0, dtype=np.float64, out=total[radius + 1 : n + radius + 1])
    total[n + radius + 1 :] = total[n + radius]
    result: np.ndarray[Any, Any] = np.moveaxis(total[2 * radius + 1 :] - total[:n], 0, axis)
    return result


def feather_mask(plan: CropPlan) -> Image.Image:
    """The blend weights over :attr:`CropPlan.blend` (mode "L"): 255 on the region, falling
    smoothly to 0 within ``feather`` pixels outside it, exactly 0 beyond."""
    blend = plan.blend
    inner = plan.region.box.relative_to(blend)
    f = plan.feather
    if plan.region.mask is None:
        wx = _ramp(blend.width, inner.left, inner.right, f)
        wy = _ramp(blend.height, inner.top, inner.bottom, f)
        alpha = np.outer(wy, wx)
    else:
        core = np.zeros((blend.height, blend.width), dtype=np.float32)
        core[inner.top : inner.bottom, inner.left : inner.right] = (
            np.asarray(plan.region.mask, dtype=np.float32) / 255.0
        )
        if f <= 0:
            alpha = core
        else:
            # Dilate by h, then average over ±h: 1 on the mask, 0 beyond 2h ≈ feather
            # (square windows, separable cumulative sums: linear time in the patch).
            h = max(1, f // 2)
            grown = (_box_sum(_box_sum(core, h, 0), h, 1) > 0.5).astype(np.float32)
            side = 2 * h + 1
            mean = _box_sum(_box_sum(grown, h, 0), h, 1) / (side * side)
            alpha = np.maximum(_smoothstep(mean), core)
    return Image.fromarray(np.round(alpha * 255.0).astype(np.uint8), "L")


# --------------------------------------------------------------------------- registration


@dataclass(frozen=True)
class Registration:
    """Where the answer sits in its crop: crop point = ``scale`` × answer point + ``(tx, ty)``
    (continuous coordinates, pixel ``i`` spanning ``[i, i + 1)``)."""

    scale: float
    tx: float
    ty: float
    #: Correlation of fine detail between the registered answer and the crop, on the
    #: context outside the region (1 = identical detail, ≈ 0 = unrelated images).
    confidence: float
    #: The answer's brightness relation to the crop on that context: crop ≈ gain × answer + bias.
    gain: float = 1.0
    bias: float = 0.0
    #: What the placement rests on: ``"context"`` — the detail around the region confirms
    #: it (``confidence`` as above; on fewer than 12 tiles of detail it is refined by the
    #: context's finest detail, or ``confidence`` is lowered in proportion, see
    #: :func:`_sharpen`); ``"sizes"`` — the context is feature-poor (sky, a smooth
    #: gradient, one straight edge), so the answer is placed the way the model frames its
    #: input (scaled to cover the crop, centred), zoomed and shifted as far as a model's
    #: reframing may to where the context's finest detail pins it (see :func:`_pin`);
    #: ``confidence`` is then the lesser of the share of the context whose coarse shading
    #: agrees with it (see :func:`_agreement`) and how sharply that fine detail singles it
    #: out (:attr:`_Pin.sharpness`): a placement it cannot single out, which a zoom of a
    #: few percent would put pixels off, is refused.
    basis: Literal["context", "sizes"] = "context"

    def to_crop(self, x: float, y: float) -> tuple[float, float]:
        return self.scale * x + self.tx, self.scale * y + self.ty

    def to_answer(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.tx) / self.scale, (y - self.ty) / self.scale

    def to_json(self) -> dict[str, Any]:
        return {
            "scale": round(self.scale, 6),
            "tx": round(self.tx, 3),
            "ty": round(self.ty, 3),
            "confidence": round(self.confidence, 4),
            "gain": round(self.gain, 4),
            "bias": round(self.bias, 3),
            "basis": self.basis,
        }


def _grey_level(image: Image.Image, factor: float) -> np.ndarray[Any, Any]:
    """``image`` as float grey, scaled by exactly ``factor`` (the far edge is cut to a
    whole pixel rather than the scale rounded, so the mapping stays uniform)."""
    grey = image if image.mode == "L" else image.convert("L")
    w = max(1, math.floor(grey.width * factor))
    h = max(1, math.floor(grey.height * factor))
    box = (0.0, 0.0, w / factor, h / factor)
    resample = Image.Resampling.BOX if factor < 1 else Image.Resampling.BILINEAR
    small = grey.resize((w, h), resample, box=box)
    return np.asarray(small, dtype=np.float32)


def _warp(
    image: np.ndarray[Any, Any], size: tuple[int, int], m: float, nx: float, ny: float
) -> np.ndarray[Any, Any]:
    """Sample ``image`` at ``m·p + n`` for each pixel centre ``p`` of a ``size`` grid."""
    source = Image.fromarray(image, "F")
    warped = source.transform(
        size, Image.Transform.AFFINE, (m, 0.0, nx, 0.0, m, ny), Image.Resampling.BILINEAR
    )
    return np.asarray(warped, dtype=np.float32)


def _valid(
    shape: tuple[int, int],
    source_shape: tuple[int, int],
    m: float,
    nx: float,
    ny: float,
    inset: int = 0,
) -> np.ndarray[Any, Any]:
    """Where the warp samples inside the source, less ``inset`` grid pixels next to where
    it does not (a filter of that reach would mix in the warp's fill there).

    The inset applies only against the source's edge, not the grid's: at the grid's own
    edge both images being compared are edge-padded alike. (Insetting there too threw
    away most of a thin context frame exactly when the answer covers its crop, and
    favoured scales that overshoot it.)"""
    h, w = shape
    sh, sw = source_shape
    return np.outer(_valid_run(h, sh, m, ny, inset), _valid_run(w, sw, m, nx, inset))


def _valid_run(n: int, source: int, m: float, offset: float, inset: int) -> np.ndarray[Any, Any]:
    """One axis of :func:`_valid`: a bilinear sample at ``m·(i + 0.5) + offset`` reads
    only the source's pixels while it lies within ``[0.5, source - 0.5]``."""
    at = m * (np.arange(n, dtype=np.float64) + 0.5) + offset
    inside = (at >= 0.5 - 1e-6) & (at <= source - 0.5 + 1e-6)
    if inset and inside.any():
        first, last = int(np.argmax(inside)), n - 1 - int(np.argmax(inside[::-1]))
        if first > 0:
            inside[first : first + inset] = False
        if last < n - 1:
            inside[max(0, last - inset + 1) : last + 1] = False
    return inside


def _mean(image: np.ndarray[Any, Any], radius: int) -> np.ndarray[Any, Any]:
    padded = np.pad(image, radius, mode="edge")
    side = 2 * radius + 1
    total = _box_sum(_box_sum(padded, radius, 0), radius, 1)
    return total[radius:-radius, radius:-radius] / (side * side)


def _highpass(image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Detail: a band-pass (3×3 mean minus 9×9 mean). The finest pixel-level detail is
    left out: sensor grain resampled two ways (fitting, then the model) decorrelates."""
    band: np.ndarray[Any, Any] = (_mean(image, 1) - _mean(image, 4)).astype(np.float32)
    return band


def _weighted_ncc(
    a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], weights: np.ndarray[Any, Any]
) -> float:
    total = float(weights.sum())
    if total <= 0:
        return 0.0
    ma = float((a * weights).sum()) / total
    mb = float((b * weights).sum()) / total
    da, db = a - ma, b - mb
    cov = float((weights * da * db).sum())
    var = float((weights * da * da).sum()) * float((weights * db * db).sum())
    return cov / math.sqrt(var) if var > 0 else 0.0


def _hann(shape: tuple[int, int]) -> np.ndarray[Any, Any]:
    return np.outer(np.hanning(shape[0]), np.hanning(shape[1])).astype(np.float32)


def _spectrum(image: np.ndarray[Any, Any], window: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    spectrum: np.ndarray[Any, Any] = np.fft.rfft2((image - image.mean()) * window)
    return spectrum


def _phase_shift(
    reference: np.ndarray[Any, Any], moving: np.ndarray[Any, Any], window: np.ndarray[Any, Any]
) -> tuple[float, float]:
    """The shift ``d`` with ``moving(p) ≈ reference(p + d)`` (phase correlation);
    ``reference`` is given as its :func:`_spectrum`."""
    cross = reference * np.conj(_spectrum(moving, window))
    cross /= np.abs(cross) + 1e-9
    corr = np.fft.irfft2(cross, s=moving.shape)
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)
    h, w = corr.shape
    dy = iy if iy <= h // 2 else iy - h
    dx = ix if ix <= w // 2 else ix - w
    return float(dx), float(dy)


def _context_weights(
    exclude: Image.Image | None, shape: tuple[int, int], factor: float
) -> np.ndarray[Any, Any]:
    """1 where the crop is context (not to be edited), at a level's resolution; all ones
    when the context is too small to register on."""
    h, w = shape
    if exclude is None:
        return np.ones(shape, dtype=np.float32)
    small = np.asarray(
        exclude.resize((w, h), Image.Resampling.BOX, box=(0, 0, w / factor, h / factor)),
        dtype=np.float32,
    )
    weights = (small < 1.0).astype(np.float32)  # any trace of the region is excluded
    if weights.mean() < 0.08 or weights.sum() < _MIN_CONTEXT:
        return np.ones(shape, dtype=np.float32)
    return weights


def _dilate(mask: np.ndarray[Any, Any], radius: int) -> np.ndarray[Any, Any]:
    """Binary dilation by a square of ±radius (separable shifted ORs)."""
    out = mask.copy()
    for axis in (0, 1):
        grown = out.copy()
        for shift in range(1, radius + 1):
            if axis == 0:
                grown[shift:] |= out[:-shift]
                grown[:-shift] |= out[shift:]
            else:
                grown[:, shift:] |= out[:, :-shift]
                grown[:, :-shift] |= out[:, shift:]
        out = grown
    return out


def _refine(
    reference: np.ndarray[Any, Any],
    answer: np.ndarray[Any, Any],
    weights: np.ndarray[Any, Any],
    params: tuple[float, float, float],
    iterations: int,
    tolerance: float,
    shading: tuple[float, float] = (1.0, 0.0),
) -> tuple[tuple[float, float, float], float, float]:
    """Gauss-Newton on ``reference(p) ≈ g·answer(m·p + n) + b`` over (m, nx, ny, g, b),
    reweighted against outliers (what the model changed in the context), from ``params``
    and ``shading`` (g, b), until a step moves the answer by less than ``tolerance``
    answer pixels."""
    m, nx, ny = params
    gain, bias = shading
    h, w = reference.shape
    # Scale about the grid's centre (not its corner), so that scale and shift are nearly
    # independent and Gauss-Newton converges in a few steps.
    cx, cy = w / 2, h / 2
    grid_x = np.broadcast_to(np.arange(w, dtype=np.float32)[None, :] + 0.5 - cx, (h, w))
    grid_y = np.broadcast_to(np.arange(h, dtype=np.float32)[:, None] + 0.5 - cy, (h, w))
    jac = np.empty((5, h, w), dtype=np.float32)
    jac[4] = 1.0
    for _ in range(iterations):
        warped = _warp(answer, (w, h), m, nx, ny)
        wts = weights * _valid((h, w), answer.shape, m, nx, ny)
        if wts.sum() < 64:
            break
        gy, gx = np.gradient(warped)
        # d warped / d n is the answer's own gradient: the grid's gradient / m.
        np.multiply(gx, gain / m, out=jac[1])
        np.multiply(gy, gain / m, out=jac[2])
        np.add(jac[1] * grid_x, jac[2] * grid_y, out=jac[0])
        jac[3] = warped
        residual = gain * warped + bias - reference
        sample = np.abs(residual[::4, ::4][wts[::4, ::4] > 0])
        # At least 10 grey levels: on smooth, well-matched images the spread is tiny, and
        # the edges that carry the alignment would be cut off as outliers.
        spread = max(1.4826 * float(np.median(sample)) if sample.size else 0.0, 10.0)
        # Tukey's biweight: pixels the model changed (a label, a new object) get no say,
        # however strong their edges; a Cauchy weight would still let them steer.
        cut = 4.685 * spread
        robust = wts * np.square(np.clip(1.0 - np.square(residual / cut), 0.0, None))
        # ... and neither do their borders, whose blurred residuals fall under the cut.
        robust[_dilate(np.abs(residual) > cut, 2)] = 0.0
        flat = jac.reshape(5, -1)
        weighted = flat * robust.reshape(1, -1)
        hessian = (weighted @ flat.T).astype(np.float64)
        rhs = (weighted @ residual.reshape(-1)).astype(np.float64)
        try:
            step = np.linalg.solve(hessian + np.eye(5) * 1e-6, -rhs)
        except np.linalg.LinAlgError:
            break
        # a = m·p + n = m·(p - c) + (n + m·c): a change dm at fixed n + m·c moves n by -dm·c
        m += float(step[0])
        nx += float(step[1]) - float(step[0]) * cx
        ny += float(step[2]) - float(step[0]) * cy
        gain += float(step[3])
        bias += float(step[4])
        moved = abs(float(step[0])) * max(w, h) / 2 + abs(float(step[1])) + abs(float(step[2]))
        if moved < tolerance:
            break
    return (m, nx, ny), gain, bias


def _confidence(
    reference: Image.Image,
    answer: Image.Image,
    exclude: Image.Image | None,
    s: float,
    tx: float,
    ty: float,
    q: float,
) -> _Evidence:
    """What the context says about a placement of the answer: the correlation of detail
    between the crop and the registered answer, tile by tile, at about an eighth of the
    answer's resolution (detail there survives the model's redrawing when the images
    match, and is unrelated when they do not). See :class:`_Evidence`."""
    ref = _grey_level(reference, q)
    p = min(1.0, q * s * 1.25)
    ans = _grey_level(answer, p)
    m, nx, ny = p / (q * s), -tx * p / s, -ty * p / s
    warped = _warp(ans, (ref.shape[1], ref.shape[0]), m, nx, ny)
    valid = _valid(ref.shape, ans.shape, m, nx, ny, _HP_REACH)
    weights = _context_weights(exclude, ref.shape, q) * valid
    if weights.sum() < _MIN_CONTEXT:  # a thin margin: judge on everything the answer shows
        weights = valid.astype(np.float32)
    detail = _highpass(ref)
    answer_detail = _highpass(warped)
    correlation, tiles = _tiled_ncc(detail, answer_detail, weights, _TILE)
    overall = _weighted_ncc(detail, answer_detail, weights)
    aligned, typical = _aligned_share(detail, answer_detail, weights, _TILE)
    return _Evidence(correlation, tiles, _isotropy(detail, weights), overall, aligned, typical)


@dataclass(frozen=True)
class _Evidence:
    """The context's verdict on one placement."""

    #: Weighted median over the informative tiles of their correlation of detail.
    correlation: float
    #: How many tiles of the context have detail to judge by (see :func:`_tiled_ncc`).
    tiles: int
    #: :func:`_isotropy` of the context's detail.
    isotropy: float
    #: The correlation of detail over the whole context at once (a label lowers it).
    overall: float = 0.0
    #: The share of the informative tiles that match best where the placement puts them
    #: (see :func:`_aligned_share`).
    aligned: float = 1.0
    #: The median of the tiles' correlations, each tile counted once (a placement that
    #: lines up only the strongest edges has a high :attr:`correlation`, not this).
    typical: float = 1.0
    #: The gain of the crop ≈ gain × answer + bias fit behind the placement: outside
    #: [1/2, 2] it is implausible (an edit recolours, it does not flatten or invent
    #: contrast), and Gauss-Newton matched the context with a wrong placement.
    gain: float = 1.0

    @property
    def informative(self) -> bool:
        """Enough detail, in more than one direction, for the correlation to mean something."""
        return self.tiles >= _MIN_TILES and self.isotropy >= _MIN_ISOTROPY


def _tile_sums(x: np.ndarray[Any, Any], tile: int) -> np.ndarray[Any, Any]:
    """Sums of ``x`` over ``tile``-pixel tiles (the last row and column of tiles partial)."""
    h, w = x.shape
    th, tw = -(-h // tile), -(-w // tile)
    padded = np.zeros((th * tile, tw * tile), dtype=np.float64)
    padded[:h, :w] = x
    result: np.ndarray[Any, Any] = padded.reshape(th, tile, tw, tile).sum(axis=(1, 3))
    return result


def _tiled_ncc(
    a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], weights: np.ndarray[Any, Any], tile: int
) -> tuple[float, int]:
    """The weighted median, over ``tile``-pixel tiles, of each tile's correlation of ``a``
    and ``b``, weighted by ``a``'s energy in the tile; and how many tiles took part.

    A tile takes part when a quarter of it is weighted and ``a`` varies there by at least
    :data:`_MIN_DETAIL` grey levels. Tile by tile rather than over the whole context: a
    label or an object the model added in the context spoils its own tiles, not the
    verdict; an unrelated picture spoils them all."""

    def sums(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        return _tile_sums(x, tile)

    wa, wb = weights * a, weights * b
    n = sums(weights)
    safe = np.maximum(n, 1e-9)
    ma, mb = sums(wa) / safe, sums(wb) / safe
    var_a = sums(wa * a) / safe - ma * ma
    var_b = sums(wb * b) / safe - mb * mb
    cov = sums(wa * b) / safe - ma * mb
    use = (n >= tile * tile / 4) & (var_a >= _MIN_DETAIL**2)
    if not use.any():
        return 0.0, 0
    ncc = cov[use] / np.sqrt(np.maximum(var_a[use] * var_b[use], 1e-12))
    energy = (n * var_a)[use]
    order = np.argsort(ncc)
    cumulative = np.cumsum(energy[order])
    median = float(ncc[order][int(np.searchsorted(cumulative, cumulative[-1] / 2))])
    return median, int(use.sum())


def _aligned_share(
    a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], weights: np.ndarray[Any, Any], tile: int
) -> tuple[float, float]:
    """Of the tiles that :func:`_tiled_ncc` judges on and that ``b`` matches well
    somewhere within :data:`_SHIFT_REACH` px (a correlation of :data:`_MATCHED`), the
    share that match as placed: no shift correlates better by more than
    :data:`_SHIFT_MARGIN`, 1 when no tile matches well anywhere; and the median over
    those tiles of their correlation as placed, again not weighted by energy.

    An independent check of the placement, counted tile by tile and not weighted by
    energy: a placement at a wrong scale can line up the few strong edges on one side of
    the context (which then dominate the correlation) while the rest of it matches best
    a few pixels away. A tile the model redrew (a label, a border) matches nowhere, so it
    has no vote, for or against; but a placement far off matches most tiles nowhere,
    which the median tells (a label covers only a few)."""
    h, w = a.shape
    reach = _SHIFT_REACH
    th, tw = -(-h // tile), -(-w // tile)
    grid = ((0, th * tile - h), (0, tw * tile - w))
    a, weights = np.pad(a, grid), np.pad(weights, grid)
    n = _tile_sums(weights, tile)
    safe = np.maximum(n, 1e-9)
    wa = weights * a
    ma = _tile_sums(wa, tile) / safe
    var_a = _tile_sums(wa * a, tile) / safe - ma * ma
    use = (n >= tile * tile / 4) & (var_a >= _MIN_DETAIL**2)
    if not use.any():
        return 1.0, 0.0
    # Every shift at once: views of ``b`` shifted by (dy, dx), summed over each tile.
    padded = np.pad(np.pad(b, reach, mode="edge"), grid).astype(np.float32)
    side = 2 * reach + 1
    shifted = np.lib.stride_tricks.sliding_window_view(padded, a.shape)

    def sums(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        total: np.ndarray[Any, Any] = x.reshape(side, side, th, tile, tw, tile).sum(axis=(3, 5))
        return total

    weighted = weights.astype(np.float32) * shifted
    mb = sums(weighted) / safe
    var_b = sums(weighted * shifted) / safe - mb * mb
    cov = sums(wa.astype(np.float32) * shifted) / safe - ma * mb
    ncc = cov / np.sqrt(np.maximum(var_a * var_b, 1e-12))
    best = ncc.max(axis=(0, 1))
    own = ncc[reach, reach]
    typical = float(np.median(own[use]))
    votes = use & (best >= _MATCHED)
    if not votes.any():
        return 1.0, typical
    return float((own >= best - _SHIFT_MARGIN)[votes].mean()), typical


def _isotropy(detail: np.ndarray[Any, Any], weights: np.ndarray[Any, Any]) -> float:
    """How well the context's detail pins a position in every direction: the smaller over
    the larger eigenvalue of its structure tensor (≈ 0 for a single straight edge, which
    any slide along itself matches as well)."""
    gy, gx = np.gradient(detail)
    sxx = float((weights * gx * gx).sum())
    syy = float((weights * gy * gy).sum())
    sxy = float((weights * gx * gy).sum())
    root = math.sqrt(((sxx - syy) / 2) ** 2 + sxy * sxy)
    high, low = (sxx + syy) / 2 + root, (sxx + syy) / 2 - root
    return max(0.0, low) / high if high > 0 else 0.0


def register(
    answer: Image.Image,
    reference: Image.Image,
    *,
    exclude: Image.Image | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
) -> Registration:
    """Estimate the scale and translation that put ``answer`` onto ``reference`` (its crop).

    ``exclude`` (mode "L", the reference's size, non-zero = the region the edit may change)
    is left out, so the estimate rests on the context around the region.

    How: a scale search around the "cover" and "contain" fits of the answer into the crop,
    each scale's translation by phase correlation, on grey images of about 160 px; then
    Gauss-Newton on scale, translation, gain and bias at about 320, 640 px and the
    answer's own resolution (up to 768 px), robust to what the model changed. The
    confidence is the correlation of detail (a band-pass) on the context, at an eighth of
    the crop's or the answer's resolution, whichever is coarser, taken tile by tile (the
    weighted median: a label the model drew in the context spoils only its tiles); the
    median tile, counted once, must correlate as well, and most tiles that match must
    match best where the placement puts them (see :func:`_aligned_share`), else
    Gauss-Newton starts again from other scales. The placement the sizes imply (the answer showing its crop scaled to cover, centred) is
    judged the same way and taken when the estimate is not confirmed but it is.

    Before it refuses, the zooms and shifts a model's reframing allows around the sizes'
    placement are searched on the context's finest detail (see :func:`_pin`): a
    placement that detail pins and the coarser detail confirms is kept.

    A placement confirmed by fewer than :data:`_SURE_TILES` tiles of detail may still be a
    few pixels off (the tiles pin the shift where they are, not the scale): it is refined
    by the context's finest detail, or its confidence lowered (see :func:`_sharpen`).

    When the context is feature-poor (fewer than a few tiles with detail, or detail in
    one direction only: sky, a smooth gradient, one straight edge) nothing can be
    estimated from its coarse detail; the answer is then placed where the sizes imply,
    with ``basis`` ``"sizes"``, unless the context contradicts that (see
    :func:`_agreement`), at the zoom (up to about 8 %) and shift where the context's
    finest detail pins it (see :func:`_pin`).

    Raises :class:`RegistrationError` (with the best estimate) when the context's detail
    does not confirm a placement (below ``min_confidence``), when a feature-poor context
    contradicts the sizes' placement, or when nothing in it pins that placement to a
    pixel or so.
    """
    # Grey once: every level below is made from these.
    reference = reference if reference.mode == "L" else reference.convert("L")
    answer = answer if answer.mode == "L" else answer.convert("L")
    cw, ch = reference.size
    aw, ah = answer.size
    s_cover = min(cw / aw, ch / ah)  # crop pixels per answer pixel, answer covering the crop
    s_contain = max(cw / aw, ch / ah)
    # The finest level: the crop at about the answer's pixel density.
    fine = min(1.0, 1.0 / s_cover, _FINE_SIDE / max(cw, ch))
    levels = [fine]
    while max(cw, ch) * levels[0] > 2 * _COARSE_SIDE:
        levels.insert(0, levels[0] / 2)
    search = _Search(reference, answer, exclude, levels[0], s_cover)
    # Models frame an edit's answer like its input, perhaps zoomed in a little: the
    # scales near that first. The whole range (around the "cover" and "contain" fits)
    # only when they hold no clear peak or what they lead to is not confirmed.
    prior = [s_cover * _SCALE_STEP**k for k in range(-_PRIOR_STEPS, 3)]
    best = prior_best = search.best(prior)
    peaked = best[0] >= _PRIOR_SCORE and prior[0] < best[1] < prior[-1]
    if not peaked:
        best = search.best(_ladder(s_cover, s_contain), around=3)
    estimate, found = _settle(reference, answer, exclude, levels, search.placement(best[1]))
    settled = {best[1]}

    def confirmed(evidence: _Evidence) -> bool:
        # A few tiles of detail in more than one direction can confirm a placement;
        # fewer than _MIN_TILES cannot refute the sizes' one (see below).
        return (
            evidence.tiles >= _CONFIRM_TILES
            and evidence.isotropy >= _MIN_ISOTROPY
            and evidence.correlation >= min_confidence
            and evidence.typical >= min_confidence
            and evidence.aligned >= _MIN_ALIGNED
            and 0.5 <= evidence.gain <= 2.0
        )

    # A few tiles of detail can confirm a wrong scale as well as the right one: then the
    # whole range is searched too, and the better confirmed placement kept (by the
    # correlation over the whole context, which a wrong scale lowers everywhere a little).
    if peaked and not (confirmed(found) and found.tiles >= _SURE_TILES):
        other = search.best(_ladder(s_cover, s_contain), around=3)
        if other[1] != best[1]:
            retry, evidence = _settle(
                reference, answer, exclude, levels, search.placement(other[1])
            )

            def rank(e: _Evidence) -> tuple[bool, float]:
                return confirmed(e), e.overall if confirmed(e) else e.correlation

            settled.add(other[1])
            if rank(evidence) > rank(found):
                estimate, found = retry, evidence
    si, txi, tyi = _implied(reference.size, answer.size)
    if not confirmed(found):
        # Gauss-Newton can settle where the strongest edges line up at a wrong scale, which
        # the tile checks refuse: then it starts again from the best of the whole range,
        # from the other peaks among the first scales searched (the coarse search's best
        # may be a wrong one on a small crop), and from the placement the sizes imply; the
        # first placement confirmed is kept.
        scored = [search.tried[s][0] for s in prior]
        peaks = [
            prior[k] for k in range(len(prior)) if scored[k] >= max(scored[max(0, k - 1) : k + 2])
        ]
        peaks.sort(key=lambda s: -search.tried[s][0])
        ladder_best = search.best(_ladder(s_cover, s_contain), around=3)[1]
        candidates = [prior_best[1], ladder_best, *peaks[:_RETRY_PEAKS]]
        starts = [search.placement(s) for s in dict.fromkeys(candidates) if s not in settled]
        for start in [*starts, (si, txi, tyi)]:
            retry, evidence = _settle(reference, answer, exclude, levels, start)
            if confirmed(evidence):
                estimate, found = retry, evidence
                break
    if confirmed(found):
        return _sharpen(reference, answer, exclude, levels[-1], estimate, found, min_confidence)
    # The geometry the sizes imply (the answer frames its crop as the model frames any
    # input: scaled to cover, centred), judged by the same evidence.
    implied = _confidence(reference, answer, exclude, si, txi, tyi, _confidence_level(si, cw, ch))
    if confirmed(implied):
        return _sharpen(
            reference,
            answer,
            exclude,
            levels[-1],
            Registration(si, txi, tyi, implied.correlation),
            implied,
            min_confidence,
        )
    # Before refusing: a model's reframing of the sizes' placement, pinned by the
    # context's finest detail and confirmed by its coarser detail (the scale search can
    # miss a zoom that the finest detail finds).
    zooms = [_PIN_STEP**k for k in range(-2, _SIZES_ZOOM_STEPS + 1)]
    pin = _pin(reference, answer, exclude, levels[-1], (si, txi, tyi), zooms, _room(cw, ch))
    if pin.sharpness >= min_confidence:
        level = _confidence_level(pin.scale, cw, ch)
        check = _confidence(reference, answer, exclude, pin.scale, pin.tx, pin.ty, level)
        if confirmed(check):
            return Registration(pin.scale, pin.tx, pin.ty, check.correlation)
    if found.informative or implied.informative:
        evidence, refused = found, estimate
        if not found.informative:
            evidence, refused = implied, Registration(si, txi, tyi, implied.correlation)
        raise RegistrationError(
            f"The answer does not match the crop that was sent ({_doubt(evidence, min_confidence)}): "
            "the model redrew the context, so it was not blended. The unblended answer is on this error's .answer; "
            "try again, give a larger margin, or lower min_confidence.",
            estimate=refused,
        )
    # A feature-poor context (sky, a smooth gradient, one straight edge) cannot place the
    # answer, but it can still contradict the sizes' geometry.
    verdict = _agreement(reference, answer, exclude, si, txi, tyi)
    fallback = Registration(si, txi, tyi, verdict.score, verdict.gain, verdict.bias, "sizes")
    if verdict.reason:
        raise RegistrationError(
            "The context around the region has too little detail to place the answer by, and "
            f"the answer does not match it where the sizes put it ({verdict.reason}), so it was "
            "not blended. The unblended answer is on this error's .answer; try again, or give "
            "a larger margin that takes in some texture or corners.",
            estimate=fallback,
        )
    # The sizes assume the model did not zoom or shift; a zoom of a few percent would put
    # the answer pixels off, which the coarse shading cannot see. Only the context's
    # finest detail can tell: the placements a model's reframing allows were searched
    # (above), and one is kept only where that detail pins it.
    confidence = min(verdict.score, pin.sharpness)
    if confidence < min_confidence:
        off = _room(cw, ch) * 1.25  # the zoom's spread at the crop's corners, plus its shift
        raise RegistrationError(
            "The context around the region has too little detail to place the answer by: "
            "where the sizes put it is a guess (a zoom or shift of a few percent by the model "
            f"would put it up to {off:.0f} px off) and the context's finest detail does not "
            f"pin it (confidence {confidence:.2f} < {min_confidence:.2f}), so it was not "
            "blended. The unblended answer is on this error's .answer; try again, or give a "
            "larger margin that takes in some texture or corners.",
            estimate=dataclasses.replace(fallback, confidence=confidence),
        )
    return dataclasses.replace(
        fallback, scale=pin.scale, tx=pin.tx, ty=pin.ty, confidence=confidence
    )


def _room(cw: int, ch: int) -> float:
    """How far (crop px) a model's reframing can move an answer: the room a zoom of up to
    :data:`_SIZES_ZOOM_STEPS` steps leaves on either side, plus a little."""
    return max(cw, ch) * (1 - _PIN_STEP**-_SIZES_ZOOM_STEPS) / 2 + 4


def _sharpen(
    reference: Image.Image,
    answer: Image.Image,
    exclude: Image.Image | None,
    level: float,
    estimate: Registration,
    evidence: _Evidence,
    min_confidence: float,
) -> Registration:
    """A placement the context confirms, as sure as its evidence is.

    On :data:`_SURE_TILES` tiles of detail or more it stands. On fewer, the coarse detail
    can match as well a few pixels off (its few tiles on one side of the region pin the
    shift there, not the scale), so it is refined by the context's finest detail
    (:func:`_pin`, a few steps of zoom either side); when that detail does not pin it
    either, its confidence is lowered in proportion to the tiles it rests on, and below
    ``min_confidence`` it is refused."""
    if evidence.tiles >= _SURE_TILES:
        return estimate
    start = (estimate.scale, estimate.tx, estimate.ty)
    zooms = [_PIN_STEP**k for k in range(-3, 4)]
    pin = _pin(reference, answer, exclude, level, start, zooms, max(8.0, 3 / level))
    if pin.sharpness >= min_confidence:
        return dataclasses.replace(estimate, scale=pin.scale, tx=pin.tx, ty=pin.ty)
    lowered = estimate.confidence * evidence.tiles / _SURE_TILES
    doubted = dataclasses.replace(estimate, confidence=lowered)
    if lowered < min_confidence:
        raise RegistrationError(
            f"The answer matches the crop, but only {evidence.tiles} tiles of its context "
            "have detail, too few to place it to a pixel, and the context's finest detail "
            f"does not pin it (confidence {lowered:.2f} < {min_confidence:.2f}), so it was "
            "not blended. The unblended answer is on this error's .answer; try again, or "
            "give a larger margin that takes in more texture.",
            estimate=doubted,
        )
    return doubted


def _doubt(evidence: _Evidence, min_confidence: float) -> str:
    """Why ``evidence`` does not confirm its placement, in a few words."""
    if evidence.correlation < min_confidence:
        return f"confidence {evidence.correlation:.2f} < {min_confidence:.2f}"
    if evidence.typical < min_confidence:
        return (
            f"only the strongest detail matches: the median tile's correlation is "
            f"{evidence.typical:.2f} < {min_confidence:.2f}"
        )
    if evidence.aligned < _MIN_ALIGNED:
        return (
            f"confidence {evidence.correlation:.2f}, but {1 - evidence.aligned:.0%} of the "
            "tiles of its context that match somewhere match better a few pixels away: no "
            "one scale and shift fit it all"
        )
    if not 0.5 <= evidence.gain <= 2.0:
        return f"it matches only with its contrast changed {evidence.gain:.2f}×"
    if evidence.isotropy < _MIN_ISOTROPY:
        return "its detail runs in one direction only"
    return f"only {evidence.tiles} tiles of its context have detail"


def _ladder(s_cover: float, s_contain: float) -> list[float]:
    """Every fourth step of the scale ladder, from the "cover" fit shrunk by
    :data:`_SCALE_SPAN` to the "contain" fit grown by it."""
    lo, hi = math.log(s_cover / _SCALE_SPAN), math.log(s_contain * _SCALE_SPAN)
    steps = max(3, math.ceil((hi - lo) / math.log(_SCALE_STEP**4)))
    return [float(v) for v in np.exp(np.linspace(lo, hi, steps))]


class _Search:
    """The coarse search: for each scale tried, the translation by phase correlation and a
    score (correlation of detail on the context, times the square root of the share of
    the context the answer covers), on grey images of about 160 px."""

    def __init__(
        self,
        reference: Image.Image,
        answer: Image.Image,
        exclude: Image.Image | None,
        coarsest: float,
        s_cover: float,
    ) -> None:
        cw, ch = reference.size
        self.crop, self.answer_size = (cw, ch), answer.size
        # Detail of several crop and answer pixels (grain and JPEG noise are resampled
        # differently on the two sides), on at least 64 px.
        self.q = q = min(coarsest, max(min(0.25, 0.25 / s_cover), min(1.0, 64 / max(cw, ch))))
        self.ref = _grey_level(reference, q)
        self.weights = _context_weights(exclude, self.ref.shape, q)
        # the answer a little finer than the reference grid
        self.p = min(1.0, q * s_cover * 1.5)
        self.ans = _grey_level(answer, self.p)
        window = _hann(self.ref.shape)
        self.window = window
        self.ref_spectrum = _spectrum(self.ref, window)
        self.ref_hp = _highpass(self.ref)
        self.tried: dict[float, tuple[float, tuple[float, float, float]]] = {}

    def score(self, s: float) -> float:
        if s in self.tried:
            return self.tried[s][0]
        q, p, ref, ans = self.q, self.p, self.ref, self.ans
        (cw, ch), (aw, ah) = self.crop, self.answer_size
        size = (ref.shape[1], ref.shape[0])
        # reference point r (level px) = crop r/q; answer point (r/q - t)/s; answer level ·p
        m = p / (q * s)
        nx = p * (aw - cw / s) / 2  # centred
        ny = p * (ah - ch / s) / 2
        warped = _warp(ans, size, m, nx, ny)
        dx, dy = _phase_shift(self.ref_spectrum, warped, self.window)
        nx, ny = nx - m * dx, ny - m * dy  # now warped(p) ≈ reference(p)
        warped = _warp(ans, size, m, nx, ny)
        wts = self.weights * _valid(ref.shape, ans.shape, m, nx, ny, _HP_REACH)
        score = _weighted_ncc(self.ref_hp, _highpass(warped), wts) * math.sqrt(
            float(wts.sum()) / max(1.0, float(self.weights.sum()))
        )
        self.tried[s] = (score, (m, nx, ny))
        return score

    def best(self, scales: list[float], around: int = 0) -> tuple[float, float]:
        """Score ``scales`` (then ``around`` fine steps either side of the best three: a
        straight edge may score well at a wrong scale); the best (score, scale) of these."""
        scores = {s: self.score(s) for s in scales}
        for top in sorted(scores, key=lambda k: scores[k])[-3:] if around else []:
            for k in range(-around, around + 1):
                if k:
                    scores[top * _SCALE_STEP**k] = self.score(top * _SCALE_STEP**k)
        s = max(scores, key=lambda k: scores[k])
        return scores[s], s

    def placement(self, s: float) -> tuple[float, float, float]:
        """The placement found at scale ``s``, as scale and translation (crop pixels per
        answer pixel)."""
        _, (m, nx, ny) = self.tried[s]
        # In crop/answer units: answer point a = (c - t)/s, level maps: a·p = m·(c·q) + n.
        scale = self.p / (self.q * m)
        return scale, -nx * scale / self.p, -ny * scale / self.p


def _settle(
    reference: Image.Image,
    answer: Image.Image,
    exclude: Image.Image | None,
    levels: list[float],
    start: tuple[float, float, float],
) -> tuple[Registration, _Evidence]:
    """Gauss-Newton per level from ``start``, then the context's evidence on the result."""
    s, tx, ty = start
    # Each level starts from the previous level's estimate (the shading too: an edit's
    # recolouring is the same at every level). A coarse level only needs to hand on an
    # estimate within a fraction of its pixel; the finest one stops below a twentieth of
    # the answer's.
    gain, bias = 1.0, 0.0

    def sane(s: float, tx: float, ty: float) -> bool:
        return s > 0 and abs(math.log(s / start[0])) < math.log(2) and math.isfinite(tx + ty)

    # Gauss-Newton run off (from a start far off, on an answer of another picture): no
    # placement, and no evidence for one.
    nothing = Registration(*start, 0.0), _Evidence(0.0, 0, 0.0)
    for index, q in enumerate(levels):
        if not sane(s, tx, ty):
            return nothing
        last = index == len(levels) - 1
        ref = _grey_level(reference, q)
        weights = _context_weights(exclude, ref.shape, q)
        p = min(1.0, q * s * 1.25)
        ans = _grey_level(answer, p)
        params = (p / (q * s), -tx * p / s, -ty * p / s)
        (m, nx, ny), gain, bias = _refine(
            ref, ans, weights, params, 12 if last else 6, 0.05 * p if last else 0.1, (gain, bias)
        )
        s = p / (q * m)
        tx, ty = -nx * s / p, -ny * s / p
    if not sane(s, tx, ty):
        return nothing
    cw, ch = reference.size
    found = _confidence(reference, answer, exclude, s, tx, ty, _confidence_level(s, cw, ch))
    found = dataclasses.replace(found, gain=gain)
    return Registration(float(s), float(tx), float(ty), found.correlation, gain, bias), found


def _confidence_level(s: float, cw: int, ch: int) -> float:
    """Detail of at least 8 crop pixels and 8 answer pixels: finer detail (grain, JPEG
    noise) is resampled differently on the two sides and decorrelates even when the
    images match."""
    return max(min(0.125, 0.125 / s), min(1.0, 96 / max(cw, ch)))


def _implied(crop: tuple[int, int], answer: tuple[int, int]) -> tuple[float, float, float]:
    """Scale and translation of an answer that shows its crop scaled to cover, centred."""
    cw, ch = crop
    aw, ah = answer
    s = min(cw / aw, ch / ah)
    return s, (cw - s * aw) / 2, (ch - s * ah) / 2


@dataclass(frozen=True)
class _Verdict:
    """A feature-poor context's agreement with a placement (see :func:`_agreement`)."""

    score: float
    gain: float
    bias: float
    #: Why the context contradicts the placement; empty when it does not.
    reason: str


def _agreement(
    reference: Image.Image,
    answer: Image.Image,
    exclude: Image.Image | None,
    s: float,
    tx: float,
    ty: float,
) -> _Verdict:
    """Whether a feature-poor context contradicts placing the answer at ``s, tx, ty``.

    On grey images of about 64 px (where a placement a few percent off moves nothing by
    more than a pixel or two), the crop's context ≈ gain × answer + bias is fitted (gain
    within [1/2, 2]: an edit may recolour, not invent contrast), robustly: refitted on
    the pixels it leaves within 4 grey levels or half the context's own spread, so that a
    label or an object the model added in the context has no say. The context
    contradicts the placement when under three quarters of it is within that (another
    gradient, another picture), or when the answer shows much more fine detail than the
    crop in over a quarter of its tiles (texture where the crop is plain). ``score`` is
    the share of the context within the limit."""
    cw, ch = reference.size
    q = min(1.0, _AGREEMENT_SIDE / max(cw, ch))
    ref = _grey_level(reference, q)
    p = min(1.0, q * s * 1.25)
    ans = _grey_level(answer, p)
    m, nx, ny = p / (q * s), -tx * p / s, -ty * p / s
    warped = _warp(ans, (ref.shape[1], ref.shape[0]), m, nx, ny)
    valid = _valid(ref.shape, ans.shape, m, nx, ny)
    weights = _context_weights(exclude, ref.shape, q) * valid
    if weights.sum() < 16:
        weights = valid.astype(np.float32)
    total = max(float(weights.sum()), 1e-9)
    mean = float((weights * ref).sum()) / total
    spread = math.sqrt(float((weights * (ref - mean) ** 2).sum()) / total)
    limit = max(_FLAT_LEVELS, 0.5 * spread)
    inliers = weights
    gain, bias = 1.0, 0.0
    for _ in range(4):
        n = max(float(inliers.sum()), 1e-9)
        mr = float((inliers * ref).sum()) / n
        ma = float((inliers * warped).sum()) / n
        var_a = float((inliers * (warped - ma) ** 2).sum()) / n
        cov = float((inliers * (ref - mr) * (warped - ma)).sum()) / n
        gain = min(2.0, max(0.5, cov / var_a)) if var_a > 1e-9 else 1.0
        bias = mr - gain * ma
        inliers = weights * (np.abs(ref - gain * warped - bias) <= limit)
    share = float(inliers.sum()) / total
    reason = ""
    if share < _MIN_AGREEMENT:
        reason = (
            f"only {share:.0%} of the context within {limit:.0f} grey levels after a gain "
            "and bias fit"
        )
    else:
        # Fine detail, at the confidence's level, tile by tile on the context.
        q_fine = min(1.0, 4 * q)
        r_fine = _highpass(_grey_level(reference, q_fine))
        p_fine = min(1.0, q_fine * s * 1.25)
        a_fine = _grey_level(answer, p_fine)
        mf, nxf, nyf = p_fine / (q_fine * s), -tx * p_fine / s, -ty * p_fine / s
        w_fine = gain * _highpass(_warp(a_fine, (r_fine.shape[1], r_fine.shape[0]), mf, nxf, nyf))
        k = _context_weights(exclude, r_fine.shape, q_fine) * _valid(
            r_fine.shape, a_fine.shape, mf, nxf, nyf, _HP_REACH
        )
        n_tiles = _tile_sums(k, _TILE)
        safe = np.maximum(n_tiles, 1e-9)
        own = np.sqrt(_tile_sums(k * r_fine * r_fine, _TILE) / safe)
        shown = np.sqrt(_tile_sums(k * w_fine * w_fine, _TILE) / safe)
        used = n_tiles >= _TILE * _TILE / 4
        busy = used & (shown > np.maximum(3 * _MIN_DETAIL, 2 * own))
        if used.any() and busy.sum() > 0.25 * used.sum():
            reason = (
                f"detail in {busy.sum() / used.sum():.0%} of the context where the crop is plain"
            )
    return _Verdict(share, gain, bias, reason)


# --------------------------------------------------------------------------- pinning


def _fine_detail(image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The finest detail: each pixel less the mean of its 5×5 neighbourhood (grain, fine
    texture). It decorrelates a pixel away from where it belongs, which is what pins a
    placement; :func:`_highpass` leaves it out because a model that redraws its input
    does not keep it — then nothing is pinned by it, and nothing is wrongly pinned."""
    detail: np.ndarray[Any, Any] = (image - _mean(image, 2)).astype(np.float32)
    return detail


def _tile_median(
    a: np.ndarray[Any, Any], b: np.ndarray[Any, Any], weights: np.ndarray[Any, Any]
) -> float:
    """The median over :data:`_PIN_TILE`-pixel tiles (at least half weighted) of each
    tile's correlation of ``a`` and ``b``, each tile counted once: the emulator's labels,
    or what a model drew in the context, spoil their own tiles only."""
    tile = _PIN_TILE
    n = _tile_sums(weights, tile)
    safe = np.maximum(n, 1e-9)
    wa, wb = weights * a, weights * b
    ma, mb = _tile_sums(wa, tile) / safe, _tile_sums(wb, tile) / safe
    var_a = _tile_sums(wa * a, tile) / safe - ma * ma
    var_b = _tile_sums(wb * b, tile) / safe - mb * mb
    cov = _tile_sums(wa * b, tile) / safe - ma * mb
    use = n >= tile * tile / 2
    if not use.any():
        return 0.0
    return float(np.median(cov[use] / np.sqrt(np.maximum(var_a[use] * var_b[use], 1e-12))))


def _peak(corr: np.ndarray[Any, Any], reach: float) -> tuple[float, float, float]:
    """The highest value of a (circular) correlation surface within ``reach`` of no
    shift, and where it is, to a fraction of a pixel (a parabola through the peak and its
    neighbours on each axis)."""
    h, w = corr.shape
    dy = np.fft.fftfreq(h, 1 / h)[:, None]
    dx = np.fft.fftfreq(w, 1 / w)[None, :]
    masked = np.where((np.abs(dx) <= reach) & (np.abs(dy) <= reach), corr, -np.inf)
    iy, ix = np.unravel_index(int(np.argmax(masked)), corr.shape)
    value = float(corr[iy, ix])

    def vertex(before: float, at: float, after: float) -> float:
        bend = before - 2 * at + after
        return 0.0 if bend >= 0 else max(-0.5, min(0.5, 0.5 * (before - after) / bend))

    fx = vertex(float(corr[iy, ix - 1]), value, float(corr[iy, (ix + 1) % w]))
    fy = vertex(float(corr[iy - 1, ix]), value, float(corr[(iy + 1) % h, ix]))
    return value, float(dx[0, ix]) + fx, float(dy[iy, 0]) + fy


def _fast_length(n: int) -> int:
    """The smallest length ≥ ``n`` with no prime factor above 5 (a fast FFT)."""
    while True:
        m = n
        for factor in (2, 3, 5):
            while m % factor == 0:
                m //= factor
        if m == 1:
            return n
        n += 1


@dataclass(frozen=True)
class _Pin:
    """A placement pinned by the context's finest detail (see :func:`_pin`)."""

    scale: float
    tx: float
    ty: float
    #: :func:`_tile_median` of the fine detail there.
    score: float
    #: The best :func:`_tile_median` two pixels (of the level) off in any direction.
    beside: float = 0.0

    @property
    def sharpness(self) -> float:
        """How sharply the fine detail singles the placement out: 1 − the match two pixels
        off over the match there (1: it falls to nothing; 0: it slides, as along an edge),
        and 0 when it does not match there in the first place (below :data:`_PINNED`)."""
        if self.score < _PINNED:
            return 0.0
        return min(1.0, max(0.0, 1.0 - self.beside / self.score))


def _pin(
    reference: Image.Image,
    answer: Image.Image,
    exclude: Image.Image | None,
    level: float,
    start: tuple[float, float, float],
    zooms: Sequence[float],
    reach: float,
) -> _Pin:
    """The placement near ``start`` that the context's finest detail (:func:`_fine_detail`)
    matches best, on the crop at ``level``: the start zoomed about the crop's centre by
    each of ``zooms`` (answer pixels per crop pixel: a model that zooms in by ``z`` is
    ``1 / z``), each zoom's shift by phase correlation (at most ``reach`` crop pixels),
    the zoom and shift refined between the steps by parabolas through the best and its
    neighbours; judged by :func:`_tile_median` of the fine detail.

    This is what can tell a placement from one a pixel or two off where the coarser
    detail of the context is too little or too smooth to (a plain sky, one straight
    edge, a few tiles of detail on one side of the region) — when the answer kept its
    crop's fine detail. When it did not (a model that redraws grain), nothing correlates
    and the score says so."""
    q = level
    ref = _grey_level(reference, q)
    weights = _context_weights(exclude, ref.shape, q)
    window = _hann(ref.shape) * weights
    detail = _fine_detail(ref)
    # Zero-padded to lengths of small factors (a crop's side may be prime: slow FFTs); the
    # window is 0 at the edges, so the padding adds no edge.
    shape = (_fast_length(ref.shape[0]), _fast_length(ref.shape[1]))

    def spectrum_of(image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        spectrum: np.ndarray[Any, Any] = np.fft.rfft2((image - image.mean()) * window, s=shape)
        return spectrum

    def shift_of(moving: np.ndarray[Any, Any]) -> tuple[float, float, float]:
        cross = spectrum * np.conj(spectrum_of(moving))
        cross /= np.abs(cross) + 1e-9
        return _peak(np.fft.irfft2(cross, s=shape), reach * q)

    spectrum = spectrum_of(detail)
    cw, ch = reference.size
    cx, cy = cw / 2, ch / 2
    s0, tx0, ty0 = start
    p = min(1.0, q * s0)
    ans = _grey_level(answer, p)
    size = (ref.shape[1], ref.shape[0])

    def placed(z: float, dx: float = 0.0, dy: float = 0.0) -> tuple[float, float, float]:
        return s0 / z, cx - (cx - tx0) / z + dx / q, cy - (cy - ty0) / z + dy / q

    def warped(s: float, tx: float, ty: float) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        m, nx, ny = p / (q * s), -tx * p / s, -ty * p / s
        valid = _valid(ref.shape, ans.shape, m, nx, ny, 2)
        return _fine_detail(_warp(ans, size, m, nx, ny)), valid

    peaks: list[tuple[float, float, float]] = []
    for z in zooms:
        moving, valid = warped(*placed(z))
        peaks.append(shift_of(moving * valid))
    k = int(np.argmax([value for value, _, _ in peaks]))
    z = zooms[k]
    if 0 < k < len(zooms) - 1:
        # A parabola through the peaks' heights, in log zoom (the zooms are in steps).
        before, at, after = (peaks[i][0] for i in (k - 1, k, k + 1))
        bend = before - 2 * at + after
        if bend < 0:
            step = math.log(zooms[k + 1] / zooms[k])
            z *= math.exp(step * max(-0.5, min(0.5, 0.5 * (before - after) / bend)))
    # The shift at the refined zoom.
    moving, valid = warped(*placed(z))
    _, dx, dy = shift_of(moving * valid)
    s, tx, ty = placed(z, dx, dy)
    moving, valid = warped(s, tx, ty)
    score = _tile_median(detail, moving, weights * valid)
    beside = -1.0
    for ox, oy in ((2, 0), (-2, 0), (0, 2), (0, -2)):
        moving, valid = warped(s, tx + ox / q, ty + oy / q)
        beside = max(beside, _tile_median(detail, moving, weights * valid))
    return _Pin(s, tx, ty, score, beside)


# --------------------------------------------------------------------------- composite


def _answer_box(plan: CropPlan, reg: Registration) -> tuple[float, float, float, float]:
    """The answer's area that lands on the blend box."""
    blend = plan.blend.relative_to(plan.crop)
    x0, y0 = reg.to_answer(blend.left, blend.top)
    x1, y1 = reg.to_answer(blend.right, blend.bottom)
    return x0, y0, x1, y1


def _check_coverage(plan: CropPlan, reg: Registration, answer_size: tuple[int, int]) -> None:
    x0, y0, x1, y1 = _answer_box(plan, reg)
    # A region at the image's edge ends at the crop's edge: allow registration error
    # there (the resampling box is clamped to the answer).
    slack = 1.5
    aw, ah = answer_size
    if x0 < -slack or y0 < -slack or x1 > aw + slack or y1 > ah + slack:
        raise RegistrationError(
            "The model's answer does not cover the whole region (it reframed the crop), so "
            "it was not blended. The unblended answer is on this error's .answer; try "
            "again or give a larger margin.",
            estimate=reg,
        )


def composite(
    upright: Image.Image,
    answer: Image.Image,
    plan: CropPlan,
    registration: Registration,
    *,
    in_place: bool = False,
) -> Image.Image:
    """Blend ``answer``, registered and resampled to full resolution, into ``upright``
    over the feathered region. Pixels outside :attr:`CropPlan.blend` (and inside it where
    the feather is 0) are the source's, bit for bit. ``in_place`` pastes into
    ``upright`` itself (no copy of a large image); otherwise into a copy."""
    blend = plan.blend
    _check_coverage(plan, registration, answer.size)
    x0, y0, x1, y1 = _answer_box(plan, registration)
    aw, ah = answer.size
    box = (max(0.0, x0), max(0.0, y0), min(float(aw), x1), min(float(ah), y1))
    mode = upright.mode
    source = answer.convert("RGBA" if mode == "RGBA" else mode)
    patch = source.resize(blend.size, Image.Resampling.BICUBIC, box=box)
    alpha = feather_mask(plan)
    out = upright if in_place else upright.copy()
    out.paste(patch, (blend.left, blend.top), alpha)
    return out


# --------------------------------------------------------------------------- seam measure


def _grad(image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    gy, gx = np.gradient(image)
    magnitude: np.ndarray[Any, Any] = np.hypot(gx, gy).astype(np.float32)
    return magnitude


def seam_score(
    before: Image.Image, after: Image.Image, answer: Image.Image, alpha: Image.Image
) -> float:
    """How visible the border of a blended patch is: at most about 1 means no seam.

    All four images cover the same area: ``before`` is the source, ``answer`` the
    registered answer, ``after`` their blend through ``alpha`` (0 outside the patch).
    On the border band — where ``alpha`` is strictly between 0 and 255, plus the pixels
    either side of where it jumps — the step the blend adds is the blend's grey gradient
    magnitude beyond the larger of the two inputs' own gradient magnitudes there. The
    score is the 95th percentile of that added step over the band, divided by the
    image's own local variation: the median, over the band, of the inputs' gradient
    magnitude (at least one grey level per pixel). A hard cut between unlike images
    adds a step many times the local variation; a feather spreads it over its width.
    """
    own, added = _seam_values(before, after, answer, alpha, None)
    return _seam(own, added)


def _seam(own: np.ndarray[Any, Any], added: np.ndarray[Any, Any]) -> float:
    if own.size == 0:
        return 0.0
    return float(np.percentile(added, 95)) / max(1.0, float(np.median(own)))


def _seam_values(
    before: Image.Image,
    after: Image.Image,
    answer: Image.Image,
    alpha: Image.Image,
    parts: list[tuple[Box, Box]] | None,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The inputs' own gradient and the step the blend adds, on the border band (see
    :func:`seam_score`). ``parts``: (computed, kept) boxes to work on instead of the whole
    area — each kept box inside its computed box by a pixel wherever it is not at the
    area's edge (the gradients' reach), the kept boxes together holding the whole band
    once."""
    a = np.asarray(alpha, dtype=np.float32)
    inner = (a > 0) & (a < 255)
    on = a > 0
    jump_x = on[:, 1:] != on[:, :-1]
    jump_y = on[1:, :] != on[:-1, :]
    edge = np.zeros_like(inner)
    edge[:, 1:] |= jump_x
    edge[:, :-1] |= jump_x
    edge[1:, :] |= jump_y
    edge[:-1, :] |= jump_y
    band = inner | edge
    whole = Box(0, 0, *alpha.size)
    owns, addeds = [], []
    for computed, kept in parts if parts is not None else [(whole, whole)]:
        keep = np.zeros((computed.height, computed.width), dtype=bool)
        k = kept.relative_to(computed)
        keep[k.top : k.bottom, k.left : k.right] = True
        keep &= band[computed.top : computed.bottom, computed.left : computed.right]
        if not keep.any():
            continue
        g_before, g_after, g_answer = (
            _grad(np.asarray(im.crop(computed.as_tuple()).convert("L"), dtype=np.float32))
            for im in (before, after, answer)
        )
        own = np.maximum(g_before, g_answer)[keep]
        owns.append(own)
        addeds.append(np.clip(g_after[keep] - own, 0.0, None))
    if not owns:
        return np.zeros(0, np.float32), np.zeros(0, np.float32)
    return np.concatenate(owns), np.concatenate(addeds)


def _frame_parts(area: Box, hole: Box) -> list[tuple[Box, Box]]:
    """:func:`_seam_values`'s parts for a band that lies outside ``hole`` (both in the
    area's pixels): the four sides of the frame around it, each computed a pixel wider."""
    w, h = area.width, area.height
    left, top = max(0, hole.left), max(0, hole.top)
    right, bottom = min(w, hole.right), min(h, hole.bottom)
    if left >= right or top >= bottom:
        return [(Box(0, 0, w, h), Box(0, 0, w, h))]
    return [
        (Box(0, 0, w, min(h, top + 1)), Box(0, 0, w, top)),
        (Box(0, max(0, bottom - 1), w, h), Box(0, bottom, w, h)),
        (Box(0, max(0, top - 1), min(w, left + 1), min(h, bottom + 1)), Box(0, top, left, bottom)),
        (
            Box(max(0, right - 1), max(0, top - 1), w, min(h, bottom + 1)),
            Box(right, top, w, bottom),
        ),
    ]


def _seam_area(plan: CropPlan) -> Box:
    """The blend box and two pixels around it (within the crop): where a seam can be."""
    blend = plan.blend
    grown = blend.expand(2, 2, plan.region.source_size)
    crop = plan.crop
    return Box(
        max(grown.left, crop.left),
        max(grown.top, crop.top),
        min(grown.right, crop.right),
        min(grown.bottom, crop.bottom),
    )


def measure_seam(
    before: Image.Image,
    after: Image.Image,
    answer: Image.Image,
    plan: CropPlan,
    registration: Registration,
) -> float:
    """:func:`seam_score` of a composite: ``before`` and ``after`` are the source and the
    composite over the blend box and two pixels around it (see :func:`_seam_area`),
    ``answer`` the model's answer, placed by ``registration``."""
    area = _seam_area(plan)
    alpha = Image.new("L", area.size, 0)
    blend = plan.blend.relative_to(area)
    alpha.paste(feather_mask(plan), (blend.left, blend.top))
    local = area.relative_to(plan.crop)
    x0, y0 = registration.to_answer(local.left, local.top)
    x1, y1 = registration.to_answer(local.right, local.bottom)
    aw, ah = answer.size
    resampled = answer.convert(after.mode).resize(
        area.size,
        Image.Resampling.BICUBIC,
        box=(max(0.0, x0), max(0.0, y0), min(float(aw), x1), min(float(ah), y1)),
    )
    return _seam(*_seam_values(before, after, resampled, alpha, _seam_parts(plan, area)))


def _seam_parts(plan: CropPlan, area: Box) -> list[tuple[Box, Box]] | None:
    """A box region has no band inside its box but on its outermost pixels (where a hard
    cut jumps): only the frame around that need be looked at — a tenth of the area, the
    same score. ``None`` (the whole area) for a mask."""
    if plan.region.mask is not None:
        return None
    inside = plan.region.box.relative_to(area)
    hole = Box(inside.left + 1, inside.top + 1, inside.right - 1, inside.bottom - 1)
    return _frame_parts(area, hole)


# --------------------------------------------------------------------------- result


_PNG_MODES = ("L", "LA", "RGB", "RGBA")


class _LazyImageData(list[tuple[bytes, str]]):
    """``Result.image_data`` of a composite: encoded as PNG only when first used (a
    48 MP PNG costs seconds and ~100 MB, and most composites are only saved)."""

    def __init__(self, image: Image.Image) -> None:
        super().__init__()
        self._image: Image.Image | None = image

    def _fill(self) -> None:
        if self._image is not None:
            buffer = io.BytesIO()
            image = self._image
            write_png(image if image.mode in _PNG_MODES else image.convert("RGB"), buffer)
            self._image = None
            super().append((buffer.getvalue(), "image/png"))

    def __len__(self) -> int:
        self._fill()
        return super().__len__()

    def __bool__(self) -> bool:
        return self._image is not None or super().__len__() > 0

    def __getitem__(self, index: Any) -> Any:
        self._fill()
        return super().__getitem__(index)

    def __iter__(self) -> Any:
        self._fill()
        return super().__iter__()


@dataclass(eq=False, repr=False)
class RegionResult(Result):
    """A regional edit: :attr:`image` is the full-size composite; :attr:`answer` the model's
    unblended answer; :attr:`region` what was cut, sent, registered and blended."""

    answer: Result | None = field(default=None, repr=False)
    region: dict[str, Any] = field(default_factory=dict)
    #: The crop as it was before the edit (full resolution), for before/after views.
    crop_before: Image.Image | None = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        base = super().__repr__()
        box = ",".join(str(v) for v in self.region.get("box", []))
        return base[:-1] + f"; region {box}>"

    def provenance(self) -> dict[str, Any]:
        meta = super().provenance()
        meta["region"] = self.region
        meta["answer_images"] = (
            [{"width": im.width, "height": im.height} for im in self.answer.images]
            if self.answer is not None
            else []
        )
        return meta

    def zoom(self, pad: int = 0) -> tuple[Image.Image, Image.Image]:
        """Before and after of the crop that was sent (plus ``pad`` px, within it)."""
        if self.crop_before is None or self.image is None:
            raise InvalidRequest("This result has no crop to compare.")
        crop = Box(*self.region["crop"])
        return self.crop_before, self.image.crop(crop.as_tuple())

    def save(
        self,
        directory: str | os.PathLike[str] = ".",
        *,
        format: Literal["png", "jpeg"] = "png",
        quality: int = 95,
    ) -> list[Path]:
        """Write the composite as ``<id>.png`` (default: lossless, so the untouched pixels
        stay exact) or ``<id>.jpg`` (``format="jpeg"``: quality 95, no chroma subsampling)
        and ``<id>.json``; provenance as in :meth:`Result.save`, plus the region."""
        if format not in ("png", "jpeg"):
            raise InvalidRequest(f"format must be 'png' or 'jpeg', not {format!r}.")
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        meta = self.provenance()
        image = self.image
        paths: list[Path] = []
        if image is not None:
            text = {
                "nbbanana:id": self.id,
                "nbbanana:prompt": self.prompt,
                "nbbanana:model": self.model,
                "nbbanana:params": json.dumps(self.params, sort_keys=True, default=str),
                "nbbanana:region": json.dumps(self.region, sort_keys=True),
                "nbbanana:offline": "true" if self.offline else "false",
                "Software": f"nbbanana {__version__}",
            }
            encode: Callable[[BinaryIO], object]
            if format == "png":
                path = folder / f"{self.id}.png"
                png = image if image.mode in _PNG_MODES else image.convert("RGB")
                # Lossless and fast: "sub"-filtered, run-length-deflated stripes on every
                # core (nbbanana._png; the size/time trade-off is in the README).
                encode = partial(write_png, png, text=text)
            else:
                jpeg = image.convert("RGB") if image.mode not in ("RGB", "L") else image
                path = folder / f"{self.id}.jpg"
                comment = json.dumps(text, sort_keys=True).encode("utf-8")
                encode = partial(
                    jpeg.save, format="JPEG", quality=quality, subsampling=0, comment=comment
                )
            # Encoded straight into the file: a full-size composite never exists twice
            # in memory as encoded bytes.
            write_atomic(path, encode)
            paths.append(path)
        meta["files"] = [p.name for p in paths]
        sidecar = folder / f"{self.id}.json"
        body = json.dumps(meta, indent=2, ensure_ascii=False, default=str) + "\n"
        write_atomic(sidecar, body.encode("utf-8"))
        paths.append(sidecar)
        return paths


# --------------------------------------------------------------------------- edit_region


class Editor(Protocol):
    """What a regional edit needs of a session: its public ``edit`` and ``aedit``."""

    def edit(
        self,
        images: Any,
        prompt: str,
        *,
        aspect_ratio: str | None = ...,
        image_size: str | None = ...,
        model: str | None = ...,
    ) -> Result: ...

    async def aedit(
        self,
        images: Any,
        prompt: str,
        *,
        aspect_ratio: str | None = ...,
        image_size: str | None = ...,
        model: str | None = ...,
    ) -> Result: ...


@dataclass
class _Job:
    """A regional edit prepared for sending."""

    upright: Image.Image
    #: True when ``upright`` is our own decode (may be pasted into in place).
    owned: bool
    plan: CropPlan
    crop: Image.Image
    name: str
    sha256: str
    parent: Result | None


def _load_upright(image: object) -> tuple[Image.Image, bool, str, str, Result | None]:
    """The full-resolution upright sRGB source, whether it is ours, its name, hash, parent."""
    parent = None
    if isinstance(image, Result):
        if not image.image_data:
            raise InvalidRequest(f"Result {image.id} has no image to edit.")
        parent = image
        loaded = load_image(image.image_data[0][0])
        loaded = dataclasses.replace(loaded, name=f"result {image.id}")
    elif isinstance(image, LoadedImage):
        loaded = image
        if loaded.size != loaded.original_size:
            raise InvalidRequest(
                "This LoadedImage was reduced on loading; load it without target_side for a "
                "regional edit at full resolution."
            )
    else:
        loaded = load_image(image)  # type: ignore[arg-type]
    owned = loaded.image is not image and not isinstance(image, LoadedImage)
    return loaded.image, owned, loaded.name, loaded.source_sha256, parent


def _prepare(
    image: object,
    region: object,
    mask: MaskSource | None,
    margin: float | int,
    feather: float | int | None,
) -> _Job:
    upright, owned, name, sha256, parent = _load_upright(image)
    parsed = parse_region(region, mask, size=upright.size)
    plan = plan_crop(parsed, margin=margin, feather=feather)
    crop = upright.crop(plan.crop.as_tuple())
    if crop.mode not in ("RGB", "L"):
        crop = crop.convert("RGB")
    return _Job(upright, owned, plan, crop, name, sha256, parent)


def _exclusion(plan: CropPlan) -> Image.Image:
    """The region plus its feather, in the crop's pixels (left out of registration)."""
    crop = plan.crop
    out = Image.new("L", crop.size, 0)
    blend = plan.blend.relative_to(crop)
    out.paste(feather_mask(plan).point(lambda v: 255 if v else 0), (blend.left, blend.top))
    return out


def _finish(job: _Job, answer: Result, min_confidence: float) -> RegionResult:
    if answer.image is None:  # pragma: no cover - the session raises NoImage first
        raise RegistrationError("The model answered without an image.", answer=answer)
    answer_image = answer.image
    answer_image.load()
    try:
        reg = register(
            answer_image, job.crop, exclude=_exclusion(job.plan), min_confidence=min_confidence
        )
        _check_coverage(job.plan, reg, answer_image.size)
    except RegistrationError as err:
        err.answer = answer
        raise
    area = _seam_area(job.plan)
    before = job.upright.crop(area.as_tuple())
    out = composite(job.upright, answer_image, job.plan, reg, in_place=job.owned)
    seam = measure_seam(before, out.crop(area.as_tuple()), answer_image, job.plan, reg)
    info = job.plan.to_json()
    info.update(
        {
            "source": job.name,
            "source_sha256": job.sha256,
            "registration": reg.to_json(),
            "seam": round(seam, 3),
        }
    )
    inputs = [
        dataclasses.replace(
            ref,
            name=f"{job.name} [crop {job.plan.crop}]",
            source_sha256=job.sha256 or ref.source_sha256,
        )
        for ref in answer.inputs
    ]
    params = dict(answer.params)
    params["region"] = str(job.plan.region.box)
    return RegionResult(
        images=[out],
        text=answer.text,
        thoughts=list(answer.thoughts),
        thought_images=list(answer.thought_images),
        sources=list(answer.sources),
        search_queries=list(answer.search_queries),
        # Google's terms for grounding: the suggestions go with the answer, unchanged.
        search_suggestions_html=answer.search_suggestions_html,
        finish_reason=answer.finish_reason,
        usage=answer.usage,
        cost_usd=answer.cost_usd,
        latency_s=answer.latency_s,
        model=answer.model,
        params=params,
        prompt=answer.prompt,
        inputs=inputs,
        parent=job.parent,
        offline=answer.offline,
        response_id=answer.response_id,
        model_version=answer.model_version,
        image_data=_LazyImageData(out),
        answer=answer,
        region=info,
        crop_before=job.crop,
    )


#: One step of a regional edit: local work (run in a thread under ``asyncio``), or the
#: request (the crop, the prompt and the session's edit options).
_Step = (
    tuple[Literal["work"], Callable[[], Any]]
    | tuple[Literal["edit"], Image.Image, str, dict[str, Any]]
)


def _steps(
    image: object,
    prompt: str,
    region: object,
    mask: MaskSource | None,
    margin: float | int,
    feather: float | int | None,
    min_confidence: float,
    aspect_ratio: str | None,
    image_size: str | None,
    model: str | None,
    thinking: dict[str, Any],
) -> Generator[_Step, Any, RegionResult]:
    """A regional edit, written once for both drivers (as the request pipeline is): it
    yields what it needs done and receives the outcome; :func:`edit_region` performs the
    steps in turn, :func:`aedit_region` awaits the request and runs the work in a
    thread."""
    if isinstance(min_confidence, bool) or not 0 <= min_confidence <= 1:
        # Above 1 nothing is ever blended, below 0 anything is: both are mistakes.
        raise InvalidRequest(f"min_confidence is between 0 and 1 (got {min_confidence}).")
    job: _Job = yield ("work", partial(_prepare, image, region, mask, margin, feather))
    # Only the options given: the session's own defaults apply to the rest.
    given = {"aspect_ratio": aspect_ratio, "image_size": image_size, "model": model, **thinking}
    options = {key: value for key, value in given.items() if value is not None}
    answer: Result = yield ("edit", job.crop, prompt, options)
    result: RegionResult = yield ("work", partial(_finish, job, answer, min_confidence))
    return result


def edit_region(
    session: Editor,
    image: object,
    prompt: str,
    *,
    region: object = None,
    mask: MaskSource | None = None,
    margin: float | int = DEFAULT_MARGIN,
    feather: float | int | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    aspect_ratio: str | None = None,
    image_size: str | None = None,
    model: str | None = None,
    thinking_level: str | None = None,
    include_thoughts: bool | None = None,
    grounding: bool = False,
) -> RegionResult:
    """Edit only ``region`` (a box) or ``mask`` of ``image`` at full resolution.

    ``image`` is anything :meth:`Session.edit` takes for one image (path, bytes, PIL
    image, array, a previous Result). The crop around the region is sent through
    ``session.edit`` (fitted as usual); the answer is registered, resampled and blended
    back (see the module docstring). ``margin``/``feather``: see :func:`plan_crop`.
    ``thinking_level``, ``include_thoughts`` and ``grounding`` go with the crop's
    request (those of :meth:`Session.edit`); the result keeps the answer's thoughts and
    sources. Raises :class:`RegistrationError` (with ``.answer``) when the answer cannot be put
    back with confidence.
    """
    steps = _steps(
        image,
        prompt,
        region,
        mask,
        margin,
        feather,
        min_confidence,
        aspect_ratio,
        image_size,
        model,
        {
            "thinking_level": thinking_level,
            "include_thoughts": include_thoughts,
            "grounding": grounding or None,
        },
    )
    outcome: Any = None
    while True:
        try:
            step = steps.send(outcome)
        except StopIteration as done:
            result: RegionResult = done.value
            return result
        outcome = step[1]() if step[0] == "work" else session.edit(step[1], step[2], **step[3])


async def aedit_region(
    session: Editor,
    image: object,
    prompt: str,
    *,
    region: object = None,
    mask: MaskSource | None = None,
    margin: float | int = DEFAULT_MARGIN,
    feather: float | int | None = None,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    aspect_ratio: str | None = None,
    image_size: str | None = None,
    model: str | None = None,
    thinking_level: str | None = None,
    include_thoughts: bool | None = None,
    grounding: bool = False,
) -> RegionResult:
    """:func:`edit_region` for ``asyncio``: loading, registration and blending run in a
    worker thread, the request through ``session.aedit``."""
    steps = _steps(
        image,
        prompt,
        region,
        mask,
        margin,
        feather,
        min_confidence,
        aspect_ratio,
        image_size,
        model,
        {
            "thinking_level": thinking_level,
            "include_thoughts": include_thoughts,
            "grounding": grounding or None,
        },
    )
    outcome: Any = None
    while True:
        try:
            step = steps.send(outcome)
        except StopIteration as done:
            result: RegionResult = done.value
            return result
        if step[0] == "work":
            outcome = await asyncio.to_thread(step[1])
        else:
            outcome = await session.aedit(step[1], step[2], **step[3])

"""Regional edits (nbbanana.region): parsing, planning, feathering, compositing,
registration and the seam measure — without HTTP (the SDK path is in test_region_sdk.py)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _imagegen import orient_for_exif, photo_like, png_bytes
from _region_sweep import RIGHT_PX, corner_error, measure, small_crop_case
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from nbbanana.emulator import _transform
from nbbanana.errors import InvalidRequest
from nbbanana.region import (
    Box,
    Registration,
    RegistrationError,
    aedit_region,
    composite,
    edit_region,
    feather_mask,
    measure_seam,
    parse_box,
    parse_region,
    plan_crop,
    register,
)
from nbbanana.result import Result, Usage

# --------------------------------------------------------------------------- parsing


def test_parse_box_forms() -> None:
    assert parse_box((1, 2, 30, 40), (50, 50)) == Box(1, 2, 30, 40)
    assert parse_box("1, 2,30,40", (50, 50)) == Box(1, 2, 30, 40)
    assert parse_box([np.int64(0), 0, 50.0, 50], (50, 50)).size == (50, 50)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ((0, 0, 60, 10), "not inside the upright image"),
        ((10, 0, 5, 10), "not inside"),
        ((1, 2, 3), "not a box"),
        ("1,2,x,4", "not a box"),
        ((0.5, 0, 10, 10), "not a box"),
        (42, "must be a box"),
    ],
)
def test_parse_box_refuses_with_a_clear_message(value: Any, words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        parse_box(value, (50, 40))


def test_region_or_mask_not_both_nor_neither() -> None:
    with pytest.raises(InvalidRequest, match="not both"):
        parse_region((0, 0, 5, 5), np.ones((10, 10)), size=(10, 10))
    with pytest.raises(InvalidRequest, match="not neither"):
        parse_region(size=(10, 10))


def _mask_array(size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray[Any, Any]:
    array = np.zeros((size[1], size[0]), dtype=np.uint8)
    array[box[1] : box[3], box[0] : box[2]] = 7  # any non-zero value is "edit here"
    return array


@pytest.mark.parametrize("form", ["array", "bool", "L", "RGB", "RGBA", "path"])
def test_mask_forms_give_the_same_region(form: str, tmp_path: Path) -> None:
    size = (64, 48)
    array = _mask_array(size, (10, 5, 30, 20))
    mask: Any
    if form == "array":
        mask = array
    elif form == "bool":
        mask = array > 0
    elif form == "L":
        mask = Image.fromarray(array, "L")
    elif form == "RGB":
        rgb = np.zeros((48, 64, 3), np.uint8)
        rgb[..., 2] = array  # only the blue channel is non-zero
        mask = Image.fromarray(rgb, "RGB")
    elif form == "RGBA":
        rgba = np.full((48, 64, 4), 255, np.uint8)
        rgba[..., 3] = np.where(array > 0, 255, 0)  # white everywhere, transparent outside
        mask = Image.fromarray(rgba, "RGBA")
    else:
        mask = tmp_path / "mask.png"
        Image.fromarray(array, "L").save(mask)
    region = parse_region(mask=mask, size=size)
    assert region.box == Box(10, 5, 30, 20)
    assert region.mask is not None and region.mask.getextrema() == (255, 255)


def test_mask_drawn_on_a_thumbnail_is_scaled_up() -> None:
    small = _mask_array((40, 30), (10, 10, 20, 15))
    region = parse_region(mask=small, size=(400, 300))
    assert region.box == Box(100, 100, 200, 150)
    assert region.mask is not None and region.mask.size == (100, 50)


def test_mask_refusals() -> None:
    with pytest.raises(InvalidRequest, match="empty"):
        parse_region(mask=np.zeros((10, 10)), size=(10, 10))
    with pytest.raises(InvalidRequest, match="before its EXIF rotation"):
        parse_region(mask=_mask_array((30, 40), (1, 1, 5, 5)), size=(40, 30))
    with pytest.raises(InvalidRequest, match="2-D"):
        parse_region(mask=np.ones((2, 2, 2, 2)), size=(2, 2))


# --------------------------------------------------------------------------- planning


def test_plan_margin_is_a_fraction_or_pixels_and_clipped() -> None:
    region = parse_region((100, 100, 300, 200), size=(1000, 500))
    assert plan_crop(region).crop == Box(50, 50, 350, 250)  # 0.25 × 200
    assert plan_crop(region, margin=10).crop == Box(68, 68, 332, 232)  # at least 32 px
    assert plan_crop(region, margin=40).crop == Box(60, 60, 340, 240)
    corner = parse_region((0, 0, 100, 100), size=(120, 110))
    assert plan_crop(corner).crop == Box(0, 0, 120, 110)
    assert plan_crop(region, margin=0).crop == region.box
    assert plan_crop(region, margin=0).feather == 0  # never wider than the margin
    assert plan_crop(region, feather=5).feather == 5
    assert plan_crop(region).feather == 6  # 3 % of 200
    with pytest.raises(InvalidRequest, match="margin"):
        plan_crop(region, margin=-1)


@pytest.mark.parametrize("kind", ["box", "mask"])
def test_feather_is_full_on_the_region_and_zero_beyond(kind: str) -> None:
    size = (120, 100)
    array = np.zeros((100, 120), np.uint8)
    array[30:60, 40:50] = 1
    array[40:45, 40:90] = 1  # an L shape
    region = (
        parse_region((40, 30, 90, 60), size=size)
        if kind == "box"
        else parse_region(mask=array, size=size)
    )
    plan = plan_crop(region, feather=8, margin=20)
    alpha = np.asarray(feather_mask(plan))
    blend = plan.blend
    full = np.zeros((100, 120), np.uint8)
    full[blend.top : blend.bottom, blend.left : blend.right] = alpha
    edit = array > 0 if kind == "mask" else np.ones_like(array, bool)
    if kind == "box":
        edit = np.zeros_like(array, bool)
        edit[30:60, 40:90] = True
    assert (full[edit] == 255).all()
    ys, xs = np.nonzero(full)
    ey, ex = np.nonzero(edit)
    # nothing farther than the feather (Chebyshev distance) from an edited pixel
    for y, x in zip(ys[::7], xs[::7], strict=True):
        assert np.min(np.maximum(np.abs(ey - y), np.abs(ex - x))) <= 8


# --------------------------------------------------------------------------- compositing properties


def _tint(image: Image.Image) -> Image.Image:
    return Image.blend(image.convert("RGB"), Image.new("RGB", image.size, (200, 30, 220)), 0.4)


@st.composite
def _scenes(draw: st.DrawFn) -> tuple[Image.Image, Any, Any, int]:
    w = draw(st.integers(24, 160))
    h = draw(st.integers(24, 160))
    seed = draw(st.integers(0, 10_000))
    image = photo_like(w, h, seed=seed, mode=draw(st.sampled_from(["RGB", "L", "RGBA"])))
    left = draw(st.integers(0, w - 2))
    top = draw(st.integers(0, h - 2))
    right = draw(st.integers(left + 1, w))
    bottom = draw(st.integers(top + 1, h))
    feather = draw(st.integers(0, 12))
    if draw(st.booleans()):
        return image, (left, top, right, bottom), None, feather
    rng = np.random.default_rng(seed)
    mask = np.zeros((h, w), bool)
    mask[top:bottom, left:right] = rng.random((bottom - top, right - left)) < 0.3
    mask[top, left] = True  # never empty
    return image, None, mask, feather


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_scenes(), st.floats(0.97, 1.03), st.floats(-3, 3), st.floats(-3, 3))
def test_outside_the_mask_pixels_are_bit_identical(
    scene: tuple[Image.Image, Any, Any, int], scale: float, tx: float, ty: float
) -> None:
    image, box, mask, feather = scene
    region = parse_region(box, mask, size=image.size)
    plan = plan_crop(region, margin=16, feather=feather)
    crop = image.crop(plan.crop.as_tuple())
    answer = _tint(crop).resize((crop.width * 2, crop.height * 2))
    # A registration that keeps the region inside the answer.
    reg = Registration(0.5 * scale, tx * 0.1, ty * 0.1, 1.0)
    reg = Registration(0.5, 0.0, 0.0, 1.0) if scale < 1 else reg
    before = np.asarray(image).copy()
    try:
        out = composite(image, answer, plan, reg)
    except RegistrationError:
        return  # a shifted answer that does not cover the blend box is refused, not blended
    after = np.asarray(out)
    assert out.size == image.size and out.mode == image.mode
    assert np.array_equal(np.asarray(image), before)  # the source was not touched
    changeable = np.zeros(before.shape[:2], bool)
    blend = plan.blend
    alpha = np.asarray(feather_mask(plan)) > 0
    changeable[blend.top : blend.bottom, blend.left : blend.right] = alpha
    assert np.array_equal(after[~changeable], before[~changeable])
    # and the region itself did change to the answer
    core = np.zeros_like(changeable)
    if region.mask is None:
        b = region.box
        core[b.top : b.bottom, b.left : b.right] = True
    else:
        b = region.box
        core[b.top : b.bottom, b.left : b.right] = np.asarray(region.mask) > 0
    assert not np.array_equal(after[core], before[core]) or image.mode == "L"


class _EchoEditor:
    """A test double for a session: answers each edit with its input, tinted, at twice the
    size (what the known-transform mode does, minus the zoom), as a Result."""

    def __init__(self) -> None:
        self.sent: list[Image.Image] = []
        self.options: list[dict[str, Any]] = []

    def _answer(self, image: Image.Image, prompt: str) -> Result:
        self.sent.append(image)
        answer = _tint(image).resize((image.width * 2, image.height * 2), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        answer.save(buffer, "PNG")
        data = buffer.getvalue()
        return Result(
            images=[Image.open(io.BytesIO(data))],
            text="",
            thoughts=[],
            finish_reason="STOP",
            usage=Usage(),
            cost_usd=0.0,
            latency_s=0.0,
            model="echo",
            params={"kind": "edit"},
            prompt=prompt,
            image_data=[(data, "image/png")],
        )

    def edit(self, images: Any, prompt: str, **options: Any) -> Result:
        self.options.append(options)
        return self._answer(images, prompt)

    async def aedit(self, images: Any, prompt: str, **options: Any) -> Result:
        self.options.append(options)
        return self._answer(images, prompt)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    orientation=st.integers(1, 8),
    use_mask=st.booleans(),
    seed=st.integers(0, 1000),
    corner=st.tuples(st.floats(0, 0.5), st.floats(0, 0.5)),
)
# Once failed: a thin context frame (the box at the image's edge) lost most of its pixels
# to the band-pass filter's inset at the crop's own border, and a wrong scale won.
@example(orientation=1, use_mask=False, seed=354, corner=(0.0, 0.125))
@example(orientation=1, use_mask=False, seed=354, corner=(0.5, 0.25))
def test_exif_orientation_is_respected_for_box_and_mask(
    orientation: int, use_mask: bool, seed: int, corner: tuple[float, float]
) -> None:
    upright = photo_like(240, 180, seed=seed)
    stored = png_bytes(orient_for_exif(upright, orientation), exif_orientation=orientation)
    left, top = int(corner[0] * 240), int(corner[1] * 180)
    box = (left, top, left + 90, top + 70)
    mask = _mask_array((240, 180), box) if use_mask else None
    editor = _EchoEditor()
    result = edit_region(
        editor, stored, "tint", region=None if use_mask else box, mask=mask, feather=4
    )
    out = np.asarray(result.image)
    source = np.asarray(upright)
    assert result.image is not None and result.image.size == (240, 180)
    assert np.array_equal(np.asarray(editor.sent[0]), source[_slices(result.region["crop"])])
    blend = Box(*result.region["box"]).expand(4, 4, (240, 180))
    outside = np.ones((180, 240), bool)
    outside[blend.top : blend.bottom, blend.left : blend.right] = False
    assert np.array_equal(out[outside], source[outside])
    inner = _slices([box[0] + 5, box[1] + 5, box[2] - 5, box[3] - 5])
    expected = np.asarray(_tint(upright), np.float32)[inner]
    # The answer went through a 2× round trip (grain is lost); a wrong orientation or
    # place would differ by tens of grey levels.
    assert np.abs(out[inner].astype(np.float32) - expected).mean() < 12.0


def _slices(box: Any) -> tuple[slice, slice]:
    return slice(box[1], box[3]), slice(box[0], box[2])


# --------------------------------------------------------------------------- registration


@pytest.mark.parametrize(
    ("size", "box", "params", "out"),
    [
        ((1600, 1200), (500, 400, 1100, 850), {"scale": "1.03", "dx": "4.5", "dy": "-2.25"}, (1184, 864)),
        ((1600, 1200), (500, 400, 1100, 850), {"seed": "1"}, (1184, 864)),
        ((900, 900), (200, 300, 500, 600), {"seed": "2"}, (1024, 1024)),
        ((1200, 900), (100, 100, 500, 400), {"scale": "1.03"}, (1152, 896)),
        ((3000, 2000), (1000, 600, 1800, 1300), {"seed": "3"}, (1184, 864)),
    ],
)  # fmt: skip
def test_registration_recovers_known_scale_and_shift(
    size: tuple[int, int],
    box: tuple[int, int, int, int],
    params: dict[str, str],
    out: tuple[int, int],
) -> None:
    image = photo_like(*size, seed=sum(box))
    plan = plan_crop(parse_region(box, size=size))
    crop = image.crop(plan.crop.as_tuple())
    long_side = max(crop.size)
    sent = crop
    if long_side > 1024:  # what fitting does: the model's long side
        factor = 1024 / long_side
        sent = crop.resize(
            (round(crop.width * factor), round(crop.height * factor)), Image.Resampling.LANCZOS
        )
    answer = _transform.edit(sent, "make it violet", out, 7, params, f"t{size}{box}{params}")
    truth = _transform.known_transform(f"t{size}{box}{params}")
    assert truth is not None
    from nbbanana.region import _exclusion

    estimate = register(answer, crop, exclude=_exclusion(plan))
    fit = (crop.width / sent.width, crop.height / sent.height)
    blend = plan.blend.relative_to(plan.crop)
    assert corner_error(estimate, truth, fit, blend) < 0.5
    assert estimate.confidence > 0.6


@pytest.mark.parametrize(
    ("size", "box", "params", "out", "seed"),
    [
        ((1200, 900), (752, 537, 1130, 861), {"scale": "1.061", "seed": "6"}, (1184, 864), 106),
        ((900, 900), (500, 524, 771, 742), {"scale": "1.055", "seed": "11"}, (1024, 1024), 111),
    ],
)  # fmt: skip
def test_a_placement_confirmed_by_a_few_tiles_is_not_refused(
    size: tuple[int, int],
    box: tuple[int, int, int, int],
    params: dict[str, str],
    out: tuple[int, int],
    seed: int,
) -> None:
    """Small crops whose context has only a few tiles of detail where the answer lands
    (the emulator's labels cover a corner): once refused, reporting confidence 1.00."""
    from nbbanana.region import _check_coverage, _exclusion

    image = photo_like(*size, seed=seed)
    plan = plan_crop(parse_region(box, size=size))
    crop = image.crop(plan.crop.as_tuple())
    answer = _transform.edit(crop, "make it violet", out, 7, params, f"few{seed}")
    truth = _transform.known_transform(f"few{seed}")
    assert truth is not None
    estimate = register(answer, crop, exclude=_exclusion(plan))
    _check_coverage(plan, estimate, answer.size)
    assert corner_error(estimate, truth, (1.0, 1.0), plan.blend.relative_to(plan.crop)) < 1.0


#: Seeds of the small-crop sweep. 10, 15, 17, 18 and 35 were accepted 9 to 64 px off with
#: confidence 0.93 to 0.99 (a wrong scale that lined up the strongest edges on one side
#: of the context), 63 18 px off with its contrast flattened to a third; 4 has the
#: emulator's labels over a third of its context's tiles.
_SMALL_CROPS = (2, 4, 10, 15, 17, 18, 35, 63)


def test_small_crops_are_placed_right_or_refused_never_placed_wrong() -> None:
    """A placement the context confirms is within one source pixel of the truth at the
    corners of the blended area (the answer is about three times as dense as these crops;
    half a pixel is the aim, one the tolerance); refusals stay rare."""
    from nbbanana.region import _check_coverage, _exclusion

    wrong, refused = [], []
    for seed in _SMALL_CROPS:
        plan, crop, answer, truth = small_crop_case(seed)
        try:
            estimate = register(answer, crop, exclude=_exclusion(plan))
            _check_coverage(plan, estimate, answer.size)
        except RegistrationError:
            refused.append(seed)
            continue
        error = corner_error(estimate, truth, (1.0, 1.0), plan.blend.relative_to(plan.crop))
        if error >= RIGHT_PX:
            wrong.append((seed, round(error, 1), round(estimate.confidence, 2)))
    assert not wrong, f"placed wrong yet accepted (seed, px off, confidence): {wrong}"
    assert len(refused) <= 3, f"refused: {refused}"


#: Seeds of the small-crop sweep once accepted wrong: 27 and 67 placed by the sizes 8.7
#: and 12.2 px off (the model had zoomed 0.5 % and 6.6 %, on a plain context and on one
#: straight edge) with confidence 0.97 and 0.96; 42 and 56 by 8 tiles of context detail,
#: 2.9 and 3.3 px off with 0.998 and 0.986.
_ONCE_WRONG = (27, 67, 42, 56)


@pytest.mark.parametrize("seed", _ONCE_WRONG)
def test_a_placement_the_context_cannot_pin_is_pinned_by_its_finest_detail(seed: int) -> None:
    """The emulator's answers keep their crop's grain: that pins them to a fraction of a
    pixel where the coarser detail cannot."""
    outcome = measure(seed)
    assert outcome.verdict == "placed", outcome
    assert outcome.error < 0.5, outcome


@pytest.mark.parametrize("seed", _ONCE_WRONG)
def test_a_placement_nothing_pins_is_refused_not_placed_wrong(seed: int) -> None:
    """The same answers with their fine detail redrawn (as a model that does not keep
    grain answers): nothing can pin the placement to a pixel, so it is refused, with a
    confidence below the threshold — not placed a few pixels off with 0.96 to 0.998."""
    outcome = measure(seed, redraw=True)
    assert outcome.verdict == "refused" or outcome.right, outcome
    if outcome.verdict == "refused":
        assert outcome.confidence < 0.7, outcome


def test_a_zoom_the_scale_search_missed_is_found_by_the_finest_detail() -> None:
    """Seed 17: every start of the scale search settled 17 px off and was refused; the
    model's zoom (5.4 %) is found where the context's grain pins it, confirmed by its
    coarser detail."""
    outcome = measure(17)
    assert outcome.verdict == "placed" and outcome.basis == "context", outcome
    assert outcome.error < 0.5, outcome


#: Seeds whose placements rest on fewer than 12 tiles of context detail yet were right:
#: they stay accepted (refined by the grain the emulator keeps).
_FEW_TILES_RIGHT = (0, 21, 47, 61, 62, 72)


@pytest.mark.parametrize("seed", _FEW_TILES_RIGHT)
def test_right_placements_on_a_few_tiles_stay_accepted(seed: int) -> None:
    outcome = measure(seed)
    assert outcome.verdict == "placed" and outcome.right, outcome


def test_a_start_that_diverges_gives_no_placement_not_an_error() -> None:
    """Registration starts Gauss-Newton again from several placements when one fails; on
    an answer of another picture one may run off to a scale of nothing or below."""
    from nbbanana.region import _settle

    crop = photo_like(400, 300, seed=1).convert("L")
    other = photo_like(512, 384, seed=2).convert("L")
    for start in ((-0.8, 0.0, 0.0), (0.8, float("nan"), 0.0)):
        estimate, evidence = _settle(crop, other, None, [0.5, 1.0], start)
        assert evidence.tiles == 0 and estimate.confidence == 0.0


def test_an_answer_of_another_picture_is_refused() -> None:
    crop = photo_like(800, 600, seed=1)
    other = photo_like(1024, 768, seed=2)
    with pytest.raises(RegistrationError, match="does not match") as caught:
        register(other, crop)
    assert caught.value.estimate is not None and caught.value.estimate.confidence < 0.7


def test_an_answer_that_does_not_cover_the_region_is_refused() -> None:
    """A model that zoomed far into the crop: registered, but the region is not in it."""
    image = photo_like(800, 600, seed=4)
    plan = plan_crop(parse_region((200, 150, 600, 450), size=image.size))
    crop = image.crop(plan.crop.as_tuple())
    assert plan.crop == Box(100, 50, 700, 550)  # the region is (100, 100)-(500, 400) in it
    zoomed = _tint(crop.crop((130, 60, 600, 460))).resize((960, 817), Image.Resampling.BICUBIC)
    editor = _EchoEditor()
    editor._answer = lambda image, prompt: _result_of(zoomed, prompt)  # type: ignore[method-assign]
    with pytest.raises(RegistrationError, match="does not cover") as caught:
        edit_region(editor, image, "x", region=(200, 150, 600, 450))
    assert caught.value.answer is not None and caught.value.answer.image is not None


def _sky(width: int, height: int, kind: str, seed: int = 0) -> Image.Image:
    """A feature-poor picture: a smooth gradient (``"v"``, ``"h"``) or flat (``"flat"``)
    colour with a little sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = {"v": y / height, "h": x / width, "flat": 0 * x}[kind]
    rgb = np.stack([90 + 60 * t, 140 + 50 * t, 220 - 20 * t], axis=2)
    rgb += rng.normal(0, 1.5, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


@pytest.mark.parametrize("kind", ["v", "h", "flat"])
def test_a_feature_poor_context_places_an_aligned_answer_by_the_sizes(kind: str) -> None:
    image = _sky(800, 600, kind)
    plan = plan_crop(parse_region((300, 200, 500, 350), size=image.size))
    crop = image.crop(plan.crop.as_tuple())
    sent = crop.resize((512, round(512 * crop.height / crop.width)), Image.Resampling.LANCZOS)
    answer = _tint(sent)
    from nbbanana.region import _exclusion

    estimate = register(answer, crop, exclude=_exclusion(plan))
    assert estimate.basis == "sizes" and estimate.to_json()["basis"] == "sizes"
    assert estimate.scale == pytest.approx(crop.width / 512, rel=2e-3)
    assert 0 < estimate.confidence <= 1
    # ... and through edit_region: blended, every pixel beyond the feather untouched
    result = edit_region(_EchoEditor(), image, "tint", region=(300, 200, 500, 350))
    assert result.region["registration"]["basis"] == "sizes"
    assert result.image is not None
    out, source = np.asarray(result.image), np.asarray(image)
    blend = plan.blend
    outside = np.ones(source.shape[:2], bool)
    outside[blend.top : blend.bottom, blend.left : blend.right] = False
    assert np.array_equal(out[outside], source[outside])
    inner = _slices([310, 210, 490, 340])
    expected = np.asarray(_tint(image), np.float32)[inner]
    assert np.abs(out[inner].astype(np.float32) - expected).mean() < 3.0


@pytest.mark.parametrize(
    ("kind", "other"),
    [("v", "photo"), ("flat", "photo"), ("v", "flipped"), ("h", "flipped"), ("flat", "sky")],
)
def test_a_feature_poor_context_still_refuses_an_answer_that_contradicts_it(
    kind: str, other: str
) -> None:
    image = _sky(800, 600, kind)
    plan = plan_crop(parse_region((300, 200, 500, 350), size=image.size))
    crop = image.crop(plan.crop.as_tuple())
    if other == "photo":
        answer = photo_like(*crop.size, seed=3)
    elif other == "flipped":
        answer = _tint(crop).transpose(Image.Transpose.ROTATE_180)
    else:  # another sky: a vertical gradient upside down, against a flat one
        answer = _sky(*crop.size, "v", seed=9).transpose(Image.Transpose.ROTATE_180)
    from nbbanana.region import _exclusion

    with pytest.raises(RegistrationError, match=r"too little detail .* does not match") as caught:
        register(answer, crop, exclude=_exclusion(plan))
    assert caught.value.estimate is not None and caught.value.estimate.basis == "sizes"


def test_a_plain_sky_the_model_reframed_and_redrew_is_refused_with_the_answer_kept() -> None:
    """A model that zooms in 4 % and redraws the grain: nothing in a plain sky tells where
    its answer belongs to within the ~10 px such a zoom moves it. Once placed by the sizes
    with confidence 0.97; now refused, plainly, the answer kept."""
    image = _sky(800, 600, "v")

    def answer(sent: Image.Image, prompt: str) -> Result:
        w, h = sent.size
        zoomed = sent.crop((w * 0.02, h * 0.02, w * 0.98, h * 0.98)).resize((w * 2, h * 2))
        redrawn = np.asarray(_tint(zoomed).filter(ImageFilter.GaussianBlur(3)), np.float64)
        redrawn += np.random.default_rng(1).normal(0, 1.5, redrawn.shape)
        return _result_of(Image.fromarray(np.clip(redrawn, 0, 255).astype(np.uint8)), prompt)

    editor = _EchoEditor()
    editor._answer = answer  # type: ignore[method-assign]
    with pytest.raises(RegistrationError, match=r"too little detail .* does not pin") as caught:
        edit_region(editor, image, "tint", region=(300, 200, 500, 350))
    assert caught.value.answer is not None and caught.value.answer.image is not None
    estimate = caught.value.estimate
    assert estimate is not None and estimate.basis == "sizes" and estimate.confidence < 0.7


def _result_of(image: Image.Image, prompt: str) -> Result:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return Result(
        images=[Image.open(io.BytesIO(buffer.getvalue()))],
        text="",
        thoughts=[],
        finish_reason="STOP",
        usage=Usage(),
        cost_usd=0.0,
        latency_s=0.0,
        model="test",
        params={},
        prompt=prompt,
    )


# --------------------------------------------------------------------------- seam


def test_seam_measure_tells_a_feathered_blend_from_a_hard_cut() -> None:
    image = photo_like(600, 400, seed=11)
    region = parse_region((150, 100, 450, 300), size=image.size)
    answer_full = Image.blend(image, Image.new("RGB", image.size, (255, 40, 200)), 0.5)
    scores = {}
    for feather in (0, 12):
        plan = plan_crop(region, feather=feather, margin=40)
        crop_answer = answer_full.crop(plan.crop.as_tuple())
        identity = Registration(1.0, 0.0, 0.0, 1.0)
        out = composite(image, crop_answer, plan, identity)
        area = plan.blend.expand(2, 2, image.size).as_tuple()
        scores[feather] = measure_seam(
            image.crop(area), out.crop(area), crop_answer, plan, identity
        )
    assert scores[12] <= 1.0  # no added step beyond the image's own local variation
    assert scores[0] > 3.0  # a hard cut between unlike images is a visible seam


@pytest.mark.parametrize(
    "box", [(150, 100, 450, 300), (0, 0, 200, 150), (400, 250, 600, 400), (0, 120, 600, 200)]
)
@pytest.mark.parametrize("feather", [0, 5])
def test_seam_on_the_frame_only_equals_the_seam_on_the_whole_area(
    box: tuple[int, int, int, int], feather: int
) -> None:
    """measure_seam looks only at the frame around a box region: the same score."""
    from nbbanana.region import _seam, _seam_area, _seam_parts, _seam_values

    image = photo_like(600, 400, seed=12)
    answer_full = Image.blend(image, Image.new("RGB", image.size, (255, 40, 200)), 0.5)
    plan = plan_crop(parse_region(box, size=image.size), feather=feather, margin=40)
    area = _seam_area(plan)
    identity = Registration(1.0, 0.0, 0.0, 1.0)
    out = composite(image, answer_full.crop(plan.crop.as_tuple()), plan, identity)
    before, after = image.crop(area.as_tuple()), out.crop(area.as_tuple())
    answer = answer_full.crop(area.as_tuple())
    alpha = Image.new("L", area.size, 0)
    blend = plan.blend.relative_to(area)
    alpha.paste(feather_mask(plan), (blend.left, blend.top))
    whole = _seam_values(before, after, answer, alpha, None)
    frame = _seam_values(before, after, answer, alpha, _seam_parts(plan, area))
    assert sorted(whole[0].tolist()) == sorted(frame[0].tolist())
    assert sorted(whole[1].tolist()) == sorted(frame[1].tolist())
    assert _seam(*whole) == _seam(*frame)


# --------------------------------------------------------------------------- result


def test_region_result_saves_png_exactly_and_jpeg_on_request(tmp_path: Path) -> None:
    image = photo_like(300, 200, seed=5)
    result = edit_region(_EchoEditor(), image, "tint", region=(50, 40, 200, 150))
    png, sidecar = result.save(tmp_path)
    assert np.array_equal(np.asarray(Image.open(png)), np.asarray(result.image))
    meta = json.loads(sidecar.read_text())
    region = meta["region"]
    assert region["box"] == [50, 40, 200, 150] and region["crop"] == [12, 2, 238, 188]
    assert set(region["registration"]) >= {"scale", "tx", "ty", "confidence"}
    assert region["feather"] == 4 and "seam" in region
    assert Image.open(png).text["nbbanana:region"]  # type: ignore[attr-defined]
    jpeg, _ = result.save(tmp_path / "j", format="jpeg")
    assert jpeg.suffix == ".jpg" and Image.open(jpeg).size == (300, 200)
    # the composite is encoded only when used as the input of another edit
    assert result.image_data and result.image_data[0][1] == "image/png"
    assert result.answer is not None and result.answer.image is not None
    before, after = result.zoom()
    assert before.size == after.size == (226, 186)


def test_sync_and_async_pass_only_the_options_given() -> None:
    image = photo_like(200, 160, seed=6)
    editor = _EchoEditor()
    box = (20, 20, 120, 100)
    sync = edit_region(editor, image, "tint", region=box, aspect_ratio="4:3", model="m")
    asynchronous = asyncio.run(aedit_region(editor, image, "tint", region=box, image_size="2K"))
    assert editor.options == [{"aspect_ratio": "4:3", "model": "m"}, {"image_size": "2K"}]
    assert sync.image is not None and asynchronous.image is not None
    assert np.array_equal(np.asarray(sync.image), np.asarray(asynchronous.image))
    assert sync.region == asynchronous.region


def test_the_callers_image_is_not_modified() -> None:
    image = photo_like(200, 160, seed=6)
    pixels = np.asarray(image).copy()
    edit_region(_EchoEditor(), image, "tint", region=(20, 20, 120, 100))
    assert np.array_equal(np.asarray(image), pixels)

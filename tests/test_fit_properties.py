"""Property: fit_image never returns bytes over the budget, whatever the input.

Over sizes, modes, content, containers, formats, resolutions and budgets — down to
budgets so small the image must shrink to a few pixels, and below — every result:
is within its allowance and the request within the budget, decodes to the stated size,
respects max_side; and the only refusal is DoesNotFitError, only when nothing fits.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from _imagegen import photo_like
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from nbbanana.budget import SAFETY_MARGIN, RequestBudget
from nbbanana.errors import DoesNotFitError
from nbbanana.fit import MIN_SIDE, fit_image
from nbbanana.models import get_model

#: Container formats that can hold each mode ("pil" hands the PIL image over directly).
CONTAINERS = {
    "RGB": ["pil", "PNG", "JPEG", "WEBP"],
    "RGBA": ["pil", "PNG", "WEBP"],
    "L": ["pil", "PNG", "JPEG"],
    "P": ["pil", "PNG", "GIF"],
    "I;16": ["pil", "PNG"],
    "CMYK": ["pil", "JPEG"],
}

#: No encoder makes an image of MIN_SIDE px larger than this: a budget leaving more for
#: the image must never be refused.
FEASIBLE_ALLOWANCE = 6000


def _pixels(content: str, width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    if content == "photo":
        return photo_like(max(width, 2), max(height, 2), seed=seed).resize((width, height))
    if content == "noise":
        return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    return Image.new("RGB", (width, height), colour)


def _in_mode(rgb: Image.Image, mode: str, seed: int) -> Image.Image:
    if mode == "RGBA":
        image = rgb.convert("RGBA")
        alpha = np.random.default_rng(seed).integers(
            0, 256, (rgb.height, rgb.width), dtype=np.uint8
        )
        image.putalpha(Image.fromarray(alpha, "L"))
        return image
    if mode == "I;16":
        gray = np.asarray(rgb.convert("L"), dtype=np.uint16) * 257
        return Image.fromarray(gray)  # mode I;16
    if mode == "P":
        return rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return rgb.convert(mode)


@st.composite
def _inputs(draw: st.DrawFn) -> tuple[Any, tuple[int, int]]:
    sides = st.one_of(st.integers(1, 320), st.integers(1, 320), st.integers(321, 1200))
    width, height = draw(sides), draw(sides)
    mode = draw(st.sampled_from(sorted(CONTAINERS)))
    content = draw(st.sampled_from(["photo", "noise", "flat"]))
    seed = draw(st.integers(0, 2**16))
    image = _in_mode(_pixels(content, width, height, seed), mode, seed)
    assert image.mode == mode
    container = draw(st.sampled_from(CONTAINERS[mode]))
    if container == "pil":
        return image, (width, height)
    buffer = io.BytesIO()
    image.save(buffer, container)
    return buffer.getvalue(), (width, height)


budgets = st.one_of(
    st.integers(SAFETY_MARGIN + 1, SAFETY_MARGIN + 3000),  # tiny: shrink hard or refuse
    st.integers(SAFETY_MARGIN + 3000, SAFETY_MARGIN + 40_000),  # must shrink a lot
    st.integers(SAFETY_MARGIN + 40_000, SAFETY_MARGIN + 400_000),
)


# 100 examples (200 took 3 to 14 s, most of it making and encoding the inputs): a run
# still draws a third to two fifths refusals and the rest fits, in each MIME type and
# both shrunk and kept (see --hypothesis-show-statistics), every mode several times.
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    source=_inputs(),
    budget=budgets,
    max_side=st.one_of(st.sampled_from(["model", "keep"]), st.integers(MIN_SIDE, 400)),
    fmt=st.sampled_from(["auto", "auto", "jpeg", "png", "webp"]),
    prompt=st.sampled_from(["", "Make it violet", "日本語 🍌 " * 50]),
)
def test_never_over_budget(
    source: tuple[Any, tuple[int, int]], budget: int, max_side: Any, fmt: Any, prompt: str
) -> None:
    data, (width, height) = source
    request_budget = RequestBudget(limit=budget)
    try:
        fitted = fit_image(data, budget=budget, max_side=max_side, format=fmt, prompt=prompt)
    except DoesNotFitError as error:
        allowance = max(
            request_budget.image_allowance(prompt, mime=m)
            for m in ("image/jpeg", "image/png", "image/webp")
        )
        assert allowance < FEASIBLE_ALLOWANCE, f"refused with {allowance} bytes free: {error}"
        assert f"{budget:,}" in str(error)
        event("refused")
        return
    assert len(fitted.data) <= request_budget.image_allowance(prompt, mime=fitted.mime)
    assert fitted.request_bytes == request_budget.request_bytes(
        prompt, [(len(fitted.data), fitted.mime)]
    )
    assert fitted.request_bytes <= budget - SAFETY_MARGIN
    decoded = fitted.to_pil()
    assert decoded.size == (fitted.width, fitted.height)
    assert Image.MIME[decoded.format or ""] == fitted.mime  # type: ignore[index]
    cap = {"model": get_model(None).fit_max_side, "keep": max(width, height)}.get(
        max_side, max_side
    )
    assert max(decoded.size) <= min(cap, max(width, height))
    if fmt != "auto":
        assert fitted.mime == f"image/{fmt}"
    event(
        f"{fitted.mime}, {'shrunk to fit' if 'to fit the budget' in str(fitted.report.warnings) else 'size kept'}"
    )


@pytest.mark.parametrize("budget", [1, SAFETY_MARGIN, SAFETY_MARGIN + 120])
def test_impossible_budgets_are_refused(budget: int) -> None:
    with pytest.raises(DoesNotFitError, match=f"{budget:,} bytes"):
        fit_image(photo_like(64, 48), budget=budget)

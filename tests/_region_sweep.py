"""The small-crop sweep of regional registration: seeded cases with known ground truth,
and what registration made of each (placed or refused, how far off, how sure).

Run as a script for the whole table: ``python tests/_region_sweep.py [N] [--redraw]``
(seeds 0..N-1, 80 by default; ``--redraw``: answers without their input's grain, as a
model that redraws it gives); the tests use :func:`measure` on chosen seeds.
"""

from __future__ import annotations

import itertools
import random
import sys
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter

from nbbanana.emulator import _transform
from nbbanana.emulator._generate import closest_ratio
from nbbanana.models import get_model
from nbbanana.region import (
    Box,
    CropPlan,
    Registration,
    RegistrationError,
    _check_coverage,
    _exclusion,
    parse_region,
    plan_crop,
    register,
)

try:
    from _imagegen import photo_like
except ImportError:  # run as a script from the project's root
    sys.path.insert(0, "tests")
    from _imagegen import photo_like

#: A placement is right when no corner of the blended area is this far (source px) from
#: where the truth puts it.
RIGHT_PX = 1.0


def corner_error(
    estimate: Registration, truth: _transform.KnownTransform, fit: tuple[float, float], blend: Box
) -> float:
    """Largest distance (crop pixels) between where the estimate and the truth put the
    answer's pixels, at the corners of the blended area. ``fit``: crop pixels per sent
    pixel, per axis."""
    worst = 0.0
    for cx, cy in itertools.product((blend.left, blend.right), (blend.top, blend.bottom)):
        ax, ay = estimate.to_answer(cx, cy)
        ux, uy = truth.to_input(ax, ay)
        worst = max(worst, abs(ux * fit[0] - cx), abs(uy * fit[1] - cy))
    return worst


def small_crop_case(
    seed: int, *, redraw: bool = False
) -> tuple[CropPlan, Image.Image, Image.Image, _transform.KnownTransform]:
    """One case of the small-crop sweep: a region of 180–300 px (a crop of about 350 px)
    somewhere in a photo, answered by the known-transform mode at the size the emulator
    would choose (the supported ratio closest to the crop's), zoomed and shifted by the
    seed (half the cases with a zoom of up to 7 %).

    ``redraw``: the answer's finest detail is redrawn, as a model does that does not keep
    its input's grain (blurred over a crop pixel and a half, fresh grain of its own added)."""
    rng = random.Random(seed)
    size = rng.choice([(1200, 900), (900, 900), (1600, 1200)])
    rw, rh = rng.randint(180, 300), rng.randint(180, 300)
    left, top = rng.randint(0, size[0] - rw), rng.randint(0, size[1] - rh)
    params = {"seed": str(seed)}
    if rng.random() < 0.5:
        params["scale"] = f"{rng.uniform(1.0, 1.07):.3f}"
    plan = plan_crop(parse_region((left, top, left + rw, top + rh), size=size))
    crop = photo_like(*size, seed=100 + seed).crop(plan.crop.as_tuple())
    model = get_model(None)
    out = model.output_size(closest_ratio(model, *crop.size))
    answer = _transform.edit(crop, "make it violet", out, 7, params, f"small{seed}")
    truth = _transform.known_transform(f"small{seed}")
    assert truth is not None
    if redraw:
        blurred = answer.filter(ImageFilter.GaussianBlur(1.5 * truth.factor))
        grain = np.random.default_rng(seed).normal(0.0, 4.0, (answer.height, answer.width, 1))
        pixels = np.asarray(blurred.convert("RGB"), dtype=np.float64) + grain
        answer = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    return plan, crop, answer, truth


@dataclass(frozen=True)
class Outcome:
    """What registration made of one case."""

    seed: int
    #: "placed", "refused" (the context did not confirm a placement) or "uncovered" (a
    #: placement, but the answer does not cover the region: the model reframed it).
    verdict: Literal["placed", "refused", "uncovered"]
    basis: str
    #: Of the placement (or the refused estimate), in source px; -1 without one.
    error: float
    confidence: float

    @property
    def right(self) -> bool:
        return 0 <= self.error < RIGHT_PX


def measure(seed: int, *, redraw: bool = False) -> Outcome:
    plan, crop, answer, truth = small_crop_case(seed, redraw=redraw)
    blend = plan.blend.relative_to(plan.crop)
    verdict: Literal["placed", "refused", "uncovered"] = "placed"
    try:
        estimate: Registration | None = register(answer, crop, exclude=_exclusion(plan))
        assert estimate is not None
        try:
            _check_coverage(plan, estimate, answer.size)
        except RegistrationError:
            verdict = "uncovered"
    except RegistrationError as err:
        verdict, estimate = "refused", err.estimate
    if estimate is None:
        return Outcome(seed, verdict, "-", -1.0, 0.0)
    error = corner_error(estimate, truth, (1.0, 1.0), blend)
    return Outcome(seed, verdict, estimate.basis, error, estimate.confidence)


def summary(outcomes: list[Outcome]) -> str:
    placed = [o for o in outcomes if o.verdict == "placed"]
    right = [o for o in placed if o.right]
    wrong = [o for o in placed if not o.right]
    worst = max((o.error for o in wrong), default=0.0)
    refused = [o for o in outcomes if o.verdict == "refused"]
    refused_right = [o for o in refused if o.right]
    return (
        f"accepted right {len(right)}, accepted wrong {len(wrong)} (max {worst:.1f} px), "
        f"refused {len(refused)} ({len(refused_right)} of them right), "
        f"uncovered {sum(o.verdict == 'uncovered' for o in outcomes)}"
    )


def main(argv: list[str]) -> None:
    redraw = "--redraw" in argv
    numbers = [a for a in argv[1:] if a != "--redraw"]
    n = int(numbers[0]) if numbers else 80
    outcomes = []
    for seed in range(n):
        o = measure(seed, redraw=redraw)
        outcomes.append(o)
        flag = "" if o.right or o.verdict != "placed" else "  <-- wrong"
        print(
            f"{seed:3d} {o.verdict:9s} {o.basis:7s} {o.error:7.2f} px  conf {o.confidence:.3f}{flag}"
        )
    print(summary(outcomes))


if __name__ == "__main__":
    main(sys.argv)

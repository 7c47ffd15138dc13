"""The studio's region tool: draw a box (or paint a mask) on the picture the next run edits.

The browser (``_region.js``) only reports what the hand did, in fractions of the displayed
image: a rectangle's two corners, or brush strokes. Everything else is plain Python here,
tested without a browser:

* :func:`normalise_rect` — corners in any order, clipped to the image;
* :func:`rect_to_box` / :func:`box_to_rect` — fractions ↔ whole pixels of the upright
  source (the preview shows the picture after its EXIF orientation, as
  :mod:`nbbanana.region` reads boxes, so fractions map straight to upright pixels);
* :func:`mask_from_strokes` — the strokes as a mask with the source's aspect ratio
  (:func:`nbbanana.region.parse_region` scales it to the source);
* :class:`RegionGauge` / :func:`region_gauge` — what the crop request sends, from
  :func:`~nbbanana.region.plan_crop` (the crop regional edits cut) and the fitted crop;
* :class:`RegionTool` — the tool's state: the source, the selection, the fitted crop
  (fitted off the kernel's loop, cached).

:class:`RegionPicker` is the thin widget over a :class:`RegionTool`, and
:class:`RegionZoom` shows a regional result's crop before and after.
"""

from __future__ import annotations

import math
import pathlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets as w
import traitlets
from PIL import Image, ImageDraw

from .._format import format_usd
from ..errors import NbbananaError, redact
from ..models import ModelInfo, get_model, text_tokens
from ..region import Box, CropPlan, RegistrationError, parse_region, plan_crop
from ._background import run_in_background
from ._compare import _CompareCanvas, can_slide
from ._gauge import format_bytes, scale_labels
from ._preview import VIEW_SIDE, data_url
from ._prompt import UserMessage

if TYPE_CHECKING:
    from ..budget import RequestBudget
    from ..fit import FittedImage
    from ..result import Result

__all__ = [
    "MASK_SIDE",
    "RegionGauge",
    "RegionPicker",
    "RegionTool",
    "RegionZoom",
    "Stroke",
    "box_to_rect",
    "mask_from_strokes",
    "normalise_rect",
    "rect_to_box",
    "region_gauge",
]

Rect = tuple[float, float, float, float]

#: Long side of a mask rasterised from brush strokes (the mask is scaled to the source).
MASK_SIDE = 1024
#: Long side of the picture the region is drawn on.
PICK_SIDE = VIEW_SIDE


# --------------------------------------------------------------------------- geometry


def normalise_rect(corners: Sequence[float]) -> Rect | None:
    """``(x0, y0, x1, y1)`` in fractions of the image, any two opposite corners, clipped
    to the image and ordered; ``None`` when it is not four numbers or has no area."""
    if len(corners) != 4:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in corners)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return None
    left, right = sorted((min(max(x0, 0.0), 1.0), min(max(x1, 0.0), 1.0)))
    top, bottom = sorted((min(max(y0, 0.0), 1.0), min(max(y1, 0.0), 1.0)))
    if right <= left or bottom <= top:
        return None
    return left, top, right, bottom


def rect_to_box(rect: Sequence[float], size: tuple[int, int]) -> Box | None:
    """The pixel box of the upright source (``size``) that a rectangle drawn on its
    preview covers: every pixel it touches, at least one pixel each way; ``None`` when
    the rectangle is empty."""
    norm = normalise_rect(rect)
    width, height = size
    if norm is None or width <= 0 or height <= 0:
        return None
    left, top, right, bottom = norm
    # A hair of tolerance, so a drag that ends exactly on a pixel edge stays there.
    x0 = min(width - 1, math.floor(left * width + 1e-6))
    y0 = min(height - 1, math.floor(top * height + 1e-6))
    x1 = max(x0 + 1, min(width, math.ceil(right * width - 1e-6)))
    y1 = max(y0 + 1, min(height, math.ceil(bottom * height - 1e-6)))
    return Box(x0, y0, x1, y1)


def box_to_rect(box: Box, size: tuple[int, int]) -> Rect:
    """A pixel box of the upright source as fractions of the image (for drawing it)."""
    width, height = size
    return box.left / width, box.top / height, box.right / width, box.bottom / height


@dataclass(frozen=True)
class Stroke:
    """One brush stroke: points in fractions of the image, and the brush's diameter as
    a fraction of the image's longer side."""

    points: tuple[tuple[float, float], ...]
    size: float

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Stroke | None:
        """A stroke from the browser's ``{"points": [[x, y], ...], "size": s}``; ``None``
        when it is malformed (a stroke is only ever drawn by hand, so it is dropped)."""
        try:
            points = tuple((float(x), float(y)) for x, y in value.get("points", ()))
            size = float(value.get("size", 0.0))
        except (TypeError, ValueError):
            return None
        finite = all(math.isfinite(v) for p in points for v in p) and math.isfinite(size)
        if not points or not finite or size <= 0:
            return None
        return cls(points, min(size, 1.0))


def mask_from_strokes(
    strokes: Sequence[Stroke], size: tuple[int, int], *, max_side: int = MASK_SIDE
) -> Image.Image | None:
    """The strokes painted on a mask (mode ``"L"``, 255 = edit) of the source's aspect
    ratio, at most ``max_side`` px long (never larger than the source); ``None`` when
    nothing is painted inside the image."""
    width, height = size
    if not strokes or width <= 0 or height <= 0:
        return None
    scale = min(1.0, max_side / max(width, height))
    mw, mh = max(1, round(width * scale)), max(1, round(height * scale))
    mask = Image.new("L", (mw, mh), 0)
    draw = ImageDraw.Draw(mask)
    for stroke in strokes:
        diameter = max(1.0, stroke.size * max(mw, mh))
        radius = diameter / 2
        xy = [(x * mw, y * mh) for x, y in stroke.points]
        if len(xy) > 1:
            draw.line(xy, fill=255, width=max(1, round(diameter)), joint="curve")
        for x, y in xy:  # round caps and joins, and single dabs
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return mask if mask.getbbox() is not None else None


# --------------------------------------------------------------------------- gauge


@dataclass(frozen=True)
class RegionGauge:
    """What a regional run sends: the crop around the region, fitted for the model."""

    model: str
    #: The upright source's size (what the composite will have).
    source_size: tuple[int, int]
    plan: CropPlan
    #: The crop as it will be sent; ``None`` while it is being fitted.
    fitted: FittedImage | None
    limit: int | None
    request_bytes: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    #: What the source is called in the title ("the uploaded image", "turn 2's image").
    what: str = "the picture"

    @property
    def fraction(self) -> float:
        return self.request_bytes / self.limit if self.limit else 0.0

    @property
    def title(self) -> str:
        return f"Next request: a region of {self.what}"

    def lines(self) -> list[str]:
        box, crop = self.plan.region.box, self.plan.crop
        sw, sh = self.source_size
        kind = "painted mask" if self.plan.region.kind == "mask" else "box"
        lines = [
            f"region ({kind}): {box.width}×{box.height} at {box.left},{box.top} "
            f"of the {sw}×{sh} picture",
            f"crop sent: {crop.width}×{crop.height} (region + {self.plan.margin} px margin), "
            "cut at full resolution",
        ]
        fitted = self.fitted
        if fitted is None:
            lines.append("fitting the crop for the model…")
        else:
            kind_name = fitted.mime.removeprefix("image/").upper()
            quality = f" quality {fitted.quality}" if fitted.quality is not None else ""
            budget = (
                f" of {format_bytes(self.limit)} budget ({self.fraction:.0%})" if self.limit else ""
            )
            lines.append(
                f"fitted: {fitted.width}×{fitted.height} {kind_name}{quality}, "
                f"{format_bytes(len(fitted.data))} → {format_bytes(self.request_bytes)} "
                f"request{budget}"
            )
            lines.append(
                f"≈{self.input_tokens:,} input + {self.output_tokens:,} output tokens ≈ "
                f"{format_usd(self.cost_usd)} on {self.model}"
            )
        lines.append(
            f"the answer is blended back into the {sw}×{sh} picture ({self.plan.feather} px "
            "feather); every other pixel stays as it is"
        )
        return lines

    def summary(self) -> dict[str, Any]:
        """The gauge as the uploader's summary panel shows it."""
        scale = list(scale_labels(self.request_bytes, self.limit))
        if self.fitted is None:  # the bar would show the prompt alone
            scale[1] = "fitting…"
        return {
            "title": self.title,
            "lines": self.lines(),
            "fraction": self.fraction if self.fitted is not None else 0.0,
            "scale": scale,
            "over": bool(self.limit and self.request_bytes > self.limit),
            "warnings": [],
        }


def region_gauge(
    plan: CropPlan,
    fitted: FittedImage | None,
    *,
    model: str | ModelInfo,
    budget: RequestBudget,
    prompt: str = "",
    image_size: str | None = None,
    what: str = "the picture",
) -> RegionGauge:
    """The gauge of a regional run: ``plan`` from :func:`~nbbanana.region.plan_crop`,
    ``fitted`` the crop fitted for ``model`` (``None`` while it is being fitted).
    ``model`` may be a session's :class:`ModelInfo`, so that its price is the one used."""
    info = get_model(model)
    output_tokens = info.output_image_tokens(image_size if image_size in info.image_sizes else None)
    if fitted is None:
        request_bytes = budget.request_bytes(prompt, [])
        input_tokens = text_tokens(prompt)
        cost = None
    else:
        request_bytes = budget.request_bytes(prompt, [(len(fitted.data), fitted.mime)])
        input_tokens = fitted.tokens + text_tokens(prompt)
        cost = info.cost_usd(input_tokens=input_tokens, output_image_tokens=output_tokens)
    return RegionGauge(
        model=info.id,
        source_size=plan.region.source_size,
        plan=plan,
        fitted=fitted,
        limit=budget.limit,
        request_bytes=request_bytes,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=cost,
        what=what,
    )


# --------------------------------------------------------------------------- state


def _upright(source: object) -> Image.Image:
    """The full-resolution upright picture a regional edit would cut from."""
    from ..images import load_image
    from ..result import Result

    if isinstance(source, Result):
        if source.image is None:
            raise NbbananaError(f"Result {source.id} has no image.")
        return source.image
    return load_image(source).image  # type: ignore[arg-type]


class RegionTool:
    """The region tool's state, without any widget.

    ``source`` is what the next run edits (original upload bytes or a turn's result),
    ``size`` its upright full-resolution size. The selection is a rectangle (fractions)
    or brush strokes; :attr:`mode` says which one counts. ``run`` is how slow work
    (decoding, cropping, fitting) is run: :func:`run_in_background` in the widget.
    """

    def __init__(
        self,
        *,
        run: Callable[[Callable[[], Any], Callable[[Any], None]], object] = run_in_background,
    ) -> None:
        self.source: object = None
        self.size: tuple[int, int] = (0, 0)
        self.what = "the picture"
        #: Why there is nothing to draw on, when there is a reason beyond "no upload".
        self.note = ""
        self.mode = "box"
        self.rect: Rect | None = None
        self.strokes: list[Stroke] = []
        self._run = run
        self._upright: Image.Image | None = None
        #: (crop box, model) → fitted crop (or the error message fitting gave).
        self._fits: dict[tuple[tuple[int, int, int, int], str], FittedImage | str] = {}
        self._pending: set[tuple[tuple[int, int, int, int], str]] = set()
        self._generation = 0

    def set_source(self, source: object, size: tuple[int, int], what: str) -> None:
        """Edit ``source`` (upright ``size``) from now on; the selection is cleared.
        With ``source=None``, ``what`` may say why there is nothing to draw on."""
        self.source, self.size, self.what = source, size, what
        self.note = what if source is None else ""
        self._upright = None
        self._fits.clear()
        self._pending.clear()
        self._generation += 1
        self.clear()

    def clear(self) -> None:
        self.rect, self.strokes = None, []

    @property
    def box(self) -> Box | None:
        """The rectangle in the upright source's pixels (``None``: none drawn)."""
        return rect_to_box(self.rect, self.size) if self.rect is not None else None

    def mask(self) -> Image.Image | None:
        return mask_from_strokes(self.strokes, self.size)

    def selection(self) -> dict[str, Any]:
        """``{"region": box}`` or ``{"mask": image}`` for a regional run, per :attr:`mode`;
        ``{}`` when nothing is selected (a whole-image run)."""
        if self.source is None:
            return {}
        if self.mode == "mask":
            mask = self.mask()
            return {"mask": mask} if mask is not None else {}
        box = self.box
        return {"region": box.as_tuple()} if box is not None else {}

    def plan(self) -> CropPlan | None:
        """The crop a run would send (region.py's own planning), or ``None``."""
        chosen = self.selection()
        if not chosen:
            return None
        return plan_crop(parse_region(chosen.get("region"), chosen.get("mask"), size=self.size))

    def crop(self) -> Image.Image | None:
        """The crop of the source a regional run sends (region and margin, upright, at
        full resolution); ``None`` without a selection."""
        plan = self.plan()
        if plan is None:
            return None
        if self._upright is None:
            self._upright = _upright(self.source)
        return self._upright.crop(plan.crop.as_tuple())

    def label(self) -> str:
        """One line under the picture: what is selected, in source pixels."""
        if self.source is None:
            return self.note or "Upload an image to select a region of it."
        plan = self.plan()
        if plan is None:
            how = "paint over" if self.mode == "mask" else "drag a box on"
            return f"No region: the run edits the whole picture. To edit one part, {how} it."
        box = plan.region.box
        return (
            f"Region {box.left},{box.top} → {box.right},{box.bottom} "
            f"({box.width}×{box.height} px of {self.size[0]}×{self.size[1]}): only it is edited."
        )

    def gauge(
        self,
        *,
        model: str | ModelInfo,
        budget: RequestBudget,
        prompt: str = "",
        image_size: str | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> RegionGauge | None:
        """The gauge of the regional run now selected (``None``: nothing selected). The
        crop is fitted once per crop and model, off the loop; ``on_ready`` is called
        when a fit this gauge waited for is done."""
        plan = self.plan()
        if plan is None:
            return None
        info = get_model(model)
        key = (plan.crop.as_tuple(), info.id)
        fitted = self._fits.get(key)
        if fitted is None and key not in self._pending:
            self._pending.add(key)
            self._start_fit(key, info, budget, on_ready)
            fitted = self._fits.get(key)  # done already when ``run`` is inline
        if isinstance(fitted, str):
            raise NbbananaError(fitted)
        return region_gauge(
            plan, fitted, model=model, budget=budget, prompt=prompt, image_size=image_size,
            what=self.what,
        )  # fmt: skip

    def _start_fit(
        self,
        key: tuple[tuple[int, int, int, int], str],
        info: ModelInfo,
        budget: RequestBudget,
        on_ready: Callable[[], None] | None,
    ) -> None:
        generation, source = self._generation, self.source
        crop_box = key[0]

        def work() -> tuple[Image.Image | None, FittedImage | str]:
            from ..fit import fit_image

            try:
                upright = self._upright if self._upright is not None else _upright(source)
                crop = upright.crop(crop_box)
                if crop.mode not in ("RGB", "L"):
                    crop = crop.convert("RGB")
                # The facts looked up already, not the id: a model nbbanana does not
                # know must not warn again from a worker thread (under another cell).
                return upright, fit_image(crop, model=info, budget=budget)
            except NbbananaError as exc:
                return None, str(exc)
            except Exception as exc:  # a gauge is a courtesy: say what went wrong, in one line
                return None, redact(f"The crop could not be fitted ({type(exc).__name__}: {exc}).")

        def done(outcome: tuple[Image.Image | None, FittedImage | str]) -> None:
            if generation != self._generation:
                return  # the source changed meanwhile
            upright, fitted = outcome
            if upright is not None:
                self._upright = upright
            self._fits[key] = fitted
            self._pending.discard(key)
            if on_ready is not None:
                on_ready()

        self._run(work, done)


#: What the region tool says instead of a picture when several images are uploaded.
SEVERAL_UPLOADS = (
    "A regional edit changes one picture: with several uploads there is none to draw on "
    "(keep one to select a region of it, or run first and select one in the result)."
)

#: Where region.py's messages stop describing what happened and turn to its API.
_API_ADVICE = " The unblended answer is on this error's .answer"


def unplaced_message(exc: RegistrationError, what: str) -> UserMessage:
    """What the studio says when a regional answer could not be placed back into
    ``what`` (the picture the run edited): why, that nothing was blended, and that the
    model's unblended answer (paid for) is kept and shown, or that there is none."""
    reason = exc.message.split(_API_ADVICE, 1)[0].strip()
    answer = exc.answer
    if answer is not None and answer.image is not None:
        kept = (
            "The model's unblended answer is kept and shown as the After image, beside "
            f"the crop that was sent (Save keeps it); the next run still edits {what}."
        )
    else:
        kept = f"The answer held no image to show; the next run still edits {what}."
    return UserMessage(
        "The edited region could not be placed back into the picture",
        f"{reason} {kept}",
        "Run again (each answer differs), or draw a larger region that takes in some "
        "texture or corners around what to change.",
    )


def region_source(
    turns: Sequence[Result],
    uploads: Sequence[tuple[str, bytes]],
    current: int | None,
    picked: int | None = None,
) -> tuple[object, Image.Image | None, tuple[int, int], str]:
    """What the next run edits, for the region tool: ``(source, preview, upright size,
    what it is called; or why there is none)``. Image ``picked`` (from 0) of the latest turn's answer when one
    of several was picked, else the latest turn's image (full size: a regional turn's
    composite), else the first upload's original bytes (full resolution, whatever was
    fitted for sending) with an upright preview; ``(None, None, (0, 0), "")`` when there
    is nothing."""
    from ..images import load_image

    if picked is not None and turns and 0 <= picked < len(turns[-1].images):
        image = turns[-1].images[picked]
        count = len(turns[-1].images)
        return image, image, image.size, f"image {picked + 1} of {count} of turn {current}"
    latest = next((r for r in reversed(turns) if r.image is not None), None)
    if latest is not None and latest.image is not None:
        what = f"turn {current}'s image" if current is not None else "the latest image"
        return latest, latest.image, latest.image.size, what
    if not uploads:
        return None, None, (0, 0), ""
    if len(uploads) > 1:  # references for a new picture: none of them is "the" picture
        return None, None, (0, 0), SEVERAL_UPLOADS
    name, data = uploads[0]
    source = {"name": name, "type": "", "content": memoryview(data)}
    # A preview-sized decode (JPEG draft): the full size is read from the header.
    loaded = load_image(source, target_side=PICK_SIDE)
    return source, loaded.image, loaded.original_size, "the uploaded image"


# --------------------------------------------------------------------------- widgets


class RegionPicker(anywidget.AnyWidget):
    """Draw a box, or paint a mask, on the picture the next run edits. A view over a
    :class:`RegionTool` (:attr:`tool`); ``on_change`` callbacks run after every change."""

    _esm = pathlib.Path(__file__).with_name("_region.js")
    _css = pathlib.Path(__file__).with_name("_region.css")

    src = traitlets.Unicode("").tag(sync=True)
    #: The upright source's size, for the labels.
    size = traitlets.List(traitlets.Int(), default_value=[0, 0]).tag(sync=True)
    #: The rectangle in fractions of the image ([] = none), as the browser drew it.
    rect = traitlets.List(traitlets.Float(), default_value=[]).tag(sync=True)
    #: Brush strokes: ``{"points": [[x, y], ...], "size": diameter}`` in fractions.
    strokes = traitlets.List(traitlets.Dict(), default_value=[]).tag(sync=True)
    mode = traitlets.Unicode("box").tag(sync=True)
    #: Brush diameter, as a fraction of the image's longer side.
    brush = traitlets.Float(0.05).tag(sync=True)
    label = traitlets.Unicode("").tag(sync=True)

    def __init__(self, tool: RegionTool | None = None, **kwargs: Any) -> None:
        self.tool = tool or RegionTool()
        self._callbacks: list[Callable[[RegionPicker], None]] = []
        super().__init__(**kwargs)
        self.label = self.tool.label()

    def on_change(self, callback: Callable[[RegionPicker], None]) -> None:
        self._callbacks.append(callback)

    def set_source(
        self, source: object, preview: Image.Image | None, size: tuple[int, int], what: str
    ) -> None:
        """Draw on ``preview`` (an upright view of ``source``, whose upright full size is
        ``size``); clears the selection. ``source=None``: nothing to draw on."""
        self.tool.set_source(source, size, what)
        with self.hold_sync():
            self.src = data_url(preview, PICK_SIDE) if preview is not None else ""
            self.size = list(size)
            self.rect, self.strokes = [], []
        self._changed()

    def select(self, box: tuple[int, int, int, int] | None) -> None:
        """Select ``box`` (upright source pixels) as if drawn; ``None`` clears it."""
        self.mode = "box"
        self.rect = [] if box is None else list(box_to_rect(Box(*box), self.tool.size))

    def clear(self) -> None:
        with self.hold_sync():
            self.rect, self.strokes = [], []

    def summary(
        self,
        *,
        model: str | ModelInfo,
        budget: RequestBudget,
        prompt: str = "",
        image_size: str | None = None,
        on_ready: Callable[[], None] | None = None,
    ) -> dict[str, Any] | None:
        """The gauge panel's content for the regional run selected (``None``: no region)."""
        try:
            gauge = self.tool.gauge(
                model=model, budget=budget, prompt=prompt, image_size=image_size,
                on_ready=on_ready,
            )  # fmt: skip
        except NbbananaError as exc:
            return {"title": "Next request: a region", "lines": [], "warnings": [str(exc)]}
        return gauge.summary() if gauge is not None else None

    def problems(self, images: int) -> list[str]:
        """What stops a regional run (empty: ready, or no region)."""
        if self.tool.selection() and images > 1:
            return [
                "A regional edit changes one image: remove the other uploads, or clear the region."
            ]
        return []

    @traitlets.observe("rect", "strokes", "mode")
    def _selection_changed(self, _change: dict[str, Any]) -> None:
        tool = self.tool
        tool.mode = "mask" if self.mode == "mask" else "box"
        tool.rect = normalise_rect(self.rect) if self.rect else None
        tool.strokes = [s for s in (Stroke.from_json(v) for v in self.strokes) if s is not None]
        self._changed()

    def _changed(self) -> None:
        self.label = self.tool.label()
        for callback in list(self._callbacks):
            callback(self)


class RegionZoom(w.VBox):  # type: ignore[misc]
    """A regional result's crop (the region with its context), before and after, at the
    crop's own resolution: side by side, or a slider."""

    def __init__(self) -> None:
        self.canvas = _CompareCanvas(placeholder="")
        self.title = w.HTML("")
        super().__init__(children=[self.title, self.canvas])
        self.add_class("nbb-region-zoom")
        self.layout.display = "none"

    def show(self, result: Result | None) -> None:
        """Show ``result``'s zoom if it is a regional result; hide otherwise."""
        from ..region import RegionResult

        if not isinstance(result, RegionResult) or result.crop_before is None:
            self.layout.display = "none"
            return
        before, after = result.zoom()
        box = ",".join(str(v) for v in result.region.get("box", []))
        crop = result.region.get("crop", [])
        self.title.value = (
            f"<b>Region, zoomed</b> — box {box}, shown with its context "
            f"({after.width}×{after.height} px crop of the full-size result)"
        )
        with self.canvas.hold_sync():
            self.canvas.before = data_url(before, VIEW_SIDE)
            self.canvas.before_size = list(before.size)
            self.canvas.after = data_url(after, VIEW_SIDE)
            self.canvas.after_size = list(after.size)
            self.canvas.can_slide = can_slide(before.size, after.size)
            self.canvas.caption = f"crop {','.join(str(v) for v in crop)}"
        self.layout.display = ""

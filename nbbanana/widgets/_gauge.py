"""The size gauge: what an upload costs in bytes, tokens and dollars, as plain numbers.

The uploader widget shows, for every image and for the whole request, how the file
compares with the endpoint's budget *before* and *after* the fitting engine has done its
work. All of that arithmetic lives here, free of widgets, so it can be tested directly and
reused by anything that wants to explain a request (a CLI, a notebook cell).

Numbers come from the fitting engine (:class:`~nbbanana.fit.FittedImage`), the request
budget (:class:`~nbbanana.budget.RequestBudget`, which knows the exact JSON size the SDK
sends) and the model table (:mod:`nbbanana.models`, tokens and prices). Nothing here
decodes an image or talks to a server.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._format import format_usd
from ..models import ACCEPTED_MIME_TYPES, ModelInfo, get_model, text_tokens

if TYPE_CHECKING:
    from ..budget import RequestBudget
    from ..fit import FittedImage

__all__ = [
    "ACCEPTED_MIME_TYPES",
    "ImageGauge",
    "RequestGauge",
    "TurnGauge",
    "format_bytes",
    "format_usd",
    "image_gauge",
    "request_gauge",
    "resize_note",
    "scale_labels",
    "text_tokens",
    "turn_gauge",
]


def format_bytes(n: int | None) -> str:
    """Bytes in the decimal units the endpoints' limits use ("20 MB" means 20·10⁶ or less)."""
    if n is None:
        return "no limit"
    if n < 1000:
        return f"{n} B"
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        value = n / scale
        if value < 999.95 or unit == "GB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


@dataclass(frozen=True)
class ImageGauge:
    """One uploaded image: as it arrived and as the fitting engine will send it."""

    name: str
    raw_bytes: int
    raw_mime: str | None
    #: Bytes of a request carrying the file unchanged (base64 and JSON framing included);
    #: ``None`` when the API would not accept the format as it is (GIF, TIFF, BMP, ...).
    raw_request_bytes: int | None
    original_size: tuple[int, int]
    fitted_bytes: int
    fitted_mime: str
    fitted_size: tuple[int, int]
    quality: int | None
    passthrough: bool
    tokens: int
    #: Bytes of a request carrying just the fitted image (and the prompt).
    request_bytes: int
    cost_usd: float | None
    warnings: tuple[str, ...]
    #: Why an image that would have fitted unchanged was still made smaller ("" when
    #: it was not, or when it had to be).
    resize_note: str = ""

    def lines(self) -> list[str]:
        """The gauge in plain words, one fact per line."""
        (ow, oh), (fw, fh) = self.original_size, self.fitted_size
        as_is = (
            f"as is: {format_bytes(self.raw_request_bytes)} request after base64"
            if self.raw_request_bytes is not None
            else f"as is: {self.raw_mime or 'this format'} is not accepted by the API"
        )
        if self.passthrough:
            sent = f"sent unchanged: {fw}×{fh}, {format_bytes(self.fitted_bytes)}"
        else:
            quality = f", quality {self.quality}" if self.quality is not None else ""
            kind = self.fitted_mime.removeprefix("image/").upper()
            sent = f"fitted: {fw}×{fh} {kind}{quality}, {format_bytes(self.fitted_bytes)}"
        lines = [
            f"{ow}×{oh}, {format_bytes(self.raw_bytes)} uploaded",
            as_is,
            f"{sent} → {format_bytes(self.request_bytes)} request",
            f"≈{self.tokens:,} input tokens ({format_usd(self.cost_usd)})",
        ]
        if self.resize_note:
            lines.append(self.resize_note)
        return lines

    def short_lines(self) -> list[str]:
        """The gauge in two lines, for a thumbnail among many (the full lines go in
        its tooltip): what is sent, and what it costs in the request."""
        (ow, oh), (fw, fh) = self.original_size, self.fitted_size
        sent = f"{fw}×{fh} sent as is" if self.passthrough else f"{ow}×{oh} → {fw}×{fh}"
        return [
            sent,
            f"{format_bytes(self.request_bytes)} · ≈{self.tokens:,} tokens",
        ]

    def __str__(self) -> str:
        return "\n".join([self.name, *self.lines(), *(f"⚠ {w}" for w in self.warnings)])


@dataclass(frozen=True)
class RequestGauge:
    """The whole request: every image, the prompt, and the model's output."""

    model: str
    images: tuple[ImageGauge, ...]
    #: The endpoint's limit for the whole JSON body; ``None`` when it has none.
    limit: int | None
    #: Bytes of the JSON body with the fitted images the plan sends inline.
    request_bytes: int
    #: Bytes of the body if every file were sent unchanged (``None``: some format is refused).
    raw_request_bytes: int | None
    #: Per image: sent inline (``True``) or through the Files API (``False``).
    inline: tuple[bool, ...]
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    warnings: tuple[str, ...]

    @property
    def fraction(self) -> float:
        """How much of the limit the fitted request uses (0 when there is no limit)."""
        return self.request_bytes / self.limit if self.limit else 0.0

    @property
    def files_api_count(self) -> int:
        return sum(1 for inline in self.inline if not inline)

    @property
    def raw_fits(self) -> bool | None:
        """Whether the files would have fitted unchanged (``None``: no limit or unknown)."""
        if self.limit is None or self.raw_request_bytes is None:
            return None
        return self.raw_request_bytes <= self.limit

    def lines(self) -> list[str]:
        n = len(self.images)
        noun = "image" if n == 1 else "images"
        lines = []
        if self.raw_request_bytes is not None:
            verdict = {True: "fits", False: "too large", None: ""}[self.raw_fits]
            lines.append(
                f"{n} {noun} as uploaded: {format_bytes(self.raw_request_bytes)} request"
                + (f" ({verdict})" if verdict else "")
            )
        lines.append(
            f"fitted request: {format_bytes(self.request_bytes)} of "
            f"{format_bytes(self.limit)} budget" + (f" ({self.fraction:.0%})" if self.limit else "")
        )
        lines.append(
            f"≈{self.input_tokens:,} input + {self.output_tokens:,} output tokens ≈ "
            f"{format_usd(self.cost_usd)} on {self.model}"
        )
        return lines

    def __str__(self) -> str:
        """The gauge as ``print()`` shows it: every image, then the whole request."""
        parts = [str(image) for image in self.images]
        parts.append("\n".join([*self.lines(), *(f"⚠ {w}" for w in self.warnings)]))
        return "\n\n".join(parts)


def image_gauge(
    fitted: FittedImage,
    *,
    raw_bytes: int,
    raw_mime: str | None,
    model: str | ModelInfo,
    budget: RequestBudget,
    prompt: str = "",
    has_alpha: bool = False,
) -> ImageGauge:
    """The gauge of one image the fitting engine has fitted for ``model`` and ``budget``."""
    info = get_model(model)
    raw_request = (
        budget.request_bytes(prompt, [(raw_bytes, raw_mime)])
        if raw_mime in ACCEPTED_MIME_TYPES
        else None
    )
    report = fitted.report
    fits_as_is = raw_request is not None and (budget.limit is None or raw_request <= budget.limit)
    return ImageGauge(
        name=fitted.name,
        raw_bytes=raw_bytes,
        raw_mime=raw_mime,
        raw_request_bytes=raw_request,
        original_size=report.input_size,
        fitted_bytes=len(fitted.data),
        fitted_mime=fitted.mime,
        fitted_size=(fitted.width, fitted.height),
        quality=fitted.quality,
        passthrough=report.passthrough,
        tokens=fitted.tokens,
        request_bytes=budget.request_bytes(prompt, [(len(fitted.data), fitted.mime)]),
        cost_usd=info.cost_usd(input_tokens=fitted.tokens),
        warnings=plain_warnings(report.warnings, has_alpha=has_alpha, fitted_mime=fitted.mime),
        resize_note=resize_note(
            info, report.input_size, (fitted.width, fitted.height), fits_as_is=fits_as_is
        ),
    )


def resize_note(
    model: ModelInfo,
    original: tuple[int, int],
    sent: tuple[int, int],
    *,
    fits_as_is: bool,
) -> str:
    """Why a photo that would fit is still sent smaller: the resolution images are
    fitted to for the model, and what that saves (tokens, upload time)."""
    if not fits_as_is or max(sent) >= max(original):
        return ""
    saved = ""
    before, after = model.input_image_tokens(*original), model.input_image_tokens(*sent)
    if after < before:
        saved = f"≈{before - after:,} fewer input tokens and "
    return (
        f"why smaller although it fits: {max(sent)} px is the resolution images are fitted "
        f"to for {model.name} (it gains little from more pixels): {saved}a faster upload."
    )


@dataclass(frozen=True)
class TurnGauge:
    """What the next run sends when it continues a turn: that turn's image goes back
    to the model in the chat history (the uploads were sent with the first turn). When
    one of several images of the turn's answer was picked, the next run instead starts
    a new chat with that image as the one image sent."""

    turn: int
    model: str
    #: (width, height) of the turn's image, as the model made it.
    size: tuple[int, int]
    #: About how many bytes the chat history adds to the next request.
    history_bytes: int
    limit: int | None
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    #: ``(index from 0, how many)`` when one of several answer images was picked.
    picked: tuple[int, int] | None = None

    @property
    def title(self) -> str:
        if self.picked is not None:
            index, count = self.picked
            return f"Next request: image {index + 1} of {count} of turn {self.turn}"
        return f"Next request: turn {self.turn}'s image"

    @property
    def fraction(self) -> float:
        return self.history_bytes / self.limit if self.limit else 0.0

    def lines(self) -> list[str]:
        width, height = self.size
        budget = (
            f" of {format_bytes(self.limit)} budget ({self.fraction:.0%})" if self.limit else ""
        )
        if self.picked is not None:
            index, count = self.picked
            what = (
                f"next run edits image {index + 1} of {count} of turn {self.turn} "
                f"({width}×{height}, made by the model): a new chat starts from it "
                "alone (no chat history, no uploads)"
            )
        else:
            what = (
                f"next run edits turn {self.turn}'s image ({width}×{height}, made by the "
                "model); it goes back in the chat history, not the uploads"
            )
        return [
            what,
            f"request ≈{format_bytes(self.history_bytes)}{budget}",
            f"≈{self.input_tokens:,} input + {self.output_tokens:,} output tokens ≈ "
            f"{format_usd(self.cost_usd)} on {self.model}",
        ]


def turn_gauge(
    turn: int,
    *,
    size: tuple[int, int],
    history_bytes: int,
    history_tokens: int,
    model: str | ModelInfo,
    limit: int | None,
    prompt: str = "",
    image_size: str | None = None,
    picked: tuple[int, int] | None = None,
) -> TurnGauge:
    """The gauge of a run that continues turn ``turn`` of a chat (``picked``: from image
    ``picked[0]`` of ``picked[1]`` of its answer, in a new chat)."""
    info = get_model(model)
    input_tokens = history_tokens + text_tokens(prompt)
    output_tokens = info.output_image_tokens(image_size if image_size in info.image_sizes else None)
    return TurnGauge(
        turn=turn,
        model=info.id,
        size=size,
        history_bytes=history_bytes + len(prompt.encode("utf-8")),
        limit=limit,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=info.cost_usd(input_tokens=input_tokens, output_image_tokens=output_tokens),
        picked=picked,
    )


def scale_labels(used: int, limit: int | None) -> tuple[str, str, str]:
    """The labels under a budget bar: its start, what is used, and its end."""
    if not limit:
        return ("0", f"{format_bytes(used)} request", "no limit")
    return ("0", f"{format_bytes(used)} ({used / limit:.0%})", f"{format_bytes(limit)} budget")


def plain_warnings(
    warnings: Sequence[str], *, has_alpha: bool = False, fitted_mime: str = "image/png"
) -> tuple[str, ...]:
    """The fitting engine's warnings, plus what the gauge itself knows, without repeats.

    Transparency is lost when an image with a non-opaque alpha channel is sent as JPEG; the
    fitting engine may already say so, in which case its wording wins.
    """
    out: list[str] = []
    for warning in warnings:
        if warning and warning not in out:
            out.append(warning)
    mentions_alpha = any("alpha" in w.lower() or "transparen" in w.lower() for w in out)
    if has_alpha and fitted_mime == "image/jpeg" and not mentions_alpha:
        out.append("transparency dropped: sent as JPEG on a white background")
    return tuple(out)


def request_gauge(
    images: Sequence[tuple[FittedImage, ImageGauge]],
    *,
    model: str | ModelInfo,
    budget: RequestBudget,
    prompt: str = "",
    image_size: str | None = None,
) -> RequestGauge:
    """The gauge of a request carrying every fitted image, as the budget would plan it."""
    info = get_model(model)
    sizes = [(len(f.data), f.mime) for f, _ in images]
    plan = budget.plan(prompt, sizes)
    raw_known = all(g.raw_mime in ACCEPTED_MIME_TYPES for _, g in images)
    raw_request = (
        budget.request_bytes(prompt, [(g.raw_bytes, g.raw_mime or "") for _, g in images])
        if raw_known
        else None
    )
    input_tokens = sum(f.tokens for f, _ in images) + text_tokens(prompt)
    output_tokens = info.output_image_tokens(image_size if image_size in info.image_sizes else None)
    warnings: list[str] = []
    n = len(images)
    if n > info.max_reference_images:
        warnings.append(
            f"{info.name} accepts at most {info.max_reference_images} images per request: "
            f"remove {n - info.max_reference_images}."
        )
    elif n > info.recommended_reference_images:
        warnings.append(
            f"{info.name} works best with up to {info.recommended_reference_images} images."
        )
    offloaded = sum(1 for inline in plan.inline if not inline)
    if offloaded:
        warnings.append(
            f"{offloaded} {'image' if offloaded == 1 else 'images'} too large to send inline: "
            "the Files API will be used."
        )
    return RequestGauge(
        model=info.id,
        images=tuple(g for _, g in images),
        limit=budget.limit,
        request_bytes=plan.request_bytes,
        raw_request_bytes=raw_request,
        inline=tuple(plan.inline),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=info.cost_usd(input_tokens=input_tokens, output_image_tokens=output_tokens),
        warnings=tuple(warnings),
    )

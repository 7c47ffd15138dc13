"""Request options of the Gemini 3 image models, checked against the model table.

Pure functions, no I/O: :func:`check_request_options` refuses what a model is known not
to take (an ``image_size`` it does not offer, a thinking level it has no such setting for,
grounding on a model without it, more reference images than it accepts) before anything
is sent, and :func:`build_config` turns the checked options into the SDK's
``types.GenerateContentConfig``:

* ``image_config=types.ImageConfig(aspect_ratio=..., image_size=...)`` — sizes "512",
  "1K", "2K", "4K" (uppercase K; "2k" is accepted and corrected);
* ``thinking_config=types.ThinkingConfig(thinking_level=..., include_thoughts=...)``;
* ``tools=[types.Tool(google_search=types.GoogleSearch())]`` for grounding.

Models the table does not know are passed through: the server decides.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from google.genai import types

from .errors import InvalidRequest, TooManyReferenceImages
from .models import MODELS, ModelInfo

__all__ = [
    "RequestOptions",
    "build_config",
    "check_reference_count",
    "check_request_options",
    "normalise_image_size",
]


@dataclass(frozen=True)
class RequestOptions:
    """Checked, normalised options of one request."""

    aspect_ratio: str | None = None
    image_size: str | None = None
    #: "MINIMAL", "HIGH", … (uppercase, as ``types.ThinkingLevel``); ``None``: the default.
    thinking_level: str | None = None
    #: Ask for thought parts (text and interim images); ``None``: the model's default.
    include_thoughts: bool | None = None
    grounding: bool = False


def normalise_image_size(image_size: str | None) -> str | None:
    """ "2k" → "2K", " 512 " → "512": the API wants an uppercase K."""
    if image_size is None:
        return None
    size = str(image_size).strip()
    return size[:-1] + "K" if size.lower().endswith("k") else size


def _largest(info: ModelInfo) -> str:
    """The known models with the highest reference limit (for the refusal's advice)."""
    most = max(m.max_reference_images for m in MODELS.values())
    ids = [m.id for m in MODELS.values() if m.max_reference_images == most and m.known]
    return f"{', '.join(ids)} take up to {most}"


def check_reference_count(info: ModelInfo, count: int, *, stacklevel: int = 3) -> None:
    """Refuse more references than ``info`` accepts, with the model's guidance (objects vs
    people) in the message; warn above what it handles best."""
    if count > info.max_reference_images:
        guidance = f" ({info.reference_guidance})" if info.reference_guidance else ""
        most = max(m.max_reference_images for m in MODELS.values())
        advice = (
            f"Send fewer, or use a model that takes more ({_largest(info)})."
            if info.max_reference_images < most
            else "Send fewer, or combine some references into one image."
        )
        raise TooManyReferenceImages(
            f"{count} reference images, but {info.id} accepts at most "
            f"{info.max_reference_images} per request{guidance}. {advice}"
        )
    if count > info.recommended_reference_images:
        guidance = f": {info.reference_guidance}" if info.reference_guidance else ""
        warnings.warn(
            f"{count} reference images: {info.id} works best with up to "
            f"{info.recommended_reference_images}{guidance}.",
            UserWarning,
            stacklevel=stacklevel,
        )


def check_request_options(
    info: ModelInfo,
    *,
    aspect_ratio: str | None = None,
    image_size: str | None = None,
    thinking_level: str | None = None,
    include_thoughts: bool | None = None,
    grounding: bool = False,
    reference_count: int = 0,
) -> RequestOptions:
    """Normalise and check the options of a request to ``info``; raises
    :class:`~nbbanana.errors.InvalidRequest` (or :class:`TooManyReferenceImages`) with
    one line saying what to do, before anything is sent. More references than the model
    handles best only warns, with the model's guidance (objects vs people)."""
    image_size = normalise_image_size(image_size)
    level = thinking_level.strip().upper() if thinking_level is not None else None
    options = RequestOptions(aspect_ratio, image_size, level, include_thoughts, bool(grounding))
    check_reference_count(info, reference_count, stacklevel=4)
    if not info.known:
        return options  # the server decides
    if aspect_ratio is not None and aspect_ratio not in info.aspect_ratios:
        raise InvalidRequest(
            f"{info.id} does not support aspect_ratio={aspect_ratio!r}; use one of "
            f"{', '.join(info.aspect_ratios)} (or omit it)."
        )
    if image_size is not None and image_size not in info.image_sizes:
        choices = ", ".join(info.image_sizes) if info.image_sizes else "none: omit image_size"
        raise InvalidRequest(f"{info.id} does not support image_size={image_size!r} ({choices}).")
    if level is not None and level not in info.thinking_levels:
        if info.thinking_levels:
            hint = f"use one of {', '.join(info.thinking_levels)}"
        elif info.thinking:
            hint = "it always thinks and takes no level: omit thinking_level"
        else:
            hint = "it does not think: omit thinking_level"
        raise InvalidRequest(f"{info.id} takes no thinking_level={thinking_level!r}; {hint}.")
    if include_thoughts and not info.thinking:
        raise InvalidRequest(
            f"{info.id} does not think, so it has no thoughts to include; omit "
            "include_thoughts or use a thinking model (gemini-3-pro-image)."
        )
    if grounding and not info.grounding:
        with_search = ", ".join(m.id for m in MODELS.values() if m.grounding)
        raise InvalidRequest(
            f"{info.id} does not support Google Search grounding; omit grounding or use "
            f"{with_search}."
        )
    return options


def build_config(
    options: RequestOptions, *, want_image: bool = True
) -> types.GenerateContentConfig:
    """The SDK config for checked ``options`` (``want_image=False``: a text answer)."""
    thinking = None
    if options.thinking_level is not None or options.include_thoughts is not None:
        thinking = types.ThinkingConfig(
            thinking_level=types.ThinkingLevel(options.thinking_level)
            if options.thinking_level is not None
            else None,
            include_thoughts=options.include_thoughts,
        )
    tools: types.ToolListUnion | None = (
        [types.Tool(google_search=types.GoogleSearch())] if options.grounding else None
    )
    if not want_image:
        return types.GenerateContentConfig(
            response_modalities=["TEXT"], thinking_config=thinking, tools=tools
        )
    image_config = None
    if options.aspect_ratio is not None or options.image_size is not None:
        image_config = types.ImageConfig(
            aspect_ratio=options.aspect_ratio, image_size=options.image_size
        )
    return types.GenerateContentConfig(
        response_modalities=["TEXT", "IMAGE"],
        image_config=image_config,
        thinking_config=thinking,
        tools=tools,
    )

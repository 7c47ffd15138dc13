"""What a request asks for, apart from its prompt and images: :class:`RequestOptions`.

One frozen value per request. It is checked against the model's facts before anything
is sent (:meth:`RequestOptions.checked`), becomes the SDK's ``GenerateContentConfig``
(:meth:`RequestOptions.config`) and is recorded on the result (:meth:`RequestOptions.params`).
A new option is a field here plus a line in each of those three methods; the pipeline
passes options through without looking inside. :mod:`nbbanana.options` is the public,
pure-function face of the same checks.

The SDK forms of the Gemini 3 options:

* ``image_config=types.ImageConfig(aspect_ratio=..., image_size=...)`` — sizes "512",
  "1K", "2K", "4K" (uppercase K; "2k" is accepted and corrected);
* ``thinking_config=types.ThinkingConfig(thinking_level=..., include_thoughts=...)``;
* ``tools=[types.Tool(google_search=types.GoogleSearch())]`` for grounding.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import models
from ._types import RequestKind
from .errors import InvalidRequest, TooManyReferenceImages

if TYPE_CHECKING:
    # The SDK's types load on first request, not on ``import nbbanana``.
    from google.genai import types

    from .models import ModelInfo

__all__ = ["RequestOptions", "check_reference_count", "normalise_image_size"]


def normalise_image_size(image_size: str | None) -> str | None:
    """ "2k" → "2K", " 512 " → "512": the API wants an uppercase K."""
    if image_size is None:
        return None
    size = str(image_size).strip()
    return size[:-1] + "K" if size.lower().endswith("k") else size


def _largest() -> str:
    """The known models with the highest reference limit (for the refusal's advice)."""
    most = max(m.max_reference_images for m in models.MODELS.values())
    ids = [m.id for m in models.MODELS.values() if m.max_reference_images == most and m.known]
    return f"{', '.join(ids)} take up to {most}"


def check_reference_count(info: ModelInfo, count: int, *, stacklevel: int = 3) -> None:
    """Refuse more references than ``info`` accepts, with the model's guidance (objects vs
    people) in the message; warn above what it handles best."""
    if count > info.max_reference_images:
        guidance = f" ({info.reference_guidance})" if info.reference_guidance else ""
        most = max(m.max_reference_images for m in models.MODELS.values())
        advice = (
            f"Send fewer, or use a model that takes more ({_largest()})."
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


@dataclass(frozen=True)
class RequestOptions:
    """The options of one request. ``model=None`` means the session's model."""

    kind: RequestKind
    model: str | None = None
    aspect_ratio: str | None = None
    image_size: str | None = None
    #: "MINIMAL", "HIGH", … (uppercase, as ``types.ThinkingLevel``); ``None``: the default.
    thinking_level: str | None = None
    #: Ask for thought parts (text and interim images); ``None``: the model's default.
    include_thoughts: bool | None = None
    #: Google Search grounding (the result lists its sources).
    grounding: bool = False

    @property
    def want_image(self) -> bool:
        """Whether the answer must hold an image (``describe`` answers in text)."""
        return self.kind != "describe"

    def checked(self, info: ModelInfo) -> RequestOptions:
        """These options normalised (``"2k"`` → ``"2K"``, ``"high"`` → ``"HIGH"``) and
        checked against ``info``.

        Refuses values the model is known not to accept, before sending, with one line
        saying what to do. Models the table does not know are passed through: the server
        decides.
        """
        image_size = normalise_image_size(self.image_size)
        level = self.thinking_level.strip().upper() if self.thinking_level is not None else None
        checked = dataclasses.replace(
            self, model=info.id, image_size=image_size, thinking_level=level,
            grounding=bool(self.grounding),
        )  # fmt: skip
        if not info.known:
            return checked
        aspect_ratio = self.aspect_ratio
        if aspect_ratio is not None and aspect_ratio not in info.aspect_ratios:
            raise InvalidRequest(
                f"{info.id} does not support aspect_ratio={aspect_ratio!r}; use one of "
                f"{', '.join(info.aspect_ratios)} (or omit it)."
            )
        if image_size is not None and image_size not in info.image_sizes:
            choices = ", ".join(info.image_sizes) if info.image_sizes else "none: omit image_size"
            raise InvalidRequest(
                f"{info.id} does not support image_size={image_size!r} ({choices})."
            )
        if level is not None and level not in info.thinking_levels:
            if info.thinking_levels:
                hint = f"use one of {', '.join(info.thinking_levels)}"
            elif info.thinking:
                hint = "it always thinks and takes no level: omit thinking_level"
            else:
                hint = "it does not think: omit thinking_level"
            raise InvalidRequest(
                f"{info.id} takes no thinking_level={self.thinking_level!r}; {hint}."
            )
        if self.include_thoughts and not info.thinking:
            raise InvalidRequest(
                f"{info.id} does not think, so it has no thoughts to include; omit "
                "include_thoughts or use a thinking model (gemini-3-pro-image)."
            )
        if self.grounding and not info.grounding:
            with_search = ", ".join(m.id for m in models.MODELS.values() if m.grounding)
            raise InvalidRequest(
                f"{info.id} does not support Google Search grounding; omit grounding or use "
                f"{with_search}."
            )
        return checked

    def config(self) -> types.GenerateContentConfig:
        """The SDK config that asks for this."""
        # Imported here: the SDK loads on the first request, not on ``import nbbanana``.
        from google.genai import types

        thinking = None
        if self.thinking_level is not None or self.include_thoughts is not None:
            thinking = types.ThinkingConfig(
                thinking_level=types.ThinkingLevel(self.thinking_level)
                if self.thinking_level is not None
                else None,
                include_thoughts=self.include_thoughts,
            )
        tools: types.ToolListUnion | None = (
            [types.Tool(google_search=types.GoogleSearch())] if self.grounding else None
        )
        if not self.want_image:
            return types.GenerateContentConfig(
                response_modalities=["TEXT"], thinking_config=thinking, tools=tools
            )
        image_config = None
        if self.aspect_ratio is not None or self.image_size is not None:
            image_config = types.ImageConfig(
                aspect_ratio=self.aspect_ratio, image_size=self.image_size
            )
        return types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"],
            image_config=image_config,
            thinking_config=thinking,
            tools=tools,
        )

    def params(self, config: types.GenerateContentConfig) -> dict[str, Any]:
        """What the result records as its request parameters."""
        params: dict[str, Any] = {"kind": self.kind}
        if self.aspect_ratio is not None:
            params["aspect_ratio"] = self.aspect_ratio
        if self.image_size is not None:
            params["image_size"] = self.image_size
        if self.thinking_level is not None:
            params["thinking_level"] = self.thinking_level
        if self.include_thoughts is not None:
            params["include_thoughts"] = self.include_thoughts
        if self.grounding:
            params["grounding"] = True
        params["response_modalities"] = list(config.response_modalities or [])
        return params

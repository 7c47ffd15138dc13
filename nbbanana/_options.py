"""What a request asks for, apart from its prompt and images: :class:`RequestOptions`.

One frozen value per request. It is checked against the model's facts before anything
is sent (:meth:`RequestOptions.checked`), becomes the SDK's ``GenerateContentConfig``
(:meth:`RequestOptions.config`) and is recorded on the result (:meth:`RequestOptions.params`).
A new option is a field here plus a line in each of those three methods; the pipeline
passes options through without looking inside.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import models
from ._types import RequestKind
from .errors import InvalidRequest

if TYPE_CHECKING:
    # The SDK's types load on first request, not on ``import nbbanana``.
    from google.genai import types

    from .models import ModelInfo

__all__ = ["RequestOptions"]


@dataclass(frozen=True)
class RequestOptions:
    """The options of one request. ``model=None`` means the session's model."""

    kind: RequestKind
    model: str | None = None
    aspect_ratio: str | None = None
    image_size: str | None = None

    @property
    def want_image(self) -> bool:
        """Whether the answer must hold an image (``describe`` answers in text)."""
        return self.kind != "describe"

    def checked(self, info: ModelInfo) -> RequestOptions:
        """These options normalised (``"2k"`` → ``"2K"``) and checked against ``info``.

        Refuses values the model is known not to accept, before sending. Unknown models
        are passed through: the server decides.
        """
        image_size = self.image_size
        if image_size is not None:
            image_size = image_size.strip()
            if image_size.lower().endswith("k"):
                image_size = image_size[:-1] + "K"  # the API wants "2K", not "2k"
        aspect_ratio = self.aspect_ratio
        if info.id in models.MODELS:
            if aspect_ratio is not None and aspect_ratio not in info.aspect_ratios:
                raise InvalidRequest(
                    f"{info.id} does not support aspect_ratio={aspect_ratio!r}; use one of "
                    f"{', '.join(info.aspect_ratios)} (or omit it)."
                )
            if image_size is not None and image_size not in info.image_sizes:
                choices = (
                    ", ".join(info.image_sizes) if info.image_sizes else "none: omit image_size"
                )
                raise InvalidRequest(
                    f"{info.id} does not support image_size={image_size!r} ({choices})."
                )
        return dataclasses.replace(self, model=info.id, image_size=image_size)

    def config(self) -> types.GenerateContentConfig:
        """The SDK config that asks for this."""
        # Imported here: the SDK loads on the first request, not on ``import nbbanana``.
        from google.genai import types

        if not self.want_image:
            return types.GenerateContentConfig(response_modalities=["TEXT"])
        image_config = None
        if self.aspect_ratio is not None or self.image_size is not None:
            image_config = types.ImageConfig(
                aspect_ratio=self.aspect_ratio, image_size=self.image_size
            )
        return types.GenerateContentConfig(
            response_modalities=["TEXT", "IMAGE"], image_config=image_config
        )

    def params(self, config: types.GenerateContentConfig) -> dict[str, Any]:
        """What the result records as its request parameters."""
        params: dict[str, Any] = {"kind": self.kind}
        if self.aspect_ratio is not None:
            params["aspect_ratio"] = self.aspect_ratio
        if self.image_size is not None:
            params["image_size"] = self.image_size
        params["response_modalities"] = list(config.response_modalities or [])
        return params

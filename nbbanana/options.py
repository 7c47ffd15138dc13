"""Request options of the Gemini 3 image models, checked against the model table.

Pure functions, no I/O, over the one home of these checks
(:class:`nbbanana._options.RequestOptions`, which every session, chat and batch call
goes through): :func:`check_request_options` refuses what a model is known not to take
(an ``image_size`` it does not offer, a thinking level it has no such setting for,
grounding on a model without it, more reference images than it accepts) before anything
is sent, and :func:`build_config` turns the checked options into the SDK's
``types.GenerateContentConfig``. Models the table does not know are passed through: the
server decides.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ._options import RequestOptions, check_reference_count, normalise_image_size
from .models import ModelInfo

if TYPE_CHECKING:
    from google.genai import types

__all__ = [
    "RequestOptions",
    "build_config",
    "check_reference_count",
    "check_request_options",
    "normalise_image_size",
]


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
    check_reference_count(info, reference_count, stacklevel=3)
    options = RequestOptions(
        kind="edit" if reference_count else "generate",
        aspect_ratio=aspect_ratio,
        image_size=image_size,
        thinking_level=thinking_level,
        include_thoughts=include_thoughts,
        grounding=grounding,
    )
    return options.checked(info)


def build_config(
    options: RequestOptions, *, want_image: bool = True
) -> types.GenerateContentConfig:
    """The SDK config for checked ``options`` (``want_image=False``: a text answer)."""
    if not want_image:
        options = dataclasses.replace(options, kind="describe")
    return options.config()

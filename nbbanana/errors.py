"""Every error nbbanana raises, in one place.

Each message is one or two plain sentences: what went wrong and what to do about it.
Two families:

* :class:`ImageError` — the input image could not be loaded, normalised or fitted.
  Raised before anything is sent, so nothing is lost and no money is spent.
* :class:`APIError` — the service (or the offline emulator) refused or failed a request.
  The google-genai SDK's own error, when there was one, is kept as ``__cause__`` and on
  :attr:`APIError.sdk_error`.

API keys never appear in any message: :func:`redact` is applied to text that came from
outside before it is put into an exception.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "APIError",
    "AuthError",
    "Blocked",
    "CorruptImageError",
    "CostLimitExceeded",
    "DecompressionBombError",
    "DoesNotFitError",
    "EmptyImageError",
    "ImageError",
    "InvalidRequest",
    "ModelUnavailable",
    "NbbananaError",
    "NoImage",
    "RateLimited",
    "RequestTooLarge",
    "ServiceUnavailable",
    "TooManyReferenceImages",
    "UnsupportedImageError",
    "redact",
]

# Google API keys are 39 characters starting with "AIza"; anything that follows
# `key=` in a URL is a key too.
_KEY_PATTERNS = (
    re.compile(r"AIza[0-9A-Za-z_\-]{35}"),
    re.compile(r"(?<=[?&]key=)[^&\s\"']+"),
)


def redact(text: str, *secrets: str | None) -> str:
    """Return ``text`` with API keys (and any of ``secrets``) replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    for pattern in _KEY_PATTERNS:
        text = pattern.sub("***", text)
    return text


class NbbananaError(Exception):
    """Base class of every error nbbanana raises."""


# --------------------------------------------------------------------------- images


class ImageError(NbbananaError, ValueError):
    """An input image could not be used. The message says why and what to do."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        #: A short description of the input (file name or kind), never its content.
        self.source = source


class EmptyImageError(ImageError):
    """The input has no bytes (an empty file, or an upload that never arrived)."""


class CorruptImageError(ImageError):
    """The input is truncated or damaged and cannot be decoded."""


class UnsupportedImageError(ImageError):
    """The input is not a raster image format nbbanana can read (e.g. SVG, PDF)."""


class DecompressionBombError(ImageError):
    """The image declares more pixels than the configured limit; it was not decoded."""


class DoesNotFitError(ImageError):
    """Even a small version of the image cannot fit the request budget."""


# --------------------------------------------------------------------------- API


class APIError(NbbananaError):
    """A request was refused or failed.

    Attributes mirror google-genai's ``errors.APIError`` where one was raised.
    """

    #: What the user can do about it; appended to the message.
    hint: str = ""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: str | None = None,
        details: Any = None,
        sdk_error: BaseException | None = None,
    ) -> None:
        message = redact(message)
        full = (
            f"{message} {self.hint}".strip() if self.hint and self.hint not in message else message
        )
        super().__init__(full)
        self.message = message
        self.code = code
        self.status = status
        self.details = details
        self.sdk_error = sdk_error


class AuthError(APIError):
    """The API key is missing, invalid, or not allowed to use this model."""

    hint = (
        "Check GEMINI_API_KEY (or pass api_key=...), or call nbbanana.connect(offline=True) "
        "to use the offline emulator."
    )


class RateLimited(APIError):
    """429 RESOURCE_EXHAUSTED after the configured retries."""

    hint = "Wait and try again, lower the batch concurrency/rpm, or check your quota."

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: Seconds the server asked to wait (from ``RetryInfo``), when it said.
        self.retry_after = retry_after


class RequestTooLarge(APIError):
    """The server refused the request body as too large."""

    hint = (
        "nbbanana has learned this endpoint's limit; fit the images again (or use the Files API)."
    )

    def __init__(self, message: str, *, limit_bytes: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: The limit the server named in its message, when it named one.
        self.limit_bytes = limit_bytes


class InvalidRequest(APIError):
    """400 INVALID_ARGUMENT / 404 NOT_FOUND: the request itself is wrong."""


class ModelUnavailable(InvalidRequest):
    """The model id is retired, or the service does not serve it (404 NOT_FOUND)."""

    def __init__(self, message: str, *, successor: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: The id to use instead, when one is known.
        self.successor = successor


class TooManyReferenceImages(InvalidRequest):
    """More reference images than the model accepts; raised before sending."""


class ServiceUnavailable(APIError):
    """5xx or a timeout after the configured retries."""

    hint = "The service is busy or down: try again in a minute."


class Blocked(APIError):
    """The prompt or the output was blocked by safety filters."""

    hint = "Rephrase the prompt or use different input images."

    def __init__(self, message: str, *, reason: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        #: ``promptFeedback.blockReason`` or the candidate's ``finishReason``.
        self.reason = reason


class NoImage(APIError):
    """The model answered, but with text only (no image)."""

    hint = "Ask explicitly for an image (e.g. 'Generate an image of ...') or try again."

    def __init__(
        self,
        message: str,
        *,
        text: str = "",
        finish_reason: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        #: What the model said instead.
        self.text = text
        self.finish_reason = finish_reason


class CostLimitExceeded(NbbananaError):
    """The call would take the session past its ``max_cost_usd``; nothing was sent."""

    def __init__(self, message: str, *, estimate_usd: float, spent_usd: float, cap_usd: float):
        super().__init__(message)
        self.estimate_usd = estimate_usd
        self.spent_usd = spent_usd
        self.cap_usd = cap_usd

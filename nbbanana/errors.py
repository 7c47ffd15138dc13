"""Every error nbbanana raises, in one place.

Each message is one or two plain sentences: what went wrong and what to do about it.
Two families:

* :class:`ImageError` — the input image could not be loaded, normalised or fitted.
  Raised before anything is sent, so nothing is lost and no money is spent.
* :class:`APIError` — the service (or the offline emulator) refused or failed a request.
  The google-genai SDK's own error, when there was one, is kept as ``__cause__`` and on
  :attr:`APIError.sdk_error`.

API keys never appear in any message: :func:`redact` is applied to text that came from
outside before it is put into an exception. Nor are they carried by any other route
(``repr``, ``__dict__``, ``pickle``, ``copy``): the SDK error attached to an
:class:`APIError` is stripped of the HTTP request and response objects it held (the
request's headers carry the key, its URL may carry ``?key=``), see :func:`scrub_exception`.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

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
    "scrub_exception",
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


# Attributes of the SDK's and httpx2's exceptions that hold an HTTP request or response
# (google.genai.errors.APIError.response, httpx2.RequestError._request,
# httpx2.HTTPStatusError.request/.response): a request carries the key in its headers.
_TRANSPORT_ATTRIBUTES = ("response", "request", "_request", "_response")
# Only exceptions of these packages are changed: an exception of the caller's own that
# happens to be in the chain (raised in an ``except`` block) is not ours to touch.
_SCRUBBED_PACKAGES = ("google.", "httpx", "httpcore", "aiohttp", "requests", "urllib3", "nbbanana")

_T = TypeVar("_T")


def _redacted(value: _T, secrets: tuple[str | None, ...]) -> _T:
    """``value`` with every string in it (also inside dicts, lists, tuples) redacted."""
    result: Any = value
    if isinstance(value, str):
        result = redact(value, *secrets)
    elif isinstance(value, dict):
        result = {k: _redacted(v, secrets) for k, v in value.items()}
    elif isinstance(value, list):
        result = [_redacted(v, secrets) for v in value]
    elif isinstance(value, tuple) and type(value) is tuple:
        result = tuple(_redacted(v, secrets) for v in value)
    return result  # type: ignore[no-any-return]


def scrub_exception(exc: BaseException | None, *secrets: str | None) -> None:
    """Make ``exc`` and every exception chained to it (of the SDK, its HTTP libraries
    and nbbanana) carry no key, in place.

    Drops the HTTP request and response objects they hold (nothing needs them once the
    error is mapped; the status, message and details stay), and redacts API keys (and
    ``secrets``) from their ``args`` and attributes. Idempotent.
    """
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        pending += [current.__cause__, current.__context__]
        state = getattr(current, "__dict__", None)
        if state is None or not type(current).__module__.startswith(_SCRUBBED_PACKAGES):
            continue
        for name in _TRANSPORT_ATTRIBUTES:
            if state.get(name) is not None:
                state[name] = None
        for name, value in list(state.items()):
            if isinstance(value, BaseException):
                pending.append(value)
            else:
                state[name] = _redacted(value, secrets)
        current.args = _redacted(current.args, secrets)


class NbbananaError(Exception):
    """Base class of every error nbbanana raises.

    The advice for each error lives on it and nowhere else: :attr:`message` says what
    went wrong, :attr:`hint` what to do. Views (the studio) show those two.

    Pickles (and copies) with all its attributes, keyword-only ones included, and never
    with a key: the state is scrubbed again on the way out.
    """

    #: What the user can do about it. Service errors (:class:`APIError`) and
    #: :class:`CostLimitExceeded` end their text with it; an :class:`ImageError`'s
    #: text already says what to do with that image, and its hint is the general advice.
    hint: str = ""
    #: Whether ``str(error)`` ends with the hint.
    _hint_in_text = True

    def __init__(self, message: str = "") -> None:
        super().__init__(_with_hint(message, self.hint) if self._hint_in_text else message)
        #: What went wrong (without the hint).
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        state = dict(vars(self))
        for value in state.values():
            if isinstance(value, BaseException):
                scrub_exception(value)
        return (_rebuild, (type(self), _redacted(self.args, ()), _redacted(state, ())))


def _rebuild(
    cls: type[NbbananaError], args: tuple[Any, ...], state: dict[str, Any]
) -> NbbananaError:
    """Unpickle without calling ``__init__`` (whose keyword-only arguments are in
    ``state``, not ``args``)."""
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


# --------------------------------------------------------------------------- images


class ImageError(NbbananaError, ValueError):
    """An input image could not be used. The message says why and what to do."""

    hint = "Choose another image, or save this one again as JPEG or PNG."
    _hint_in_text = False

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

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status: str | None = None,
        details: Any = None,
        sdk_error: BaseException | None = None,
    ) -> None:
        super().__init__(redact(message))
        self.code = code
        self.status = status
        self.details = _redacted(details, ())
        scrub_exception(sdk_error)
        #: The SDK's (or httpx2's) error, without the request and response it held.
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
        #: Seconds the server asked to wait (from ``RetryInfo``), when it said.
        self.retry_after = retry_after
        if retry_after:
            self.hint = self.hint.replace("Wait", f"Wait {retry_after:g} s", 1)
        super().__init__(message, **kwargs)


class RequestTooLarge(APIError):
    """The server refused the request body as too large."""

    hint = "Run again: nbbanana has learned this endpoint's limit and fits the images to it."

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

    hint = "Connect with a higher max_cost_usd to continue."

    def __init__(self, message: str, *, estimate_usd: float, spent_usd: float, cap_usd: float):
        super().__init__(message)
        self.estimate_usd = estimate_usd
        self.spent_usd = spent_usd
        self.cap_usd = cap_usd


def _with_hint(message: str, hint: str) -> str:
    return f"{message} {hint}".strip() if hint and hint not in message else message

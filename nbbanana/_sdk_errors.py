"""Translate what the google-genai SDK raises or returns into nbbanana's errors.

Two sources of failure:

* the SDK raises — ``google.genai.errors.ClientError`` (4xx) / ``ServerError`` (5xx),
  or an ``httpx2`` timeout / connection error once its retries are spent:
  :func:`error_from_exception` maps them to :class:`~nbbanana.errors.AuthError`,
  :class:`~nbbanana.errors.RateLimited`, :class:`~nbbanana.errors.RequestTooLarge`,
  :class:`~nbbanana.errors.InvalidRequest` or :class:`~nbbanana.errors.ServiceUnavailable`;
* the response is a 200 without an image — :func:`error_from_response` says whether it
  was :class:`~nbbanana.errors.Blocked` (prompt feedback or a safety finish reason) or
  :class:`~nbbanana.errors.NoImage` (text only).

It also holds the retry tweak that makes the SDK honour the server's ``RetryInfo``
delay (:func:`honour_retry_info`). Every message goes through
:func:`~nbbanana.errors.redact` so an API key never leaks into an exception.
"""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Sequence
from typing import Any

import httpx2
import tenacity
from google.genai import errors as genai_errors
from google.genai import types

from . import models
from .errors import (
    APIError,
    AuthError,
    Blocked,
    InvalidRequest,
    NbbananaError,
    NoImage,
    RateLimited,
    RequestTooLarge,
    ServiceUnavailable,
    redact,
    scrub_exception,
)

__all__ = [
    "BLOCKING_FINISH_REASONS",
    "error_from_exception",
    "error_from_response",
    "honour_retry_info",
    "retry_delay_seconds",
]

#: Finish reasons that mean a safety or policy filter stopped the answer.
BLOCKING_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "IMAGE_SAFETY",
        "PROHIBITED_CONTENT",
        "IMAGE_PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_RECITATION",
    }
)

_TOO_LARGE_WORDS = re.compile(r"exceed|too large|too big|payload", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


# --------------------------------------------------------------------------- exceptions


def error_from_exception(exc: BaseException, *secrets: str | None) -> NbbananaError | None:
    """The nbbanana error for an exception the SDK raised, or ``None`` if it is not one
    of the SDK's request failures (then the caller lets it propagate unchanged).

    The caller raises the returned error ``from exc`` so the SDK's error stays the
    ``__cause__``; it is also kept on ``sdk_error``. Either way it no longer holds the
    request (whose headers carry the key) or the response: they are dropped here, after
    the mapping has read what it needs (a ``Retry-After`` header).
    """
    mapped = _map_exception(exc, secrets)
    if mapped is not None:
        scrub_exception(exc, *secrets)
    return mapped


def _map_exception(exc: BaseException, secrets: tuple[str | None, ...]) -> NbbananaError | None:
    if isinstance(exc, genai_errors.APIError):
        return _from_api_error(exc, secrets)
    if isinstance(exc, httpx2.TimeoutException):
        return ServiceUnavailable(
            "The request timed out (after the configured retries). Image generation can "
            "take a minute: pass a larger timeout= to nbbanana.connect() or try again later.",
            status="DEADLINE_EXCEEDED",
            sdk_error=exc,
        )
    if isinstance(exc, httpx2.TransportError):
        return ServiceUnavailable(
            f"Could not reach the service ({type(exc).__name__}: "
            f"{redact(str(exc), *secrets) or 'connection failed'}). Check the network and "
            "base_url, then try again.",
            sdk_error=exc,
        )
    return None


def _from_api_error(exc: genai_errors.APIError, secrets: tuple[str | None, ...]) -> APIError:
    code = exc.code
    status = exc.status or ""
    message = redact(str(exc.message or status or "no message"), *secrets)
    details = _error_details(exc)
    common: dict[str, Any] = {"code": code, "status": status, "details": details, "sdk_error": exc}
    reasons = {str(d.get("reason", "")) for d in details if isinstance(d, dict)}

    if code in (401, 403) or "API_KEY_INVALID" in reasons or "API key not valid" in message:
        return AuthError(f"The API key was refused ({code} {status}: {message}).", **common)
    if code == 429:
        delay = retry_delay_seconds(exc)
        wait = f" The server asked to wait {delay:g} s." if delay is not None else ""
        return RateLimited(
            f"Rate limit or quota exceeded ({code} {status}: {message}).{wait}",
            retry_after=delay,
            **common,
        )
    limit = models.parse_limit_from_message(message)
    if code == 413 or (code == 400 and limit is not None and _TOO_LARGE_WORDS.search(message)):
        return RequestTooLarge(
            f"The server refused the request as too large ({code}: {message}).",
            limit_bytes=limit,
            **common,
        )
    if code == 408 or code >= 500:
        return ServiceUnavailable(
            f"The service failed ({code} {status}: {message}) after the configured retries.",
            **common,
        )
    if code == 404:
        return InvalidRequest(
            f"Not found ({code} {status}: {message}). Check the model id "
            "(nbbanana.models.MODELS lists the known ones).",
            **common,
        )
    return InvalidRequest(
        f"The request was refused ({code} {status}: {message}). Check the prompt, images "
        "and parameters named in the message.",
        **common,
    )


def _error_details(exc: genai_errors.APIError) -> list[Any]:
    """The ``error.details`` list of a google.rpc.Status body (empty when absent)."""
    body = exc.details
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("details"), list):
            return list(inner["details"])
    return []


def retry_delay_seconds(exc: BaseException | None) -> float | None:
    """The delay the server asked for: ``RetryInfo.retryDelay`` ("37s", "0.5s") in the
    error details, else a ``Retry-After`` header (seconds or an HTTP date)."""
    if not isinstance(exc, genai_errors.APIError):
        return None
    for detail in _error_details(exc):
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = detail.get("retryDelay")
            if isinstance(delay, dict):  # {"seconds": 37, "nanos": 0}
                return float(delay.get("seconds", 0)) + float(delay.get("nanos", 0)) / 1e9
            if isinstance(delay, str) and (m := _DURATION.match(delay)):
                return float(m.group(1))
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time()) if when else None
    return None


# --------------------------------------------------------------------------- retries


class _WaitHonouringRetryInfo(tenacity.wait.wait_base):
    """Wait what the server asked for (``RetryInfo``), else the SDK's backoff.

    google-genai 3.6.1 retries with ``tenacity.wait_exponential_jitter`` and ignores
    ``RetryInfo``; a 429 that says "retry in 37 s" would be retried after ~1 s, 2 s, 4 s
    and fail. This wait reads the delay from the failed attempt's error.
    """

    def __init__(self, fallback: Any, max_delay: float) -> None:
        self.fallback = fallback
        self.max_delay = max_delay

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        delay = retry_delay_seconds(outcome.exception() if outcome is not None else None)
        if delay is None:
            return float(self.fallback(retry_state))
        return min(delay, self.max_delay)


class _StopWhenAskedToWaitTooLong(tenacity.stop.stop_base):
    """Stop retrying when the server asks for a longer wait than ``max_delay``: blocking
    a notebook for minutes helps nobody, and :class:`RateLimited` then tells the user
    how long to wait (``retry_after``)."""

    def __init__(self, max_delay: float) -> None:
        self.max_delay = max_delay

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        outcome = retry_state.outcome
        delay = retry_delay_seconds(outcome.exception() if outcome is not None else None)
        return delay is not None and delay > self.max_delay


def honour_retry_info(client: Any, options: types.HttpRetryOptions) -> bool:
    """Make ``client`` (a ``genai.Client``) honour the server's retry delay.

    The SDK builds one ``tenacity.Retrying`` and one ``AsyncRetrying`` per client from
    ``HttpRetryOptions`` (status codes, attempts, backoff) and keeps them on its API
    client. We keep the SDK's retry predicate and attempt limit and swap only the wait
    (and add a stop for delays beyond ``max_delay``). Returns False — and the SDK's
    plain backoff stays in force — if a future SDK no longer has those attributes.
    """
    api_client = getattr(client, "_api_client", None)
    max_delay = options.max_delay if options.max_delay is not None else 60.0
    done = False
    for name in ("_retry", "_async_retry"):
        retrying = getattr(api_client, name, None)
        if isinstance(retrying, tenacity.BaseRetrying):
            retrying.wait = _WaitHonouringRetryInfo(retrying.wait, max_delay)
            sdk_stop = retrying.stop
            too_long = _StopWhenAskedToWaitTooLong(max_delay)
            retrying.stop = lambda state, sdk_stop=sdk_stop, too_long=too_long: (
                sdk_stop(state) or too_long(state)
            )
            done = True
    return done


# --------------------------------------------------------------------------- responses


def error_from_response(
    response: types.GenerateContentResponse, *, want_image: bool, secrets: Sequence[str] = ()
) -> APIError | None:
    """:class:`Blocked` or :class:`NoImage` for a 200 answer that holds no usable image,
    else ``None``. ``want_image=False`` (describe) only checks for blocking."""
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        reason = _enum_text(feedback.block_reason)
        said = redact(feedback.block_reason_message or "", *secrets)
        extra = f" {said}" if said else ""
        return Blocked(f"The prompt was blocked ({reason}).{extra}", reason=reason)
    candidates = response.candidates or []
    if not candidates:
        return NoImage("The model returned no candidates.", text="", finish_reason=None)
    candidate = candidates[0]
    finish = _enum_text(candidate.finish_reason) if candidate.finish_reason is not None else None
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    if finish in BLOCKING_FINISH_REASONS:
        return Blocked(f"The answer was blocked (finishReason {finish}).", reason=finish)
    if not want_image:
        return None
    has_image = any(
        p.inline_data is not None and p.inline_data.data and not p.thought for p in parts
    )
    if has_image:
        return None
    text = redact("".join(p.text for p in parts if p.text and not p.thought), *secrets)
    said = f' It said: "{_shorten(text)}"' if text else ""
    return NoImage(
        f"The model answered without an image (finishReason {finish}).{said}",
        text=text,
        finish_reason=finish,
    )


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value))


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""The Gemini backend: the :class:`~nbbanana._backend.Backend` over ``google-genai``.

This is also the one module that leans on the SDK's private parts, so that an upgrade of
``google-genai`` touches this file and ``tests/test_gemini.py`` only:

* **byte accounting** — :func:`body_bytes` runs the SDK's own request conversion
  (``models._GenerateContentParameters_to_mldev`` on a ``BaseApiClient`` that never
  sends) on a request whose images are empty, and serialises it as the SDK does
  (``json.dumps`` with its defaults: ``", "``/``": "`` separators and ``ensure_ascii``,
  so non-ASCII prompt text counts as ``\\uXXXX`` escapes). Only the image bytes are left
  out, so the figure stays cheap for a 100 MB request and follows the installed SDK when
  its framing changes;
* **retries** — :func:`honour_retry_info` swaps the wait of the ``tenacity`` retriers the
  SDK keeps on its API client for one that honours the server's ``RetryInfo`` delay;
* **errors** — :func:`error_from_exception` unpacks ``google.genai.errors.APIError``
  (its ``details`` body) and ``httpx2`` transport errors into :mod:`nbbanana.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import io
import json
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import httpx2
import tenacity
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from . import models
from ._backend import BackendRequest, UploadRequest
from ._hosted import HostedImageError, ImageFetcher, lift_text_images
from .errors import (
    APIError,
    AuthError,
    InvalidRequest,
    NbbananaError,
    RateLimited,
    RequestTooLarge,
    ServiceUnavailable,
    redact,
    scrub_exception,
)

if TYPE_CHECKING:
    from .discovery import Catalogue

__all__ = [
    "GeminiBackend",
    "body_bytes",
    "error_from_exception",
    "honour_retry_info",
    "retry_delay_seconds",
]

_TOO_LARGE_WORDS = re.compile(r"exceed|too large|too big|payload", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class GeminiBackend:
    """Gemini's ``generateContent`` (Google, a Gemini-compatible proxy or the emulator)
    through a ``genai.Client``. ``secrets`` are redacted from every error message."""

    name = "gemini"

    def __init__(
        self,
        client: genai.Client,
        *,
        secrets: Sequence[str] = (),
        base_url: str = "https://generativelanguage.googleapis.com",
    ) -> None:
        self.client = client
        self._secrets = tuple(secrets)
        #: The key discovery caches this endpoint's model listing under.
        self.base_url = base_url.rstrip("/")
        # Some relays return the image inside a text part (a data URL or a hosted URL).
        self._fetch = ImageFetcher()

    def __repr__(self) -> str:
        return "<nbbanana GeminiBackend>"

    @property
    def files_api(self) -> bool:
        return True  # whether the endpoint offers it is the endpoint profile's to say

    def generate(self, request: BackendRequest) -> types.GenerateContentResponse:
        response = self.client.models.generate_content(
            model=request.model, contents=_contents(request), config=request.config
        )
        return lift_text_images(response, self._fetch)

    async def agenerate(self, request: BackendRequest) -> types.GenerateContentResponse:
        response = await self.client.aio.models.generate_content(
            model=request.model, contents=_contents(request), config=request.config
        )
        return await asyncio.to_thread(lift_text_images, response, self._fetch)

    def generate_stream(self, request: BackendRequest) -> Iterator[types.GenerateContentResponse]:
        for chunk in self.client.models.generate_content_stream(
            model=request.model, contents=_contents(request), config=request.config
        ):
            yield lift_text_images(chunk, self._fetch)

    async def agenerate_stream(
        self, request: BackendRequest
    ) -> AsyncIterator[types.GenerateContentResponse]:
        stream = await self.client.aio.models.generate_content_stream(
            model=request.model, contents=_contents(request), config=request.config
        )
        async for chunk in stream:
            yield await asyncio.to_thread(lift_text_images, chunk, self._fetch)

    def upload(self, upload: UploadRequest) -> types.Part:
        uploaded = self.client.files.upload(
            file=io.BytesIO(upload.data),
            config=types.UploadFileConfig(mime_type=upload.mime, display_name=upload.name),
        )
        return _file_part(uploaded, upload)

    async def aupload(self, upload: UploadRequest) -> types.Part:
        uploaded = await self.client.aio.files.upload(
            file=io.BytesIO(upload.data),
            config=types.UploadFileConfig(mime_type=upload.mime, display_name=upload.name),
        )
        return _file_part(uploaded, upload)

    def body_bytes(
        self,
        model: str,
        contents: Sequence[types.Content],
        config: types.GenerateContentConfig | None,
    ) -> int:
        return body_bytes(model, contents, config)

    def map_error(self, exc: BaseException) -> NbbananaError | None:
        mapped = error_from_exception(exc, *self._secrets)
        # A 404 for a model: say what this endpoint serves (and the successor of a
        # retired id) instead of the service's bare "not found".
        if isinstance(mapped, InvalidRequest) and mapped.code == 404:
            found = re.search(r"models/([^\s]+) is not found", mapped.message)
            if found is not None:
                # Imported here: discovery is needed only for this error.
                from .discovery import not_found_error

                with contextlib.suppress(Exception):  # listing failed: keep the plain 404
                    return not_found_error(found.group(1), self.models(), cause=exc)
        return mapped

    def models(self, *, refresh: bool = False) -> Catalogue:
        """The image models this endpoint serves (``models.list``, cached for a day),
        merged with nbbanana's table."""
        # Imported here: discovery (and its disk cache) is needed only when asked.
        from .discovery import discover

        return discover(self.client, self.base_url, refresh=refresh)

    def close(self) -> None:
        self.client.close()
        self._fetch.close()


def _contents(request: BackendRequest) -> list[types.Content]:
    return list(request.contents)


def _file_part(uploaded: types.File, upload: UploadRequest) -> types.Part:
    if not uploaded.uri:
        raise APIError("The Files API upload returned no URI; try again.")
    return types.Part.from_uri(file_uri=uploaded.uri, mime_type=uploaded.mime_type or upload.mime)


# --------------------------------------------------------------------------- bytes


@functools.lru_cache(maxsize=1)
def _sizing_client() -> Any:
    """An SDK client used only to run its request converters (never sends anything)."""
    from google.genai import _api_client  # private: see the module docstring

    return _api_client.BaseApiClient(api_key="request-size-only")


def body_bytes(
    model: str,
    contents: Sequence[types.Content],
    config: types.GenerateContentConfig | None,
) -> int:
    """Bytes of the JSON body ``client.models.generate_content`` sends for ``contents``
    and ``config`` (the model goes in the URL, not the body), as the SDK builds it."""
    # Private SDK modules (see the module docstring), loaded with the first count.
    from google.genai import _common
    from google.genai import models as genai_models

    del model  # Gemini names the model in the URL, not in the body
    params = types._GenerateContentParameters(contents=list(contents), config=config)
    request = genai_models._GenerateContentParameters_to_mldev(
        _sizing_client(), params, None, params
    )
    request.pop("config", None)
    for key in [k for k in request if k.startswith("_")]:
        del request[key]
    body = _common.encode_unserializable_types(_common.convert_to_dict(request))
    return len(json.dumps(body))


# --------------------------------------------------------------------------- errors


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
    if isinstance(exc, HostedImageError):
        return ServiceUnavailable(
            f"{redact(str(exc), *secrets)} The relay answered with an image link that could "
            "not be used: try again.",
            sdk_error=exc,
        )
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
        return RateLimited(
            f"Rate limit or quota exceeded ({code} {status}: {message}).",
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

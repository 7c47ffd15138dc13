"""Wiring a connection: :func:`connect` picks the key, the endpoint and its profile, and
builds the Gemini backend (a ``genai.Client`` with nbbanana's retry and time-out
defaults) under a :class:`~nbbanana.session.Session`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from urllib.parse import urlsplit

from google import genai
from google.genai import types

from . import _state, models
from ._gemini import honour_retry_info
from .errors import AuthError, InvalidRequest
from .models import EndpointProfile, get_profile
from .session import GOOGLE_BASE_URL, Session

__all__ = ["DEFAULT_RETRY", "DEFAULT_TIMEOUT_S", "connect"]

#: Retries for 408/429/5xx, time-outs and connections that could not be made: 4
#: attempts with about 1 s, 2 s, 4 s (± jitter) between them, or what the server's
#: RetryInfo asks for (up to 30 s; a longer ask ends the retries with
#: RateLimited.retry_after set). A connection dropped mid-answer is not retried (the SDK
#: does not, and the call may already have run and been billed): it is
#: ServiceUnavailable at once.
DEFAULT_RETRY = types.HttpRetryOptions(
    attempts=4,
    initial_delay=1.0,
    max_delay=30.0,
    exp_base=2.0,
    jitter=1.0,
    http_status_codes=[408, 429, 500, 502, 503, 504],
)

#: Seconds one HTTP attempt may take. A 4K image from the Pro model can take over a
#: minute; five minutes leaves room without hanging a notebook forever.
DEFAULT_TIMEOUT_S = 300.0

#: The listing that picks the default model at connect: one attempt, ten seconds. It is
#: a convenience (the table's default stands in), so a laptop with no network must not
#: wait through the retries' back-off (about 8 s) before it can start.
_QUICK_LISTING = types.HttpOptions(timeout=10_000, retry_options=types.HttpRetryOptions(attempts=1))

_OFFLINE_NOTE = (
    "nbbanana: OFFLINE session - requests go to the built-in Gemini emulator, not to Google; "
    "images are synthetic and marked 'offline emulator'. Set GEMINI_API_KEY (or pass "
    "api_key=...) to use Gemini."
)


def connect(
    api_key: str | None = None,
    *,
    model: str | None = None,
    base_url: str | None = None,
    offline: bool | None = None,
    max_cost_usd: float | None = None,
    endpoint: str | EndpointProfile | None = None,
    retry: types.HttpRetryOptions | None = None,
    timeout: float | None = DEFAULT_TIMEOUT_S,
    api: str = "gemini",
    price_per_image: float | None = None,
) -> Session:
    """Open a session with Gemini, a Gemini-compatible proxy, or the offline emulator.

    * ``api_key`` — else ``GEMINI_API_KEY``, else ``GOOGLE_API_KEY``. With none (or
      ``offline=True``) the session uses the in-process emulator and says so once.
    * ``model`` — an id or alias (``nano-banana-pro`` …). Default: the first of
      :data:`nbbanana.models.DEFAULT_PREFERENCE` the endpoint serves (with a key, asked
      once with ``models.list`` and cached for a day; offline, the table's).
    * ``base_url`` — a proxy or a running ``nbbanana emulator``. Without a key, the
      emulator's offline key is sent (a real proxy then answers with an auth error).
    * ``endpoint`` — the endpoint profile whose byte limits requests are fitted to
      (:data:`nbbanana.models.PROFILES`). Default: ``"gemini"`` for Google and the offline
      emulator; for any other ``base_url``, the conservative ``"proxy-20mb"`` (20 MB per
      request, no Files API) — a server that refuses less teaches its real limit.
    * ``max_cost_usd`` — refuse any call that could take :attr:`Session.spent` past it
      (and any call to a model whose price is unknown).
    * ``price_per_image`` — USD one output image of the session's model costs, for this
      session only (a gateway's price, or a model nbbanana's table does not know);
      without it an unknown price shows as unknown, never as a made-up number.
      :func:`nbbanana.models.set_price` sets a price for every session instead.
    * ``retry`` — ``types.HttpRetryOptions``; default :data:`DEFAULT_RETRY`.
      ``types.HttpRetryOptions(attempts=1)`` turns retries off.
    * ``timeout`` — seconds per HTTP attempt (``None``: the SDK's default).
    * ``api="openai"`` — an OpenAI-compatible gateway at ``base_url`` (``…/v1``) through
      the ``openai`` SDK; the key is ``api_key`` or ``OPENAI_API_KEY``, ``model`` as the
      gateway names it (see :func:`nbbanana._openai.connect_openai`).
    """
    if api == "openai":
        if offline or base_url is None:
            raise InvalidRequest("api='openai' needs base_url=, the gateway's URL ending in /v1.")
        from ._openai import connect_openai  # loads the openai SDK only for gateways

        return connect_openai(base_url, api_key, model=model or models.DEFAULT_MODEL,
                              endpoint=endpoint, max_cost_usd=max_cost_usd, retry=retry,
                              timeout=timeout, price_per_image=price_per_image)  # fmt: skip
    if api != "gemini":
        raise InvalidRequest(f"api must be 'gemini' or 'openai', not {api!r}.")
    key = api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
    if offline is None:
        offline = not key and base_url is None
    emulator_profile: EndpointProfile | None = None
    if offline:
        if base_url is not None:
            raise InvalidRequest(
                "offline=True uses the built-in emulator, so base_url cannot be set too. "
                "To use an emulator you started yourself, pass only base_url=."
            )
        # Imported only offline: the emulator's server stack is not needed otherwise.
        from .emulator import OFFLINE_API_KEY, shared_emulator

        emulator = shared_emulator()
        base_url = emulator.base_url
        key = OFFLINE_API_KEY
        # Fit to what the emulator enforces (its profile, with its own request limit).
        emulator_profile = dataclasses.replace(
            get_profile(emulator.profile), request_limit=emulator.request_limit
        )
    elif not key:
        if base_url is None:
            raise AuthError(
                "No API key: pass api_key=..., set GEMINI_API_KEY, or call "
                "nbbanana.connect(offline=True) to use the offline emulator."
            )
        # Imported only without a key: the emulator's server stack is not needed otherwise.
        from .emulator import OFFLINE_API_KEY

        key = OFFLINE_API_KEY
    assert key is not None

    if endpoint is not None:
        profile = get_profile(endpoint)
    elif emulator_profile is not None:
        profile = get_profile(emulator_profile)
    elif base_url is None or (urlsplit(base_url).hostname or "").endswith("googleapis.com"):
        profile = get_profile("gemini")
    else:
        profile = get_profile("proxy-20mb")

    if max_cost_usd is not None and max_cost_usd < 0:
        raise InvalidRequest(f"max_cost_usd must be 0 or more (got {max_cost_usd}).")
    retry_options = retry if retry is not None else DEFAULT_RETRY.model_copy(deep=True)
    http_options = types.HttpOptions(
        base_url=base_url,
        timeout=None if timeout is None else max(1, int(timeout * 1000)),
        retry_options=retry_options,
    )
    client = genai.Client(api_key=key, http_options=http_options)
    honour_retry_info(client, retry_options)
    if model is None:
        model = _default_model(client, None if offline else base_url or GOOGLE_BASE_URL)
    session = Session(
        client,
        model=model,
        base_url=base_url,
        offline=bool(offline),
        endpoint=profile,
        max_cost_usd=max_cost_usd,
        api_key=key,
        price_per_image=price_per_image,
    )
    if offline:
        _state.announce_offline(_OFFLINE_NOTE)
    return session


def _default_model(client: genai.Client, base_url: str | None) -> str:
    """The first preferred model the endpoint serves (``models.list``, cached per base
    URL; :mod:`nbbanana.discovery`); offline, or when the listing fails, the table's."""
    model = models.DEFAULT_MODEL
    if base_url is None:
        return model
    # Imported here: discovery (and its disk cache) is needed only with a key.
    from .discovery import discover

    with contextlib.suppress(Exception):  # no listing: the table's default
        listed = discover(client, base_url.rstrip("/"), http_options=_QUICK_LISTING)
        model = listed.default_model if listed.available else model
    return model

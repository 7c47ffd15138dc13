"""The kernel-side API: :func:`connect` → :class:`Session` → :class:`~nbbanana.result.Result`.

A session is a thin layer over the official ``google-genai`` client. It adds what a
notebook user would otherwise write by hand around every call:

* **fitting** — every reference image goes through :func:`nbbanana.fit_image` and is
  sent as ``types.Part.from_bytes`` with the fitted bytes (never a PIL image, which the
  SDK would re-encode as PNG); :meth:`RequestBudget.plan` decides per image whether it
  goes inline or through the Files API;
* **the cost guard** — each call is estimated before sending (:meth:`Session.estimate`);
  with ``max_cost_usd`` a call that could pass the cap is refused before anything is
  sent, and :attr:`Session.spent` adds up what responses report;
* **errors** — the SDK's errors become the few in :mod:`nbbanana.errors`, each saying
  what to do, with the SDK's error kept as ``__cause__``;
* **retries** — the SDK's ``HttpRetryOptions`` (on by default here), made to honour the
  server's ``RetryInfo`` delay; a "too large" refusal (a proxy stricter than its profile)
  teaches the endpoint's limit, and the request is refitted and sent once more;
* **offline** — without an API key, the session talks to the in-process emulator (the
  same SDK, real HTTP on loopback) and says so once per process.

The API key is held only by the SDK client and a private field that no repr shows; every
message that could contain text from outside passes through :func:`~nbbanana.errors.redact`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from google import genai
from google.genai import types
from PIL import Image

from . import models
from ._sdk_errors import error_from_exception, error_from_response, honour_retry_info
from .budget import RequestBudget
from .errors import (
    APIError,
    AuthError,
    CostLimitExceeded,
    InvalidRequest,
    NbbananaError,
    RequestTooLarge,
)
from .fit import FittedImage, fit_image
from .images import LoadedImage, load_image
from .models import EndpointProfile, ModelInfo, get_model, get_profile
from .result import INPUT_THUMBNAIL_SIDE, InputRef, Result, thumbnail_from_bytes

if TYPE_CHECKING:
    from .chat import Chat
    from .discovery import Catalogue

__all__ = [
    "DEFAULT_RETRY",
    "DEFAULT_TIMEOUT_S",
    "GOOGLE_BASE_URL",
    "CostEstimate",
    "Session",
    "connect",
]

#: Where Google's Gemini Developer API lives (the SDK's default base URL).
GOOGLE_BASE_URL = "https://generativelanguage.googleapis.com"

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

#: Text tokens per character of prompt (a generous reading of Gemini's ~4 chars/token).
_CHARS_PER_TOKEN = 3
#: Output-text allowance in estimates: the short sentence image models add to an image,
#: a describe() answer, or a thinking model's thoughts.
_TEXT_OUTPUT_ALLOWANCE = 300
_THOUGHT_ALLOWANCE = 600

_announce_lock = threading.Lock()
_announced = False

_OFFLINE_NOTE = (
    "nbbanana: OFFLINE session - requests go to the built-in Gemini emulator, not to Google; "
    "images are synthetic and marked 'offline emulator'. Set GEMINI_API_KEY (or pass "
    "api_key=...) to use Gemini."
)


def _announce_offline() -> None:
    """Say once per process, on stderr, that results come from the emulator."""
    global _announced
    with _announce_lock:
        if _announced:
            return
        _announced = True
    print(_OFFLINE_NOTE, file=sys.stderr, flush=True)


class _Secret:
    """Holds the API key; shows ``***`` in every repr, str and format."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("an API key is not picklable")


# --------------------------------------------------------------------------- estimate


@dataclass(frozen=True)
class CostEstimate:
    """Tokens and USD a call is expected to use, computed before sending.

    Input images use the model's token rule on the fitted size; output uses the model's
    tokens per image plus a small text allowance. It is an estimate: the response's
    ``usageMetadata`` decides what :attr:`Session.spent` records.
    """

    model: str
    input_tokens: int
    output_image_tokens: int
    output_text_tokens: int
    #: ``None`` when the model's price is unknown.
    usd: float | None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_image_tokens + self.output_text_tokens

    def __str__(self) -> str:
        cost = "cost unknown" if self.usd is None else f"${self.usd:.4f}"
        return f"≈ {cost} ({self.total_tokens:,} tokens on {self.model})"


# --------------------------------------------------------------------------- inputs


@dataclass
class _Input:
    """One reference image: what the user gave, loaded once (streams can be read once),
    and the bytes to send once fitted."""

    loaded: LoadedImage | None
    #: ``None`` until fitted (a FittedImage given by the user is ready as is).
    fitted: FittedImage | None
    parent: Result | None = None

    @property
    def sent(self) -> FittedImage:
        """The fitted image that goes into the request."""
        if self.fitted is None:  # pragma: no cover - _prepare always fits loaded inputs
            raise RuntimeError("reference image used before it was fitted")
        return self.fitted


@dataclass
class _Call:
    """Everything one request needs, prepared before anything is sent."""

    kind: str
    model: ModelInfo
    prompt: str
    config: types.GenerateContentConfig
    params: dict[str, Any]
    inputs: list[_Input]
    inline: tuple[bool, ...]
    estimate: CostEstimate
    want_image: bool
    parent: Result | None
    #: Bytes earlier chat turns add to the body.
    history_bytes: int = 0
    #: Rebuild the call after the endpoint's limit was learned (None: nothing to refit).
    refit: Callable[[], _Call] | None = None

    def input_refs(self) -> list[InputRef]:
        refs = []
        for item, inline in zip(self.inputs, self.inline, strict=True):
            fitted = item.sent
            refs.append(
                InputRef(
                    name=fitted.name,
                    sha256=fitted.source_sha256,
                    size=(fitted.width, fitted.height),
                    mime=fitted.mime,
                    bytes=len(fitted.data),
                    sent_sha256=fitted.sha256,
                    transport="inline" if inline else "files-api",
                    thumbnail=thumbnail_from_bytes(fitted.data, INPUT_THUMBNAIL_SIDE),
                )
            )
        return refs


ImageInput = Any  # an ImageSource, a FittedImage or a Result (see Session.edit)


def _as_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """One image or several: lists and tuples hold several (an ipywidgets FileUpload
    value is a tuple of dicts); anything else — bytes, a path, an array — is one."""
    if isinstance(images, (list, tuple)):
        return list(images)
    return [images]


# --------------------------------------------------------------------------- connect


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
    * ``max_cost_usd`` — refuse any call that could take :attr:`Session.spent` past it.
    * ``retry`` — ``types.HttpRetryOptions``; default :data:`DEFAULT_RETRY`.
      ``types.HttpRetryOptions(attempts=1)`` turns retries off.
    * ``timeout`` — seconds per HTTP attempt (``None``: the SDK's default).
    """
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
    # -- default model: the first preferred one the endpoint serves (nbbanana.discovery) --
    if model is None:
        model = models.DEFAULT_MODEL
        if not offline:
            from .discovery import discover

            with contextlib.suppress(Exception):  # no listing: the table's default
                listed = discover(client, (base_url or GOOGLE_BASE_URL).rstrip("/"))
                model = listed.default_model if listed.available else model
    session = Session(
        client,
        model=model,
        base_url=base_url,
        offline=bool(offline),
        endpoint=profile,
        max_cost_usd=max_cost_usd,
        api_key=key,
    )
    if offline:
        _announce_offline()
    return session


# --------------------------------------------------------------------------- session


class Session:
    """A connection to one endpoint with a default model, a cost guard and a spend total.

    Create one with :func:`connect`. Safe to share between threads and between
    concurrent ``await``-ed calls: the spend accounting is under a lock.
    """

    def __init__(
        self,
        client: genai.Client,
        *,
        model: str,
        base_url: str | None,
        offline: bool,
        endpoint: EndpointProfile,
        max_cost_usd: float | None,
        api_key: str,
    ) -> None:
        self.client = client
        self.model = get_model(model).id
        self.base_url = base_url
        self.offline = offline
        self.endpoint = endpoint
        self.max_cost_usd = max_cost_usd
        self._secret = _Secret(api_key)
        self._lock = threading.Lock()
        self._spent = 0.0
        self._reserved = 0.0
        self._calls = 0

    # ------------------------------------------------------------ accounting

    @property
    def spent(self) -> float:
        """USD used so far, from the token counts the responses reported."""
        with self._lock:
            return self._spent

    @property
    def calls(self) -> int:
        """Requests answered so far (including blocked ones)."""
        with self._lock:
            return self._calls

    @property
    def limit_key(self) -> str:
        """The key under which limits learned from this endpoint are kept."""
        return (self.base_url or GOOGLE_BASE_URL).rstrip("/")

    def budget(self) -> RequestBudget:
        """The request budget in force: the endpoint profile, tightened by any limit this
        endpoint has named in a "too large" refusal."""
        return RequestBudget.for_endpoint(self.endpoint, base_url=self.limit_key)

    def _reserve(self, estimate: CostEstimate) -> float:
        """Book ``estimate`` against the cap before sending (or refuse)."""
        if estimate.usd is None:  # the model's price is unknown: no cap can be kept
            if self.max_cost_usd is not None:
                raise CostLimitExceeded(
                    f"The price of {estimate.model} is unknown, so max_cost_usd cannot be "
                    "kept and nothing was sent. Set it with nbbanana.models.set_price"
                    f'("{estimate.model}", per_image=...).',
                    estimate_usd=0.0,
                    spent_usd=self.spent,
                    cap_usd=self.max_cost_usd,
                )
            estimate = dataclasses.replace(estimate, usd=0.0)
        assert estimate.usd is not None
        with self._lock:
            if self.max_cost_usd is not None:
                committed = self._spent + self._reserved
                if committed + estimate.usd > self.max_cost_usd + 1e-12:
                    raise CostLimitExceeded(
                        f"This call would cost about ${estimate.usd:.4f}; the session has "
                        f"used ${self._spent:.4f}"
                        + (f" (+${self._reserved:.4f} in flight)" if self._reserved else "")
                        + f" of its ${self.max_cost_usd:.2f} cap (max_cost_usd), so nothing "
                        "was sent. Connect with a higher max_cost_usd to continue.",
                        estimate_usd=estimate.usd,
                        spent_usd=self._spent,
                        cap_usd=self.max_cost_usd,
                    )
            self._reserved += estimate.usd
            return estimate.usd

    def _settle(self, reserved: float, actual_usd: float, *, answered: bool) -> None:
        with self._lock:
            self._reserved = max(0.0, self._reserved - reserved)
            self._spent += actual_usd
            if answered:
                self._calls += 1

    def __repr__(self) -> str:
        where = "offline emulator" if self.offline else (self.base_url or GOOGLE_BASE_URL)
        cap = f" of ${self.max_cost_usd:.2f}" if self.max_cost_usd is not None else ""
        return f"<nbbanana.Session {self.model} via {where}, spent ${self.spent:.4f}{cap}>"

    # -- model discovery (nbbanana.discovery) --
    def models(self, *, refresh: bool = False) -> Catalogue:
        """The image models this endpoint serves (``models.list``, cached for a day),
        merged with nbbanana's table; see :func:`nbbanana.models.list_models`."""
        from .discovery import discover

        return discover(self.client, self.limit_key, refresh=refresh)

    def close(self) -> None:
        """Close the HTTP connections (the session cannot be used afterwards)."""
        self.client.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ estimates

    def estimate(
        self,
        prompt: str,
        images: ImageInput | Sequence[ImageInput] = (),
        *,
        model: str | None = None,
        image_size: str | None = None,
        output_images: int = 1,
    ) -> CostEstimate:
        """Tokens and USD a generate/edit with ``prompt`` and ``images`` would use.

        Images may be fitted images, results, or any input :meth:`edit` takes (those are
        measured at the size fitting would give them, without encoding).
        """
        info = get_model(model or self.model)
        tokens = []
        for item in _as_list(images) if images is not None else []:
            w, h = _estimated_sent_size(item, info)
            tokens.append(info.input_image_tokens(w, h))
        return _estimate(info, prompt, tokens, image_size=image_size, output_images=output_images)

    # ------------------------------------------------------------ public calls

    def generate(
        self,
        prompt: str,
        *,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        thinking_level: str | None = None,
        include_thoughts: bool | None = None,
        grounding: bool = False,
    ) -> Result:
        """Generate an image from ``prompt`` alone (square unless ``aspect_ratio``).

        Gemini 3 models: ``image_size`` "512"/"1K"/"2K"/"4K" where offered,
        ``thinking_level`` and ``include_thoughts`` (thoughts go to ``Result.thoughts``
        and ``Result.thought_images``), ``grounding=True`` for Google Search grounding
        (``Result.sources``). A prompt may ask for several images ("three variations of …").
        """
        config = _feature_config(model or self.model, aspect_ratio, image_size,
                                 thinking_level, include_thoughts, grounding)  # fmt: skip
        return self._execute(
            self._prepare("generate", prompt, [], aspect_ratio, image_size, model, config=config)
        )

    def edit(
        self,
        images: ImageInput | Sequence[ImageInput],
        prompt: str,
        *,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        thinking_level: str | None = None,
        include_thoughts: bool | None = None,
        grounding: bool = False,
    ) -> Result:
        """Edit or combine reference images according to ``prompt``.

        ``images`` is one image or a list of them, each a path, bytes, a file object, a
        PIL image, a numpy array, an ipywidgets FileUpload item, a
        :class:`~nbbanana.fit.FittedImage` (sent as is), or a previous :class:`Result`
        (its first image; the new result records it as ``parent``). Without
        ``aspect_ratio`` the model keeps the input's ratio. The Gemini 3 options are
        those of :meth:`generate`.
        """
        sources = _as_list(images)
        if not sources:
            raise InvalidRequest("edit() needs at least one image; use generate() for none.")
        config = _feature_config(model or self.model, aspect_ratio, image_size,
                                 thinking_level, include_thoughts, grounding)  # fmt: skip
        return self._execute(
            self._prepare("edit", prompt, sources, aspect_ratio, image_size, model, config=config)
        )

    def describe(
        self,
        image: ImageInput,
        question: str = "Describe this image.",
        *,
        model: str | None = None,
    ) -> Result:
        """Ask a question about an image; the answer is ``Result.text`` (no image)."""
        return self._execute(self._prepare("describe", question, [image], None, None, model))

    def chat(
        self,
        *,
        model: str | None = None,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        thinking_level: str | None = None,
        include_thoughts: bool | None = None,
        grounding: bool = False,
    ) -> Chat:
        """A multi-turn editing conversation (see :class:`~nbbanana.chat.Chat`)."""
        from .chat import Chat

        return Chat(self, model=model, aspect_ratio=aspect_ratio, image_size=image_size,
                    thinking_level=thinking_level, include_thoughts=include_thoughts,
                    grounding=grounding)  # fmt: skip

    async def agenerate(
        self,
        prompt: str,
        *,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        thinking_level: str | None = None,
        include_thoughts: bool | None = None,
        grounding: bool = False,
    ) -> Result:
        """:meth:`generate` for ``asyncio`` (via ``client.aio``)."""
        config = _feature_config(model or self.model, aspect_ratio, image_size,
                                 thinking_level, include_thoughts, grounding)  # fmt: skip
        call = await asyncio.to_thread(
            self._prepare, "generate", prompt, [], aspect_ratio, image_size, model, config=config
        )
        return await self._aexecute(call)

    async def aedit(
        self,
        images: ImageInput | Sequence[ImageInput],
        prompt: str,
        *,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        thinking_level: str | None = None,
        include_thoughts: bool | None = None,
        grounding: bool = False,
    ) -> Result:
        """:meth:`edit` for ``asyncio``: fitting runs in a worker thread, the request
        and any uploads through ``client.aio``, so many edits can run concurrently."""
        sources = _as_list(images)
        if not sources:
            raise InvalidRequest("aedit() needs at least one image; use agenerate() for none.")
        config = _feature_config(model or self.model, aspect_ratio, image_size,
                                 thinking_level, include_thoughts, grounding)  # fmt: skip
        call = await asyncio.to_thread(
            self._prepare, "edit", prompt, sources, aspect_ratio, image_size, model, config=config
        )
        return await self._aexecute(call)

    async def adescribe(
        self,
        image: ImageInput,
        question: str = "Describe this image.",
        *,
        model: str | None = None,
    ) -> Result:
        """:meth:`describe` for ``asyncio``."""
        call = await asyncio.to_thread(
            self._prepare, "describe", question, [image], None, None, model
        )
        return await self._aexecute(call)

    # ------------------------------------------------------------ preparing

    def _prepare(
        self,
        kind: str,
        prompt: str,
        sources: list[ImageInput],
        aspect_ratio: str | None,
        image_size: str | None,
        model: str | None,
        *,
        history_bytes: int = 0,
        history_tokens: int = 0,
        inputs: list[_Input] | None = None,
        refit_inputs: bool = False,
        config: types.GenerateContentConfig | None = None,
    ) -> _Call:
        """Validate, fit and plan a request; nothing is sent and nothing is booked."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise InvalidRequest("The prompt is empty: say what to generate, change or ask.")
        info = get_model(model or self.model)
        models.note_if_reported_retired(info)  # once per process (nbbanana.models)
        aspect_ratio, image_size = _check_options(info, aspect_ratio, image_size)
        want_image = kind != "describe"
        if config is None:
            config = _config(want_image, aspect_ratio, image_size)
        if kind != "generate":
            _check_reference_count(info, len(sources) if inputs is None else len(inputs))

        budget = self.budget()
        if budget.limit is not None and history_bytes:
            room = budget.limit - history_bytes
            if room <= budget.margin:
                raise RequestTooLarge(
                    f"The chat history alone is {history_bytes:,} bytes, at this endpoint's "
                    f"limit of {budget.limit:,}. Branch from an earlier turn "
                    "(chat.branch(n)) or start a new chat.",
                    limit_bytes=budget.limit,
                )
            budget = dataclasses.replace(budget, limit=room)

        if inputs is None:
            inputs = [_load_input(src, info) for src in sources]
        if inputs and (refit_inputs or any(item.loaded is not None for item in inputs)):
            inputs = _fit_inputs(inputs, info, budget, prompt, config, refit=refit_inputs)
        sizes = [(len(item.sent.data), item.sent.mime) for item in inputs]
        plan = budget.plan(prompt, sizes, config=config)
        if not plan.all_inline and not budget.files_api:
            raise RequestTooLarge(
                "The images do not fit this endpoint's request limit and it has no Files API.",
                limit_bytes=budget.limit,
            )

        tokens = [item.sent.tokens for item in inputs]
        estimate = _estimate(
            info,
            prompt,
            tokens,
            image_size=image_size,
            output_images=1 if want_image else 0,
            extra_input_tokens=history_tokens,
        )
        params: dict[str, Any] = {"kind": kind}
        if aspect_ratio is not None:
            params["aspect_ratio"] = aspect_ratio
        if image_size is not None:
            params["image_size"] = image_size
        params["response_modalities"] = list(config.response_modalities or [])
        parent = next((item.parent for item in inputs if item.parent is not None), None)

        def refit() -> _Call:
            return self._prepare(
                kind,
                prompt,
                sources,
                aspect_ratio,
                image_size,
                model,
                history_bytes=history_bytes,
                history_tokens=history_tokens,
                inputs=inputs,
                refit_inputs=True,
                config=config,
            )

        return _Call(
            kind=kind,
            model=info,
            prompt=prompt,
            config=config,
            params=params,
            inputs=inputs,
            inline=plan.inline,
            estimate=estimate,
            want_image=want_image,
            parent=parent,
            history_bytes=history_bytes,
            refit=refit if inputs else None,
        )

    # ------------------------------------------------------------ sending

    def _translate(self, exc: BaseException) -> NbbananaError | None:
        mapped = error_from_exception(exc, self._secret.reveal())
        # -- a 404 for a model: say what this endpoint serves (nbbanana.discovery) --
        if isinstance(mapped, InvalidRequest) and mapped.code == 404:
            found = re.search(r"models/([^\s]+) is not found", mapped.message)
            if found is not None:
                from .discovery import not_found_error

                with contextlib.suppress(Exception):  # listing failed: keep the plain 404
                    return not_found_error(found.group(1), self.models(), cause=exc)
        return mapped

    def _learn_limit(self, err: RequestTooLarge, call: _Call) -> None:
        """Remember this endpoint's limit after a "too large" refusal.

        The limit the server names is learned when it explains the refusal (it is below
        what was sent). A refusal that names no limit, or one at or above what was sent
        (a relay that says "20MB" but counts differently), teaches half of what was sent.
        """
        inline = [
            (len(item.sent.data), item.sent.mime)
            for item, keep in zip(call.inputs, call.inline, strict=True)
            if keep
        ]
        sent = self.budget().request_bytes(
            call.prompt, inline, config=call.config, history_bytes=call.history_bytes
        )
        named = err.limit_bytes
        limit = named if named is not None and named < sent else max(1, sent // 2)
        err.limit_bytes = models.learn_limit(self.limit_key, limit)

    def _parts_sync(self, call: _Call) -> list[types.Part]:
        parts = [types.Part.from_text(text=call.prompt)]
        for item, inline in zip(call.inputs, call.inline, strict=True):
            fitted = item.sent
            if inline:
                parts.append(types.Part.from_bytes(data=fitted.data, mime_type=fitted.mime))
            else:
                uploaded = self.client.files.upload(
                    file=io.BytesIO(fitted.data),
                    config=types.UploadFileConfig(mime_type=fitted.mime, display_name=fitted.name),
                )
                parts.append(_file_part(uploaded, fitted))
        return parts

    async def _parts_async(self, call: _Call) -> list[types.Part]:
        parts = [types.Part.from_text(text=call.prompt)]
        for item, inline in zip(call.inputs, call.inline, strict=True):
            fitted = item.sent
            if inline:
                parts.append(types.Part.from_bytes(data=fitted.data, mime_type=fitted.mime))
            else:
                uploaded = await self.client.aio.files.upload(
                    file=io.BytesIO(fitted.data),
                    config=types.UploadFileConfig(mime_type=fitted.mime, display_name=fitted.name),
                )
                parts.append(_file_part(uploaded, fitted))
        return parts

    def _execute(self, call: _Call) -> Result:
        return self._run_sync(call, self._send_sync)

    def _send_sync(self, call: _Call) -> types.GenerateContentResponse:
        parts = self._parts_sync(call)
        return self.client.models.generate_content(
            model=call.model.id,
            contents=types.Content(role="user", parts=parts),
            config=call.config,
        )

    def _run_sync(
        self, call: _Call, send: Callable[[_Call], types.GenerateContentResponse]
    ) -> Result:
        """Book, send, translate errors, refit-and-retry once on "too large", settle."""
        for attempt in (1, 2):
            reserved = self._reserve(call.estimate)
            start = time.perf_counter()
            try:
                response = send(call)
            except Exception as exc:
                self._settle(reserved, 0.0, answered=False)
                mapped = self._translate(exc)
                if mapped is None:
                    raise
                if isinstance(mapped, RequestTooLarge) and attempt == 1 and call.refit:
                    self._learn_limit(mapped, call)
                    try:
                        call = call.refit()
                    except NbbananaError:
                        raise mapped from exc
                    continue
                raise mapped from exc
            return self._finish(call, response, time.perf_counter() - start, reserved)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _aexecute(self, call: _Call) -> Result:
        return await self._run_async(call, self._send_async)

    async def _send_async(self, call: _Call) -> types.GenerateContentResponse:
        parts = await self._parts_async(call)
        return await self.client.aio.models.generate_content(
            model=call.model.id,
            contents=types.Content(role="user", parts=parts),
            config=call.config,
        )

    async def _run_async(self, call: _Call, send: Callable[[_Call], Any]) -> Result:
        for attempt in (1, 2):
            reserved = self._reserve(call.estimate)
            start = time.perf_counter()
            try:
                response = await send(call)
            except Exception as exc:
                self._settle(reserved, 0.0, answered=False)
                mapped = self._translate(exc)
                if mapped is None:
                    raise
                if isinstance(mapped, RequestTooLarge) and attempt == 1 and call.refit:
                    self._learn_limit(mapped, call)
                    refit = call.refit
                    try:
                        call = await asyncio.to_thread(refit)
                    except NbbananaError:
                        raise mapped from exc
                    continue
                raise mapped from exc
            return self._finish(call, response, time.perf_counter() - start, reserved)
        raise AssertionError("unreachable")  # pragma: no cover

    def _finish(
        self,
        call: _Call,
        response: types.GenerateContentResponse,
        latency_s: float,
        reserved: float,
    ) -> Result:
        """Turn a response into a Result (or Blocked/NoImage), recording what it cost."""
        try:
            result = Result.from_response(
                response,
                model=call.model,
                prompt=call.prompt,
                params=call.params,
                inputs=call.input_refs(),
                parent=call.parent,
                latency_s=latency_s,
                offline=self.offline,
            )
        except Exception:
            self._settle(reserved, 0.0, answered=True)
            raise
        self._settle(reserved, result.cost_usd or 0.0, answered=True)  # None: unknown
        problem = error_from_response(
            response, want_image=call.want_image, secrets=(self._secret.reveal(),)
        )
        if problem is not None:
            raise problem
        return result


# --------------------------------------------------------------------------- helpers


# -- Gemini 3 request features (nbbanana.options): thinking, thoughts, grounding --
def _feature_config(
    model: str,
    aspect_ratio: str | None,
    image_size: str | None,
    thinking_level: str | None,
    include_thoughts: bool | None,
    grounding: bool,
    *,
    want_image: bool = True,
) -> types.GenerateContentConfig | None:
    """The request config when a Gemini 3 feature is asked for (checked against the
    model before sending); ``None`` otherwise, so the default request stays as it was."""
    if thinking_level is None and include_thoughts is None and not grounding:
        return None
    from .options import build_config, check_request_options

    options = check_request_options(
        get_model(model), aspect_ratio=aspect_ratio, image_size=image_size,
        thinking_level=thinking_level, include_thoughts=include_thoughts, grounding=grounding,
    )  # fmt: skip
    return build_config(options, want_image=want_image)


def _config(
    want_image: bool, aspect_ratio: str | None, image_size: str | None
) -> types.GenerateContentConfig:
    if not want_image:
        return types.GenerateContentConfig(response_modalities=["TEXT"])
    image_config = None
    if aspect_ratio is not None or image_size is not None:
        image_config = types.ImageConfig(aspect_ratio=aspect_ratio, image_size=image_size)
    return types.GenerateContentConfig(
        response_modalities=["TEXT", "IMAGE"], image_config=image_config
    )


def _check_options(
    info: ModelInfo, aspect_ratio: str | None, image_size: str | None
) -> tuple[str | None, str | None]:
    """Refuse values the model is known not to accept, before sending. Unknown models
    are passed through: the server decides."""
    if image_size is not None:
        image_size = image_size.strip()
        if image_size.lower().endswith("k"):
            image_size = image_size[:-1] + "K"  # the API wants "2K", not "2k"
    if info.id not in models.MODELS:
        return aspect_ratio, image_size
    if aspect_ratio is not None and aspect_ratio not in info.aspect_ratios:
        raise InvalidRequest(
            f"{info.id} does not support aspect_ratio={aspect_ratio!r}; use one of "
            f"{', '.join(info.aspect_ratios)} (or omit it)."
        )
    if image_size is not None and image_size not in info.image_sizes:
        choices = ", ".join(info.image_sizes) if info.image_sizes else "none: omit image_size"
        raise InvalidRequest(f"{info.id} does not support image_size={image_size!r} ({choices}).")
    return aspect_ratio, image_size


def _check_reference_count(info: ModelInfo, count: int) -> None:
    from .options import check_reference_count  # the model's limit and guidance

    check_reference_count(info, count, stacklevel=5)


def _load_input(source: ImageInput, info: ModelInfo) -> _Input:
    """Load one reference once. A FittedImage is sent as is; a Result gives its first
    image's bytes as the server sent them (no re-encoding)."""
    if isinstance(source, FittedImage):
        return _Input(loaded=None, fitted=source)
    parent = None
    if isinstance(source, Result):
        if not source.image_data:
            raise InvalidRequest(
                f"Result {source.id} has no image to edit (it answered with text only)."
            )
        parent = source
        data = source.image_data[0][0]
        loaded = load_image(data, target_side=info.fit_max_side)
        loaded = dataclasses.replace(loaded, name=f"result {source.id}")
    else:
        loaded = load_image(source, target_side=info.fit_max_side)
    return _Input(loaded=loaded, fitted=None, parent=parent)


def _fit_inputs(
    inputs: list[_Input],
    info: ModelInfo,
    budget: RequestBudget,
    prompt: str,
    config: types.GenerateContentConfig,
    *,
    refit: bool,
) -> list[_Input]:
    """Fit each image to its share of the budget.

    With a Files API, each image only has to fit a request on its own (the plan then
    uploads whatever does not fit inline together). Without one, all must fit inline
    together: each gets an equal share of the room the prompt and the other images'
    framing leave.
    """
    count = len(inputs)
    per_image = budget
    if count > 1 and not budget.files_api and budget.limit is not None:
        room = budget.image_allowance(
            prompt, other_images=[(0, "image/jpeg")] * (count - 1), config=config
        )
        share = max(1, room // count)
        per_image = RequestBudget(
            limit=budget.request_bytes(prompt, [(share, "image/jpeg")]) + budget.margin,
            per_image_limit=budget.per_image_limit,
            margin=budget.margin,
            files_api=False,
        )
    elif budget.files_api and budget.limit is not None:
        # Alone in a request it must fit inline; beyond that the Files API takes it.
        per_image = dataclasses.replace(budget, files_api=False)
    fitted: list[_Input] = []
    for item in inputs:
        if item.loaded is None and not refit:
            fitted.append(item)
            continue
        source: LoadedImage | bytes = item.loaded if item.loaded is not None else item.sent.data
        result = fit_image(source, model=info, budget=per_image, prompt=prompt)
        if item.loaded is None:
            result = dataclasses.replace(
                result, name=item.sent.name, source_sha256=item.sent.source_sha256
            )
        fitted.append(_Input(loaded=item.loaded, fitted=result, parent=item.parent))
    return fitted


def _estimated_sent_size(item: ImageInput, info: ModelInfo) -> tuple[int, int]:
    """The pixel size an input would be sent at (no encoding)."""
    if isinstance(item, FittedImage):
        return item.width, item.height
    if isinstance(item, Result):
        image = item.image
        size = (image.width, image.height) if image is not None else (0, 0)
    elif isinstance(item, Image.Image):
        size = item.size
    elif hasattr(item, "shape") and len(getattr(item, "shape", ())) >= 2:
        shape = item.shape
        size = (int(shape[1]), int(shape[0]))
    else:
        size = load_image(item, target_side=info.fit_max_side).original_size
    w, h = size
    scale = min(1.0, info.fit_max_side / max(w, h, 1))
    return max(1, round(w * scale)), max(1, round(h * scale))


def _estimate(
    info: ModelInfo,
    prompt: str,
    image_tokens: Sequence[int],
    *,
    image_size: str | None,
    output_images: int,
    extra_input_tokens: int = 0,
) -> CostEstimate:
    text_tokens = math.ceil(len(prompt) / _CHARS_PER_TOKEN) + 8
    input_tokens = text_tokens + sum(image_tokens) + extra_input_tokens
    out_image = info.output_image_tokens(image_size) * output_images
    out_text = _TEXT_OUTPUT_ALLOWANCE + (_THOUGHT_ALLOWANCE if info.thinking else 0)
    usd = info.cost_usd(
        input_tokens=input_tokens, output_image_tokens=out_image, output_text_tokens=out_text
    )
    return CostEstimate(
        model=info.id,
        input_tokens=input_tokens,
        output_image_tokens=out_image,
        output_text_tokens=out_text,
        usd=usd,
    )


def _file_part(uploaded: types.File, fitted: FittedImage) -> types.Part:
    if not uploaded.uri:
        raise APIError("The Files API upload returned no URI; try again.")
    return types.Part.from_uri(file_uri=uploaded.uri, mime_type=uploaded.mime_type or fitted.mime)

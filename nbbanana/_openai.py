"""The OpenAI-compatible backend: Nano Banana through an aggregator or gateway.

Many users reach Gemini's image models through an OpenAI-compatible service
(``base_url=<aggregator>/v1``) and the official ``openai`` SDK [reference §13]. This
backend speaks that dialect and translates, both ways, to the google-genai types the
pipeline works in:

* **requests** — :func:`chat_body`: the ``types.Content`` list becomes ``messages`` (the
  prompt and each inline image as an ``image_url`` data URL; earlier model turns as
  assistant messages with their images as ``image_url`` parts), ``modalities`` and
  ``image_config`` (aspect ratio, image size) go in the SDK's ``extra_body``. For
  Images-API-only gateways, ``images.generate`` / ``images.edit`` (``endpoint="images"``);
  a 404 for one API makes the backend try the other and remember it.
* **answers** — :func:`response_from_completion`: every shape of §13 (``message.images[]``,
  a Markdown data URL or hosted URL in ``message.content``, ``b64_json`` or ``url``)
  becomes ``inline_data`` parts; text is kept as text parts, usage as ``usage_metadata``,
  a content filter as a blocking ``finish_reason``. Hosted images are downloaded by
  :mod:`nbbanana._hosted`: http(s) only, a size cap and a timeout.
* **bytes** — :func:`chat_body_bytes` serialises the body as the SDK does
  (``openai._utils._json.openapi_dumps``: compact separators, UTF-8, no ASCII escapes)
  with every image empty; each data URL then adds exactly ``4·⌈n/3⌉`` base64 bytes.
* **errors** — :func:`error_from_exception` maps the SDK's error classes (and download
  failures) to :mod:`nbbanana.errors`, each with a remedy for this path.

There is no Files API on this path: a request that cannot fit inline says so.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast

import openai
from google.genai import types
from openai._utils._json import openapi_dumps  # private: the SDK's own body serialiser

from . import models
from ._hosted import (
    DEFAULT_FETCH_LIMIT,
    DEFAULT_FETCH_TIMEOUT,
    HostedImageError,
    ImageFetcher,
    image_from_url,
    mime_of,
    split_images,
)
from .errors import (
    AuthError,
    Blocked,
    InvalidRequest,
    NbbananaError,
    RateLimited,
    RequestTooLarge,
    ServiceUnavailable,
    redact,
)
from .session import Session

if TYPE_CHECKING:
    from openai.types import ImagesResponse
    from openai.types.chat import ChatCompletion

__all__ = [
    "OpenAIBackend",
    "chat_body",
    "chat_body_bytes",
    "connect_openai",
    "error_from_exception",
    "gemini_model_id",
    "response_from_completion",
    "response_from_images",
]

Endpoint = Literal["chat", "images"]

_TOO_LARGE_WORDS = re.compile(r"exceed|too large|too big|payload|maximum allowed", re.I)
_RETRY_IN = re.compile(r"(?:retry|try again) in (\d+(?:\.\d+)?)\s*s", re.I)
_BLOCKING = {
    "SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION",
    "IMAGE_PROHIBITED_CONTENT", "OTHER",
}  # fmt: skip
_FINISH: Mapping[str, types.FinishReason] = {
    "stop": types.FinishReason.STOP,
    "length": types.FinishReason.MAX_TOKENS,
    "content_filter": types.FinishReason.SAFETY,
}


class _Request(Protocol):
    """What the backend reads of the pipeline's ``BackendRequest``."""

    @property
    def model(self) -> str: ...
    @property
    def contents(self) -> Sequence[types.Content]: ...
    @property
    def config(self) -> types.GenerateContentConfig: ...


# --------------------------------------------------------------------------- errors
# The toolkit's errors, with the remedy for this path (the Gemini one names GEMINI_API_KEY).


class _GatewayAuthError(AuthError):
    hint = "Check OPENAI_API_KEY (or pass api_key=...) and that the key is valid for this gateway."


class _GatewayTooLarge(RequestTooLarge):
    hint = (
        "nbbanana has learned this gateway's limit: fit the images again (this path has no "
        "Files API, so everything must fit inline)."
    )


class _GatewayNotFound(InvalidRequest):
    hint = (
        "Check the model name as the gateway spells it (e.g. google/gemini-2.5-flash-image) "
        "and that base_url ends with /v1."
    )


class _DownloadFailed(ServiceUnavailable):
    hint = "The gateway answered with an image link that could not be fetched: try again."


def error_from_exception(exc: BaseException, *secrets: str | None) -> NbbananaError | None:
    """The nbbanana error for a failure of the ``openai`` SDK (or of a hosted-image
    download), or ``None`` for anything else."""
    if isinstance(exc, HostedImageError):
        return _DownloadFailed(redact(str(exc), *secrets), sdk_error=exc)
    if isinstance(exc, openai.APITimeoutError):
        return ServiceUnavailable(
            "The gateway did not answer in time (after the configured retries). Image "
            "generation can take a minute: pass a larger timeout= or try again later.",
            status="DEADLINE_EXCEEDED",
            sdk_error=exc,
        )
    if isinstance(exc, openai.APIConnectionError):
        return ServiceUnavailable(
            f"Could not reach the gateway ({redact(str(exc), *secrets)}). Check the network "
            "and base_url, then try again.",
            sdk_error=exc,
        )
    if not isinstance(exc, openai.APIStatusError):
        return None
    code = exc.status_code
    message = redact(_message(exc), *secrets)
    status = str(exc.code or exc.type or "")
    common: dict[str, Any] = {"code": code, "status": status, "details": exc.body, "sdk_error": exc}
    if code in (401, 403):
        return _GatewayAuthError(f"The gateway refused the API key ({code}: {message}).", **common)
    if code == 429:
        delay = retry_after_seconds(exc)
        wait = f" The server asked to wait {delay:g} s." if delay is not None else ""
        return RateLimited(
            f"Rate limit or quota exceeded ({code}: {message}).{wait}", retry_after=delay, **common
        )
    limit = models.parse_limit_from_message(message)
    if code == 413 or (limit is not None and _TOO_LARGE_WORDS.search(message)):
        return _GatewayTooLarge(
            f"The gateway refused the request as too large ({code}: {message}).",
            limit_bytes=limit,
            **common,
        )
    if status in ("content_policy_violation", "content_filter", "moderation_blocked"):
        return Blocked(f"The gateway's content filter refused the request ({message}).",
                       reason=status, **common)  # fmt: skip
    if code == 408 or code >= 500:
        return ServiceUnavailable(
            f"The gateway failed ({code}: {message}) after the configured retries.", **common
        )
    if code == 404:
        return _GatewayNotFound(f"Not found ({code}: {message}).", **common)
    return InvalidRequest(
        f"The gateway refused the request ({code}: {message}). Check the prompt, images and "
        "parameters named in the message.",
        **common,
    )


def _message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, Mapping):  # the SDK hands over the inner ``error`` object
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])
        if body.get("message"):
            return str(body["message"])
    text = exc.response.text.strip() if exc.response is not None else ""
    return text[:500] or exc.message


def retry_after_seconds(exc: openai.APIStatusError) -> float | None:
    """The delay a 429 asked for: ``retry-after-ms``, ``Retry-After`` or "retry in Ns"."""
    headers = exc.response.headers
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return max(0.0, float(value) / scale)
            except ValueError:
                pass
    match = _RETRY_IN.search(_message(exc))
    return float(match.group(1)) if match else None


# --------------------------------------------------------------------------- models


def gemini_model_id(name: str) -> str | None:
    """The known Gemini model a gateway's model name stands for (``google/`` or other
    vendor prefixes and ``:free``-style suffixes stripped), or ``None``."""
    bare = models.resolve(name.rsplit("/", 1)[-1].split(":", 1)[0])
    return bare if bare in models.MODELS else None


# --------------------------------------------------------------------------- requests


def _data_url(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _parts(content: types.Content, role: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for part in content.parts or []:
        if part.thought:
            continue  # thoughts stay with the service that thought them
        if part.text is not None:
            out.append({"type": "text", "text": part.text})
        elif part.inline_data is not None:
            data = part.inline_data.data or b""
            mime = part.inline_data.mime_type or "image/png"
            out.append({"type": "image_url", "image_url": {"url": _data_url(data, mime)}})
        elif part.file_data is not None:
            raise InvalidRequest(
                f"A {role} image refers to an uploaded file; OpenAI-compatible gateways have "
                "no Files API, so every image must be sent inline (fit it smaller)."
            )
    return out


def chat_body(
    model: str, contents: Sequence[types.Content], config: types.GenerateContentConfig | None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(messages, extra_body)`` for ``chat.completions.create(model=..., ...)``."""
    messages: list[dict[str, Any]] = []
    system = config.system_instruction if config is not None else None
    if isinstance(system, str):
        messages.append({"role": "system", "content": system})
    elif isinstance(system, types.Content):
        text = "\n".join(p.text for p in system.parts or [] if p.text)
        messages.append({"role": "system", "content": text})
    for content in contents:
        role = "assistant" if content.role == "model" else "user"
        parts = _parts(content, role)
        if parts:
            messages.append({"role": role, "content": parts})
    modalities = [m.lower() for m in (config.response_modalities if config else None) or []]
    extra: dict[str, Any] = {"modalities": modalities or ["image", "text"]}
    image_config = config.image_config if config is not None else None
    if image_config is not None:
        wanted = {"aspect_ratio": image_config.aspect_ratio, "image_size": image_config.image_size}
        if any(v is not None for v in wanted.values()):
            extra["image_config"] = {k: v for k, v in wanted.items() if v is not None}
    if config is not None and config.temperature is not None:
        extra["temperature"] = config.temperature
    if config is not None and config.seed is not None:
        extra["seed"] = config.seed
    return messages, extra


def chat_body_bytes(
    model: str, contents: Sequence[types.Content], config: types.GenerateContentConfig | None
) -> int:
    """Bytes of the JSON body the ``openai`` SDK sends for :func:`chat_body`, with every
    inline image's data empty (each then adds ``4·⌈n/3⌉`` bytes of base64 to its data URL)."""
    messages, extra = chat_body(model, _without_image_data(contents), config)
    return len(openapi_dumps({"messages": messages, "model": model, **extra}))


def _without_image_data(contents: Sequence[types.Content]) -> list[types.Content]:
    out = []
    for content in contents:
        parts = [
            p.model_copy(
                update={"inline_data": types.Blob(data=b"", mime_type=p.inline_data.mime_type)}
            )
            if p.inline_data is not None
            else p
            for p in content.parts or []
        ]
        out.append(content.model_copy(update={"parts": parts}))
    return out


def _user_turn(contents: Sequence[types.Content]) -> tuple[str, list[tuple[bytes, str]]]:
    """The prompt and images of the last user turn (what the Images API can carry)."""
    last = contents[-1] if contents else types.Content(role="user", parts=[])
    prompt = " ".join(p.text for p in last.parts or [] if p.text and not p.thought)
    images = [
        (p.inline_data.data or b"", p.inline_data.mime_type or "image/png")
        for p in last.parts or []
        if p.inline_data is not None
    ]
    return prompt, images


def _images_size(model: str, config: types.GenerateContentConfig | None) -> str | None:
    image_config = config.image_config if config is not None else None
    if image_config is None or image_config.aspect_ratio is None:
        return None
    info = models.get_model(gemini_model_id(model) or model)
    width, height = info.output_size(image_config.aspect_ratio, image_config.image_size)
    return f"{width}x{height}"


def _typed(messages: list[dict[str, Any]]) -> Any:
    """The messages for the SDK's typed parameter: assistant messages carry image parts,
    which gateways accept but OpenAI's own ``TypedDict`` does not describe."""
    return messages


# --------------------------------------------------------------------------- answers


def response_from_completion(
    completion: ChatCompletion, fetch: ImageFetcher
) -> types.GenerateContentResponse:
    """A chat completion in any shape of §13 as a ``GenerateContentResponse``."""
    if not completion.choices:
        return _response([], None, completion.usage, completion.model, completion.id)
    choice = completion.choices[0]
    message = choice.model_dump()["message"] if choice.message is not None else {}
    text, urls = split_images(str(message.get("content") or ""))
    for item in message.get("images") or []:
        url = item.get("image_url", {}).get("url") if isinstance(item, Mapping) else None
        if isinstance(url, str):
            urls.append(url)
    parts = [types.Part(text=text)] if text else []
    parts += [types.Part.from_bytes(data=d, mime_type=m) for d, m in
              (image_from_url(u, fetch) for u in urls)]  # fmt: skip
    extra = choice.model_extra or {}
    native = str(extra.get("native_finish_reason") or "").upper()
    finish = _FINISH.get(str(choice.finish_reason), types.FinishReason.OTHER)
    if finish == types.FinishReason.SAFETY and native in _BLOCKING:
        finish = types.FinishReason(native) if native in types.FinishReason.__members__ else finish
    return _response(parts, finish, completion.usage, completion.model, completion.id)


def response_from_images(
    answer: ImagesResponse, model: str, fetch: ImageFetcher
) -> types.GenerateContentResponse:
    """An Images API answer (``b64_json`` or ``url``) as a ``GenerateContentResponse``."""
    parts = []
    for item in answer.data or []:
        if item.b64_json:
            data = base64.b64decode(item.b64_json)
            parts.append(types.Part.from_bytes(data=data, mime_type=mime_of(data)))
        elif item.url:
            data, mime = image_from_url(item.url, fetch)
            parts.append(types.Part.from_bytes(data=data, mime_type=mime))
    usage = answer.usage
    meta = None
    if usage is not None:
        meta = types.GenerateContentResponseUsageMetadata(
            prompt_token_count=usage.input_tokens,
            candidates_token_count=usage.output_tokens,
            total_token_count=usage.total_tokens,
        )
    candidate = types.Candidate(
        content=types.Content(role="model", parts=parts),
        finish_reason=types.FinishReason.STOP,
        index=0,
    )
    return types.GenerateContentResponse(
        candidates=[candidate], usage_metadata=meta, model_version=model
    )


def _response(
    parts: list[types.Part],
    finish: types.FinishReason | None,
    usage: Any,
    model: str | None,
    response_id: str | None,
) -> types.GenerateContentResponse:
    meta = None
    if usage is not None:
        meta = types.GenerateContentResponseUsageMetadata(
            prompt_token_count=usage.prompt_tokens,
            candidates_token_count=usage.completion_tokens,
            total_token_count=usage.total_tokens,
        )
    candidate = types.Candidate(
        content=types.Content(role="model", parts=parts) if parts else None,
        finish_reason=finish,
        index=0,
    )
    return types.GenerateContentResponse(
        candidates=[candidate], usage_metadata=meta, model_version=model, response_id=response_id
    )


# --------------------------------------------------------------------------- backend


class OpenAIBackend:
    """Gemini's image models through an OpenAI-compatible gateway, with the ``openai`` SDK.

    ``api_key``: else ``OPENAI_API_KEY``. ``endpoint``: ``"chat"`` (``chat.completions``,
    the common case) or ``"images"`` (``images.generate`` / ``images.edit``); a 404 from
    one makes the backend use the other from then on. ``timeout`` and ``max_retries`` go
    to the SDK, which retries 408, 409, 429 and 5xx and honours ``Retry-After``.
    ``fetch_limit``/``fetch_timeout``: caps for downloading hosted result images.
    ``model_names``: the gateway's name for each model id the session uses (the session
    keeps the Gemini id, so sizes, tokens and prices come from the model table).
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str | None = None,
        endpoint: Endpoint = "chat",
        timeout: float = 120.0,
        max_retries: int = 2,
        fetch_limit: int = DEFAULT_FETCH_LIMIT,
        fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
        default_headers: Mapping[str, str] | None = None,
        model_names: Mapping[str, str] | None = None,
    ) -> None:
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise _GatewayAuthError("No API key for the OpenAI-compatible gateway.")
        if endpoint not in ("chat", "images"):
            raise ValueError(f"endpoint must be 'chat' or 'images', not {endpoint!r}.")
        self.base_url = base_url
        self.endpoint: Endpoint = endpoint
        #: The gateway's name for a model id the toolkit knows (``"google/…"``).
        self.model_names = dict(model_names or {})
        self._secrets = (key,)
        options: dict[str, Any] = {
            "base_url": base_url,
            "api_key": key,
            "timeout": timeout,
            "max_retries": max_retries,
            "default_headers": dict(default_headers or {}),
        }
        self._options = options
        self.client = openai.OpenAI(**options)
        self._aclient: openai.AsyncOpenAI | None = None
        self._fetch = ImageFetcher(limit=fetch_limit, timeout=fetch_timeout)

    def __repr__(self) -> str:
        return f"<nbbanana OpenAIBackend {self.base_url} endpoint={self.endpoint!r}>"

    @property
    def files_api(self) -> bool:
        return False

    @property
    def aclient(self) -> openai.AsyncOpenAI:
        """The async client, made on first use (inside the event loop that uses it)."""
        if self._aclient is None:
            self._aclient = openai.AsyncOpenAI(**self._options)
        return self._aclient

    # ------------------------------------------------------------------ sending

    def generate(self, request: _Request) -> types.GenerateContentResponse:
        try:
            return self._send(request, self.endpoint)
        except openai.NotFoundError:
            other: Endpoint = "images" if self.endpoint == "chat" else "chat"
            answer = self._send(request, other)  # the gateway lacks the first API
            self.endpoint = other
            return answer

    async def agenerate(self, request: _Request) -> types.GenerateContentResponse:
        try:
            return await self._asend(request, self.endpoint)
        except openai.NotFoundError:
            other: Endpoint = "images" if self.endpoint == "chat" else "chat"
            answer = await self._asend(request, other)
            self.endpoint = other
            return answer

    def generate_stream(self, request: _Request) -> Iterator[types.GenerateContentResponse]:
        # Gateways stream image answers inconsistently (or not at all): one whole chunk.
        yield self.generate(request)

    async def agenerate_stream(
        self, request: _Request
    ) -> AsyncIterator[types.GenerateContentResponse]:
        yield await self.agenerate(request)

    def _send(self, request: _Request, endpoint: Endpoint) -> types.GenerateContentResponse:
        model = self.model_names.get(request.model, request.model)
        if endpoint == "chat":
            messages, extra = chat_body(model, request.contents, request.config)
            completion = self.client.chat.completions.create(
                model=model,
                messages=_typed(messages),
                extra_body=extra,
            )
            return response_from_completion(completion, self._fetch)
        prompt, images = _user_turn(request.contents)
        size = _images_size(request.model, request.config)
        extra_size: dict[str, Any] = {"size": size} if size else {}
        if images:
            files = [(f"image{n}.{m.split('/')[-1]}", d, m) for n, (d, m) in enumerate(images)]
            answer = self.client.images.edit(
                model=model, prompt=prompt, image=files, response_format="b64_json",
                extra_body=extra_size,
            )  # fmt: skip
        else:
            answer = self.client.images.generate(
                model=model, prompt=prompt, n=1, response_format="b64_json",
                extra_body=extra_size,
            )  # fmt: skip
        return response_from_images(answer, model, self._fetch)

    async def _asend(self, request: _Request, endpoint: Endpoint) -> types.GenerateContentResponse:
        model = self.model_names.get(request.model, request.model)
        if endpoint == "chat":
            messages, extra = chat_body(model, request.contents, request.config)
            completion = await self.aclient.chat.completions.create(
                model=model,
                messages=_typed(messages),
                extra_body=extra,
            )
            # A hosted image is fetched in a thread: the event loop keeps running.
            return await asyncio.to_thread(response_from_completion, completion, self._fetch)
        return await asyncio.to_thread(self._send, request, endpoint)

    def upload(self, upload: object) -> types.Part:
        raise InvalidRequest(
            "OpenAI-compatible gateways have no Files API; every image is sent inline."
        )

    async def aupload(self, upload: object) -> types.Part:
        return self.upload(upload)

    # ------------------------------------------------------------------ budget, errors

    def body_bytes(
        self,
        model: str,
        contents: Sequence[types.Content],
        config: types.GenerateContentConfig | None,
    ) -> int:
        # The chat body; an Images API edit sends raw bytes in multipart, never more than
        # the base64 the pipeline adds, so the chat figure is a safe bound for it too.
        return chat_body_bytes(self.model_names.get(model, model), contents, config)

    def map_error(self, exc: BaseException) -> NbbananaError | None:
        return error_from_exception(exc, *self._secrets)

    def close(self) -> None:
        self.client.close()
        self._fetch.close()


# --------------------------------------------------------------------------- connect


def connect_openai(
    base_url: str,
    api_key: str | None = None,
    *,
    model: str = models.DEFAULT_MODEL,
    endpoint: str | models.EndpointProfile | None = None,
    max_cost_usd: float | None = None,
    retry: types.HttpRetryOptions | None = None,
    timeout: float | None = 300.0,
    openai_api: Endpoint = "chat",
    price_per_image: float | None = None,
) -> Session:
    """A :class:`~nbbanana.session.Session` over an OpenAI-compatible gateway
    (``connect(base_url=..., api="openai")``).

    ``model`` as the gateway names it (``google/gemini-2.5-flash-image``); a name that
    maps to a known Gemini model keeps that model's sizes, tokens and prices; any other
    name gets generic facts and an unknown price (``None``, with a one-time warning),
    never another model's. ``price_per_image``: what the gateway charges per image, for
    this session. ``endpoint``: the byte limits (default ``"proxy-20mb"``, the usual
    relay; a 413 teaches the real one). ``max_cost_usd`` needs a known price (refused
    otherwise). ``retry``: its ``attempts`` bound the SDK's ``max_retries``.
    ``openai_api``: ``"chat"`` or ``"images"`` (see :class:`OpenAIBackend`).
    """
    if max_cost_usd is not None and max_cost_usd < 0:
        raise InvalidRequest(f"max_cost_usd must be 0 or more (got {max_cost_usd}).")
    gemini = gemini_model_id(model)
    if gemini is None and max_cost_usd is not None and price_per_image is None:
        # Its price is unknown: a cap on a made-up figure protects nobody, so refuse up
        # front and say why.
        raise InvalidRequest(
            f"The gateway's model {model!r} is not one nbbanana knows, so it cannot estimate "
            "what a call costs and cannot enforce max_cost_usd. Pass price_per_image=, use "
            f"a known model name (one of {', '.join(models.MODELS)}, optionally with a "
            "vendor prefix such as google/) or connect without max_cost_usd."
        )
    attempts = retry.attempts if retry is not None and retry.attempts is not None else 3
    backend = OpenAIBackend(
        base_url=base_url,
        api_key=api_key,
        endpoint=openai_api,
        timeout=300.0 if timeout is None else timeout,
        max_retries=max(0, attempts - 1),
        model_names={gemini: model} if gemini is not None and gemini != model else None,
    )
    # ``Session`` is typed for the backends of the request pipeline.
    session_type: Any = Session
    return cast(
        "Session",
        session_type(
            backend,
            model=gemini or model,
            base_url=base_url,
            offline=False,
            endpoint=models.get_profile(endpoint or "proxy-20mb"),
            max_cost_usd=max_cost_usd,
            api_key=backend._secrets[0],
            price_per_image=price_per_image,
        ),
    )

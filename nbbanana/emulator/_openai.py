"""The emulator's OpenAI-compatible surface: what an aggregator in front of Nano Banana serves.

Paths (under ``/v1`` or ``/v1beta``, also with Google's ``openai/`` prefix):

=====================================  ==================================================
``POST chat/completions``              ``messages`` with text and ``image_url`` parts,
                                       ``modalities``, ``image_config`` [reference §13]
``POST images/generations``            ``{"model", "prompt", "n", "size", "response_format"}``
``POST images/edits``                  multipart: ``image`` (or ``image[]``) files, ``prompt``…
``GET  /emulator/hosted/{id}.png``     a "hosted" result image (no key, like a CDN URL)
=====================================  ==================================================

Each request is translated into the Gemini request an aggregator would forward and run
through the same validation and synthesis as ``generateContent`` (:mod:`._generate`), so
images, sizes, tokens and refusals are the ones the Gemini path gives. Only the answer's
*shape* differs, chosen per emulator (``Emulator(openai_shape=...)``, ``--openai-shape``)
or per request (header ``x-emulator-openai-shape``), one of :data:`SHAPES`:

* ``images`` — ``choices[0].message.images[]`` of ``image_url`` data URLs (OpenRouter…);
* ``markdown`` — ``![image](data:image/png;base64,…)`` in ``message.content``;
* ``hosted`` — ``![image](http://…/emulator/hosted/….png)`` in ``message.content``;
* ``b64_json`` / ``url`` — an Images-API-only gateway: ``chat/completions`` answers 404
  and the Images API answers in that form whatever ``response_format`` asked.

Without a forced form the Images API follows ``response_format`` (default ``b64_json``).
Errors are OpenAI-shaped: ``{"error": {"message", "type", "code"}}`` (:func:`error_reply`).
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from ..models import MODELS, ModelInfo
from . import _generate
from ._faults import Fault
from ._routes import Call, Reply, Route, parse_json
from ._status import ApiError, bad_request, not_found

__all__ = ["SHAPES", "OpenAIApi", "error_reply", "handles", "openai_path"]

SHAPES: tuple[str, ...] = ("images", "markdown", "hosted", "b64_json", "url")
_CHAT_SHAPES = ("images", "markdown", "hosted")
_PATHS = ("chat/completions", "images/generations", "images/edits")
_HOSTED_PREFIX = "hosted/"
_HOSTED_KEEP = 64  # hosted images kept in memory (oldest dropped first)
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
_SIZE = re.compile(r"^(\d+)x(\d+)$")

#: OpenAI error ``type`` and ``code`` by HTTP status.
_ERROR_KINDS: Mapping[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    408: ("timeout", None),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def openai_path(rest: str) -> str | None:
    """The OpenAI operation a versioned path names (``chat/completions``…), or ``None``."""
    rest = rest.removeprefix("openai/")
    return rest if rest in _PATHS else None


def handles(route: Route) -> bool:
    """Whether ``route`` belongs to this module (an OpenAI path or a hosted image)."""
    if route.kind == "control":
        return route.rest.startswith(_HOSTED_PREFIX)
    return route.kind == "generate" and openai_path(route.rest) is not None


def error_reply(error: ApiError) -> Reply:
    """An emulator refusal in OpenAI's error shape (status, ``Retry-After`` kept)."""
    status, message = error.code, error.message
    reasons = {str(d.get("reason", "")) for d in error.details}
    if "API_KEY_INVALID" in reasons or "unregistered callers" in message:
        # Gemini says 400/403 for a bad or missing key; OpenAI-compatible gateways say 401.
        status, message = (
            401,
            "Incorrect API key provided. You can find your API key in your account settings.",
        )
    kind, code = _ERROR_KINDS.get(status, ("server_error" if status >= 500 else "api_error", None))
    if error.status == "content_policy_violation":
        code = error.status
    headers = dict(error.headers)
    for detail in error.details:
        if str(detail.get("@type", "")).endswith("RetryInfo"):
            delay = str(detail.get("retryDelay", "")).removesuffix("s")
            headers["Retry-After"] = delay  # how OpenAI-style services say it
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return Reply.json(body, status, headers)


class OpenAIApi:
    """Routes OpenAI-shaped calls into :mod:`._generate` and back. ``parse``: the
    emulator's validation of a Gemini request body (``Api.parse``)."""

    def __init__(self, *, parse: Any, seed: int, shape: str = "images") -> None:
        self.parse = parse
        self.seed = seed
        self.shape = check_shape(shape)
        self._hosted: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    handles = staticmethod(handles)

    def dispatch(self, call: Call) -> Reply:
        if call.route.kind == "control":
            return self._hosted_image(call)
        if call.method != "POST":
            raise not_found(f"Method {call.method} is not allowed here.")
        header = call.headers.get("x-emulator-openai-shape")
        shape = check_shape(header) if header else self.shape
        operation = openai_path(call.route.rest)
        if operation == "chat/completions":
            if shape not in _CHAT_SHAPES:  # an Images-API-only gateway
                raise not_found("Unknown request URL: POST /v1/chat/completions.")
            return self._chat(call, shape)
        forced = shape if shape in ("b64_json", "url") else None
        return self._images(call, forced, edit=operation == "images/edits")

    # ------------------------------------------------------------ chat completions

    def _chat(self, call: Call, shape: str) -> Reply:
        body = parse_json(call.body)
        model = _model(body.get("model"))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise bad_request("'messages' must be a non-empty array.")
        contents = [_content(m, n, model) for n, m in enumerate(messages)]
        config: dict[str, Any] = {}
        modalities = body.get("modalities")
        if isinstance(modalities, list):
            config["responseModalities"] = [str(m).upper() for m in modalities]
        image_config = body.get("image_config")
        if isinstance(image_config, Mapping):
            config["imageConfig"] = {
                k: v
                for k, v in (
                    ("aspectRatio", image_config.get("aspect_ratio")),
                    ("imageSize", image_config.get("image_size")),
                )
                if v is not None
            }
        gemini = {"contents": contents, "generationConfig": config}
        request = self.parse(gemini, model, _generate.body_key(call.body))
        answer = _generate.respond(request, _content_fault(call.fault), self.seed)
        return Reply.json(self._completion(answer, model, shape, call))

    def _completion(
        self, answer: Mapping[str, Any], model: ModelInfo, shape: str, call: Call
    ) -> dict[str, Any]:
        texts: list[str] = []
        images: list[bytes] = []
        finish = "stop"
        native = "STOP"
        candidates = answer.get("candidates") or []
        if answer.get("promptFeedback", {}).get("blockReason"):
            finish, native = "content_filter", str(answer["promptFeedback"]["blockReason"])
        elif candidates:
            native = str(candidates[0].get("finishReason", "STOP"))
            if native != "STOP":
                finish = "content_filter"
            for part in (candidates[0].get("content") or {}).get("parts", []):
                if part.get("thought"):
                    continue
                if "text" in part:
                    texts.append(str(part["text"]))
                elif "inlineData" in part:
                    images.append(base64.b64decode(part["inlineData"]["data"]))
        content = "\n\n".join(texts)
        message: dict[str, Any] = {"role": "assistant", "content": content or None}
        if shape == "images":
            if images:
                message["images"] = [
                    {"type": "image_url", "image_url": {"url": _data_url(i)}} for i in images
                ]
        else:
            links = [
                f"![image]({_data_url(i) if shape == 'markdown' else self._host(i, call)})"
                for i in images
            ]
            message["content"] = "\n\n".join([*texts, *links]) or None
        usage = answer.get("usageMetadata") or {}
        prompt_tokens = int(usage.get("promptTokenCount", 0))
        total = int(usage.get("totalTokenCount", prompt_tokens))
        return {
            "id": "chatcmpl-" + str(answer.get("responseId", "")),
            "object": "chat.completion",
            "created": 1_767_225_600,  # fixed: answers are deterministic
            "model": model.id,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": finish,
                    "native_finish_reason": native,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": total - prompt_tokens,
                "total_tokens": total,
            },
        }

    # ------------------------------------------------------------------ images API

    def _images(self, call: Call, forced: str | None, *, edit: bool) -> Reply:
        if edit:
            fields, files = _multipart(call)
        else:
            fields, files = parse_json(call.body), []
        prompt = fields.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise bad_request("'prompt' is a required property.")
        if edit and not files:
            raise bad_request("'image' is a required property: send at least one image file.")
        model = _model(fields.get("model"))
        n = _int(fields.get("n"), 1)
        if not 1 <= n <= 4:
            raise bad_request(f"Invalid 'n': {n}. Expected a value between 1 and 4.")
        response_format = forced or str(fields.get("response_format") or "b64_json")
        if response_format not in ("b64_json", "url"):
            raise bad_request(
                f"Invalid 'response_format': {response_format!r}. Use 'b64_json' or 'url'."
            )
        parts: list[dict[str, Any]] = [{"text": prompt}]
        parts += [{"inlineData": {"mimeType": mime, "data": _b64(data)}} for data, mime in files]
        config: dict[str, Any] = {"responseModalities": ["IMAGE"]}
        ratio = _size_ratio(fields.get("size"), model)
        if ratio is not None:
            config["imageConfig"] = {"aspectRatio": ratio}
        gemini = {"contents": [{"role": "user", "parts": parts}], "generationConfig": config}
        key = _generate.body_key(call.body)
        data: list[dict[str, Any]] = []
        usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
        for index in range(n):
            request = self.parse(gemini, model, key if index == 0 else f"{key}:{index}")
            answer = _generate.respond(request, _content_fault(call.fault), self.seed)
            meta = answer.get("usageMetadata") or {}
            usage["input_tokens"] = int(meta.get("promptTokenCount", 0))  # the same each time
            usage["output_tokens"] += int(meta.get("candidatesTokenCount", 0))
            image = _first_image(answer)
            if image is None:
                reason = _block_reason(answer)
                if reason == "STOP":  # the ``text_only`` fault: the model only talked
                    raise ApiError(502, "The upstream model returned no image.")  # emulator wording
                raise ApiError(  # emulator wording, after OpenAI's moderation refusal
                    400,
                    f"Your request was rejected by the safety system ({reason}).",
                    status="content_policy_violation",
                )
            if response_format == "url":
                data.append({"url": self._host(image, call)})
            else:
                data.append({"b64_json": _b64(image)})
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        return Reply.json({"created": 1_767_225_600, "data": data, "usage": usage})

    # ------------------------------------------------------------------ hosting

    def _host(self, image: bytes, call: Call) -> str:
        name = hashlib.sha256(image).hexdigest()[:24]
        with self._lock:
            self._hosted[name] = image
            self._hosted.move_to_end(name)
            while len(self._hosted) > _HOSTED_KEEP:
                self._hosted.popitem(last=False)
        return f"{call.base_url}/emulator/{_HOSTED_PREFIX}{name}.png"

    def _hosted_image(self, call: Call) -> Reply:
        name = call.route.rest.removeprefix(_HOSTED_PREFIX).removesuffix(".png")
        with self._lock:
            image = self._hosted.get(name)
        if image is None or call.method != "GET":
            raise not_found("This hosted image does not exist or has expired.")
        return Reply(body=image, content_type="image/png")


def check_shape(shape: str) -> str:
    if shape not in SHAPES:
        raise ValueError(f"Unknown OpenAI answer shape {shape!r}; use one of {', '.join(SHAPES)}.")
    return shape


def _model(name: object) -> ModelInfo:
    model_id = str(name or "").rsplit("/", 1)[-1]  # "google/gemini-2.5-flash-image" too
    info = MODELS.get(model_id)
    if info is None:
        raise ApiError(404, f"The model `{name}` does not exist or you do not have access to it.")
    return info


def _content_fault(fault: Fault | None) -> Fault | None:
    return fault if fault is not None and not fault.transient else None


def _content(message: object, n: int, model: ModelInfo) -> dict[str, Any]:
    """One chat message as the Gemini ``Content`` a gateway would forward."""
    if not isinstance(message, Mapping):
        raise bad_request(f"Invalid type for 'messages[{n}]': expected an object.")
    role = message.get("role")
    if role not in ("system", "user", "assistant"):
        raise bad_request(f"Invalid value for 'messages[{n}].role': {role!r}.")
    content = message.get("content")
    items: list[Any] = [content] if isinstance(content, str) else list(content or [])
    items += list(message.get("images") or [])  # an earlier answer sent back as it came
    parts: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        where = f"messages[{n}].content[{index}]"
        if isinstance(item, str):
            parts.append({"text": item})
        elif isinstance(item, Mapping) and item.get("type") == "text":
            parts.append({"text": str(item.get("text", ""))})
        elif isinstance(item, Mapping) and item.get("type") == "image_url":
            url = str((item.get("image_url") or {}).get("url", ""))
            match = _DATA_URL.match(url)
            if match is None:  # emulator: offline, so it cannot fetch remote inputs
                raise bad_request(f"Invalid '{where}.image_url.url': expected a base64 data URL.")
            part: dict[str, Any] = {
                "inlineData": {"mimeType": match["mime"], "data": match["data"]}
            }
            if role == "assistant" and model.thinking:
                # The gateway keeps the model's thought signatures on its side.
                part["thoughtSignature"] = _b64(b"gateway-" + str(n).encode())
            parts.append(part)
        else:
            raise bad_request(f"Invalid content part at '{where}'.")
    if not parts:
        parts.append({"text": ""})
    return {"role": "model" if role == "assistant" else "user", "parts": parts}


def _multipart(call: Call) -> tuple[dict[str, Any], list[tuple[bytes, str]]]:
    content_type = call.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise bad_request("images/edits expects multipart/form-data.")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + call.body)
    fields: dict[str, Any] = {}
    files: list[tuple[bytes, str]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if name in ("image", "image[]"):
            mime = part.get_content_type()
            if mime == "application/octet-stream":
                mime = _sniff(data)
            files.append((data, mime))
        elif isinstance(name, str):
            fields[name] = data.decode("utf-8", "replace")
    return fields, files


def _sniff(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def _size_ratio(size: object, model: ModelInfo) -> str | None:
    match = _SIZE.match(str(size or ""))
    if match is None:
        if size not in (None, "", "auto"):
            raise bad_request(f"Invalid 'size': {size!r}. Use WIDTHxHEIGHT, e.g. 1024x1024.")
        return None
    return _generate.closest_ratio(model, int(match[1]), int(match[2]))


def _first_image(answer: Mapping[str, Any]) -> bytes | None:
    for candidate in answer.get("candidates") or []:
        for part in (candidate.get("content") or {}).get("parts", []):
            if "inlineData" in part and not part.get("thought"):
                return base64.b64decode(part["inlineData"]["data"])
    return None


def _block_reason(answer: Mapping[str, Any]) -> str:
    reason = (answer.get("promptFeedback") or {}).get("blockReason")
    if reason:
        return str(reason)
    candidates = answer.get("candidates") or [{}]
    return str(candidates[0].get("finishReason", "no image"))


def _data_url(image: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{_b64(image)}"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _int(value: object, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default

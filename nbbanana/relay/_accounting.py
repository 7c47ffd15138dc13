"""What a request may cost before it is forwarded, and what it did cost after.

The estimate is deliberately on the high side — it is what a cap reserves — and uses the
model facts of :mod:`nbbanana.models` with the same allowances as ``Session.estimate``:
prompt text at 3 characters per token (+8), each input image by the model's token rule,
each requested candidate's output image at the requested ``imageSize``, and an allowance
for the sentence of text (and a thinking model's thoughts) that comes with an image.
The actual cost is read from the answer's ``usageMetadata`` by
:meth:`nbbanana.result.Usage.from_metadata` itself, the rule the library costs its own
answers with: an upstream that reports no per-modality split (relays and aggregators)
cannot make an answer with several images look like one image, or free.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.genai import types
from PIL import Image

from ..models import MODELS, ModelInfo, get_model
from ..result import Usage
from ._ledger import micros

__all__ = ["Estimate", "estimate", "settle_unmetered", "settle_usage", "skim"]

_CHARS_PER_TOKEN = 3
_TEXT_OUTPUT_ALLOWANCE = 300
_THOUGHT_ALLOWANCE = 600
#: Enough base64 for the header of nearly every PNG, JPEG or WebP (192 KB of image: past
#: the EXIF block and its thumbnail). An image whose size is not in there counts as one
#: of the largest the model takes (a high estimate, never a low one).
_HEADER_B64 = 256 * 1024


_KEY = b'"data"'
_SPACE = b" \t\r\n"


def skim(raw: bytes) -> bytes:
    """The request body with each inline image's base64 cut to its first
    :data:`_HEADER_B64` characters: still valid JSON with every field the estimate reads,
    at a small fraction of the parsing cost (the body forwarded upstream is the original).

    A JSON string cannot hold an unescaped quote, so ``"data"`` followed by ``:`` is
    always a key, and the next ``"`` after its value's opening quote ends the value;
    ``bytes.find`` gets to both at memory speed (a regular expression would crawl
    through megabytes of base64).
    """
    if len(raw) < 4 * _HEADER_B64:
        return raw
    pieces: list[bytes] = []
    position = 0
    found = raw.find(_KEY)
    while found >= 0:
        cursor = found + len(_KEY)
        while cursor < len(raw) and raw[cursor] in _SPACE:
            cursor += 1
        if cursor < len(raw) and raw[cursor] == ord(":"):
            cursor += 1
            while cursor < len(raw) and raw[cursor] in _SPACE:
                cursor += 1
            if cursor < len(raw) and raw[cursor] == ord('"'):
                start = cursor + 1
                end = raw.find(b'"', start)
                if end < 0:
                    break
                if end - start > _HEADER_B64:
                    pieces.append(raw[position : start + _HEADER_B64])
                    position = end
                cursor = end + 1
        found = raw.find(_KEY, cursor)
    pieces.append(raw[position:])
    return b"".join(pieces)


@dataclass(frozen=True)
class Estimate:
    model: str
    input_tokens: int
    output_tokens: int
    micros: int
    prompt: str
    #: The requested ``imageSize`` (``None``: the model's default), for settling.
    image_size: str | None = None


def model_info(model_id: str) -> ModelInfo:
    info = get_model(model_id, warn=False)  # an unknown model gets generic facts: fine here
    if info.price is None:
        # The relay must keep every cap, so a model whose price nobody knows is booked
        # and settled at the dearest known prices: an upper bound, never an undercharge.
        dearest = max(
            (m.price for m in MODELS.values() if m.price is not None),
            key=lambda p: p.output_image_per_m,
        )
        info = dataclasses.replace(info, price=dearest)
    return info


def _field(obj: Mapping[str, Any], camel: str) -> Any:
    if camel in obj:
        return obj[camel]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return obj.get(snake)


def _contents(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    inner = _field(body, "generateContentRequest")
    if isinstance(inner, Mapping):
        body = inner
    contents = _field(body, "contents") or []
    if isinstance(contents, Mapping):
        contents = [contents]
    return [c for c in contents if isinstance(c, Mapping)] if isinstance(contents, list) else []


def _parts(content: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    parts = _field(content, "parts") or []
    return [p for p in parts if isinstance(p, Mapping)] if isinstance(parts, list) else []


def prompt_of(body: Mapping[str, Any]) -> str:
    """The text of the last user turn (what the gallery shows)."""
    for content in reversed(_contents(body)):
        if _field(content, "role") in (None, "user"):
            texts = [str(p["text"]) for p in _parts(content) if isinstance(p.get("text"), str)]
            return "\n".join(texts).strip()[:2000]
    return ""


def _image_size(data_b64: str) -> tuple[int, int] | None:
    chunk = data_b64[:_HEADER_B64]
    try:
        raw = base64.b64decode(chunk[: len(chunk) - len(chunk) % 4], validate=False)
        with Image.open(io.BytesIO(raw)) as image:
            return image.size
    except (binascii.Error, OSError, ValueError, Image.DecompressionBombError):
        return None


def estimate(model_id: str, method: str, body: Mapping[str, Any]) -> Estimate:
    info = model_info(model_id)
    prompt = prompt_of(body)
    if method != "generateContent" and method != "streamGenerateContent":
        return Estimate(info.id, 0, 0, 0, prompt)  # countTokens and reads are free
    text_chars = 0
    image_tokens = 0
    for content in _contents(body):
        for part in _parts(content):
            if isinstance(part.get("text"), str):
                text_chars += len(part["text"])
            inline = _field(part, "inlineData")
            if isinstance(inline, Mapping):
                size = _image_size(str(inline.get("data", "")))
                # unreadable: the server refuses it (free) or counts it as a large image
                w, h = size if size is not None else (info.fit_max_side, info.fit_max_side)
                image_tokens += info.input_image_tokens(w, h)
            elif _field(part, "fileData") is not None:
                image_tokens += info.input_image_tokens(info.fit_max_side, info.fit_max_side)
    system = _field(body, "systemInstruction")
    if isinstance(system, Mapping):
        text_chars += sum(len(str(p.get("text", ""))) for p in _parts(system))
    input_tokens = math.ceil(text_chars / _CHARS_PER_TOKEN) + 8 + image_tokens

    config = _field(body, "generationConfig") or {}
    config = config if isinstance(config, Mapping) else {}
    image_config = _field(config, "imageConfig") or {}
    image_size = _field(image_config, "imageSize") if isinstance(image_config, Mapping) else None
    modalities = _field(config, "responseModalities") or ["IMAGE", "TEXT"]
    wants_image = any(str(m).upper() == "IMAGE" for m in modalities)
    candidates = max(1, min(int(_field(config, "candidateCount") or 1), 8))
    try:
        out_image = info.output_image_tokens(image_size) if wants_image else 0
    except (TypeError, ValueError):
        out_image = max(info.output_tokens.values())
    out_text = _TEXT_OUTPUT_ALLOWANCE + (_THOUGHT_ALLOWANCE if info.thinking else 0)
    max_out = _field(config, "maxOutputTokens")
    if not wants_image and isinstance(max_out, int) and max_out > 0:
        out_text = max(out_text, max_out)
    usd = info.cost_usd(
        input_tokens=input_tokens,
        output_image_tokens=out_image * candidates,
        output_text_tokens=out_text * candidates,
    )
    assert usd is not None  # model_info always has a price
    return Estimate(
        info.id,
        input_tokens,
        (out_image + out_text) * candidates,
        math.ceil(usd * 1e6),
        prompt,
        image_size if isinstance(image_size, str) else None,
    )


@dataclass(frozen=True)
class Settled:
    input_tokens: int
    output_tokens: int
    micros: int


def settle_usage(
    model_id: str, usage: Mapping[str, Any] | None, *, images: int, image_size: str | None
) -> Settled | None:
    """The actual cost of an answer holding ``images`` final images from its
    ``usageMetadata`` (``None`` when there is none, or none that reads), by the library's
    rule: see :meth:`~nbbanana.result.Usage.from_metadata`."""
    if not isinstance(usage, Mapping):
        return None
    try:
        # Read as the participant's SDK reads it (unknown fields dropped, then validated).
        meta = types.GenerateContentResponseUsageMetadata._from_response(
            response=copy.deepcopy(dict(usage)), kwargs={}
        )
    except (ValueError, TypeError):  # pydantic's ValidationError is a ValueError
        return None
    return _settled(model_id, meta, images=images, image_size=image_size)


def settle_unmetered(estimate: Estimate, *, images: int) -> Settled:
    """The cost booked for an answer without usage: the reservation, or — when the answer
    held more images than it reserved for — the estimated input plus every image by the
    library's rule, whichever is more (a cap must never be under-counted)."""
    meta = types.GenerateContentResponseUsageMetadata(prompt_token_count=estimate.input_tokens)
    by_images = _settled(estimate.model, meta, images=images, image_size=estimate.image_size)
    if by_images.micros <= estimate.micros:
        return Settled(estimate.input_tokens, estimate.output_tokens, estimate.micros)
    return by_images


def _settled(
    model_id: str,
    meta: types.GenerateContentResponseUsageMetadata,
    *,
    images: int,
    image_size: str | None,
) -> Settled:
    info = model_info(model_id)
    per_image = info.output_image_tokens(image_size)  # an unknown size: the dearest
    usage = Usage.from_metadata(meta, images=images, tokens_per_image=per_image)
    usd = usage.cost_usd(info)
    assert usd is not None  # model_info always has a price
    return Settled(usage.prompt_tokens, usage.output_tokens + usage.thought_tokens, micros(usd))

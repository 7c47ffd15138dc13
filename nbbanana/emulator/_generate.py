"""``generateContent``, ``streamGenerateContent`` and ``countTokens``: validation and answers.

Validation follows the real service, in its order: the JSON body and base64 (a decoding
failure names the field, e.g. ``contents[0].parts[1].inline_data.data``), MIME types
(``Unsupported MIME type: image/gif``), ``fileData`` references (a missing or expired
file is 403), the image itself, the number of reference images
(``ModelInfo.max_reference_images``, counting the user's images in the whole request),
``imageConfig`` values against the model's table, per-image limits of the endpoint
profile, and — for thinking models — the thought signatures on the model's images in a
multi-turn history. Field names are accepted in camelCase and snake_case, as proto JSON
parsers do (the SDK itself sends ``inlineData: {"data", "mime_type"}``).

Answers are deterministic: everything is seeded by a hash of the request and the server
seed. Output images are PNG at exactly ``ModelInfo.output_size(aspect_ratio, image_size)``;
without an aspect ratio a generation is square and an edit takes the supported ratio
closest to its first input. Token counts use the documented rules: input images by
``ModelInfo.input_image_tokens``, text as ⌈characters / 4⌉ per part, output images by
``ModelInfo.output_image_tokens``, thoughts like text.

Gemini 3 features, as the emulator answers them:

* **thoughts** — a thinking model always thinks (``thoughtsTokenCount``), and returns
  thought parts (a text and an interim "thought image") only when the request asks with
  ``thinkingConfig.includeThoughts``; a ``thinkingLevel`` the model does not take is
  refused (emulator wording);
* **grounding** — with the ``googleSearch`` tool in the request, the candidate carries
  ``groundingMetadata``: search queries, sources that are clearly fake
  (``https://example.invalid/…``, titled "offline emulator"), and a
  ``searchEntryPoint.renderedContent`` snippet;
* **several images** — the API has no image-count parameter for these models
  (``candidateCount`` is not how they give several images; the emulator ignores it): a
  prompt asks, e.g. "three variations of …", "4 images of …". The emulator answers
  with that many images (up to :data:`MAX_IMAGES`), each its own part.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from ..models import ModelInfo
from . import _synth, _transform
from ._faults import Fault
from ._files import FileStore
from ._status import bad_request, field_violation

__all__ = [
    "MAX_IMAGES",
    "SUPPORTED_IMAGE_MIME_TYPES",
    "GenerateRequest",
    "count_tokens",
    "parse_request",
    "respond",
    "stream_chunks",
]

#: MIME types image models accept in image parts [reference §3].
SUPPORTED_IMAGE_MIME_TYPES: tuple[str, ...] = (
    "image/png", "image/jpeg", "image/webp", "image/heic", "image/heif",
)  # fmt: skip

#: Most images the emulator puts in one answer when a prompt asks for several.
MAX_IMAGES = 4
_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "several": 3, "a few": 3}
_COUNT_RE = re.compile(
    r"\b(\d+|two|three|four|five|six|several|a few)\s+(?:[\w-]+\s+){0,2}?"
    r"(?:images|pictures|variations|versions|variants|panels|options)\b",
    re.IGNORECASE,
)


def images_asked(prompt: str) -> int:
    """How many images a prompt asks for ("three variations of a logo" → 3), 1 to
    :data:`MAX_IMAGES`."""
    match = _COUNT_RE.search(prompt)
    if match is None:
        return 1
    word = match.group(1).lower()
    count = int(word) if word.isdigit() else _NUMBERS[word]
    return max(1, min(MAX_IMAGES, count))


_UNPROCESSABLE = (
    "Unable to process input image. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting"
)


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _snake(name: str) -> str:
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), name)


def field_of(obj: Mapping[str, Any], camel: str) -> Any:
    """A proto JSON field by its camelCase or snake_case name."""
    value = obj.get(camel)
    return obj.get(_snake(camel)) if value is None else value


@dataclass
class InputImage:
    data: bytes
    mime_type: str
    width: int
    height: int
    role: str
    turn: int
    thought: bool = False

    def decode(self) -> Image.Image:
        if self.mime_type in ("image/heic", "image/heif"):
            _register_heif()
        image = Image.open(io.BytesIO(self.data))
        image.draft("RGB", (2048, 2048))  # JPEG: decode at reduced scale, it is only a source
        image.load()
        return image


def _register_heif() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()


@dataclass
class GenerateRequest:
    model: ModelInfo
    key: str
    prompt: str = ""
    text_parts: list[str] = field(default_factory=list)
    images: list[InputImage] = field(default_factory=list)
    aspect_ratio: str | None = None
    image_size: str | None = None
    modalities: tuple[str, ...] = ()
    include_thoughts: bool = False
    thinking_level: str | None = None
    grounding: bool = False

    @property
    def user_images(self) -> list[InputImage]:
        return [i for i in self.images if i.role == "user" and not i.thought]

    @property
    def source_images(self) -> list[InputImage]:
        """What an edit starts from: the last user turn's images, else the latest image
        in the conversation (a chat turn like "now make it blue")."""
        usable = [i for i in self.images if not i.thought]
        if not usable:
            return []
        last_turn = max(i.turn for i in usable)
        latest = [i for i in usable if i.turn == last_turn and i.role == "user"]
        return latest or [usable[-1]]

    @property
    def text_token_count(self) -> int:
        return sum(text_tokens(t) for t in self.text_parts)

    @property
    def image_token_count(self) -> int:
        return sum(self.model.input_image_tokens(i.width, i.height) for i in self.images)


def _decode_base64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise field_violation(where, f"Invalid value at '{where}' (TYPE_BYTES), expected a string.")
    try:
        cleaned = value.replace("-", "+").replace("_", "/")  # proto JSON accepts URL-safe too
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        shown = value if len(value) <= 40 else value[:40] + "…"
        raise field_violation(
            where,
            f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed for \"{shown}\"",
        ) from None


def _check_mime(mime: str, where: str) -> str:
    mime = (mime or "").lower().strip()
    if mime not in SUPPORTED_IMAGE_MIME_TYPES:
        raise field_violation(where, f"Unsupported MIME type: {mime or '(none)'}")
    return mime


def _image_size(data: bytes, mime: str) -> tuple[int, int]:
    if mime in ("image/heic", "image/heif"):
        _register_heif()
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        raise bad_request(_UNPROCESSABLE) from None


def parse_request(
    body: Mapping[str, Any],
    model: ModelInfo,
    *,
    files: FileStore,
    key: str,
    per_image_limit: int | None = None,
    check_config: bool = True,
) -> GenerateRequest:
    """Validate a ``GenerateContentRequest`` body; raises :class:`ApiError`."""
    contents = field_of(body, "contents")
    if isinstance(contents, Mapping):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise field_violation(
            "contents", "* GenerateContentRequest.contents: contents is not specified"
        )
    request = GenerateRequest(model=model, key=key)
    for turn, content in enumerate(contents):
        if not isinstance(content, Mapping):
            raise field_violation(f"contents[{turn}]", f"Invalid value at 'contents[{turn}]'.")
        role = str(content.get("role") or "user")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise field_violation(
                f"contents[{turn}].parts",
                f"* GenerateContentRequest.contents[{turn}].parts: contents.parts must not be empty.",
            )
        is_last_user = turn == len(contents) - 1 and role == "user"
        for index, part in enumerate(parts):
            if not isinstance(part, Mapping):
                raise field_violation(f"contents[{turn}].parts[{index}]", "Invalid part.")
            _parse_part(request, part, role, turn, index, files, per_image_limit, is_last_user)
    if model.thinking:
        _check_signatures(contents)
    user_count = len(request.user_images)
    if user_count > model.max_reference_images:
        # emulator wording
        raise bad_request(
            f"Too many input images: {user_count}. models/{model.id} accepts at most "
            f"{model.max_reference_images} images per request."
        )
    system = field_of(body, "systemInstruction")
    if isinstance(system, Mapping):  # counted as prompt text, not drawn
        request.text_parts += [str(p["text"]) for p in system.get("parts") or [] if "text" in p]
    config = field_of(body, "generationConfig") or {}
    _check_request_level_fields(config)
    modalities = field_of(config, "responseModalities") or []
    request.modalities = tuple(str(m).upper() for m in modalities)
    image_config = field_of(config, "imageConfig") or {}
    request.aspect_ratio = field_of(image_config, "aspectRatio")
    request.image_size = field_of(image_config, "imageSize")
    thinking = field_of(config, "thinkingConfig") or {}
    request.include_thoughts = bool(field_of(thinking, "includeThoughts"))
    level = field_of(thinking, "thinkingLevel")
    request.thinking_level = str(level).upper() if level else None
    tools = field_of(body, "tools") or []
    request.grounding = any(
        isinstance(t, Mapping) and field_of(t, "googleSearch") is not None for t in tools
    )
    if check_config:
        _check_image_config(request)
        _check_features(request)
    return request


#: Request fields that are not ``generationConfig`` fields: the service's proto JSON
#: parser refuses them there (a JSONL batch line built from a whole SDK config would
#: otherwise lose its grounding without a word).
_REQUEST_LEVEL = ("tools", "toolConfig", "systemInstruction", "safetySettings",
                  "cachedContent", "labels")  # fmt: skip


def _check_request_level_fields(config: Mapping[str, Any]) -> None:
    for camel in _REQUEST_LEVEL:
        for name in (camel, _snake(camel)):
            if name in config:
                # The service's wording for an unknown field in proto JSON.
                raise field_violation(
                    "generation_config",
                    f'Invalid JSON payload received. Unknown name "{name}" at '
                    "'generation_config': Cannot find field.",
                )


def _parse_part(
    request: GenerateRequest,
    part: Mapping[str, Any],
    role: str,
    turn: int,
    index: int,
    files: FileStore,
    per_image_limit: int | None,
    is_last_user: bool,
) -> None:
    where = f"contents[{turn}].parts[{index}]"
    thought = bool(part.get("thought"))
    signature = field_of(part, "thoughtSignature")
    if signature is not None:
        _decode_base64(signature, f"{where}.thought_signature")
    if (text := part.get("text")) is not None:
        if not thought:
            request.text_parts.append(str(text))
            if is_last_user and str(text).strip():
                # The prompt is the turn's last words: texts before it in the same turn
                # are context (a chat joins a regional turn's note into the next turn).
                request.prompt = str(text).strip()
        return
    inline = field_of(part, "inlineData")
    if inline is not None:
        encoded = inline.get("data")
        if (
            per_image_limit is not None
            and isinstance(encoded, str)
            and len(encoded) > per_image_limit
        ):
            raise field_violation(  # emulator wording (Vertex AI's 7 MB per inline image)
                f"{where}.inline_data",
                f"Inline image at '{where}.inline_data' is {len(encoded)} bytes; the maximum "
                f"inline image size is {per_image_limit // 1_000_000} MB.",
            )
        data = _decode_base64(encoded, f"{where}.inline_data.data")
        mime = _check_mime(field_of(inline, "mimeType"), f"{where}.inline_data.mime_type")
    elif (file_data := field_of(part, "fileData")) is not None:
        uri = field_of(file_data, "fileUri")
        if not uri:
            raise field_violation(f"{where}.file_data.file_uri", "file_uri is required.")
        stored = files.resolve_uri(str(uri))
        mime = _check_mime(
            field_of(file_data, "mimeType") or stored.mime_type, f"{where}.file_data.mime_type"
        )
        data = stored.data
    else:
        return  # function calls, executable code…: nothing an image model reads here
    width, height = _image_size(data, mime)
    request.images.append(InputImage(data, mime, width, height, role, turn, thought))


def _check_signatures(contents: Sequence[Mapping[str, Any]]) -> None:
    """Gemini 3 image models refuse history images sent back without their signature."""
    for turn, content in enumerate(contents):
        if content.get("role") != "model":
            continue
        for index, part in enumerate(content.get("parts") or []):
            is_image = (
                field_of(part, "inlineData") is not None or field_of(part, "fileData") is not None
            )
            if is_image and not part.get("thought") and not field_of(part, "thoughtSignature"):
                # emulator wording, modelled on the function-call variant of this error
                raise bad_request(
                    f"Image part is missing a thought_signature in content position {turn + 1}, "
                    f"part position {index + 1}. Please refer to "
                    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
                )


def _one_of(values: Sequence[str]) -> str:
    quoted = [f"'{v}'" for v in values]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + ", or " + quoted[-1]


def _ratio_order(ratio: str) -> tuple[int, ...]:
    return tuple(int(x) for x in ratio.split(":"))


def _check_image_config(request: GenerateRequest) -> None:
    model = request.model
    if request.aspect_ratio is not None and request.aspect_ratio not in model.aspect_ratios:
        # The service's wording, values in numeric order (seen for Nano Banana 2 in 2026).
        allowed = _one_of(sorted(model.aspect_ratios, key=_ratio_order))
        raise field_violation(
            "generation_config.image_config.aspect_ratio",
            "* GenerateContentRequest.generation_config.image_config.aspect_ratio: "
            f"aspect_ratio must be one of {allowed}.\n",
        )
    if request.image_size is not None and request.image_size not in model.image_sizes:
        if model.image_sizes:  # emulator wording, in the style of the aspect-ratio message
            detail = f"image_size must be one of {_one_of(model.image_sizes)}."
        else:
            detail = f"image_size is not supported by models/{model.id}."
        raise field_violation(
            "generation_config.image_config.image_size",
            f"* GenerateContentRequest.generation_config.image_config.image_size: {detail}\n",
        )


def _check_features(request: GenerateRequest) -> None:
    """Thinking levels and grounding the model does not offer (emulator wording)."""
    model = request.model
    level = request.thinking_level
    unspecified = level is None or level == "THINKING_LEVEL_UNSPECIFIED"
    if not unspecified and level not in model.thinking_levels:
        detail = (
            f"thinking_level must be one of {_one_of(model.thinking_levels)}."
            if model.thinking_levels
            else f"thinking_level is not supported by models/{model.id}."
        )
        raise field_violation(
            "generation_config.thinking_config.thinking_level",
            f"* GenerateContentRequest.generation_config.thinking_config.thinking_level: "
            f"{detail}\n",
        )
    if request.grounding and not model.grounding and model.known:
        raise bad_request(f"Search Grounding is not supported for models/{model.id}.")


# ------------------------------------------------------------------- responses


def closest_ratio(model: ModelInfo, width: int, height: int) -> str:
    def distance(ratio: str) -> float:
        rw, rh = (int(x) for x in ratio.split(":"))
        return abs(math.log(width / height) - math.log(rw / rh))

    return min(model.aspect_ratios, key=distance)


def _response_id(key: str) -> str:
    digest = hashlib.sha256(("response:" + key).encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")


def _signature(key: str, index: int) -> str:
    return base64.b64encode(hashlib.sha256(f"signature:{key}:{index}".encode()).digest()).decode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _usage(
    request: GenerateRequest, *, image_tokens: int, text: str, thoughts: str
) -> dict[str, Any]:
    prompt_text, prompt_images = request.text_token_count, request.image_token_count
    out_text = text_tokens(text) if text else 0
    thought_tokens = text_tokens(thoughts) if thoughts else 0
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_text + prompt_images,
        "totalTokenCount": prompt_text + prompt_images + image_tokens + out_text + thought_tokens,
        "promptTokensDetails": _details(TEXT=prompt_text, IMAGE=prompt_images, always="TEXT"),
    }
    if image_tokens or out_text:
        usage["candidatesTokenCount"] = image_tokens + out_text
        usage["candidatesTokensDetails"] = _details(IMAGE=image_tokens, TEXT=out_text)
    if request.model.thinking:
        usage["thoughtsTokenCount"] = thought_tokens
    return usage


def _details(*, always: str | None = None, **counts: int) -> list[dict[str, Any]]:
    return [
        {"modality": modality, "tokenCount": n}
        for modality, n in counts.items()
        if n or modality == always
    ]


def respond(request: GenerateRequest, fault: Fault | None, server_seed: int) -> dict[str, Any]:
    """The ``GenerateContentResponse`` for a validated request."""
    model = request.model
    seed = _synth.seed_for(request.key, server_seed)
    envelope: dict[str, Any] = {"modelVersion": model.id, "responseId": _response_id(request.key)}
    if fault is not None and fault.name == "blocked":
        reason = fault.params.get("reason", "SAFETY")
        return {
            "promptFeedback": {"blockReason": reason},
            "usageMetadata": _usage(request, image_tokens=0, text="", thoughts=""),
            **envelope,
        }
    if fault is not None and fault.name in ("image_safety", "prohibited"):
        reason = "IMAGE_SAFETY" if fault.name == "image_safety" else "PROHIBITED_CONTENT"
        return {
            "candidates": [{"finishReason": reason, "index": 0}],
            "usageMetadata": _usage(request, image_tokens=0, text="", thoughts=""),
            **envelope,
        }

    wants_image = not request.modalities or "IMAGE" in request.modalities
    wants_text = not request.modalities or "TEXT" in request.modalities
    if fault is not None and fault.name == "text_only":
        wants_image, wants_text = False, True
    sources = request.source_images
    parts: list[dict[str, Any]] = []
    thoughts = ""
    text = ""
    image_tokens = 0
    images: list[Image.Image] = []
    if wants_image:
        ratio = request.aspect_ratio
        if ratio is None:
            ratio = closest_ratio(model, sources[0].width, sources[0].height) if sources else "1:1"
        size = model.output_size(ratio, request.image_size)
        count = images_asked(request.prompt)
        decoded = [s.decode() for s in sources]
        for n in range(count):
            seed_n = seed if n == 0 else _synth.seed_for(seed, n)
            if sources and fault is not None and fault.name == "transform":
                # known-transform mode: the first source, moved as the fault says
                images.append(
                    _transform.edit(
                        decoded[0], request.prompt, size, seed_n, fault.params,
                        envelope["responseId"],
                    )
                )  # fmt: skip
            elif sources and not (fault is not None and fault.name == "ignore_input"):
                images.append(_synth.edit(decoded, request.prompt, size, seed_n))
            else:
                images.append(_synth.generate(request.prompt, size, seed_n))
        image_tokens = model.output_image_tokens(request.image_size) * count
        what = "edited" if sources else "generated"
        noun = f"{count} {what} images" if count > 1 else f"the {what} image"
        text = f"Here is {noun} ({size[0]}×{size[1]}, {ratio}) from the offline emulator."
        if fault is not None and fault.name == "text_only":
            text = ""
    if fault is not None and fault.name == "text_only":
        text = (
            "(offline emulator) I understand the request, but this answer has no image: "
            f"\u201c{request.prompt[:80]}\u201d."
        )
    elif not wants_image:
        text = _synth.describe([s.decode() for s in sources], request.prompt)
    if model.thinking:
        # The model always thinks (and is billed for it); the parts come only when asked.
        thoughts = (
            f"**Planning the {'edit' if sources else 'image'}**\n\nThe offline emulator "
            f"considers the request \u201c{request.prompt[:120]}\u201d and plans the composition."
        )
        if request.include_thoughts:
            parts.append({"text": thoughts, "thought": True})
            if images:
                draft = _synth.encode_png(_synth.interim(images[0]))
                parts.append(
                    {"inlineData": {"mimeType": "image/png", "data": _b64(draft)}, "thought": True}
                )
    if text and (wants_text or not wants_image):
        parts.append({"text": text})
    else:
        text = ""
    for image in images:
        parts.append(
            {"inlineData": {"mimeType": "image/png", "data": _b64(_synth.encode_png(image))}}
        )
    if model.thinking:
        signed = [i for i, p in enumerate(parts) if not p.get("thought")]
        for n, i in enumerate(signed):
            if n == 0 or "inlineData" in parts[i]:
                parts[i]["thoughtSignature"] = _signature(request.key, i)
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": parts},
        "finishReason": "STOP",
        "index": 0,
    }
    if request.grounding:
        candidate["groundingMetadata"] = _grounding_metadata(request.prompt)
    response: dict[str, Any] = {"candidates": [candidate], **envelope}
    if fault is None or fault.name != "unmetered":
        usage = _usage(request, image_tokens=image_tokens, text=text, thoughts=thoughts)
        response["usageMetadata"] = usage
    return response


#: Titles and addresses of the emulator's grounding sources: clearly not real pages
#: (``.invalid`` is a reserved top-level domain that never resolves).
FAKE_SOURCE_URL = "https://example.invalid/offline-emulator/source-{n}"


def _grounding_metadata(prompt: str) -> dict[str, Any]:
    """Search queries, two fake sources and a suggestions snippet, shaped like the
    service's ``groundingMetadata``."""
    query = " ".join(prompt.split()[:8]) or "image"
    chunks = [
        {"web": {"uri": FAKE_SOURCE_URL.format(n=n), "title": f"offline emulator source {n}"}}
        for n in (1, 2)
    ]
    rendered = (
        "<style>.nbbanana-emulator-chip{display:inline-block;border:1px solid #ccc;"
        "border-radius:16px;padding:2px 10px;margin:2px;font:12px sans-serif}</style>"
        '<div class="nbbanana-emulator-search">Search suggestions (offline emulator): '
        f'<a class="nbbanana-emulator-chip" href="https://example.invalid/search">{html.escape(query)}</a>'
        "</div>"
    )
    return {
        "webSearchQueries": [query],
        "groundingChunks": chunks,
        "groundingSupports": [
            {
                "segment": {"startIndex": 0, "endIndex": 0, "text": ""},
                "groundingChunkIndices": [0, 1],
            }
        ],
        "searchEntryPoint": {"renderedContent": rendered},
    }


def stream_chunks(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Split a response into SSE events the way the service streams: one part per event,
    the finish reason and final usage on the last one."""
    candidates = response.get("candidates")
    if not candidates or "content" not in candidates[0]:
        return [dict(response)]
    candidate = candidates[0]
    parts = candidate["content"]["parts"]
    envelope = {k: v for k, v in response.items() if k in ("modelVersion", "responseId")}
    usage = response.get("usageMetadata")  # none from the ``unmetered`` fault
    interim_usage = usage and {
        "promptTokenCount": usage["promptTokenCount"],
        "totalTokenCount": usage["promptTokenCount"],
        "promptTokensDetails": usage["promptTokensDetails"],
    }
    chunks = []
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        chunk_candidate: dict[str, Any] = {
            "content": {"role": "model", "parts": [part]},
            "index": 0,
        }
        if last:
            chunk_candidate["finishReason"] = candidate["finishReason"]
        chunk: dict[str, Any] = {"candidates": [chunk_candidate], **envelope}
        if usage is not None:
            chunk["usageMetadata"] = usage if last else interim_usage
        chunks.append(chunk)
    return chunks


def count_tokens(request: GenerateRequest) -> dict[str, Any]:
    return {
        "totalTokens": request.text_token_count + request.image_token_count,
        "promptTokensDetails": _details(
            TEXT=request.text_token_count, IMAGE=request.image_token_count, always="TEXT"
        ),
    }


def body_key(body: bytes) -> str:
    """The request's identity for seeding: a hash of the exact bytes received."""
    return hashlib.sha256(body).hexdigest()

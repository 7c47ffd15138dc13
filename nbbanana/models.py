"""Facts about the Gemini image models and the endpoints that serve them.

Two tables live here and nowhere else:

* :data:`MODELS` — per model: reference-image limits, aspect ratios and output sizes,
  image sizes, the input-token rule, output tokens and prices.
* :data:`PROFILES` — per endpoint: the request and per-image byte limits, whether the
  Files API exists there, and how the endpoint words a "too large" refusal.

Every number cites its source. Numbers marked *unconfirmed* are the best public guess
(November 2026); the ``live`` contract tests exist to confirm or correct them. Prices
change: :func:`set_price` overrides them for a session.

Sources (abbreviated in the comments below):

* [guide]   Gemini API image-generation guide (ai.google.dev/gemini-api/docs/image-generation)
* [under]   Gemini API image-understanding guide (tokens of input images)
* [g3]      Gemini 3 developer guide (media_resolution tokens)
* [price]   Gemini API pricing page, paid tier, November 2026
* [limits]  Google blog "gemini-api-new-file-limits", 12 January 2026
* [files]   Gemini Files API guide
* [vertex]  Vertex AI model pages for gemini-2.5-flash-image / gemini-3-pro-image
* [proxy]   aggregator proxy documentation (20 MB per request/file)
* [cookbook] Google's cookbook notebook quickstarts/Get_Started_Nano_Banana.ipynb
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from . import _state

__all__ = [
    "ACCEPTED_MIME_TYPES",
    "ASPECT_RATIOS",
    "FORMAT_MIME",
    "MODELS",
    "PROFILES",
    "SENT_FORMATS",
    "EndpointProfile",
    "ModelInfo",
    "Price",
    "get_model",
    "get_profile",
    "learn_limit",
    "learned_limit",
    "parse_limit_from_message",
    "set_price",
    "text_tokens",
]

#: Aspect ratios every image model accepts [guide].
ASPECT_RATIOS: tuple[str, ...] = (
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
)  # fmt: skip

DEFAULT_MODEL = "gemini-2.5-flash-image"

#: MIME types the image models accept in image parts [guide]; anything else is converted
#: first. (The emulator keeps its own copy on purpose: it plays the server.)
ACCEPTED_MIME_TYPES: frozenset[str] = frozenset(
    {"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"}
)

#: Pillow's format name → MIME type, for every format nbbanana reads.
FORMAT_MIME: Mapping[str, str] = {
    "JPEG": "image/jpeg",
    "MPO": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "HEIF": "image/heif",
    "HEIC": "image/heic",
    "AVIF": "image/avif",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
}

#: The formats nbbanana writes when it fits an image (and may send unchanged).
SENT_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP")


@dataclass(frozen=True)
class Price:
    """USD per million tokens, Developer API paid tier. Batch API charges half [price]."""

    input_per_m: float
    output_image_per_m: float
    output_text_per_m: float
    as_of: str = "2026-11"
    confirmed: bool = True


@dataclass(frozen=True)
class ModelInfo:
    """Everything nbbanana needs to know about one image model."""

    id: str
    name: str
    #: Hard limit of reference images per request (the server refuses more).
    max_reference_images: int
    #: How many the model handles best; more gives a warning, not an error.
    recommended_reference_images: int
    aspect_ratios: tuple[str, ...]
    #: Output size in pixels by image size ("1K", ...) then aspect ratio. Models without
    #: an ``image_size`` option use the key ``None``.
    output_sizes: Mapping[str | None, Mapping[str, tuple[int, int]]]
    #: Output tokens per generated image, by image size (``None`` for models without one).
    output_tokens: Mapping[str | None, int]
    #: "tiles" — Gemini 2.x rule: ≤384 px on both sides is 258 tokens, else 258 per
    #: 768×768 tile [under]. "fixed" — Gemini 3 rule: a fixed count per image set by
    #: media_resolution (high, the default for images: 1120) [g3].
    input_token_rule: str
    #: Tokens per image under the "fixed" rule.
    fixed_input_tokens: int
    #: nbbanana's default fitting resolution (long side, px): a documented choice, not a
    #: published fact (no document states the models' internal resolution). See README.
    fit_max_side: int
    price: Price
    thinking: bool = False
    confirmed: bool = True
    notes: str = ""

    @property
    def image_sizes(self) -> tuple[str, ...]:
        """The ``image_size`` values the model accepts; empty if it has no such option."""
        return tuple(k for k in self.output_sizes if k is not None)

    @property
    def default_image_size(self) -> str | None:
        return "1K" if "1K" in self.output_sizes else None

    def output_size(
        self, aspect_ratio: str | None = None, image_size: str | None = None
    ) -> tuple[int, int]:
        """The pixel size of a generated image. Raises ``ValueError`` for unsupported values."""
        size_key = image_size if image_size is not None else self.default_image_size
        if size_key not in self.output_sizes:
            raise ValueError(
                f"{self.id} does not support image_size={image_size!r}; "
                f"use one of {list(self.image_sizes) or 'none (omit image_size)'}."
            )
        table = self.output_sizes[size_key]
        ratio = aspect_ratio or "1:1"
        if ratio not in table:
            raise ValueError(
                f"{self.id} does not support aspect_ratio={aspect_ratio!r}; use one of {list(table)}."
            )
        return table[ratio]

    def output_image_tokens(self, image_size: str | None = None) -> int:
        key = image_size if image_size is not None else self.default_image_size
        return self.output_tokens.get(key, max(self.output_tokens.values()))

    def input_image_tokens(self, width: int, height: int) -> int:
        """Estimated input tokens for one image of ``width`` × ``height`` pixels."""
        if self.input_token_rule == "fixed":
            return self.fixed_input_tokens
        return tile_tokens(width, height)

    def cost_usd(
        self,
        *,
        input_tokens: int = 0,
        output_image_tokens: int = 0,
        output_text_tokens: int = 0,
        batch: bool = False,
    ) -> float:
        p = self.price
        usd = (
            input_tokens * p.input_per_m
            + output_image_tokens * p.output_image_per_m
            + output_text_tokens * p.output_text_per_m
        ) / 1e6
        return usd / 2 if batch else usd


#: Characters per text token in nbbanana's estimates: a generous reading of Gemini's
#: documented ~4 characters per token, so that estimates err on the side of cost.
CHARS_PER_TEXT_TOKEN = 3
#: Tokens a request's text part costs on top of its characters (role and framing).
TEXT_PART_TOKENS = 8


def text_tokens(text: str) -> int:
    """The input tokens a prompt is estimated at (the one text-token rule: the cost
    estimate, the cap and the studio's gauge all use it). No text, no text part: 0."""
    if not text:
        return 0
    return math.ceil(len(text) / CHARS_PER_TEXT_TOKEN) + TEXT_PART_TOKENS


def tile_tokens(width: int, height: int) -> int:
    """Gemini 2.x input-image tokens: 258 for an image with both sides ≤ 384 px, else 258
    for each 768×768 tile the image is cut into [under]."""
    if width <= 384 and height <= 384:
        return 258
    return 258 * math.ceil(width / 768) * math.ceil(height / 768)


def _scaled_sizes(base: Mapping[str, tuple[int, int]], factor: int) -> dict[str, tuple[int, int]]:
    return {ratio: (w * factor, h * factor) for ratio, (w, h) in base.items()}


# [guide] gemini-2.5-flash-image: one size per aspect ratio, 1290 output tokens each.
_FLASH_25_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "2:3": (832, 1248), "3:2": (1248, 832), "3:4": (864, 1184),
    "4:3": (1184, 864), "4:5": (896, 1152), "5:4": (1152, 896), "9:16": (768, 1344),
    "16:9": (1344, 768), "21:9": (1536, 672),
}  # fmt: skip

# [guide] gemini-3-pro-image-preview at 1K; 2K and 4K are exactly 2× and 4× (the guide's
# table lists them; e.g. 16:9 is 1376×768 / 2752×1536 / 5504×3072).
_PRO_1K: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "2:3": (848, 1264), "3:2": (1264, 848), "3:4": (896, 1200),
    "4:3": (1200, 896), "4:5": (928, 1152), "5:4": (1152, 928), "9:16": (768, 1376),
    "16:9": (1376, 768), "21:9": (1584, 672),
}  # fmt: skip

# Nano Banana 2's extra ratios (unconfirmed): sized to ≈1 MP at 1K on a 16 px grid.
_FLASH_31_EXTRA_1K: dict[str, tuple[int, int]] = {
    "1:4": (512, 2048), "4:1": (2048, 512), "1:8": (368, 2896), "8:1": (2896, 368),
}  # fmt: skip
_FLASH_31_1K = {**_PRO_1K, **_FLASH_31_EXTRA_1K}


MODELS: dict[str, ModelInfo] = {
    m.id: m
    for m in (
        ModelInfo(
            id="gemini-2.5-flash-image",
            name="Nano Banana",
            max_reference_images=3,  # [vertex] "maximum images per prompt: 3"
            recommended_reference_images=3,  # [guide] "works best with up to 3"
            aspect_ratios=ASPECT_RATIOS,
            output_sizes={None: _FLASH_25_SIZES},
            output_tokens={None: 1290},  # [guide]
            input_token_rule="tiles",  # [under]
            fixed_input_tokens=258,
            # 3072 px: beyond about 3 K px extra pixels add little (reference, §3), while
            # 12 tiles (3,096 tokens, $0.0009) cost 2 % of the image's output price. At
            # 1536 px the fitted photo scored below the "compress to 18 MB" ladder on SSIM.
            fit_max_side=3072,
            price=Price(input_per_m=0.30, output_image_per_m=30.0, output_text_per_m=2.50),
            notes="GA October 2025; $0.039 per image [price]",
        ),
        ModelInfo(
            id="gemini-3-pro-image-preview",
            name="Nano Banana Pro",
            max_reference_images=14,  # [guide] up to 6 objects + 5 people at high fidelity
            recommended_reference_images=11,
            aspect_ratios=ASPECT_RATIOS,
            output_sizes={
                "1K": _PRO_1K,
                "2K": _scaled_sizes(_PRO_1K, 2),
                "4K": _scaled_sizes(_PRO_1K, 4),
            },
            output_tokens={"1K": 1120, "2K": 1120, "4K": 2000},  # [price]
            input_token_rule="fixed",  # [g3] media_resolution high = 1120
            fixed_input_tokens=1120,
            # Input tokens are fixed, and 4K output can reuse detail: up to 3072 px.
            fit_max_side=3072,
            price=Price(input_per_m=2.00, output_image_per_m=120.0, output_text_per_m=12.0),
            thinking=True,
            notes="thinking always on; Google Search grounding; $0.134 at 1K/2K, $0.24 at 4K [price]",
        ),
        ModelInfo(
            id="gemini-3.1-flash-image-preview",
            name="Nano Banana 2",
            max_reference_images=14,  # unconfirmed
            recommended_reference_images=14,
            aspect_ratios=(*ASPECT_RATIOS, *_FLASH_31_EXTRA_1K),  # extra ratios unconfirmed
            output_sizes={
                "512": {r: (w // 2, h // 2) for r, (w, h) in _FLASH_31_1K.items()},
                "1K": _FLASH_31_1K,
                "2K": _scaled_sizes(_FLASH_31_1K, 2),
                "4K": _scaled_sizes(_FLASH_31_1K, 4),
            },
            # unconfirmed: ≈ $0.067 per 1K image at $60/1M → 1120 tokens, as the Pro model.
            output_tokens={"512": 560, "1K": 1120, "2K": 1120, "4K": 2000},
            input_token_rule="fixed",
            fixed_input_tokens=1120,
            fit_max_side=3072,
            price=Price(
                input_per_m=0.50, output_image_per_m=60.0, output_text_per_m=3.0, confirmed=False
            ),
            thinking=True,
            confirmed=False,
            notes="released 2026; sizes, limits and prices unconfirmed",
        ),
    )
}


def get_model(model_id: str | ModelInfo | None = None) -> ModelInfo:
    """Look a model up by id (``models/`` prefix allowed).

    An unknown id is accepted with a warning — new image models appear every few months
    and the server decides — and borrows the facts of the closest known family.
    """
    if isinstance(model_id, ModelInfo):
        return model_id
    name = (model_id or DEFAULT_MODEL).removeprefix("models/")
    if name in MODELS:
        return MODELS[name]
    warnings.warn(
        f"nbbanana does not know the model {name!r}; sizes, tokens and prices are estimated "
        f"from {'the Gemini 3 family' if 'gemini-3' in name else DEFAULT_MODEL!r}. "
        "The server decides what it accepts.",
        UserWarning,
        stacklevel=2,
    )
    family = MODELS["gemini-3-pro-image-preview" if "gemini-3" in name else DEFAULT_MODEL]
    return replace(family, id=name, name=name, confirmed=False)


def set_price(
    model_id: str,
    *,
    input_per_m: float | None = None,
    output_image_per_m: float | None = None,
    output_text_per_m: float | None = None,
) -> ModelInfo:
    """Override a model's prices (USD per 1M tokens) for this Python session, e.g. after
    a price change. Prices not given stay as they are."""
    info = get_model(model_id)
    p = info.price
    price = Price(
        input_per_m=p.input_per_m if input_per_m is None else input_per_m,
        output_image_per_m=p.output_image_per_m
        if output_image_per_m is None
        else output_image_per_m,
        output_text_per_m=p.output_text_per_m if output_text_per_m is None else output_text_per_m,
        as_of="user",
    )
    updated = replace(info, price=price)
    MODELS[info.id] = updated
    return updated


# --------------------------------------------------------------------------- endpoints

MB = 1_000_000
MiB = 1024 * 1024


@dataclass(frozen=True)
class EndpointProfile:
    """The byte limits of one kind of endpoint.

    ``request_limit`` counts the whole JSON body as the server receives it (images
    base64-encoded). Where a limit may mean 10⁶ or 2²⁰ bytes, the smaller is used.
    ``per_image_limit`` counts one image's base64 text (conservative where the source
    does not say whether it means raw or encoded bytes).
    """

    name: str
    request_limit: int | None
    per_image_limit: int | None = None
    files_api: bool = True
    #: How the endpoint words a too-large refusal; ``{limit}`` is the limit in bytes.
    too_large_message: str = "Request payload size exceeds the limit: {limit} bytes."
    too_large_status: int = 400
    source: str = ""
    description: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


PROFILES: dict[str, EndpointProfile] = {
    p.name: p
    for p in (
        EndpointProfile(
            name="gemini",
            request_limit=100 * MB,
            files_api=True,
            source="[limits] inline data up to 100 MB, measured base64-encoded (since 12 Jan 2026)",
            description="Gemini Developer API (ai.google.dev), 2026",
        ),
        EndpointProfile(
            name="gemini-2025",
            request_limit=20 * MB,
            files_api=True,
            source="[under] whole request 20 MB before 12 Jan 2026",
            description="Gemini Developer API before January 2026",
        ),
        EndpointProfile(
            name="vertex",
            request_limit=None,
            per_image_limit=7 * MB,
            files_api=False,
            source="[vertex] 7 MB per inline image (30 MB from Cloud Storage)",
            description="Vertex AI image models",
        ),
        EndpointProfile(
            name="proxy-20mb",
            request_limit=20 * MB,
            files_api=False,
            too_large_message="file size exceeds maximum allowed size: 20MB",
            too_large_status=413,
            source="[proxy] typical aggregator relay: 20 MB per request, no Files API",
            description="an OpenAI-compatible or Gemini-native relay with a 20 MB cap",
        ),
    )
}


def get_profile(
    profile: str | EndpointProfile | None = None, **custom: int | None
) -> EndpointProfile:
    """An endpoint profile by name, or a custom one: ``get_profile("custom", request_limit=15*MB)``."""
    if isinstance(profile, EndpointProfile):
        return profile
    name = profile or "gemini"
    if name == "custom":
        return EndpointProfile(
            name="custom",
            request_limit=custom.get("request_limit"),
            per_image_limit=custom.get("per_image_limit"),
            files_api=bool(custom.get("files_api", False)),
            description="limits given by the user",
        )
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(
            f"Unknown endpoint profile {name!r}; use one of {[*PROFILES, 'custom']}."
        ) from None


# ------------------------------------------------------------------ learning limits

# "Request payload size exceeds the limit: 20971520 bytes." (Google front ends)
_BYTES_RE = re.compile(r"exceeds\s+the\s+limit:?\s*([\d,]+)\s*bytes", re.IGNORECASE)
# "file size exceeds maximum allowed size: 20MB" (aggregator proxies), "… 7 MiB", "… 20 mb"
_UNIT_RE = re.compile(
    r"(?:exceed|too large|maximum|limit)[^\d]{0,40}?(\d+(?:\.\d+)?)\s*(KB|KiB|MB|MiB|GB|GiB)\b",
    re.IGNORECASE,
)
_UNITS = {"kb": 10**3, "kib": 2**10, "mb": 10**6, "mib": 2**20, "gb": 10**9, "gib": 2**30}


def parse_limit_from_message(message: str) -> int | None:
    """The byte limit a "too large" refusal names, or ``None`` when it names none.

    A unit like "MB" is read as the smaller meaning (10⁶), since servers differ.
    """
    if m := _BYTES_RE.search(message):
        return int(m.group(1).replace(",", ""))
    if m := _UNIT_RE.search(message):
        return int(float(m.group(1)) * _UNITS[m.group(2).lower()])
    return None


# Limits learned from "too large" refusals are process-wide state, kept with the rest
# of it in nbbanana._state.
learn_limit = _state.learn_limit
learned_limit = _state.learned_limit

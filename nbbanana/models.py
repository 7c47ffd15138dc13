"""Facts about the Gemini image models and the endpoints that serve them.

The tables live here and nowhere else:

* :data:`MODELS` — the models nbbanana knows and that are usable: reference-image
  limits (with the model's guidance on objects vs people), aspect ratios and output
  sizes, thinking and grounding support, the input-token rule, output tokens and prices.
  Each fact group names its :class:`Source`: where it comes from, when, how sure.
* :data:`RETIRED` — ids that were shut down, with the date and the successor. Using one
  fails before anything is sent (:func:`get_model` raises
  :class:`~nbbanana.errors.ModelUnavailable` naming the successor).
* :data:`ALIASES` — names that survive churn (``nano-banana-pro``, ``nano-banana-2`` …),
  each a preference list resolved to a concrete id (:func:`resolve`).
* :data:`DEFAULT_PREFERENCE` — the default model is the first available id of this list.
* :data:`PROFILES` — per endpoint: the request and per-image byte limits, whether the
  Files API exists there, and how the endpoint words a "too large" refusal.

No table stays true: models appear and retire every few months. The service itself says
which models exist (``models.list``, see :mod:`nbbanana.discovery`); this table keeps only
what the service does not say. An id the table does not know works with generic facts
(:func:`generic_model`): a one-time warning, sizes unchecked, and cost unknown (``None``)
rather than a wrong number, unless a price is given (:func:`set_price`).

Sources (abbreviated in the comments and in :attr:`Source.source`):

* [guide]   Gemini API image-generation guide (ai.google.dev/gemini-api/docs/image-generation)
* [under]   Gemini API image-understanding guide (tokens of input images)
* [g3]      Gemini 3 developer guide (media_resolution tokens)
* [price]   Gemini API pricing page, paid tier, November 2026
* [changelog] Gemini API changelog (GA and shutdown dates, 2026)
* [reports] public reports of late 2026 (gateways, forums), medium confidence
* [limits]  Google blog "gemini-api-new-file-limits", 12 January 2026
* [files]   Gemini Files API guide
* [vertex]  Vertex AI model pages for gemini-2.5-flash-image / gemini-3-pro-image
* [proxy]   aggregator proxy documentation (20 MB per request/file)
* [cookbook] Google's cookbook notebook quickstarts/Get_Started_Nano_Banana.ipynb
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
import threading
import types
import warnings
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from .errors import InvalidRequest, ModelUnavailable

if TYPE_CHECKING:
    from .discovery import Catalogue
    from .session import Session

from . import _state

__all__ = [
    "ACCEPTED_MIME_TYPES",
    "ALIASES",
    "ASPECT_RATIOS",
    "DEFAULT_MODEL",
    "DEFAULT_PREFERENCE",
    "FORMAT_MIME",
    "MODELS",
    "PROFILES",
    "RETIRED",
    "SENT_FORMATS",
    "EndpointProfile",
    "ModelInfo",
    "Price",
    "RetiredModel",
    "Source",
    "default_model",
    "generic_model",
    "get_model",
    "get_profile",
    "is_image_model",
    "learn_limit",
    "learned_limit",
    "list_models",
    "note_if_reported_retired",
    "parse_limit_from_message",
    "price_per_image",
    "resolve",
    "set_price",
    "text_tokens",
]

#: Aspect ratios every image model accepts [guide].
ASPECT_RATIOS: tuple[str, ...] = (
    "1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9",
)  # fmt: skip

Confidence = Literal["high", "medium", "low", "user"]


@dataclass(frozen=True)
class Source:
    """Where a fact comes from, as of when, and how sure nbbanana is of it."""

    source: str
    as_of: str
    confidence: Confidence = "high"

    def __str__(self) -> str:
        return f"{self.source} ({self.as_of}, {self.confidence})"


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


_UNKNOWN = Source("not known to nbbanana", "-", "low")


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
    #: ``None``: the price is not known, and costs are shown as unknown.
    price: Price | None
    #: The model thinks and can return thought parts (``include_thoughts``).
    thinking: bool = False
    #: Values of ``thinking_level`` the model takes (empty: none can be set).
    thinking_levels: tuple[str, ...] = ()
    #: Google Search grounding (``tools=[Tool(google_search=GoogleSearch())]``).
    grounding: bool = False
    #: The model's own guidance on mixing references, e.g. "up to 6 objects + 5 people".
    reference_guidance: str = ""
    #: "ga", "deprecated" (still served, shutdown announced or expected).
    status: str = "ga"
    #: Public reports say the id was shut down on this date, with less than high
    #: confidence: it stays usable, with a one-time note, until the service says.
    reported_retired: str | None = None
    #: False for facts nbbanana guesses (an id the table does not know).
    known: bool = True
    confirmed: bool = True
    notes: str = ""
    #: Source of each group of facts: "status", "sizes", "references", "thinking",
    #: "grounding", "price".
    sources: Mapping[str, Source] = field(default_factory=dict)

    @property
    def image_sizes(self) -> tuple[str, ...]:
        """The ``image_size`` values the model accepts; empty if it has no such option."""
        return tuple(k for k in self.output_sizes if k is not None)

    @property
    def default_image_size(self) -> str | None:
        return "1K" if "1K" in self.output_sizes else None

    def source(self, fact: str) -> Source:
        """Where ``fact`` ("status", "sizes", "references", "price", …) comes from."""
        return self.sources.get(fact, _UNKNOWN)

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

    def price_per_image(self, image_size: str | None = None) -> float | None:
        """USD for one output image at ``image_size`` (``None`` when the price is unknown)."""
        return self.cost_usd(output_image_tokens=self.output_image_tokens(image_size))

    def cost_usd(
        self,
        *,
        input_tokens: int = 0,
        output_image_tokens: int = 0,
        output_text_tokens: int = 0,
        batch: bool = False,
    ) -> float | None:
        """USD for these tokens; ``None`` when the model's price is unknown (never a guess)."""
        p = self.price
        if p is None:
            return None
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


@dataclass(frozen=True)
class RetiredModel:
    """An id the service no longer serves."""

    id: str
    name: str
    #: Shutdown date (ISO), ``None`` when only "retired" is known.
    retired: str | None
    successor: str
    source: Source

    def message(self) -> str:
        """One line: what happened and how to switch."""
        when = f" on {self.retired}" if self.retired else ""
        alias = next((a for a, ids in ALIASES.items() if ids[0] == self.successor), None)
        also = f' (or the alias "{alias}")' if alias else ""
        return (
            f"{self.id} was shut down{when} ({self.source.source}); use its successor "
            f'{self.successor}: pass model="{self.successor}"{also}.'
        )


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

# [guide] Nano Banana Pro at 1K; 2K and 4K are exactly 2× and 4× (the guide's table lists
# them; e.g. 16:9 is 1376×768 / 2752×1536 / 5504×3072).
_PRO_1K: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024), "2:3": (848, 1264), "3:2": (1264, 848), "3:4": (896, 1200),
    "4:3": (1200, 896), "4:5": (928, 1152), "5:4": (1152, 928), "9:16": (768, 1376),
    "16:9": (1376, 768), "21:9": (1584, 672),
}  # fmt: skip

# Nano Banana 2's extra ratios [reports]: sized to ≈1 MP at 1K on a 16 px grid.
_FLASH_31_EXTRA_1K: dict[str, tuple[int, int]] = {
    "1:4": (512, 2048), "4:1": (2048, 512), "1:8": (368, 2896), "8:1": (2896, 368),
}  # fmt: skip
_FLASH_31_1K = {**_PRO_1K, **_FLASH_31_EXTRA_1K}
_FLASH_31_RATIOS = (*ASPECT_RATIOS, *_FLASH_31_EXTRA_1K)


def _sizes(
    base: Mapping[str, tuple[int, int]], *names: str
) -> dict[str | None, dict[str, tuple[int, int]]]:
    by_name = {
        "512": {r: (w // 2, h // 2) for r, (w, h) in base.items()},
        "1K": dict(base),
        "2K": _scaled_sizes(base, 2),
        "4K": _scaled_sizes(base, 4),
    }
    return {name: by_name[name] for name in names}


_CHANGELOG = Source("Gemini API changelog [changelog]", "2026-12", "high")
_GUIDE = Source("image-generation guide [guide]", "2026-11", "high")
_PRICE = Source("pricing page [price]", "2026-11", "high")
_REPORTS = Source("public reports [reports]", "2026-12", "medium")
_GUESS = Source("nbbanana's guess from the model family", "2026-12", "low")


MODELS: dict[str, ModelInfo] = {
    m.id: m
    for m in (
        ModelInfo(
            id="gemini-3-pro-image",
            name="Nano Banana Pro",
            max_reference_images=14,
            recommended_reference_images=11,  # 6 objects + 5 people at high fidelity
            reference_guidance="up to 6 objects and 5 people at high fidelity",
            aspect_ratios=ASPECT_RATIOS,
            output_sizes=_sizes(_PRO_1K, "1K", "2K", "4K"),
            output_tokens={"1K": 1120, "2K": 1120, "4K": 2000},  # [price]
            input_token_rule="fixed",  # [g3] media_resolution high = 1120
            fixed_input_tokens=1120,
            # Input tokens are fixed, and 4K output can reuse detail: up to 3072 px.
            fit_max_side=3072,
            price=Price(input_per_m=2.00, output_image_per_m=120.0, output_text_per_m=12.0),
            thinking=True,  # always on; the level cannot be set [guide]
            grounding=True,
            notes="GA 2026-05-28; $0.134 at 1K/2K, $0.24 at 4K",
            sources={
                "status": _CHANGELOG,
                "sizes": _GUIDE,
                "references": _GUIDE,
                "thinking": _GUIDE,
                "grounding": _GUIDE,
                "price": _PRICE,
            },
        ),
        ModelInfo(
            id="gemini-3.1-flash-image",
            name="Nano Banana 2",
            max_reference_images=14,
            recommended_reference_images=14,  # 10 objects + 4 characters
            reference_guidance="up to 10 objects and 4 characters",
            aspect_ratios=_FLASH_31_RATIOS,
            output_sizes=_sizes(_FLASH_31_1K, "512", "1K", "2K", "4K"),
            # $0.045 / $0.067 / $0.101 / $0.151 per image at $60 / 1M output tokens.
            output_tokens={"512": 750, "1K": 1120, "2K": 1680, "4K": 2520},
            input_token_rule="fixed",
            fixed_input_tokens=1120,
            fit_max_side=3072,
            price=Price(
                input_per_m=0.50, output_image_per_m=60.0, output_text_per_m=3.0, confirmed=False
            ),
            thinking=True,
            thinking_levels=("MINIMAL", "HIGH"),
            grounding=True,
            status="deprecated",
            notes="GA 2026-05-28; deprecated 2026-10-06, no shutdown date announced",
            sources={
                "status": Source("Gemini API changelog [changelog]", "2026-12", "high"),
                "sizes": _REPORTS,
                "references": _REPORTS,
                "thinking": _REPORTS,
                "grounding": _REPORTS,
                "price": _REPORTS,
            },
        ),
        ModelInfo(
            id="gemini-3.1-flash-lite-image",
            name="Nano Banana 2 Lite",
            # Not published: the family's limit, so nbbanana refuses nothing the
            # service might accept; the server decides.
            max_reference_images=14,
            recommended_reference_images=3,
            aspect_ratios=ASPECT_RATIOS,
            output_sizes=_sizes(_PRO_1K, "1K"),  # 1K output only [reports]
            output_tokens={"1K": 1120},
            input_token_rule="fixed",
            fixed_input_tokens=1120,
            fit_max_side=3072,
            price=None,  # no public price: costs show as unknown
            confirmed=False,
            notes="GA 2026-06-30; 1K output only; 65,536 input / 4,096 output tokens",
            sources={
                "status": _REPORTS,
                "sizes": _REPORTS,
                "references": _GUESS,
                "thinking": _GUESS,
                "grounding": _GUESS,
                "price": Source("no public price", "2026-12", "low"),
            },
        ),
        ModelInfo(
            id="gemini-nano-banana-2.1",
            name="Nano Banana 2.1",
            max_reference_images=14,
            recommended_reference_images=14,
            reference_guidance="up to 10 objects and 4 characters",
            aspect_ratios=_FLASH_31_RATIOS,
            output_sizes=_sizes(_FLASH_31_1K, "1K", "2K", "4K"),  # no 512 [reports]
            # ≈ $0.0336 per 1K image at $30 / 1M output tokens; 2K and 4K as Nano Banana 2.
            output_tokens={"1K": 1120, "2K": 1680, "4K": 2520},
            input_token_rule="fixed",
            fixed_input_tokens=1120,
            fit_max_side=3072,
            price=Price(
                input_per_m=0.50, output_image_per_m=30.0, output_text_per_m=3.0, confirmed=False
            ),
            thinking=True,
            thinking_levels=("MINIMAL", "HIGH"),
            grounding=True,
            confirmed=False,
            notes="GA 2026-10-06",
            sources={
                "status": _REPORTS,
                "sizes": _REPORTS,
                "references": _REPORTS,
                "thinking": _GUESS,
                "grounding": _GUESS,
                "price": Source(
                    "public reports [reports] at 1K; 2K/4K from Nano Banana 2's tokens",
                    "2026-12",
                    "low",
                ),
            },
        ),
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
            reported_retired="2026-10-02",
            notes="GA October 2025; one report says shut down 2026-10-02; $0.039 per image",
            sources={
                "status": _REPORTS,
                "sizes": _GUIDE,
                "references": Source("Vertex AI model page [vertex]", "2026-11", "high"),
                "thinking": _GUIDE,
                "grounding": _GUIDE,
                "price": _PRICE,
            },
        ),
    )
}

RETIRED: dict[str, RetiredModel] = {
    r.id: r
    for r in (
        RetiredModel(
            "gemini-3-pro-image-preview", "Nano Banana Pro (preview)", "2026-06-25",
            "gemini-3-pro-image", Source("Gemini API changelog", "2026-12", "high"),
        ),
        RetiredModel(
            "gemini-3.1-flash-image-preview", "Nano Banana 2 (preview)", "2026-06-25",
            "gemini-3.1-flash-image", Source("Gemini API changelog", "2026-12", "high"),
        ),
        RetiredModel(
            "gemini-2.5-flash-image-preview", "Nano Banana (preview)", None,
            "gemini-2.5-flash-image", Source("image-generation guide", "2025-10", "high"),
        ),
    )
}  # fmt: skip

#: Names that survive churn: each resolves to the first available id of its list
#: (:func:`resolve`). Every result and saved file records the concrete id used.
ALIASES: dict[str, tuple[str, ...]] = {
    "nano-banana": ("gemini-2.5-flash-image",),
    "nano-banana-pro": ("gemini-3-pro-image",),
    "nano-banana-pro-latest": ("gemini-3-pro-image",),
    "nano-banana-2": ("gemini-3.1-flash-image",),
    "nano-banana-2-latest": ("gemini-nano-banana-2.1", "gemini-3.1-flash-image"),
    "nano-banana-lite": ("gemini-3.1-flash-lite-image",),
    "nano-banana-lite-latest": ("gemini-3.1-flash-lite-image",),
}
#: The default model is the first available id of this list: the newest general model
#: first (Nano Banana 2.1: cheapest per 1K image, 2K/4K), then the GA Nano Banana 2
#: (deprecated but served), then Nano Banana (reported retired, medium confidence),
#: then Pro (most expensive). "Available" means listed by the service once discovery
#: has run (:mod:`nbbanana.discovery`); before that, present in :data:`MODELS`.
DEFAULT_PREFERENCE: tuple[str, ...] = (
    "gemini-nano-banana-2.1",
    "gemini-3.1-flash-image",
    "gemini-2.5-flash-image",
    "gemini-3-pro-image",
)
ALIASES["nano-banana-latest"] = DEFAULT_PREFERENCE


def default_model(available: Collection[str] | None = None) -> str:
    """The first id of :data:`DEFAULT_PREFERENCE` that is ``available`` (all of
    :data:`MODELS` when not given); if none is, the first available image model."""
    pool = set(MODELS) if available is None else set(available)
    for model_id in DEFAULT_PREFERENCE:
        if model_id in pool:
            return model_id
    for model_id in sorted(pool):
        if model_id not in RETIRED:
            return model_id
    return DEFAULT_PREFERENCE[0]


DEFAULT_MODEL = default_model()


def resolve(name: str, available: Collection[str] | None = None) -> str:
    """The concrete id for ``name``: an alias becomes the first of its ids that is
    ``available`` (default: known to :data:`MODELS`); ``models/`` is dropped."""
    name = name.strip().removeprefix("models/")
    ids = ALIASES.get(name.lower())
    if ids is None:
        return name
    pool = set(MODELS) if available is None else set(available)
    return next((i for i in ids if i in pool), ids[0])


def is_image_model(model_id: str, methods: Iterable[str] = ("generateContent",)) -> bool:
    """Whether a model the service lists can make images through ``generateContent``:
    known to the table, or named like one (``…-image``, ``…nano-banana…``). Imagen
    models (``predict``) are not: they speak another API."""
    name = model_id.removeprefix("models/")
    if name in MODELS or name in RETIRED:
        return True
    if "generateContent" not in set(methods):
        return False
    return bool(re.search(r"(^|-)image($|-)|nano-banana", name)) and not name.startswith("imagen")


def generic_model(model_id: str) -> ModelInfo:
    """Facts for an image model the table does not know: Gemini 3 rules, every size the
    family offers left to the server, reference limit 14, and no price."""
    family = MODELS["gemini-3-pro-image"]
    return replace(
        family,
        id=model_id,
        name=model_id,
        recommended_reference_images=3,
        reference_guidance="",
        price=None,
        thinking=False,
        thinking_levels=(),
        grounding=False,
        status="new",
        known=False,
        confirmed=False,
        notes="not in nbbanana's table: sizes, limits and price unknown",
        sources={},
    )


_warned: set[str] = set()
_warned_lock = threading.Lock()
#: Prices given with :func:`set_price` for ids the table does not know.
_user_prices: dict[str, Price] = {}


def _note_once(key: str, message: str) -> None:
    """Say ``message`` once per process on stderr, like the offline note: a fact to
    know, not a problem in the caller's code (a warning would show a source path)."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    print(message, file=sys.stderr, flush=True)


def note_if_reported_retired(info: ModelInfo) -> None:
    """Say once per process, on stderr, that ``info`` was reported shut down with less
    than high confidence; it stays usable (a session calls this when it uses a model)."""
    if info.reported_retired:
        _note_once(
            "retired:" + info.id,
            f"nbbanana: {info.id} was reported shut down on {info.reported_retired} "
            f"({info.source('status')}); it stays usable until the service says "
            "otherwise. nbbanana.models() shows what your endpoint serves.",
        )


def _warn_once(key: str, message: str) -> None:
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, UserWarning, stacklevel=3)


#: Unknown ids whose warning is left out in this context only (see :func:`told_unknown`).
_told: ContextVar[frozenset[str]] = ContextVar("nbbanana_told_unknown", default=frozenset())


@contextlib.contextmanager
def told_unknown(model_id: str) -> Iterator[None]:
    """Within this block, look-ups of ``model_id`` leave out the one-time "does not know
    the model" warning, for a UI that has told the user in its own words (the studio's
    picker labels such a model "new, cost unknown"; the warning would be clutter under
    the cell, or under another cell when it comes from a worker thread).

    A context variable, not a warning filter: it holds for this thread or task only and
    what it starts (``asyncio`` tasks and ``asyncio.to_thread`` take it along), changes
    nothing process-wide, and does not use the warning up: the user's own later
    ``get_model(model_id)`` or ``session.generate(model=model_id)`` still warns once.
    (``warnings.catch_warnings`` would do neither: it is process-wide, not thread-safe.)
    """
    name = resolve(model_id)
    token = _told.set(_told.get() | {name})
    try:
        yield
    finally:
        _told.reset(token)


def get_model(model_id: str | ModelInfo | None = None, *, warn: bool = True) -> ModelInfo:
    """Look a model up by id or alias (``models/`` prefix allowed).

    A retired id raises :class:`~nbbanana.errors.ModelUnavailable` naming its successor,
    before anything is sent. An id the table does not know is accepted with a one-time
    warning (new image models appear every few months and the server decides): it gets
    :func:`generic_model` facts and an unknown price. ``warn=False`` leaves the warning
    out, for callers that say so in their own words or where the server decides (rather
    than ``warnings.catch_warnings``, which changes process-wide state and is not
    thread-safe); :func:`told_unknown` does the same for a block of calls. An id reported retired with less than high confidence stays usable
    (sessions say so once: :func:`note_if_reported_retired`).
    """
    if isinstance(model_id, ModelInfo):
        return model_id
    name = resolve(model_id or DEFAULT_MODEL)
    if not name:
        raise InvalidRequest(f'The model id is empty; pass e.g. model="{DEFAULT_MODEL}".')
    if name in MODELS:
        return MODELS[name]
    if name in RETIRED:
        retired = RETIRED[name]
        raise ModelUnavailable(retired.message(), successor=retired.successor)
    if warn and name not in _told.get():
        _warn_once(
            "unknown:" + name,
            f"nbbanana does not know the model {name!r}: its sizes, limits and price are "
            "unknown, so costs show as unknown (set one with "
            "nbbanana.models.set_price(...)). The server decides what it accepts.",
        )
    info = generic_model(name)
    if name in _user_prices:
        info = replace(info, price=_user_prices[name], sources={"price": _USER})
    return info


_USER = Source("set by the user", "this session", "user")


def price_per_image(info: ModelInfo, usd: float, image_size: str | None = None) -> Price:
    """``info``'s price with its output-image price set from the USD one image at
    ``image_size`` costs; input and text keep the table's prices (0 where unknown: a
    gateway that bills per image bills nothing else). Changes nothing global."""
    if usd < 0:
        raise InvalidRequest(f"price_per_image must be 0 or more (got {usd}).")
    p = info.price or Price(0.0, 0.0, 0.0)
    return Price(
        input_per_m=p.input_per_m,
        output_image_per_m=usd * 1e6 / info.output_image_tokens(image_size),
        output_text_per_m=p.output_text_per_m,
        as_of="user",
    )


def set_price(
    model_id: str,
    *,
    input_per_m: float | None = None,
    output_image_per_m: float | None = None,
    output_text_per_m: float | None = None,
    per_image: float | None = None,
    image_size: str | None = None,
) -> ModelInfo:
    """Override a model's prices (USD per 1M tokens) for this Python session, e.g. after
    a price change or for a model the table does not know. Prices not given stay as they
    are (or 0 where there were none). ``per_image`` sets the output-image price from the
    USD one image at ``image_size`` costs (what ``connect(price_per_image=...)`` passes)."""
    info = get_model(model_id)
    p = info.price or Price(0.0, 0.0, 0.0)
    if per_image is not None:
        output_image_per_m = price_per_image(info, per_image, image_size).output_image_per_m
    price = Price(
        input_per_m=p.input_per_m if input_per_m is None else input_per_m,
        output_image_per_m=p.output_image_per_m
        if output_image_per_m is None
        else output_image_per_m,
        output_text_per_m=p.output_text_per_m if output_text_per_m is None else output_text_per_m,
        as_of="user",
    )
    updated = replace(info, price=price, sources={**info.sources, "price": _USER})
    if info.known:
        MODELS[info.id] = updated
    else:
        _user_prices[info.id] = price
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


# ------------------------------------------------------------------ listing


def list_models(
    session: Session | None = None, *, refresh: bool = False, **connect: Any
) -> Catalogue:
    """The image models an endpoint serves, merged with this table (see
    :mod:`nbbanana.discovery`): per model its id, name, status (available, new, retired,
    unavailable), sizes, reference limit, price, and the source of each fact.

    Uses ``session``, else a session from ``nbbanana.connect(**connect)`` (with a key,
    Google; without, the offline emulator). Also callable as ``nbbanana.models()``.
    """
    if session is not None:
        return session.models(refresh=refresh)
    from ._connect import connect as _connect

    with _connect(**connect) as opened:
        return opened.models(refresh=refresh)


class _CallableModule(types.ModuleType):
    """Lets ``nbbanana.models()`` list the models while ``nbbanana.models.MODELS`` and
    friends stay where they are (a module's class may be replaced, see the language
    reference, "Customizing module attribute access")."""

    def __call__(
        self, session: Session | None = None, *, refresh: bool = False, **connect: Any
    ) -> Catalogue:
        return list_models(session, refresh=refresh, **connect)


sys.modules[__name__].__class__ = _CallableModule


# ------------------------------------------------------------------ docs


def markdown_table() -> str:
    """The README's model table, generated from :data:`MODELS`, :data:`RETIRED` and
    :data:`ALIASES` (a test keeps the README equal to it)."""

    def price(info: ModelInfo) -> str:
        if info.price is None:
            return "unknown"
        sizes: tuple[str | None, ...] = info.image_sizes or (None,)
        return ", ".join(
            f"${info.price_per_image(s) or 0:.3f}" + (f" ({s})" if s else "") for s in sizes
        )

    def src(info: ModelInfo, fact: str) -> str:
        s = info.source(fact)
        return f"{s.source.split(' [')[0]}, {s.confidence}"

    lines = [
        "| id | name | status | sizes | references | thinking | grounding | price per image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for info in MODELS.values():
        status = info.status + (
            f", reported shut down {info.reported_retired}" if info.reported_retired else ""
        )
        thinking = (
            (("levels " + "/".join(info.thinking_levels)) if info.thinking_levels else "always on")
            if info.thinking
            else "no"
        )
        refs = f"{info.max_reference_images}" + (
            f" ({info.reference_guidance})" if info.reference_guidance else ""
        )
        lines.append(
            f"| `{info.id}` | {info.name} | {status} ({src(info, 'status')}) "
            f"| {', '.join(info.image_sizes) or 'one per ratio'} ({src(info, 'sizes')}) "
            f"| {refs} ({src(info, 'references')}) | {thinking} "
            f"| {'yes' if info.grounding else 'no'} | {price(info)} ({src(info, 'price')}) |"
        )
    for retired in RETIRED.values():
        when = f" {retired.retired}" if retired.retired else ""
        lines.append(
            f"| `{retired.id}` | {retired.name} | shut down{when} → `{retired.successor}` "
            f"({retired.source.source}, {retired.source.confidence}) | | | | | |"
        )
    aliases = ", ".join(f"`{a}` → `{resolve(a)}`" for a in ALIASES)
    preference = " → ".join(f"`{m}`" for m in DEFAULT_PREFERENCE)
    return "\n".join(
        [
            *lines,
            "",
            f"Aliases: {aliases}.",
            "",
            f"Default model: the first the endpoint serves of {preference}.",
        ]
    )

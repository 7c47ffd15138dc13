"""What the service serves: ``models.list``, cached per base URL, merged with the table.

The model table (:mod:`nbbanana.models`) keeps what the service does not say — sizes,
prices, reference limits — each with its source. Which models *exist* only the service
knows: :func:`discover` lists them once (google-genai's ``client.models.list()``, which
carries each model's ``supportedGenerationMethods`` as ``supported_actions``), keeps the
answer per base URL in memory and on disk for a day, and classifies every image model:

* ``available`` — listed by the service, known to the table;
* ``new`` — listed and image-capable, but not in the table: generic facts, unknown price;
* ``retired`` — in :data:`~nbbanana.models.RETIRED` (with date and successor), or
  reported retired and not listed;
* ``unavailable`` — in the table, but this endpoint does not list it.

The disk cache lives in the user's cache folder (``$XDG_CACHE_HOME/nbbanana``, else
``~/.cache/nbbanana``), one JSON file per base URL holding model ids, names and methods
only (never a key). Loopback endpoints (emulators on a random port) are kept in memory
only, unless ``persist=True``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import html
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from google import genai
from google.genai import types

from .errors import ModelUnavailable
from .models import (
    MODELS,
    RETIRED,
    ModelInfo,
    default_model,
    generic_model,
    is_image_model,
)

__all__ = [
    "CACHE_SECONDS",
    "Catalogue",
    "ListedModel",
    "ModelRow",
    "cache_dir",
    "clear_cache",
    "discover",
    "not_found_error",
]

#: How long a listing stays fresh (memory and disk).
CACHE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class ListedModel:
    """One entry of the service's ``models.list`` answer."""

    id: str
    display_name: str
    methods: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "display_name": self.display_name, "methods": list(self.methods)}


@dataclass(frozen=True)
class ModelRow:
    """One image model as ``nbbanana models`` shows it, with the source of each fact."""

    id: str
    name: str
    status: str
    sizes: tuple[str, ...] | None
    reference_limit: int | None
    reference_guidance: str
    #: USD per output image by size ("-" for models without sizes); ``None``: unknown.
    price_per_image: dict[str, float] | None
    thinking: bool | None
    grounding: bool | None
    sources: dict[str, str]
    successor: str | None = None
    retired: str | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "sizes": list(self.sizes) if self.sizes is not None else None,
            "reference_limit": self.reference_limit,
            "reference_guidance": self.reference_guidance or None,
            "price_per_image": self.price_per_image,
            "thinking": self.thinking,
            "grounding": self.grounding,
            "successor": self.successor,
            "retired": self.retired,
            "note": self.note or None,
            "sources": self.sources,
        }

    @property
    def sizes_text(self) -> str:
        if self.status == "retired":
            return "-"
        if self.sizes is None:
            return "unknown"
        return ", ".join(self.sizes) or "one per ratio"

    @property
    def price_text(self) -> str:
        if self.status == "retired":
            return "-"
        if self.price_per_image is None:
            return "unknown"
        return ", ".join(
            f"${usd:.3f}" + ("" if size == "-" else f" ({size})")
            for size, usd in self.price_per_image.items()
        )


@dataclass
class Catalogue:
    """The image models of one endpoint: what it lists, merged with the table."""

    base_url: str
    listed: list[ListedModel]
    #: When the service was asked (epoch seconds).
    listed_at: float
    rows: list[ModelRow] = field(default_factory=list)
    from_cache: bool = False

    @property
    def available(self) -> list[str]:
        """Ids of the image models the endpoint serves (available and new)."""
        return [r.id for r in self.rows if r.status in ("available", "new")]

    @property
    def default_model(self) -> str:
        """The first of :data:`~nbbanana.models.DEFAULT_PREFERENCE` this endpoint serves."""
        return default_model(self.available)

    def row(self, model_id: str) -> ModelRow | None:
        return next((r for r in self.rows if r.id == model_id), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "listed_at": _iso(self.listed_at),
            "default_model": self.default_model,
            "models": [r.to_json() for r in self.rows],
        }

    def __iter__(self) -> Any:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __str__(self) -> str:
        header = ("id", "name", "status", "sizes", "refs", "price per image")
        lines = [
            (
                r.id,
                r.name,
                r.status + (f" → {r.successor}" if r.successor else ""),
                r.sizes_text,
                str(r.reference_limit) if r.reference_limit is not None else "?",
                r.price_text,
            )
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header) - 1)]
        out = [
            "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True))
            + "  "
            + row[-1]
            for row in [header, *lines]
        ]
        when = "cached " if self.from_cache else ""
        out.append(
            f"({len(self.listed)} models listed by {self.base_url}, {when}{_iso(self.listed_at)})"
        )
        return "\n".join(out)

    def __repr__(self) -> str:
        return f"<nbbanana Catalogue {self.base_url}: {', '.join(self.available) or 'no image models'}>"

    def _repr_html_(self) -> str:
        head = "".join(
            f"<th style='text-align:left'>{h}</th>"
            for h in ("id", "name", "status", "sizes", "refs", "price per image", "sources")
        )
        body = []
        for r in self.rows:
            status = r.status + (
                f" → <code>{html.escape(r.successor)}</code>" if r.successor else ""
            )
            sources = "<br>".join(
                f"{html.escape(k)}: {html.escape(v)}" for k, v in r.sources.items()
            )
            body.append(
                f"<tr><td><code>{html.escape(r.id)}</code></td><td>{html.escape(r.name)}</td>"
                f"<td>{status}</td><td>{html.escape(r.sizes_text)}</td>"
                f"<td>{r.reference_limit if r.reference_limit is not None else '?'}</td>"
                f"<td>{html.escape(r.price_text)}</td>"
                f"<td><details><summary>sources</summary><small>{sources}</small></details></td></tr>"
            )
        return (
            f"<table class='nbbanana-models'><tr>{head}</tr>{''.join(body)}</table>"
            f"<div style='color:#666;font-size:.85em'>{len(self.listed)} models listed by "
            f"{html.escape(self.base_url)}; default model: <code>{html.escape(self.default_model)}</code></div>"
        )


# ------------------------------------------------------------------ rows


def _iso(epoch: float) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _prices(info: ModelInfo) -> dict[str, float] | None:
    if info.price is None:
        return None
    sizes: Sequence[str | None] = info.image_sizes or [None]
    out: dict[str, float] = {}
    for size in sizes:
        usd = info.price_per_image(size)
        if usd is not None:
            out[size or "-"] = round(usd, 4)
    return out


def _known_row(info: ModelInfo, status: str, listing: str, note: str = "") -> ModelRow:
    sources = {fact: str(info.source(fact)) for fact in ("sizes", "references", "price")}
    sources["status"] = listing
    for fact in ("thinking", "grounding"):
        sources[fact] = str(info.source(fact))
    notes = [n for n in (note, info.notes) if n]
    return ModelRow(
        id=info.id,
        name=info.name,
        status=status,
        sizes=info.image_sizes,
        reference_limit=info.max_reference_images,
        reference_guidance=info.reference_guidance,
        price_per_image=_prices(info),
        thinking=info.thinking,
        grounding=info.grounding,
        sources=sources,
        note="; ".join(notes),
    )


def build_rows(listed: Iterable[ListedModel]) -> list[ModelRow]:
    """Merge the service's listing with the table: listed image models first (in the
    table's order, then new ones), then the table's models this endpoint does not list,
    then the retired ids."""
    by_id = {m.id: m for m in listed if is_image_model(m.id, m.methods)}
    # When it was listed is the catalogue's ``listed_at``: the same for every row.
    listing = "listed by the service (models.list)"
    rows: list[ModelRow] = []
    for model_id, info in MODELS.items():
        if model_id in by_id:
            rows.append(_known_row(info, "available", listing))
    for model_id, entry in by_id.items():
        if model_id in MODELS:
            continue
        if model_id in RETIRED:
            retired = RETIRED[model_id]
            note = f"the table says shut down {retired.retired or ''}; the service still lists it"
            rows.append(
                _known_row(generic_model(model_id), "available", listing, note=note.strip())
            )
            continue
        info = generic_model(model_id)
        rows.append(
            ModelRow(
                id=model_id,
                name=entry.display_name or model_id,
                status="new",
                sizes=None,
                reference_limit=None,
                reference_guidance="",
                price_per_image=_prices(info),  # None unless the user set a price
                thinking=None,
                grounding=None,
                sources={
                    "status": listing,
                    "sizes": "unknown (not in nbbanana's table)",
                    "references": "unknown (not in nbbanana's table)",
                    "price": "unknown (not in nbbanana's table)",
                },
                note="new to nbbanana: generic facts, cost shown as unknown",
            )
        )
    for model_id, info in MODELS.items():
        if model_id in by_id:
            continue
        not_listed = "not listed by the service (models.list)"
        if info.reported_retired:
            rows.append(
                replace(
                    _known_row(info, "retired", not_listed),
                    retired=info.reported_retired,
                    note=f"reported shut down {info.reported_retired}; this endpoint does "
                    "not list it",
                )
            )
        else:
            rows.append(_known_row(info, "unavailable", not_listed))
    for model_id, retired in RETIRED.items():
        if model_id in by_id:
            continue
        rows.append(
            ModelRow(
                id=model_id,
                name=retired.name,
                status="retired",
                sizes=None,
                reference_limit=None,
                reference_guidance="",
                price_per_image=None,
                thinking=None,
                grounding=None,
                sources={"status": str(retired.source)},
                successor=retired.successor,
                retired=retired.retired,
                note=retired.message(),
            )
        )
    return rows


# ------------------------------------------------------------------ cache


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/nbbanana`` (else ``~/.cache/nbbanana``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nbbanana"


def _cache_file(base_url: str) -> Path:
    digest = hashlib.sha256(base_url.encode()).hexdigest()[:16]
    return cache_dir() / f"models-{digest}.json"


def _is_loopback(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


_memory: dict[str, tuple[float, list[ListedModel]]] = {}
_memory_lock = threading.Lock()


def clear_cache(base_url: str | None = None) -> None:
    """Forget listings kept in memory (all, or one base URL's). Disk files stay."""
    with _memory_lock:
        if base_url is None:
            _memory.clear()
        else:
            _memory.pop(base_url.rstrip("/"), None)


def _read_disk(base_url: str, now: float) -> tuple[float, list[ListedModel]] | None:
    try:
        data = json.loads(_cache_file(base_url).read_text(encoding="utf-8"))
        listed_at = float(data["listed_at"])
        if data.get("base_url") != base_url or now - listed_at > CACHE_SECONDS:
            return None
        models = [
            ListedModel(str(m["id"]), str(m.get("display_name") or ""), tuple(m["methods"]))
            for m in data["models"]
        ]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent, stale or damaged: ask the service again
    return listed_at, models


def _write_disk(base_url: str, listed_at: float, models: list[ListedModel]) -> None:
    path = _cache_file(base_url)
    payload = {
        "base_url": base_url,
        "listed_at": listed_at,
        "models": [m.to_json() for m in models],
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home is no reason to fail: the memory cache still works


# ------------------------------------------------------------------ listing


def list_service_models(
    client: genai.Client, http_options: types.HttpOptions | None = None
) -> list[ListedModel]:
    """Every model the endpoint lists (all pages), with its generation methods.
    ``http_options``: this call's time-out and retries instead of the client's."""
    listed = []
    config = types.ListModelsConfig(page_size=1000, http_options=http_options)
    for model in client.models.list(config=config):
        name = (model.name or "").removeprefix("models/")
        if name:
            listed.append(
                ListedModel(name, model.display_name or "", tuple(model.supported_actions or ()))
            )
    return listed


def discover(
    client: genai.Client,
    base_url: str,
    *,
    refresh: bool = False,
    persist: bool | None = None,
    now: Callable[[], float] = time.time,
    http_options: types.HttpOptions | None = None,
) -> Catalogue:
    """The image models ``base_url`` serves, from the memory cache, the disk cache (a
    day), or ``models.list`` through ``client``. ``refresh``: ask the service again.
    ``persist``: keep the answer on disk (default: not for loopback emulators).
    ``http_options``: the listing's own time-out and retries (see :func:`connect`)."""
    key = base_url.rstrip("/")
    persist = (not _is_loopback(key)) if persist is None else persist
    moment = now()
    cached: tuple[float, list[ListedModel]] | None = None
    if not refresh:
        with _memory_lock:
            cached = _memory.get(key)
        if cached is not None and moment - cached[0] > CACHE_SECONDS:
            cached = None
        if cached is None and persist:
            cached = _read_disk(key, moment)
    from_cache = cached is not None
    if cached is None:
        cached = (moment, list_service_models(client, http_options))
        if persist:
            _write_disk(key, *cached)
    with _memory_lock:
        _memory[key] = cached
    listed_at, listed = cached
    return Catalogue(
        base_url=key,
        listed=listed,
        listed_at=listed_at,
        rows=build_rows(listed),
        from_cache=from_cache,
    )


def not_found_error(
    model_id: str, catalogue: Catalogue, *, cause: BaseException | None = None
) -> ModelUnavailable:
    """The error for a 404 on ``model_id``: the successor if the table knows one, and
    the image models this endpoint serves."""
    name = model_id.removeprefix("models/")
    served = ", ".join(catalogue.available) or "none"
    retired = RETIRED.get(name)
    if retired is not None:
        successor: str | None = retired.successor
        message = f"{retired.message()} Image models served at {catalogue.base_url}: {served}."
    else:
        successor = catalogue.default_model if catalogue.available else None
        switch = f' Pass model="{successor}" or another of them.' if successor else ""
        message = (
            f"{name} is not served by {catalogue.base_url} (404 NOT_FOUND). Image models "
            f"served there: {served}.{switch}"
        )
    return ModelUnavailable(
        message, successor=successor, code=404, status="NOT_FOUND", sdk_error=cause
    )

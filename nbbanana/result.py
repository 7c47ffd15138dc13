"""What one request produced: images, text, usage and cost, and where it came from.

A :class:`Result` is built from the SDK's ``GenerateContentResponse`` and keeps
everything a notebook user wants to look at or keep: the generated images (as PIL
images, all of them: a model may answer with several), the text, the model's thoughts
(text and interim "thought images", kept apart: they are never the answer), the Google
Search sources of a grounded answer with the search suggestions Google's terms require
to be shown, the finish reason, token usage and its cost (``None`` when the price is
unknown), the latency, and the provenance — the model, the parameters, the prompt, a
reference to each input (:class:`InputRef`) and the result it was derived from
(``parent``).

It displays itself in Jupyter (inputs and outputs side by side, small JPEG thumbnails
so notebooks stay small) and saves itself as PNG files with the provenance embedded as
PNG text chunks plus a JSON sidecar, written atomically and named by the result's id so
one result never overwrites another's files.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import io
import json
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.genai import types
from PIL import Image, PngImagePlugin

from ._files import write_atomic
from ._format import format_usd
from ._version import __version__
from .models import ModelInfo

__all__ = ["GroundingSource", "InputRef", "Result", "Usage"]

#: Long side of the thumbnails in the notebook display (px). Large enough to judge an
#: edit, small enough that a notebook with dozens of results stays a few MB.
DISPLAY_SIDE = 384
#: Long side of the thumbnail kept with each input reference (px).
INPUT_THUMBNAIL_SIDE = 256
_DISPLAY_JPEG_QUALITY = 85


@dataclass(frozen=True)
class Usage:
    """Token counts from the response's ``usageMetadata`` (0 where the server gave none)."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    #: Of ``output_tokens``: tokens of generated images (the rest is text).
    output_image_tokens: int = 0
    thought_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_metadata(
        cls,
        meta: types.GenerateContentResponseUsageMetadata | None,
        *,
        images: int = 0,
        tokens_per_image: int = 0,
    ) -> Usage:
        """Read the SDK's usage metadata of an answer holding ``images`` final images.

        When the server breaks output tokens down by modality (Google does), its image
        tokens are what the answer cost. When it does not (relays, OpenAI-style
        gateways), the output tokens count as image tokens if the answer held an image,
        and never fewer than ``images × tokens_per_image`` (the model's tokens per image
        at the requested size): a gateway that reports one image's tokens, only text
        tokens or no usage at all would otherwise make an answer with several images
        look cheap, or free, and let it slip past a cost cap. Interim thought images are
        not counted as images: the service bills thinking as ``thoughtsTokenCount``.
        """
        floor = images * tokens_per_image
        if meta is None:
            return cls(output_tokens=floor, output_image_tokens=floor, total_tokens=floor)
        output = meta.candidates_token_count or 0
        image_tokens = 0
        details = meta.candidates_tokens_details or []
        if details:
            for detail in details:
                if str(getattr(detail.modality, "value", detail.modality)) == "IMAGE":
                    image_tokens += detail.token_count or 0
        elif images:
            image_tokens = max(output, floor)
            output = image_tokens
        prompt = meta.prompt_token_count or 0
        thoughts = meta.thoughts_token_count or 0
        total = max(meta.total_token_count or 0, prompt + output + thoughts)
        return cls(
            prompt_tokens=prompt,
            output_tokens=output,
            output_image_tokens=image_tokens,
            thought_tokens=thoughts,
            total_tokens=total,
        )

    def cost_usd(self, model: ModelInfo, *, batch: bool = False) -> float | None:
        """What these tokens cost at ``model``'s prices (thoughts are billed as text output;
        ``batch``: the Batch API's half price); ``None`` when the model's price is unknown."""
        return model.cost_usd(
            input_tokens=self.prompt_tokens,
            output_image_tokens=self.output_image_tokens,
            output_text_tokens=self.output_tokens - self.output_image_tokens + self.thought_tokens,
            batch=batch,
        )


@dataclass(frozen=True)
class InputRef:
    """One input image of a request: enough to identify it, never the whole picture."""

    name: str
    #: SHA-256 of the input as the user gave it (the original file's bytes).
    source_sha256: str
    #: (width, height) of the image that was sent.
    size: tuple[int, int]
    mime: str
    #: Size in bytes of the encoded image that was sent for it.
    sent_bytes: int
    #: SHA-256 of the bytes that were sent (differs from ``source_sha256`` when fitting
    #: changed them).
    sent_sha256: str = ""
    #: "inline" or "files-api".
    transport: str = "inline"
    thumbnail: Image.Image | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source_sha256": self.source_sha256,
            "sent_sha256": self.sent_sha256,
            "size": list(self.size),
            "mime": self.mime,
            "sent_bytes": self.sent_bytes,
            "transport": self.transport,
        }


@dataclass(frozen=True)
class GroundingSource:
    """A web page a grounded answer drew on (from ``groundingMetadata.groundingChunks``)."""

    title: str
    url: str

    def to_json(self) -> dict[str, str]:
        return {"title": self.title, "url": self.url}


def _new_result_id() -> str:
    """A sortable, unique id: UTC time plus 48 random bits (also the file-name stem)."""
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{secrets.token_hex(6)}"


@dataclass(eq=False)
class Result:
    """The outcome of one generate/edit/describe call or chat turn."""

    images: list[Image.Image]
    text: str
    thoughts: list[str]
    finish_reason: str | None
    usage: Usage
    #: ``None`` when the model's price is unknown (never a guessed number).
    cost_usd: float | None
    latency_s: float
    model: str
    params: dict[str, Any]
    prompt: str
    inputs: list[InputRef] = field(default_factory=list)
    parent: Result | None = field(default=None, repr=False)
    id: str = field(default_factory=_new_result_id)
    #: True when the offline emulator produced this result (its images are synthetic).
    offline: bool = False
    response_id: str | None = None
    model_version: str | None = None
    #: The encoded bytes and MIME type of each image as the server sent them, so a
    #: result can be the input of the next edit without re-encoding.
    image_data: list[tuple[bytes, str]] = field(default_factory=list, repr=False)
    #: Interim images from the model's thinking: shown collapsed, never saved as results.
    thought_images: list[Image.Image] = field(default_factory=list, repr=False)
    #: Web pages a grounded answer drew on (Google Search grounding).
    sources: list[GroundingSource] = field(default_factory=list)
    #: The queries the model searched for (grounding).
    search_queries: list[str] = field(default_factory=list)
    #: Google's search-suggestions HTML (``searchEntryPoint.renderedContent``). Google's
    #: terms for grounding require showing it, unchanged, with the answer: the notebook
    #: display does.
    search_suggestions_html: str | None = field(default=None, repr=False)

    # ------------------------------------------------------------ construction

    @classmethod
    def from_response(
        cls,
        response: types.GenerateContentResponse,
        *,
        model: ModelInfo,
        prompt: str,
        params: dict[str, Any],
        inputs: Sequence[InputRef] = (),
        parent: Result | None = None,
        latency_s: float = 0.0,
        offline: bool = False,
    ) -> Result:
        """Collect the answer's parts. Thought parts (text and interim images) go to
        ``thoughts`` and are never results."""
        image_data: list[tuple[bytes, str]] = []
        thought_data: list[bytes] = []
        texts: list[str] = []
        thoughts: list[str] = []
        finish_reason: str | None = None
        sources: list[GroundingSource] = []
        queries: list[str] = []
        suggestions: str | None = None
        candidates = response.candidates or []
        if candidates:
            candidate = candidates[0]
            if candidate.finish_reason is not None:
                finish_reason = str(
                    getattr(candidate.finish_reason, "value", candidate.finish_reason)
                )
            sources, queries, suggestions = _grounding(candidate.grounding_metadata)
            parts = candidate.content.parts if candidate.content and candidate.content.parts else []
            for part in parts:
                if part.thought:
                    if part.text:
                        thoughts.append(part.text)
                    elif part.inline_data is not None and part.inline_data.data:
                        thought_data.append(part.inline_data.data)
                    continue
                if part.inline_data is not None and part.inline_data.data:
                    image_data.append(
                        (part.inline_data.data, part.inline_data.mime_type or "image/png")
                    )
                elif part.text:
                    texts.append(part.text)
        images = [_decode(data) for data, _ in image_data]
        usage = Usage.from_metadata(
            response.usage_metadata,
            images=len(images),
            tokens_per_image=model.output_image_tokens(params.get("image_size")),
        )
        return cls(
            images=images,
            text="".join(texts),
            thoughts=thoughts,
            finish_reason=finish_reason,
            usage=usage,
            cost_usd=usage.cost_usd(model),
            latency_s=latency_s,
            model=model.id,
            params=dict(params),
            prompt=prompt,
            inputs=list(inputs),
            parent=parent,
            offline=offline,
            response_id=response.response_id,
            model_version=response.model_version,
            image_data=image_data,
            thought_images=[_decode(data) for data in thought_data],
            sources=sources,
            search_queries=queries,
            search_suggestions_html=suggestions,
        )

    # ------------------------------------------------------------ accessors

    @property
    def image(self) -> Image.Image | None:
        """The first generated image, or ``None`` when the answer held none."""
        return self.images[0] if self.images else None

    @property
    def cost_text(self) -> str:
        """The cost as shown: ``$0.0390``, or ``cost unknown`` when the price is unknown."""
        return "cost unknown" if self.cost_usd is None else f"${self.cost_usd:.4f}"

    def __repr__(self) -> str:
        sizes = ", ".join(f"{im.width}×{im.height}" for im in self.images) or "no image"
        source = " offline" if self.offline else ""
        return (
            f"<Result {self.id}{source} {self.model}: {sizes}; "
            f"{self.usage.total_tokens} tokens, {self.cost_text}, {self.latency_s:.2f} s>"
        )

    def provenance(self) -> dict[str, Any]:
        """Everything that says where this result came from (the JSON sidecar's content)."""
        return {
            "id": self.id,
            "generator": f"nbbanana {__version__}",
            "offline_emulator": self.offline,
            "model": self.model,
            "model_version": self.model_version,
            "response_id": self.response_id,
            "prompt": self.prompt,
            "params": self.params,
            "inputs": [ref.to_json() for ref in self.inputs],
            "parent": self.parent.id if self.parent is not None else None,
            "text": self.text,
            "thoughts": self.thoughts,
            "thought_images": len(self.thought_images),
            "sources": [s.to_json() for s in self.sources],
            "search_queries": self.search_queries,
            "finish_reason": self.finish_reason,
            "usage": {
                "prompt_tokens": self.usage.prompt_tokens,
                "output_tokens": self.usage.output_tokens,
                "output_image_tokens": self.usage.output_image_tokens,
                "thought_tokens": self.usage.thought_tokens,
                "total_tokens": self.usage.total_tokens,
            },
            "cost_usd": self.cost_usd,
            "latency_s": self.latency_s,
            "images": [{"width": im.width, "height": im.height} for im in self.images],
        }

    # ------------------------------------------------------------ saving

    def save(self, directory: str | os.PathLike[str] = ".") -> list[Path]:
        """Write each final image as ``<id>.png`` (``<id>-2.png``, … for more) and
        ``<id>.json``. Thought images are drafts, not answers: they are not written.

        The PNGs carry the prompt, model, parameters, input hashes and parent id as PNG
        text chunks, so a file keeps its provenance wherever it is copied. Each file is
        written to a temporary file in the same directory and renamed into place, so a
        crash never leaves a half-written image. Files are named by the result id: saving
        the same result again rewrites its own files, and never touches another
        result's. Returns the paths written, images first.
        """
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        meta = self.provenance()
        chunks = {
            "nbbanana:id": self.id,
            "nbbanana:prompt": self.prompt,
            "nbbanana:model": self.model,
            "nbbanana:params": json.dumps(self.params, sort_keys=True, default=str),
            "nbbanana:inputs": json.dumps([ref.source_sha256 for ref in self.inputs]),
            "nbbanana:parent": self.parent.id if self.parent is not None else "",
            "nbbanana:offline": "true" if self.offline else "false",
            "Software": f"nbbanana {__version__}",
        }
        paths: list[Path] = []
        for index, image in enumerate(self.images):
            stem = self.id if index == 0 else f"{self.id}-{index + 1}"
            info = PngImagePlugin.PngInfo()
            for key, value in chunks.items():
                info.add_itxt(key, value)
            info.add_itxt("nbbanana:index", str(index))
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", pnginfo=info)
            path = folder / f"{stem}.png"
            write_atomic(path, buffer.getvalue())
            paths.append(path)
        meta["files"] = [p.name for p in paths]
        sidecar = folder / f"{self.id}.json"
        text = json.dumps(meta, indent=2, ensure_ascii=False, default=str) + "\n"
        write_atomic(sidecar, text.encode("utf-8"))
        paths.append(sidecar)
        return paths

    # ------------------------------------------------------------ display

    def footer(self) -> str:
        """One line: model, output size, tokens, cost, time (and "offline emulator")."""
        sizes = ", ".join(f"{im.width}×{im.height}" for im in self.images) or "no image"
        parts = [
            self.model,
            sizes,
            f"{self.usage.total_tokens:,} tokens",
            self.cost_text,
            f"{self.latency_s:.1f} s",
        ]
        if self.offline:
            parts.append("offline emulator")
        return " · ".join(parts)

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> dict[str, str]:
        """HTML for Jupyter (inputs → outputs, the prompt, a footer) and plain text."""
        return {"text/html": self._repr_html_(), "text/plain": self._plain_text()}

    def _plain_text(self) -> str:
        lines = [repr(self), f"prompt: {self.prompt}"]
        if self.inputs:
            lines.append(
                "inputs: " + ", ".join(f"{r.name} ({r.size[0]}×{r.size[1]})" for r in self.inputs)
            )
        if self.text:
            lines.append(f"text: {self.text}")
        if self.thoughts or self.thought_images:
            lines.append(
                f"thoughts: {len(self.thoughts)} text, {len(self.thought_images)} image(s) "
                "(Result.thoughts, Result.thought_images)"
            )
        lines += [f"source: {s.title} <{s.url}>" for s in self.sources]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        cells: list[str] = []
        for ref in self.inputs:
            if ref.thumbnail is not None:
                # The caption gives the size that was sent, not the thumbnail's.
                cells.append(
                    _figure(
                        ref.thumbnail,
                        f"input: {ref.name}",
                        side=INPUT_THUMBNAIL_SIDE,
                        size=ref.size,
                        suffix="sent",
                    )
                )
        if self.inputs:
            cells.append('<div style="align-self:center;font-size:2em;padding:0 .3em">→</div>')
        for index, image in enumerate(self.images):
            cells.append(
                _figure(image, f"output {index + 1}" if len(self.images) > 1 else "output")
            )
        if not self.images:
            cells.append('<div style="align-self:center;font-style:italic">(no image)</div>')
        text = f'<div style="margin-top:.3em">{html.escape(self.text)}</div>' if self.text else ""
        text += self._thoughts_html() + self._grounding_html()
        return (
            '<div class="nbbanana-result" style="font-family:sans-serif">'
            f'<div style="margin-bottom:.3em"><b>Prompt:</b> {html.escape(self.prompt)}</div>'
            '<div style="display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start">'
            + "".join(cells)
            + "</div>"
            + text
            + f'<div style="color:#666;font-size:.85em;margin-top:.3em">{html.escape(self.footer())}</div>'
            "</div>"
        )

    def _thoughts_html(self) -> str:
        """The model's thoughts, collapsed: a draft is never shown as the answer."""
        if not self.thoughts and not self.thought_images:
            return ""
        texts = "".join(
            f'<div style="white-space:pre-wrap;margin:.2em 0">{html.escape(t)}</div>'
            for t in self.thoughts
        )
        drafts = "".join(
            _figure(im, f"thought image {i + 1}", side=INPUT_THUMBNAIL_SIDE // 2)
            for i, im in enumerate(self.thought_images)
        )
        count = len(self.thoughts) + len(self.thought_images)
        return (
            '<details class="nbbanana-thoughts" style="margin-top:.3em;color:#555">'
            f"<summary>Thoughts ({count})</summary>{texts}"
            f'<div style="display:flex;gap:6px">{drafts}</div></details>'
        )

    def _grounding_html(self) -> str:
        """Sources as links, then Google's search suggestions exactly as sent."""
        if not self.sources and not self.search_suggestions_html:
            return ""
        items = "".join(
            f'<li><a href="{html.escape(s.url)}" target="_blank" rel="noopener">'
            f"{html.escape(s.title)}</a></li>"
            for s in self.sources
        )
        listing = (
            f'<div style="margin-top:.3em"><b>Sources</b><ul style="margin:.2em 0">{items}</ul></div>'
            if items
            else ""
        )
        # Google's grounding terms: show the rendered suggestions unmodified.
        return listing + (self.search_suggestions_html or "")


# --------------------------------------------------------------------------- helpers


def _grounding(
    meta: types.GroundingMetadata | None,
) -> tuple[list[GroundingSource], list[str], str | None]:
    """Sources, search queries and the suggestions' HTML of a grounded answer."""
    if meta is None:
        return [], [], None
    sources = []
    for chunk in meta.grounding_chunks or []:
        web = chunk.web
        if web is not None and web.uri:
            sources.append(GroundingSource(title=web.title or web.domain or web.uri, url=web.uri))
    entry = meta.search_entry_point
    rendered = entry.rendered_content if entry is not None else None
    return sources, list(meta.web_search_queries or []), rendered or None


def _decode(data: bytes) -> Image.Image:
    """Open an image lazily: only the header is read now; PIL decodes the pixels on
    first use, so a result that is only saved or passed on costs no decode here."""
    return Image.open(io.BytesIO(data))


def thumbnail_from_bytes(data: bytes, side: int) -> Image.Image:
    """A small preview of encoded image ``data`` without decoding it at full size
    (JPEG ``draft`` decodes at 1/2, 1/4 or 1/8 scale; other formats use ``reduce``)."""
    image: Image.Image = Image.open(io.BytesIO(data))
    gap: float | None = 2.0
    if image.format == "JPEG":
        scale = min(1.0, side / max(image.size))
        image.draft("RGB", (round(image.width * scale), round(image.height * scale)))
        gap = None  # thumbnail() would otherwise redo the draft at twice the size
    image.thumbnail((side, side), Image.Resampling.LANCZOS, reducing_gap=gap)
    if image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    return image


def thumbnail(image: Image.Image, side: int) -> Image.Image:
    """A copy of ``image`` whose long side is at most ``side`` px, in RGB/RGBA/L."""
    copy = image.copy()
    if copy.mode not in ("RGB", "RGBA", "L"):
        copy = copy.convert("RGBA" if "A" in copy.getbands() else "RGB")
    copy.thumbnail((side, side), Image.Resampling.LANCZOS)
    return copy


def _data_uri(image: Image.Image, side: int) -> str:
    """A small JPEG (PNG when the image has transparency) as a ``data:`` URI."""
    small = thumbnail(image, side)
    buffer = io.BytesIO()
    if small.mode == "RGBA":
        small.save(buffer, format="PNG", optimize=True)
        mime = "image/png"
    else:
        small.save(buffer, format="JPEG", quality=_DISPLAY_JPEG_QUALITY)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def _figure(
    image: Image.Image,
    caption: str,
    *,
    side: int = DISPLAY_SIDE,
    size: tuple[int, int] | None = None,
    suffix: str = "",
) -> str:
    """An ``<img>`` preview of ``image`` captioned with ``size`` (default: the image's own)."""
    width, height = size or image.size
    dims = f"{width}×{height}" + (f" {suffix}" if suffix else "")
    return (
        '<figure style="margin:0;text-align:center">'
        f'<img src="{_data_uri(image, side)}" alt="{html.escape(caption)}" '
        f'style="max-width:{side}px;max-height:{side}px"/>'
        f'<figcaption style="font-size:.8em;color:#666">{html.escape(caption)} '
        f"({dims})</figcaption></figure>"
    )


#: Long side of each turn's thumbnail in a chat's display (px).
TURN_THUMBNAIL_SIDE = 160


def chat_html(model: str, results: Sequence[Result]) -> str:
    """A chat's display: one numbered thumbnail per turn (its prompt underneath), then
    the number of turns and what they cost together."""
    cards = []
    for turn, result in enumerate(results, start=1):
        image = result.image
        prompt = result.prompt if len(result.prompt) <= 80 else result.prompt[:77] + "…"
        picture = (
            f'<img src="{_data_uri(image, TURN_THUMBNAIL_SIDE)}" alt="turn {turn}" '
            f'style="max-width:{TURN_THUMBNAIL_SIDE}px;max-height:{TURN_THUMBNAIL_SIDE}px"/>'
            if image is not None
            else '<div style="font-style:italic">(no image)</div>'
        )
        cards.append(
            f'<figure style="margin:0;width:{TURN_THUMBNAIL_SIDE}px;text-align:center">'
            f"{picture}"
            f'<figcaption style="font-size:.85em"><b>{turn}</b> · {html.escape(prompt)}'
            "</figcaption></figure>"
        )
    costs = [result.cost_usd for result in results]
    cost = None if None in costs else sum(c for c in costs if c is not None)
    noun = "turn" if len(results) == 1 else "turns"
    summary = f"Chat with {model}: {len(results)} {noun}, {format_usd(cost)}"
    body = (
        '<div style="display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start">'
        + "".join(cards)
        + "</div>"
        if cards
        else '<div style="font-style:italic">No turns yet: call send("…").</div>'
    )
    return (
        '<div class="nbbanana-chat" style="font-family:sans-serif">'
        f'<div style="margin-bottom:.3em"><b>{html.escape(summary)}</b></div>{body}</div>'
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

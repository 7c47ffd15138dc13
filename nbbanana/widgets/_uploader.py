"""The image uploader: a chunked transport from the browser, and the fitting gauge.

Jupyter Server caps websocket messages at 10 MiB by default, and ipywidgets' ``FileUpload``
sends a whole file in one message, so a phone photo silently arrives empty. This uploader
is a small anywidget (``_uploader.js``) that sends each file in slices of
:data:`CHUNK_SIZE` bytes as binary buffers of custom messages, one acknowledgement per
slice. The kernel side is split in two plain parts that tests drive directly:

* :class:`ChunkAssembler` — reassembles slices into bytes and checks size and SHA-256;
* :func:`fit_upload` — loads and fits the bytes for a model, returning either a fitted
  image or the fitting engine's message (never a traceback).

* :class:`UploadTracker` — the per-upload state machine (uploading → fitting → ready or
  error), refitting when the model or endpoint changes and dropping stale fits.

:class:`ImageUploader` only wires a tracker to the browser (acknowledgements, refusals),
runs the fit in a worker thread (see :mod:`._background`), and renders the gauges from
:mod:`._gauge`.
"""

from __future__ import annotations

import hashlib
import pathlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from ..errors import ImageError, redact
from ..models import DEFAULT_MODEL, FORMAT_MIME, ModelInfo, get_model
from ._background import run_in_background
from ._choices import ModelInfoFn, quiet_model_info
from ._gauge import (
    ImageGauge,
    RequestGauge,
    TurnGauge,
    image_gauge,
    request_gauge,
    scale_labels,
)
from ._preview import THUMB_SIDE, data_url
from ._prompt import reference_problem

if TYPE_CHECKING:
    from ..budget import RequestBudget
    from ..fit import FittedImage
    from ..models import EndpointProfile

__all__ = [
    "CHUNK_SIZE",
    "MAX_UPLOAD_BYTES",
    "ChunkAssembler",
    "FitOutcome",
    "ImageUploader",
    "UploadRefused",
    "UploadTracker",
    "fit_upload",
]

#: Bytes per slice: well below Jupyter Server's default 10 MiB websocket message cap,
#: leaving room for the message's JSON header and the kernel protocol's framing.
CHUNK_SIZE = 4 * 1024 * 1024
#: The largest file the uploader accepts; anything bigger is not a photo worth sending.
MAX_UPLOAD_BYTES = 200 * 1000 * 1000
#: From this many uploads on they are shown as a wrapping grid of thumbnails, not cards.
GRID_FROM = 3


class UploadRefused(Exception):
    """A transfer was refused; the message is shown to the user as it is."""


@dataclass
class _Transfer:
    name: str
    size: int
    buffer: bytearray = field(default_factory=bytearray)


class ChunkAssembler:
    """Reassembles files sent in slices, refusing anything inconsistent.

    Slices must arrive in order (the browser waits for acknowledgements, so they do);
    a file is complete when exactly its declared size has arrived, and, when the browser
    sent one, its SHA-256 matches.
    """

    def __init__(self, *, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
        self.max_bytes = max_bytes
        self._transfers: dict[str, _Transfer] = {}

    def begin(self, transfer_id: str, *, name: str, size: int) -> None:
        if transfer_id in self._transfers:
            raise UploadRefused(f"{name}: this upload was already started.")
        if size <= 0:
            raise UploadRefused(f"{name} is empty (0 bytes): choose another file.")
        if size > self.max_bytes:
            raise UploadRefused(
                f"{name} is {size / 1e6:.1f} MB; the uploader accepts files up to "
                f"{self.max_bytes / 1e6:.0f} MB. Pass larger files by path to fit_image()."
            )
        self._transfers[transfer_id] = _Transfer(name=name, size=size)

    def add(self, transfer_id: str, offset: int, data: bytes | memoryview) -> int:
        """Append one slice; returns the number of bytes received so far."""
        transfer = self._get(transfer_id)
        if offset != len(transfer.buffer):
            self.cancel(transfer_id)
            raise UploadRefused(
                f"{transfer.name}: a piece arrived out of order (at byte {offset:,}, expected "
                f"{len(transfer.buffer):,}). Upload the file again."
            )
        if offset + len(data) > transfer.size:
            self.cancel(transfer_id)
            raise UploadRefused(
                f"{transfer.name}: more data arrived than the file's size "
                f"({transfer.size:,} bytes). Upload the file again."
            )
        transfer.buffer += data
        return len(transfer.buffer)

    def finish(self, transfer_id: str, sha256: str | None = None) -> bytes:
        """The complete file, once its size (and hash, if given) check out."""
        transfer = self._transfers.pop(transfer_id, None)
        if transfer is None:
            raise UploadRefused("An upload finished that was never started. Upload it again.")
        data = bytes(transfer.buffer)
        if len(data) != transfer.size:
            raise UploadRefused(
                f"{transfer.name} arrived incomplete: {len(data):,} of {transfer.size:,} bytes. "
                "Upload it again."
            )
        if sha256 and hashlib.sha256(data).hexdigest() != sha256.lower():
            raise UploadRefused(
                f"{transfer.name} arrived damaged (its SHA-256 differs from the browser's). "
                "Upload it again."
            )
        return data

    def cancel(self, transfer_id: str) -> None:
        self._transfers.pop(transfer_id, None)

    def _get(self, transfer_id: str) -> _Transfer:
        try:
            return self._transfers[transfer_id]
        except KeyError:
            raise UploadRefused(
                "A piece of an upload arrived that was never started. Upload it again."
            ) from None

    @property
    def active(self) -> int:
        return len(self._transfers)


@dataclass(frozen=True)
class FitOutcome:
    """What fitting one upload gave: a fitted image and its thumbnail, or a message."""

    fitted: FittedImage | None = None
    raw_mime: str | None = None
    has_alpha: bool = False
    thumb: str = ""
    error: str = ""


def fit_upload(
    data: bytes,
    *,
    name: str,
    model: str | ModelInfo,
    budget: RequestBudget,
    endpoint: str | EndpointProfile = "gemini",
    mime: str | None = None,
) -> FitOutcome:
    """Load and fit uploaded bytes for ``model``; never raises.

    Refused inputs (corrupt, a decompression bomb, an unsupported format) come back as
    the fitting engine's own message, which says what to do.
    """
    # The fitting stack loads with the first image, not with the widget.
    from ..fit import fit_image
    from ..images import load_image

    info = get_model(model)
    try:
        # The upload-item form (as ipywidgets' FileUpload gives) keeps the file's name in
        # every message the loader writes.
        upload = {"name": name, "type": mime or "", "content": memoryview(data)}
        loaded = load_image(upload, target_side=info.fit_max_side)
        fitted = fit_image(loaded, model=info, budget=budget, endpoint=endpoint)
        thumb = data_url(loaded.image, THUMB_SIDE)
    except ImageError as exc:
        return FitOutcome(error=str(exc))
    except Exception as exc:  # a bug or an exotic file: say so in one line, not a traceback
        return FitOutcome(error=redact(f"{name} could not be used ({type(exc).__name__}: {exc})."))
    raw_mime = FORMAT_MIME.get((loaded.original_format or "").upper()) or mime or None
    return FitOutcome(fitted=fitted, raw_mime=raw_mime, has_alpha=loaded.has_alpha, thumb=thumb)


@dataclass
class _Item:
    id: str
    name: str
    size: int
    mime: str
    state: str = "uploading"  # uploading → fitting → ready | error
    received: int = 0
    data: bytes | None = None
    outcome: FitOutcome | None = None
    gauge: ImageGauge | None = None
    error: str = ""
    #: Bumped whenever a new fit starts, so a stale result (model changed meanwhile) is dropped.
    generation: int = 0

    def view(self) -> dict[str, Any]:
        outcome = self.outcome
        return {
            "id": self.id,
            "name": self.name,
            "size": self.size,
            "received": self.received,
            "state": self.state,
            "status": "fitting for the model…" if self.state == "fitting" else "",
            "thumb": outcome.thumb if outcome else "",
            "lines": self.gauge.lines() if self.gauge else [],
            "short": self.gauge.short_lines() if self.gauge else [],
            "warnings": list(self.gauge.warnings) if self.gauge else [],
            "error": self.error,
            # of the bytes that arrived: lets a test (or a curious user) check integrity
            "sha256": outcome.fitted.source_sha256 if outcome and outcome.fitted else "",
        }


class UploadTracker:
    """Every upload of one uploader, without any widget: the per-upload state machine.

    Each upload goes ``uploading → fitting → ready | error``. Slices are reassembled by a
    :class:`ChunkAssembler`; complete bytes are fitted for :attr:`model` by ``run``
    (a worker thread in the widget, immediate in tests). Every new fit bumps the
    upload's generation, so a fit that finishes after the model changed is dropped.
    ``on_change`` is called after every change that a view should show.
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        endpoint: str | EndpointProfile = "gemini",
        base_url: str | None = None,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        model_info: ModelInfoFn = get_model,
        run: Callable[[Callable[[], FitOutcome], Callable[[FitOutcome], None]], object] = (
            run_in_background
        ),
        on_change: Callable[[], None] | None = None,
    ) -> None:
        # A session's facts (its price_per_image) when given; the table's otherwise.
        self._model_info = quiet_model_info(model_info)
        self._model = self._model_info(model).id
        self.prompt = ""
        self._endpoint = endpoint
        self._base_url = base_url
        self._assembler = ChunkAssembler(max_bytes=max_upload_bytes)
        self._items: list[_Item] = []
        self._run = run
        self._on_change = on_change

    # ------------------------------------------------------------------ settings

    @property
    def model(self) -> str:
        """The model the images are fitted for; setting another fits them again."""
        return self._model

    @model.setter
    def model(self, model: str) -> None:
        self._model = model
        self._refit_all()

    @property
    def info(self) -> ModelInfo:
        """The facts of :attr:`model` the gauges use (a session's price included)."""
        return self._model_info(self._model)

    @property
    def max_images(self) -> int:
        """Most images the model accepts in one request."""
        return self.info.max_reference_images

    @property
    def budget(self) -> RequestBudget:
        # Imported here: the budget module loads the SDK's types, not needed to show a widget.
        from ..budget import RequestBudget

        return RequestBudget.for_endpoint(self._endpoint, base_url=self._base_url)

    def set_endpoint(self, endpoint: str | EndpointProfile, base_url: str | None = None) -> None:
        """Fit for another endpoint (its limits)."""
        self._endpoint, self._base_url = endpoint, base_url
        self._refit_all()

    # ------------------------------------------------------------------ results

    @property
    def images(self) -> list[FittedImage]:
        """The fitted images of every upload that is ready, in upload order."""
        return [
            item.outcome.fitted
            for item in self._items
            if item.state == "ready" and item.outcome and item.outcome.fitted
        ]

    @property
    def originals(self) -> list[tuple[str, bytes]]:
        """Name and bytes as uploaded of every upload that is ready, in upload order (a
        regional edit cuts from the full-resolution original, not the fitted copy)."""
        return [
            (item.name, item.data)
            for item in self._items
            if item.state == "ready" and item.outcome and item.outcome.fitted and item.data
        ]

    @property
    def busy(self) -> bool:
        """Whether an upload is still arriving or being fitted."""
        return any(item.state in ("uploading", "fitting") for item in self._items)

    @property
    def errors(self) -> list[str]:
        """Messages of the uploads that were refused."""
        return [item.error for item in self._items if item.state == "error"]

    def gauge(self) -> RequestGauge | None:
        """The whole-request gauge, or ``None`` when no image is ready."""
        ready = [
            (item.outcome.fitted, item.gauge)
            for item in self._items
            if item.state == "ready" and item.outcome and item.outcome.fitted and item.gauge
        ]
        if not ready:
            return None
        return request_gauge(ready, model=self.info, budget=self.budget, prompt=self.prompt)

    def views(self) -> list[dict[str, Any]]:
        """What the browser shows for each upload."""
        return [item.view() for item in self._items]

    def layout(self) -> str:
        """How the browser lays the uploads out: ``"cards"`` (each with its whole
        gauge) for a few, ``"grid"`` (wrapping thumbnails with a two-line gauge; the
        rest in a tooltip) from :data:`GRID_FROM` on, so 14 references stay compact."""
        return "grid" if len(self._items) >= GRID_FROM else "cards"

    def summary(self) -> dict[str, Any]:
        """What the browser shows for the whole request (empty when nothing is ready)."""
        gauge = self.gauge()
        if gauge is None:
            return {}
        warnings = list(gauge.warnings)
        busy = sum(1 for item in self._items if item.state in ("uploading", "fitting"))
        if busy:
            warnings.append(f"{busy} more still arriving or being fitted.")
        n = len(gauge.images)
        return {
            "title": f"Next request: the {'uploaded image' if n == 1 else f'{n} uploaded images'}",
            "lines": gauge.lines(),
            "fraction": gauge.fraction,
            "scale": list(scale_labels(gauge.request_bytes, gauge.limit)),
            "over": bool(gauge.limit and gauge.request_bytes > gauge.limit),
            "warnings": warnings,
        }

    # ------------------------------------------------------------------ uploads

    def begin(self, upload_id: str, *, name: str, size: int, mime: str = "") -> None:
        """A browser upload starts. Raises :class:`UploadRefused` (then call :meth:`refuse`)."""
        item = _Item(id=upload_id, name=name, size=size, mime=mime)
        self._items.append(item)
        problem = reference_problem(self.info, len([i for i in self._items if i.state != "error"]))
        if problem:
            raise UploadRefused(f"{name} was not added: {problem}")
        self._assembler.begin(upload_id, name=name, size=size)
        self._changed()

    def chunk(self, upload_id: str, offset: int, data: bytes | memoryview) -> int:
        """One slice arrived; returns the bytes received so far (the acknowledgement)."""
        received = self._assembler.add(upload_id, offset, data)
        item = self._find(upload_id)
        if item is not None:
            item.received = received
            self._changed()
        return received

    def end(self, upload_id: str, sha256: str | None = None) -> None:
        """The last slice arrived: check the whole file and start fitting it."""
        data = self._assembler.finish(upload_id, sha256)
        item = self._find(upload_id)
        if item is None:  # removed while arriving
            return
        item.data = data
        item.received = len(data)
        self._start_fit(item)

    def refuse(self, upload_id: str, message: str) -> None:
        """Mark an upload as refused with ``message`` (shown as it is)."""
        self._assembler.cancel(upload_id)
        item = self._find(upload_id)
        if item is not None:
            item.state, item.error, item.data = "error", message, None
            self._changed()

    def add_bytes(self, data: bytes, name: str = "image", mime: str = "") -> str:
        """Add an image from bytes, as if it had been uploaded; returns its id."""
        item = _Item(id=f"local-{len(self._items)}-{name}", name=name, size=len(data), mime=mime)
        item.received = len(data)
        item.data = data
        self._items.append(item)
        self._start_fit(item)
        return item.id

    def remove(self, upload_id: str) -> None:
        self._assembler.cancel(upload_id)
        self._items = [item for item in self._items if item.id != upload_id]
        self._changed()

    def clear(self) -> None:
        for item in self._items:
            self._assembler.cancel(item.id)
        self._items = []
        self._changed()

    # ------------------------------------------------------------------ fitting

    def _refit_all(self) -> None:
        for item in self._items:
            if item.data is not None and item.state in ("fitting", "ready"):
                self._start_fit(item)
        self._changed()

    def _start_fit(self, item: _Item) -> None:
        item.state = "fitting"
        item.generation += 1
        generation, data, model, budget = item.generation, item.data, self.info, self.budget
        endpoint = self._endpoint
        assert data is not None
        self._changed()

        def work() -> FitOutcome:
            return fit_upload(
                data, name=item.name, model=model, budget=budget, endpoint=endpoint, mime=item.mime
            )

        def done(outcome: FitOutcome) -> None:
            if item.generation != generation or item not in self._items:
                return  # superseded by a newer fit, or removed
            self._fitted(item, outcome, model, budget)

        self._run(work, done)

    def _fitted(
        self, item: _Item, outcome: FitOutcome, model: ModelInfo, budget: RequestBudget
    ) -> None:
        item.outcome = outcome
        if outcome.fitted is None:
            item.state, item.error, item.gauge = "error", outcome.error, None
            item.data = None  # nothing more can be done with it; free the memory
        else:
            item.state, item.error = "ready", ""
            item.gauge = image_gauge(
                outcome.fitted,
                raw_bytes=item.size,
                raw_mime=outcome.raw_mime,
                model=model,
                budget=budget,
                has_alpha=outcome.has_alpha,
            )
        self._changed()

    def _find(self, item_id: str) -> _Item | None:
        return next((item for item in self._items if item.id == item_id), None)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()


class ImageUploader(anywidget.AnyWidget):
    """Pick or drop images; see at once whether and how they fit the request.

    ``uploader.images`` is the list of fitted images, ready to send. Files travel from
    the browser in slices well below the kernel websocket's message cap, so a 30 MB photo
    arrives intact in a default Jupyter server. A view over an :class:`UploadTracker`.
    """

    _esm = pathlib.Path(__file__).with_name("_uploader.js")
    _css = pathlib.Path(__file__).with_name("_uploader.css")

    #: The model the images are fitted for; changing it fits them again.
    model = traitlets.Unicode(DEFAULT_MODEL).tag(sync=True)
    #: The prompt the request will carry (counted in the whole-request gauge).
    prompt = traitlets.Unicode("").tag(sync=False)
    #: Most images the model accepts in one request.
    max_images = traitlets.Int(3).tag(sync=True)
    chunk_size = traitlets.Int(CHUNK_SIZE).tag(sync=True)
    items = traitlets.List(traitlets.Dict()).tag(sync=True)
    #: ``"cards"`` or ``"grid"``: see :meth:`UploadTracker.layout`.
    layout_mode = traitlets.Unicode("cards").tag(sync=True)
    summary = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        endpoint: str | EndpointProfile = "gemini",
        base_url: str | None = None,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        model_info: ModelInfoFn = get_model,
        **kwargs: Any,
    ) -> None:
        # Plain attributes first: trait observers fire during the base initialiser.
        self._change_callbacks: list[Callable[[ImageUploader], None]] = []
        self._next: TurnGauge | None = None
        self.tracker = UploadTracker(
            model=model,
            endpoint=endpoint,
            base_url=base_url,
            max_upload_bytes=max_upload_bytes,
            model_info=model_info,
            on_change=self._publish,
        )
        super().__init__(model=model, **kwargs)
        self.max_images = self.tracker.max_images
        self.on_msg(self._on_browser_message)
        self._publish()

    # ------------------------------------------------------------------ public API

    @property
    def images(self) -> list[FittedImage]:
        """The fitted images of every upload that is ready, in upload order."""
        return self.tracker.images

    @property
    def busy(self) -> bool:
        """Whether an upload is still arriving or being fitted."""
        return self.tracker.busy

    @property
    def errors(self) -> list[str]:
        """Messages of the uploads that were refused."""
        return self.tracker.errors

    @property
    def budget(self) -> RequestBudget:
        return self.tracker.budget

    def add_bytes(self, data: bytes, name: str = "image", mime: str = "") -> str:
        """Add an image from bytes, as if it had been uploaded; returns its id."""
        return self.tracker.add_bytes(data, name=name, mime=mime)

    def add_file(self, path: str | pathlib.Path) -> str:
        """Add an image from a file on the kernel's machine; returns its id."""
        from ..images import read_image_file

        path = pathlib.Path(path)
        return self.add_bytes(read_image_file(path), name=path.name)

    def remove(self, item_id: str) -> None:
        self.tracker.remove(item_id)

    def clear(self) -> None:
        self.tracker.clear()

    def on_change(self, callback: Callable[[ImageUploader], None]) -> None:
        """Call ``callback(uploader)`` whenever the set of images or their gauges change."""
        self._change_callbacks.append(callback)

    def set_endpoint(self, endpoint: str | EndpointProfile, base_url: str | None = None) -> None:
        """Fit for another endpoint (its limits), e.g. when the studio's session changes."""
        self.tracker.set_endpoint(endpoint, base_url)

    def gauge(self) -> RequestGauge | None:
        """The whole-request gauge, or ``None`` when no image is ready."""
        return self.tracker.gauge()

    def show_next(self, gauge: TurnGauge | None) -> None:
        """Describe the next request by ``gauge`` (a run continuing a turn, whose image is
        what is sent) instead of by the uploads; ``None``: by the uploads again."""
        self._next = gauge
        self.summary = self._summary()

    # ------------------------------------------------------------------ transport

    def _on_browser_message(
        self, _widget: Any, content: dict[str, Any], buffers: Sequence[Any]
    ) -> None:
        kind = content.get("type")
        transfer_id = str(content.get("id", ""))
        try:
            if kind == "begin":
                self.tracker.begin(
                    transfer_id,
                    name=str(content.get("name") or "image"),
                    size=int(content.get("size", 0)),
                    mime=str(content.get("mime") or ""),
                )
                self.send({"type": "ack", "id": transfer_id, "offset": 0})
            elif kind == "chunk":
                if len(buffers) != 1:
                    raise UploadRefused(
                        "A piece of the upload arrived without its data. Upload it again."
                    )
                offset = int(content.get("offset", -1))
                received = self.tracker.chunk(transfer_id, offset, buffers[0])
                self.send({"type": "ack", "id": transfer_id, "offset": received})
            elif kind == "end":
                sha256 = content.get("sha256")
                self.tracker.end(transfer_id, sha256 if isinstance(sha256, str) else None)
            elif kind == "remove":
                self.remove(transfer_id)
        except UploadRefused as exc:
            self._refuse(transfer_id, str(exc))
        except (TypeError, ValueError):  # a message this version does not understand
            self._refuse(transfer_id, "The upload was garbled on the way. Upload it again.")

    def _refuse(self, transfer_id: str, message: str) -> None:
        self.tracker.refuse(transfer_id, message)
        self.send({"type": "refused", "id": transfer_id, "message": message})

    # ------------------------------------------------------------------ view state

    @traitlets.observe("model")
    def _model_changed(self, change: dict[str, Any]) -> None:
        self.tracker.model = change["new"]
        self.max_images = self.tracker.max_images

    @traitlets.observe("prompt")
    def _prompt_changed(self, change: dict[str, Any]) -> None:
        self.tracker.prompt = change["new"]
        self._publish()

    def _summary(self) -> dict[str, Any]:
        gauge = self._next
        if gauge is None:
            return self.tracker.summary()
        return {
            "title": gauge.title,
            "lines": gauge.lines(),
            "fraction": gauge.fraction,
            "scale": list(scale_labels(gauge.history_bytes, gauge.limit)),
            "over": bool(gauge.limit and gauge.history_bytes > gauge.limit),
            "warnings": [],
        }

    def _publish(self) -> None:
        self.layout_mode = self.tracker.layout()
        self.items = self.tracker.views()
        self.summary = self._summary()
        for callback in list(self._change_callbacks):
            callback(self)

"""The image uploader: a chunked transport from the browser, and the fitting gauge.

Jupyter Server caps websocket messages at 10 MiB by default, and ipywidgets' ``FileUpload``
sends a whole file in one message, so a phone photo silently arrives empty. This uploader
is a small anywidget (``_uploader.js``) that sends each file in slices of
:data:`CHUNK_SIZE` bytes as binary buffers of custom messages, one acknowledgement per
slice. The kernel side is split in two plain parts that tests drive directly:

* :class:`ChunkAssembler` — reassembles slices into bytes and checks size and SHA-256;
* :func:`fit_upload` — loads and fits the bytes for a model, returning either a fitted
  image or the fitting engine's message (never a traceback).

:class:`ImageUploader` only wires them to the browser, runs the fit in a worker thread
(see :mod:`._background`), and renders the gauges from :mod:`._gauge`.
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
from ..models import DEFAULT_MODEL, get_model
from ._background import run_in_background
from ._gauge import ImageGauge, RequestGauge, image_gauge, request_gauge
from ._preview import THUMB_SIDE, data_url

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
    "fit_upload",
]

#: Bytes per slice: well below Jupyter Server's default 10 MiB websocket message cap,
#: leaving room for the message's JSON header and the kernel protocol's framing.
CHUNK_SIZE = 4 * 1024 * 1024
#: The largest file the uploader accepts; anything bigger is not a photo worth sending.
MAX_UPLOAD_BYTES = 200 * 1000 * 1000

_FORMAT_MIME = {
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
    model: str,
    budget: RequestBudget,
    endpoint: str | EndpointProfile = "gemini",
    mime: str | None = None,
) -> FitOutcome:
    """Load and fit uploaded bytes for ``model``; never raises.

    Refused inputs (corrupt, a decompression bomb, an unsupported format) come back as
    the fitting engine's own message, which says what to do.
    """
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
    raw_mime = _FORMAT_MIME.get((loaded.original_format or "").upper()) or mime or None
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
            "warnings": list(self.gauge.warnings) if self.gauge else [],
            "error": self.error,
            # of the bytes that arrived: lets a test (or a curious user) check integrity
            "sha256": outcome.fitted.source_sha256 if outcome and outcome.fitted else "",
        }


class ImageUploader(anywidget.AnyWidget):
    """Pick or drop images; see at once whether and how they fit the request.

    ``uploader.images`` is the list of fitted images, ready to send. Files travel from
    the browser in slices well below the kernel websocket's message cap, so a 30 MB photo
    arrives intact in a default Jupyter server.
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
    summary = traitlets.Dict().tag(sync=True)

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        endpoint: str | EndpointProfile = "gemini",
        base_url: str | None = None,
        max_upload_bytes: int = MAX_UPLOAD_BYTES,
        **kwargs: Any,
    ) -> None:
        # Plain attributes first: trait observers fire during the base initialiser.
        self._endpoint = endpoint
        self._base_url = base_url
        self._assembler = ChunkAssembler(max_bytes=max_upload_bytes)
        self._items: list[_Item] = []
        self._change_callbacks: list[Callable[[ImageUploader], None]] = []
        super().__init__(model=model, **kwargs)
        self.max_images = get_model(self.model).max_reference_images
        self.on_msg(self._on_browser_message)
        self._publish()

    # ------------------------------------------------------------------ public API

    @property
    def images(self) -> list[FittedImage]:
        """The fitted images of every upload that is ready, in upload order."""
        return [
            item.outcome.fitted
            for item in self._items
            if item.state == "ready" and item.outcome and item.outcome.fitted
        ]

    @property
    def busy(self) -> bool:
        """Whether an upload is still arriving or being fitted."""
        return any(item.state in ("uploading", "fitting") for item in self._items)

    @property
    def errors(self) -> list[str]:
        """Messages of the uploads that were refused."""
        return [item.error for item in self._items if item.state == "error"]

    @property
    def budget(self) -> RequestBudget:
        from ..budget import RequestBudget

        return RequestBudget.for_endpoint(self._endpoint, base_url=self._base_url)

    def add_bytes(self, data: bytes, name: str = "image", mime: str = "") -> str:
        """Add an image from bytes, as if it had been uploaded; returns its id."""
        item = _Item(id=f"local-{len(self._items)}-{name}", name=name, size=len(data), mime=mime)
        item.received = len(data)
        item.data = data
        self._items.append(item)
        self._start_fit(item)
        return item.id

    def add_file(self, path: str | pathlib.Path) -> str:
        """Add an image from a file on the kernel's machine; returns its id."""
        from ..images import read_image_file

        path = pathlib.Path(path)
        return self.add_bytes(read_image_file(path), name=path.name)

    def remove(self, item_id: str) -> None:
        self._assembler.cancel(item_id)
        self._items = [item for item in self._items if item.id != item_id]
        self._publish()

    def clear(self) -> None:
        for item in self._items:
            self._assembler.cancel(item.id)
        self._items = []
        self._publish()

    def on_change(self, callback: Callable[[ImageUploader], None]) -> None:
        """Call ``callback(uploader)`` whenever the set of images or their gauges change."""
        self._change_callbacks.append(callback)

    def set_endpoint(self, endpoint: str | EndpointProfile, base_url: str | None = None) -> None:
        """Fit for another endpoint (its limits), e.g. when the studio's session changes."""
        self._endpoint, self._base_url = endpoint, base_url
        self._refit_all()

    # ------------------------------------------------------------------ transport

    def _on_browser_message(
        self, _widget: Any, content: dict[str, Any], buffers: Sequence[Any]
    ) -> None:
        kind = content.get("type")
        transfer_id = str(content.get("id", ""))
        try:
            if kind == "begin":
                self._begin(transfer_id, content)
            elif kind == "chunk":
                self._chunk(transfer_id, int(content.get("offset", -1)), buffers)
            elif kind == "end":
                self._end(transfer_id, content.get("sha256"))
            elif kind == "remove":
                self.remove(transfer_id)
        except UploadRefused as exc:
            self._refuse(transfer_id, str(exc))
        except (TypeError, ValueError):  # a message this version does not understand
            self._refuse(transfer_id, "The upload was garbled on the way. Upload it again.")

    def _begin(self, transfer_id: str, content: dict[str, Any]) -> None:
        name = str(content.get("name") or "image")
        size = int(content.get("size", 0))
        item = _Item(id=transfer_id, name=name, size=size, mime=str(content.get("mime") or ""))
        self._items.append(item)
        if len([i for i in self._items if i.state != "error"]) > self.max_images:
            raise UploadRefused(
                f"{name}: {get_model(self.model).name} accepts at most {self.max_images} "
                "images per request. Remove one first."
            )
        self._assembler.begin(transfer_id, name=name, size=size)
        self._publish()
        self.send({"type": "ack", "id": transfer_id, "offset": 0})

    def _chunk(self, transfer_id: str, offset: int, buffers: Sequence[Any]) -> None:
        if len(buffers) != 1:
            raise UploadRefused("A piece of the upload arrived without its data. Upload it again.")
        received = self._assembler.add(transfer_id, offset, buffers[0])
        item = self._find(transfer_id)
        if item is not None:
            item.received = received
            self._publish()
        self.send({"type": "ack", "id": transfer_id, "offset": received})

    def _end(self, transfer_id: str, sha256: object) -> None:
        data = self._assembler.finish(transfer_id, sha256 if isinstance(sha256, str) else None)
        item = self._find(transfer_id)
        if item is None:  # removed while arriving
            return
        item.data = data
        item.received = len(data)
        self._start_fit(item)

    def _refuse(self, transfer_id: str, message: str) -> None:
        self._assembler.cancel(transfer_id)
        item = self._find(transfer_id)
        if item is not None:
            item.state, item.error, item.data = "error", message, None
            self._publish()
        self.send({"type": "refused", "id": transfer_id, "message": message})

    # ------------------------------------------------------------------ fitting

    @traitlets.observe("model")
    def _model_changed(self, change: dict[str, Any]) -> None:
        self.max_images = get_model(change["new"]).max_reference_images
        self._refit_all()

    @traitlets.observe("prompt")
    def _prompt_changed(self, _change: dict[str, Any]) -> None:
        self._publish()

    def _refit_all(self) -> None:
        for item in self._items:
            if item.data is not None and item.state in ("fitting", "ready"):
                self._start_fit(item)
        self._publish()

    def _start_fit(self, item: _Item) -> None:
        item.state = "fitting"
        item.generation += 1
        generation, data, model, budget = item.generation, item.data, self.model, self.budget
        endpoint = self._endpoint
        assert data is not None
        self._publish()

        def work() -> FitOutcome:
            return fit_upload(
                data, name=item.name, model=model, budget=budget, endpoint=endpoint, mime=item.mime
            )

        def done(outcome: FitOutcome) -> None:
            if item.generation != generation or item not in self._items:
                return  # superseded by a newer fit, or removed
            self._fitted(item, outcome, model, budget)

        run_in_background(work, done)

    def _fitted(self, item: _Item, outcome: FitOutcome, model: str, budget: RequestBudget) -> None:
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
        self._publish()

    # ------------------------------------------------------------------ view state

    def _find(self, item_id: str) -> _Item | None:
        return next((item for item in self._items if item.id == item_id), None)

    def gauge(self) -> RequestGauge | None:
        """The whole-request gauge, or ``None`` when no image is ready."""
        ready = [
            (item.outcome.fitted, item.gauge)
            for item in self._items
            if item.state == "ready" and item.outcome and item.outcome.fitted and item.gauge
        ]
        if not ready:
            return None
        return request_gauge(ready, model=self.model, budget=self.budget, prompt=self.prompt)

    def _publish(self) -> None:
        self.items = [item.view() for item in self._items]
        gauge = self.gauge()
        if gauge is None:
            self.summary = {}
        else:
            warnings = list(gauge.warnings)
            busy = sum(1 for item in self._items if item.state in ("uploading", "fitting"))
            if busy:
                warnings.append(f"{busy} more still arriving or being fitted.")
            self.summary = {
                "lines": gauge.lines(),
                "fraction": gauge.fraction,
                "over": bool(gauge.limit and gauge.request_bytes > gauge.limit),
                "warnings": warnings,
            }
        for callback in list(self._change_callbacks):
            callback(self)

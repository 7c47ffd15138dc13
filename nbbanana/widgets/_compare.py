"""Before and after: the input next to the result, and a slider when their shapes match.

The slider overlays the two images, so it only makes sense when both have the same
aspect ratio (:func:`can_slide`); otherwise the view stays side by side. Previews in the
widget state are downscaled (see :mod:`._preview`); "Save" writes the full result with
:meth:`nbbanana.result.Result.save`.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence
from html import escape
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets as w
import traitlets
from PIL import Image

from ..errors import NbbananaError, redact
from ._preview import VIEW_SIDE, data_url

if TYPE_CHECKING:
    from ..result import Result

__all__ = ["SLIDE_TOLERANCE", "CompareView", "can_slide", "saved_message"]

#: Largest relative difference of aspect ratios for which the slider still lines up.
SLIDE_TOLERANCE = 0.02


def can_slide(before: tuple[int, int] | None, after: tuple[int, int] | None) -> bool:
    """Whether a drag-to-compare slider makes sense: both images exist and share a shape."""
    if not before or not after or min(*before, *after) <= 0:
        return False
    ratio_before, ratio_after = before[0] / before[1], after[0] / after[1]
    return abs(ratio_before - ratio_after) / ratio_after <= SLIDE_TOLERANCE


class _CompareCanvas(anywidget.AnyWidget):
    _esm = pathlib.Path(__file__).with_name("_compare.js")
    _css = pathlib.Path(__file__).with_name("_compare.css")

    before = traitlets.Unicode("").tag(sync=True)
    after = traitlets.Unicode("").tag(sync=True)
    before_size = traitlets.List(traitlets.Int(), default_value=[0, 0]).tag(sync=True)
    after_size = traitlets.List(traitlets.Int(), default_value=[0, 0]).tag(sync=True)
    can_slide = traitlets.Bool(False).tag(sync=True)
    caption = traitlets.Unicode("").tag(sync=True)
    placeholder = traitlets.Unicode("The result appears here.").tag(sync=True)


class CompareView(w.VBox):  # type: ignore[misc]
    """Shows a result next to what it was made from; saves it with its provenance."""

    def __init__(self, *, directory: str | pathlib.Path = "nbbanana-output") -> None:
        self.canvas = _CompareCanvas()
        self.directory = w.Text(
            value=str(directory), description="Save to", layout=w.Layout(width="360px")
        )
        self.save_button = w.Button(description="Save", icon="download", disabled=True)
        self.save_button.add_class("nbb-save")
        self.saved = w.HTML(value="")
        self.result: Result | None = None
        self.save_button.on_click(lambda _button: self.save())
        super().__init__(
            children=[
                self.canvas,
                w.HBox(
                    [self.directory, self.save_button, self.saved],
                    layout=w.Layout(align_items="center", flex_flow="row wrap"),
                ),
            ]
        )
        self.add_class("nbb-compare-view")

    def show(self, result: Result, before: Image.Image | None = None, *, index: int = 0) -> None:
        """Show ``result``'s image ``index`` (default: its first) after ``before`` (the
        input, or the previous turn)."""
        after = result.images[index] if 0 <= index < len(result.images) else result.image
        self.result = result
        self.saved.value = ""
        self.save_button.disabled = after is None
        with self.canvas.hold_sync():
            self.canvas.before = data_url(before, VIEW_SIDE) if before is not None else ""
            self.canvas.before_size = list(before.size) if before is not None else [0, 0]
            self.canvas.after = data_url(after, VIEW_SIDE) if after is not None else ""
            self.canvas.after_size = list(after.size) if after is not None else [0, 0]
            self.canvas.can_slide = can_slide(
                before.size if before is not None else None,
                after.size if after is not None else None,
            )
            self.canvas.caption = _caption(result)

    def show_input(self, before: Image.Image | None) -> None:
        """Show only the input (before anything has been run)."""
        self.result = None
        self.save_button.disabled = True
        self.saved.value = ""
        with self.canvas.hold_sync():
            self.canvas.before = data_url(before, VIEW_SIDE) if before is not None else ""
            self.canvas.before_size = list(before.size) if before is not None else [0, 0]
            self.canvas.after, self.canvas.after_size = "", [0, 0]
            self.canvas.can_slide = False
            self.canvas.caption = ""

    def save(self) -> list[pathlib.Path]:
        """Save the shown result (PNG with embedded provenance + JSON sidecar)."""
        if self.result is None:
            return []
        try:
            paths = self.result.save(self.directory.value or ".")
        except (OSError, NbbananaError) as exc:
            self.saved.value = (
                f"<span class='nbb-error'>Could not save: {escape(redact(str(exc)))}</span>"
            )
            return []
        self.saved.value = (
            f"<span class='nbb-saved'>{escape(saved_message(paths, self.directory.value))}</span>"
        )
        return list(paths)


def saved_message(paths: Sequence[pathlib.Path], directory: str) -> str:
    """One short line naming the folder and the files: "✓ Saved in out/: <id>.png + .json"."""
    folder = (directory or ".").rstrip("/\\") + "/"
    images = [p for p in paths if p.suffix != ".json"]
    if not images:
        return f"✓ Saved in {folder}"
    extra = f" (+{len(images) - 1} more)" if len(images) > 1 else ""
    sidecar = " + .json" if any(p.suffix == ".json" for p in paths) else ""
    return f"✓ Saved in {folder}: {images[0].name}{extra}{sidecar}"


def _caption(result: Result) -> str:
    parts: list[Any] = [f"“{result.prompt}”"] if getattr(result, "prompt", "") else []
    text = (getattr(result, "text", "") or "").strip()
    if text:
        parts.append(text[:200])
    return " — ".join(str(p) for p in parts)

"""What came with an answer besides its image: thoughts, sources, and every image.

Shown under the before/after view after a run:

* the model's thoughts (text and interim "thought images"), collapsed and marked as
  drafts, never as the answer;
* the web pages a grounded answer drew on, and Google's search suggestions exactly as
  the service sent them (Google's terms for grounding require showing them);
* when an answer holds several images, a strip of them: the one picked becomes the
  After image and what the next run edits.

A regional answer that could not be placed back is no turn: its thoughts and sources
are shown apart (:class:`UnplacedExtras`, labelled as that answer's), and the panel
stays the current turn's.

The HTML pieces are :class:`~nbbanana.result.Result`'s own (the same a result shows in
a notebook), so the studio and a notebook cell never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING

import ipywidgets as w

from ._preview import THUMB_SIDE, preview_bytes

if TYPE_CHECKING:
    from ..result import Result

__all__ = [
    "THOUGHTS_NOTE",
    "UNPLACED_NOTE",
    "AnswerPanel",
    "UnplacedExtras",
    "answer_html",
    "strip_caption",
    "unplaced_heading",
    "unplaced_html",
]

#: Added to the collapsed thoughts' heading, so nobody takes a draft for the answer.
THOUGHTS_NOTE = "the model's drafts while thinking, not the answer"
#: After the unplaced answer's heading: whose thoughts and sources these are.
UNPLACED_NOTE = (
    "of the answer shown as the After image above, which was not placed into the picture "
    "and is not in the history"
)


def answer_html(result: Result) -> str:
    """The thoughts (collapsed, marked as not the answer), then the sources and search
    suggestions of a grounded answer; "" when the answer has none of them."""
    thoughts = result._thoughts_html()
    if thoughts:
        thoughts = thoughts.replace("</summary>", f" — {THOUGHTS_NOTE}</summary>", 1)
        thoughts = f"<div class='nbb-answer-thoughts'>{thoughts}</div>"
    grounding = result._grounding_html()
    if grounding:
        grounding = f"<div class='nbb-answer-sources'>{grounding}</div>"
    return thoughts + grounding


def unplaced_heading(result: Result) -> str:
    """The label over what came with a regional answer that could not be placed back,
    naming what it holds, so that nobody takes it for the current turn's answer."""
    held = [
        name
        for name, there in (
            ("thoughts", bool(result.thoughts or result.thought_images)),
            ("sources", bool(result.sources)),
            ("search suggestions", bool(result.search_suggestions_html)),
        )
        if there
    ]
    what = " and ".join([", ".join(held[:-1]), held[-1]] if len(held) > 1 else held)
    return f"The unplaced answer's {what or 'extras'}"


def unplaced_html(result: Result) -> str:
    """:func:`answer_html` of an answer that could not be placed back, under its own
    label (:func:`unplaced_heading`); "" when the answer has none of those. The thoughts
    stay collapsed; the sources and search suggestions stay in sight (Google's terms for
    grounding require showing the suggestions with the answer)."""
    extras = answer_html(result)
    if not extras:
        return ""
    return (
        "<div class='nbb-unplaced-extras' style='border-left:3px solid #d9a400;"
        "padding-left:.6em;margin:.3em 0'>"
        f"<b>{escape(unplaced_heading(result), quote=False)}</b> — {UNPLACED_NOTE}"
        f"{extras}</div>"
    )


def strip_caption(count: int, picked: int) -> str:
    """The line above the image strip (``picked`` counts from 0)."""
    return (
        f"This answer holds {count} images; image {picked + 1} is the After image. "
        "Pick another to compare it and edit it next (the next run starts from it)."
    )


class AnswerPanel(w.VBox):  # type: ignore[misc]
    """Thoughts, sources and search suggestions of the shown result, and a strip to
    pick which of its images is the After image."""

    def __init__(self) -> None:
        self.extras = w.HTML(value="")
        self.extras.add_class("nbb-answer-extras")
        self.caption = w.HTML(value="")
        self.strip = w.HBox(layout=w.Layout(flex_flow="row wrap"))
        self.strip.add_class("nbb-image-strip")
        #: The strip's buttons, one per image of the answer (``buttons[0]`` is image 1).
        self.buttons: list[w.Button] = []
        self._callbacks: list[Callable[[int], None]] = []
        # The strip first: it picks the After image shown just above it.
        super().__init__(children=[self.caption, self.strip, self.extras])
        self.add_class("nbb-answer")
        self.clear()

    def on_pick(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(index)`` (from 0) when an image of the strip is picked."""
        self._callbacks.append(callback)

    def show(self, result: Result, picked: int = 0) -> None:
        """Show what ``result`` holds besides its image; ``picked``: the After image."""
        self.extras.value = answer_html(result)
        images = result.images
        if len(images) > 1:
            self.caption.value = (
                f"<span class='nbb-strip-caption'>{strip_caption(len(images), picked)}</span>"
            )
            self.buttons, cards = [], []
            for index, image in enumerate(images):
                data, mime = preview_bytes(image, THUMB_SIDE // 2)
                thumb = w.Image(value=data, format=mime.removeprefix("image/"), width=80)
                button = w.Button(
                    description=f"Image {index + 1}" + (" ●" if index == picked else ""),
                    tooltip=f"{image.width}×{image.height}",
                    button_style="info" if index == picked else "",
                    layout=w.Layout(width="96px"),
                )
                button.add_class("nbb-pick")
                button.on_click(lambda _button, index=index: self._picked(index))
                self.buttons.append(button)
                cards.append(w.VBox([thumb, button], layout=w.Layout(align_items="center")))
            self.strip.children = cards
        else:
            self.caption.value, self.strip.children, self.buttons = "", (), []
        visible = bool(self.extras.value or self.buttons)
        self.layout.display = "" if visible else "none"

    def clear(self) -> None:
        self.extras.value, self.caption.value = "", ""
        self.strip.children, self.buttons = (), []
        self.layout.display = "none"

    def _picked(self, index: int) -> None:
        for callback in list(self._callbacks):
            callback(index)


class UnplacedExtras(w.HTML):  # type: ignore[misc]
    """The thoughts, sources and search suggestions of a regional answer that could not
    be placed back (:func:`unplaced_html`): shown under the before/after view with that
    answer, gone on the next run. The answer panel stays the current turn's."""

    def __init__(self) -> None:
        super().__init__(value="")
        self.add_class("nbb-unplaced")
        self.clear()

    def show(self, result: Result) -> None:
        self.value = unplaced_html(result)
        self.layout.display = "" if self.value else "none"

    def clear(self) -> None:
        self.value = ""
        self.layout.display = "none"

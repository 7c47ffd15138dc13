"""The history strip: one thumbnail per chat turn; click one to branch from it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import ipywidgets as w

from ._preview import THUMB_SIDE, preview_bytes

if TYPE_CHECKING:
    from ..result import Result

__all__ = ["HistoryStrip", "turn_label"]


def turn_label(turn: int, result: Result) -> str:
    """A turn's tooltip: its number (from 1, as :meth:`Chat.branch` counts) and prompt,
    shortened."""
    prompt = (getattr(result, "prompt", "") or "").strip()
    if len(prompt) > 60:
        prompt = prompt[:57] + "…"
    return f"Turn {turn}: {prompt}" if prompt else f"Turn {turn}"


class HistoryStrip(w.HBox):  # type: ignore[misc]
    """Thumbnails of a chat's turns. The current turn is highlighted; clicking another
    turn's button calls the branch callbacks with its number (from 1, as
    :meth:`Chat.branch` counts turns)."""

    def __init__(self) -> None:
        super().__init__(layout=w.Layout(flex_flow="row wrap"))
        self.add_class("nbb-history")
        self.buttons: list[w.Button] = []
        self._callbacks: list[Callable[[int], None]] = []
        self._current: int | None = None

    def on_branch(self, callback: Callable[[int], None]) -> None:
        self._callbacks.append(callback)

    def set_turns(self, results: Sequence[Result], current: int | None = None) -> None:
        """Show one card per result; turn ``current`` (default: the last) is highlighted."""
        self._current = (len(results) or None) if current is None else current
        cards, self.buttons = [], []
        for turn, result in enumerate(results, start=1):
            image = result.image
            if image is not None:
                data, mime = preview_bytes(image, THUMB_SIDE // 2)
                thumb = w.Image(value=data, format=mime.removeprefix("image/"), width=96)
            else:
                thumb = w.HTML("<div style='width:96px;height:96px'>no image</div>")
            is_current = turn == self._current
            button = w.Button(
                description=f"{turn} · current" if is_current else f"{turn} · branch",
                tooltip=turn_label(turn, result),
                button_style="info" if is_current else "",
                layout=w.Layout(width="96px"),
            )
            button.add_class("nbb-turn")
            button.on_click(lambda _button, turn=turn: self._clicked(turn))
            self.buttons.append(button)
            cards.append(w.VBox([thumb, button], layout=w.Layout(align_items="center")))
        self.children = cards

    def _clicked(self, turn: int) -> None:
        if turn == self._current:
            return
        for callback in list(self._callbacks):
            callback(turn)

"""The history strip: every turn as a thumbnail, branches included; any turn can be
continued with its "Branch from here" button.

A view over :class:`~._tree.TurnTree`: one row per branch (see :meth:`TurnTree.rows`),
each later row saying which turn it branched from, the current turn highlighted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import ipywidgets as w

from ._preview import THUMB_SIDE, preview_bytes

if TYPE_CHECKING:
    from ..result import Result
    from ._tree import TurnTree

__all__ = ["BRANCH_LABEL", "CURRENT_LABEL", "HistoryStrip", "turn_label"]

#: What a turn's button says: an action, not a state.
BRANCH_LABEL = "Branch from here"
#: What the current turn's button says (clicking it does nothing: runs continue it, as
#: the strip's heading says).
CURRENT_LABEL = "● Current"

#: Wide enough for "Branch from here" at JupyterLab's button font and padding.
_CARD_WIDTH = "156px"


def turn_label(turn: int, result: Result, parent: int | None = None) -> str:
    """A turn's tooltip: its number (from 1, in the order turns were made), the turn it
    continued when that is not the one before it, and its prompt, shortened."""
    prompt = (getattr(result, "prompt", "") or "").strip()
    if len(prompt) > 60:
        prompt = prompt[:57] + "…"
    head = f"Turn {turn}" + (f" (from turn {parent})" if parent not in (None, turn - 1) else "")
    return f"{head}: {prompt}" if prompt else head


class HistoryStrip(w.VBox):  # type: ignore[misc]
    """Thumbnails of every turn, one row per branch. Clicking a turn's button calls the
    branch callbacks with its number (from 1, in the order turns were made)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_class("nbb-history")
        #: The turn buttons, in turn-number order (``buttons[0]`` is turn 1).
        self.buttons: list[w.Button] = []
        self._callbacks: list[Callable[[int], None]] = []
        self._current: int | None = None

    def on_branch(self, callback: Callable[[int], None]) -> None:
        self._callbacks.append(callback)

    def show(self, tree: TurnTree) -> None:
        """Show every turn of ``tree``; its current turn is highlighted."""
        self._current = tree.current
        cards: dict[int, w.VBox] = {}
        buttons: dict[int, w.Button] = {}
        for number in range(1, len(tree) + 1):
            cards[number], buttons[number] = self._card(tree, number)
        rows = []
        for row in tree.rows():
            head = (
                [w.HTML(f"<span class='nbb-branch-from'>↳ from turn {row.branched_from}</span>")]
                if row.branched_from is not None
                else []
            )
            line = w.HBox(head + [cards[n] for n in row.turns])
            line.add_class("nbb-history-row")
            rows.append(line)
        self.buttons = [buttons[n] for n in sorted(buttons)]
        self.children = rows

    def _card(self, tree: TurnTree, number: int) -> tuple[w.VBox, w.Button]:
        turn = tree[number]
        image = turn.result.image
        if image is not None:
            data, mime = preview_bytes(image, THUMB_SIDE // 2)
            thumb = w.Image(value=data, format=mime.removeprefix("image/"), width=96)
        else:
            thumb = w.HTML("<div style='width:96px;height:96px'>no image</div>")
        is_current = number == self._current
        button = w.Button(
            description=CURRENT_LABEL if is_current else BRANCH_LABEL,
            tooltip=turn_label(number, turn.result, turn.parent),
            button_style="info" if is_current else "",
            layout=w.Layout(width=_CARD_WIDTH),
        )
        button.add_class("nbb-turn")
        button.on_click(lambda _button, number=number: self._clicked(number))
        title = w.HTML(f"<span class='nbb-turn-number'>Turn {number}</span>")
        card = w.VBox([title, thumb, button], layout=w.Layout(align_items="center"))
        card.add_class("nbb-turn-card")
        if is_current:
            card.add_class("nbb-turn-current")
        return card, button

    def clear(self) -> None:
        self._current, self.buttons = None, []
        self.children = []

    def _clicked(self, turn: int) -> None:
        if turn == self._current:
            return
        for callback in list(self._callbacks):
            callback(turn)

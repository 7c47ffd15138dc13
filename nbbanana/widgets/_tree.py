"""Every turn the studio has made, as a tree: branching never deletes anything.

Turns are numbered from 1 in the order they were made. Each turn knows the turn it
continued from (its parent), so branching from turn 2 after turns 3 and 4 adds a turn 5
whose parent is 2, and turns 3 and 4 stay, one click away. :meth:`TurnTree.rows` lays
the tree out for the history strip: the first continuation of a turn stays on its row,
each later one starts a new row that says which turn it branched from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..chat import Chat
    from ..result import Result

__all__ = ["Row", "Turn", "TurnTree"]


@dataclass(frozen=True)
class Turn:
    """One turn: its result, where it came from, and the chat to continue it with."""

    number: int
    parent: int | None
    result: Result
    #: The chat whose history ends with this turn after ``depth`` turns (it may have
    #: gone on since: :meth:`Chat.branch` with ``depth`` continues from exactly here).
    chat: Chat
    depth: int
    #: What the turn's chat was made with (:attr:`RunRequest.settings`).
    settings: tuple[str | bool | None, ...]


@dataclass(frozen=True)
class Row:
    """One row of the history strip: turns in order, and the turn the row branched from
    (``None`` for the first row)."""

    branched_from: int | None
    turns: tuple[int, ...]


class TurnTree:
    """The turns of one set of inputs; :attr:`current` is the turn the next run continues."""

    def __init__(self) -> None:
        self._turns: dict[int, Turn] = {}
        self.current: int | None = None

    def __len__(self) -> int:
        return len(self._turns)

    def __getitem__(self, number: int) -> Turn:
        try:
            return self._turns[number]
        except KeyError:
            raise IndexError(
                f"there is no turn {number} to branch from (turns are 1 to {len(self)})"
            ) from None

    def add(
        self,
        result: Result,
        chat: Chat,
        *,
        settings: tuple[str | bool | None, ...],
    ) -> Turn:
        """Record a new turn continuing :attr:`current`; it becomes the current turn."""
        turn = Turn(
            number=len(self._turns) + 1,
            parent=self.current,
            result=result,
            chat=chat,
            depth=len(chat),
            settings=settings,
        )
        self._turns[turn.number] = turn
        self.current = turn.number
        return turn

    def select(self, number: int) -> Turn:
        """Make turn ``number`` the current one (the next run continues from it)."""
        turn = self[number]
        self.current = number
        return turn

    def path(self, number: int | None = None) -> list[Turn]:
        """The turns from the first one down to ``number`` (default: the current one)."""
        number = self.current if number is None else number
        out: list[Turn] = []
        while number is not None:
            turn = self[number]
            out.append(turn)
            number = turn.parent
        return out[::-1]

    def children(self, number: int | None) -> list[int]:
        """The turns that continued ``number`` (``None``: the first turns), oldest first."""
        return [t.number for t in self._turns.values() if t.parent == number]

    def rows(self) -> list[Row]:
        """The tree as rows: the oldest continuation of a turn stays on its row; every
        other continuation starts a new row (depth first, so a branch follows its stem)."""
        rows: list[Row] = []

        def walk(start: int, branched_from: int | None) -> None:
            line: list[int] = [start]
            later: list[tuple[int, int]] = []
            while True:
                kids = self.children(line[-1])
                later.extend((line[-1], kid) for kid in kids[1:])
                if not kids:
                    break
                line.append(kids[0])
            rows.append(Row(branched_from, tuple(line)))
            for parent, kid in later:
                walk(kid, parent)

        for root in self.children(None):
            walk(root, None)
        return rows

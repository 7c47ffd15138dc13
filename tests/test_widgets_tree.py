"""The studio's turn tree: branching keeps every turn; rows lay the branches out."""

from __future__ import annotations

from typing import Any

import pytest

from nbbanana.widgets._tree import Row, TurnTree

SETTINGS = ("gemini-2.5-flash-image", None, None)


class _Chat:
    """Just what the tree reads of a chat: its length."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n


def _add(tree: TurnTree, depth: int) -> int:
    result: Any = object()
    return tree.add(result, _Chat(depth), settings=SETTINGS).number  # type: ignore[arg-type]


def test_branching_keeps_the_later_turns_and_lays_them_out_in_rows() -> None:
    tree = TurnTree()
    _add(tree, 1), _add(tree, 2), _add(tree, 3)  # 1 → 2 → 3
    tree.select(1)
    assert _add(tree, 2) == 4  # 1 → 4, turns 2 and 3 stay
    tree.select(2)
    assert _add(tree, 3) == 5  # 2 → 5
    assert len(tree) == 5
    assert [t.number for t in tree.path()] == [1, 2, 5]
    assert [t.number for t in tree.path(3)] == [1, 2, 3]
    assert tree.children(1) == [2, 4]
    assert tree.rows() == [
        Row(None, (1, 2, 3)),
        Row(1, (4,)),
        Row(2, (5,)),
    ]
    tree.select(3)  # an abandoned turn can be returned to
    assert [t.number for t in tree.path()] == [1, 2, 3]


def test_selecting_a_turn_that_does_not_exist_says_which_exist() -> None:
    tree = TurnTree()
    _add(tree, 1)
    with pytest.raises(IndexError, match=r"no turn 7 .*1 to 1"):
        tree.select(7)

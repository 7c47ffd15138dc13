"""Before/after view and history strip, with real results from the offline emulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

import nbbanana
from nbbanana.result import Result
from nbbanana.session import Session
from nbbanana.widgets import CompareView, HistoryStrip
from nbbanana.widgets._compare import can_slide, saved_message
from nbbanana.widgets._history import BRANCH_LABEL, CURRENT_LABEL, turn_label
from nbbanana.widgets._tree import TurnTree


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    with nbbanana.connect(offline=True) as session:
        yield session


@pytest.fixture(scope="module")
def result(session: Session) -> Result:
    return session.generate("A banana in space", aspect_ratio="3:2")


@pytest.mark.parametrize(
    ("before", "after", "slide"),
    [
        ((1536, 1024), (1248, 832), True),  # both 3:2
        ((1000, 1000), (1024, 1024), True),
        ((1536, 1152), (1248, 832), False),  # 4:3 before, 3:2 after
        ((1016, 1000), (1000, 1000), True),  # within 2 %
        ((1040, 1000), (1000, 1000), False),
        (None, (1024, 1024), False),
        ((0, 10), (10, 10), False),
    ],
)
def test_slider_only_when_shapes_match(
    before: tuple[int, int] | None, after: tuple[int, int], slide: bool
) -> None:
    assert can_slide(before, after) is slide


def test_show_puts_previews_and_real_sizes_in_the_view(result: Result) -> None:
    view = CompareView()
    assert view.save_button.disabled
    before = Image.new("RGB", (3000, 2000), "orange")
    view.show(result, before)
    canvas = view.canvas
    assert canvas.after_size == [1264, 848] == list(result.image.size)  # type: ignore[union-attr]
    assert canvas.before_size == [3000, 2000]
    assert canvas.can_slide  # both 3:2
    assert canvas.before.startswith("data:image/jpeg;base64,")
    assert len(canvas.before) < 400_000  # a preview, not the 6 MP image
    assert "A banana in space" in canvas.caption
    assert not view.save_button.disabled


def test_a_differently_shaped_input_gets_no_slider(result: Result) -> None:
    view = CompareView()
    view.show(result, Image.new("RGB", (800, 800), "grey"))
    assert not view.canvas.can_slide
    view.show_input(Image.new("RGB", (640, 480), "grey"))
    assert view.canvas.after == "" and view.canvas.before_size == [640, 480]
    assert view.save_button.disabled


def test_save_button_writes_the_result_with_its_provenance(result: Result, tmp_path: Path) -> None:
    view = CompareView(directory=tmp_path / "out")
    view.show(result)
    view.save_button.click()
    files = sorted((tmp_path / "out").iterdir())
    assert any(f.suffix == ".png" for f in files)
    sidecar = next(f for f in files if f.suffix == ".json")
    assert json.loads(sidecar.read_text())["prompt"] == "A banana in space"
    folder = str(tmp_path / "out")
    assert view.saved.value == (
        f"<span class='nbb-saved'>✓ Saved in {folder}/: {result.id}.png + .json</span>"
    )


def test_saved_message_names_the_folder_and_one_id() -> None:
    paths = [Path("out/a1.png"), Path("out/a1-2.png"), Path("out/a1.json")]
    assert saved_message(paths, "out/") == "✓ Saved in out/: a1.png (+1 more) + .json"
    assert saved_message(paths[:1], "") == "✓ Saved in ./: a1.png"


def test_save_failure_is_a_message(result: Result, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    view = CompareView(directory=blocker / "sub")
    view.show(result)
    assert view.save() == []
    assert "Could not save" in view.saved.value


def test_history_strip_shows_every_turn_and_branches_from_the_clicked_one(
    session: Session,
) -> None:
    chat = session.chat(aspect_ratio="1:1")
    tree = TurnTree()
    settings = (chat.model, chat.aspect_ratio, chat.image_size)
    for prompt in ("A red apple", "Make it green", "Add a leaf"):
        tree.add(chat.send(prompt), chat, settings=settings)
    tree.select(1)
    other = chat.branch(1)
    tree.add(other.send("Make it blue"), other, settings=settings)
    strip = HistoryStrip()
    clicked: list[int] = []
    strip.on_branch(clicked.append)
    strip.show(tree)
    assert [b.description for b in strip.buttons] == [BRANCH_LABEL] * 3 + [CURRENT_LABEL]
    assert strip.buttons[1].tooltip == "Turn 2: Make it green"
    assert strip.buttons[3].tooltip == "Turn 4 (from turn 1): Make it blue"
    assert len(strip.children) == 2  # the first line and the branch from turn 1
    strip.buttons[2].click()
    strip.buttons[3].click()  # the current turn: nothing to branch
    assert clicked == [3]
    strip.clear()
    assert strip.children == ()


def test_turn_label_shortens_long_prompts(result: Result) -> None:
    assert turn_label(1, result) == "Turn 1: A banana in space"
    result_long = Result(**{**result.__dict__, "prompt": "x" * 100})
    assert turn_label(3, result, 1) == "Turn 3 (from turn 1): A banana in space"
    label = turn_label(5, result_long)
    assert label.startswith("Turn 5: ") and label.endswith("…") and len(label) == 8 + 58

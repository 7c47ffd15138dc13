"""The studio, driven by clicks and values without a browser, against the real emulator.

Covers the whole loop (upload → run → compare → second turn → branch), errors shown with
what to do, runs that leave the kernel's event loop free, and that the API key never
appears in any widget's state (what a notebook saves).
"""

from __future__ import annotations

import asyncio
import base64
import json
import warnings
from collections.abc import Iterator
from typing import Any

import ipywidgets
import pytest
from _imagegen import jpeg_bytes, photo_like
from ipywidgets.embed import embed_data

import nbbanana
import nbbanana._format
from nbbanana.emulator import Emulator
from nbbanana.models import get_model
from nbbanana.widgets import Studio, studio
from nbbanana.widgets._history import BRANCH_LABEL, CURRENT_LABEL

FLASH = "gemini-2.5-flash-image"
KEY = "AIzaSyD-nbbanana-widget-test-key-9876543"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(api_keys=[KEY]) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def upload() -> bytes:
    return jpeg_bytes(photo_like(900, 600, seed=11), 90)


def _studio(emulator: Emulator) -> Studio:
    session = nbbanana.connect(
        api_key=KEY, base_url=emulator.base_url, endpoint="gemini", model=FLASH
    )
    return Studio(session)


def _generate_calls(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if "generateContent" in r.path)


def test_upload_run_second_turn_and_branch(emulator: Emulator, upload: bytes) -> None:
    app = _studio(emulator)
    app.uploader.add_bytes(upload, "street.jpg")
    assert app.compare.canvas.before_size == [900, 600]  # the input is ready ...
    # ... but the view waits for a result: the region tool already shows the upload.
    assert app.compare.layout.display == "none" and app.region.size == [900, 600]
    box = app.prompt_box
    box.prompt.value = "Make the sky violet"
    box.aspect_ratio.value = "3:2"
    box.run.click()

    assert box.error.value == ""
    assert app.compare.canvas.after_size == list(get_model(FLASH).output_size("3:2"))
    assert app.compare.canvas.before_size == [900, 600]
    assert app.compare.canvas.can_slide  # both 3:2
    assert app.compare.layout.display != "none"
    assert "Done in" in box.status.value and not box.run.disabled
    assert [b.description for b in app.history.buttons] == [CURRENT_LABEL]

    box.prompt.value = "Add a red kite"
    box.run.click()
    assert len(app.history.buttons) == 2
    first, second = app.state.turns
    assert app.compare.result is second
    assert second.parent is first  # the chat edits its own previous image
    assert [b.description for b in app.history.buttons] == [BRANCH_LABEL, CURRENT_LABEL]
    # The gauge now describes what the third run sends: turn 2's image, not the upload.
    summary = app.uploader.summary
    assert summary["title"] == "Next request: turn 2's image"
    width, height = second.image.size
    assert f"turn 2's image ({width}×{height}" in summary["lines"][0]
    assert summary["scale"][2].endswith("budget")

    app.history.buttons[0].click()  # branch from turn 1
    assert [t.id for t in app.state.turns] == [first.id]
    assert app.uploader.summary["title"] == "Next request: turn 1's image"
    assert "Branched from turn 1" in box.status.value
    assert app.compare.result is first
    assert len(app.history.buttons) == 2  # turn 2 is kept
    box.prompt.value = "Make it night"
    box.run.click()
    assert [b.tooltip for b in app.history.buttons] == [
        "Turn 1: Make the sky violet",
        "Turn 2: Add a red kite",
        "Turn 3 (from turn 1): Make it night",
    ]
    assert app.state.turns[0] is first
    assert app.state.turns[1].parent is first
    rows = app.history.children
    assert len(rows) == 2 and "from turn 1" in rows[1].children[0].value

    app.history.buttons[1].click()  # back to the abandoned turn 2
    assert [t.id for t in app.state.turns] == [first.id, second.id]
    box.prompt.value = "Add a second kite"
    box.run.click()
    assert app.state.turns[2].parent is second  # continues turn 2's chat
    assert len(app.history.buttons) == 4


def test_problems_are_shown_and_nothing_is_sent(emulator: Emulator, upload: bytes) -> None:
    app = _studio(emulator)
    before = _generate_calls(emulator)
    app.prompt_box.run.click()  # no prompt
    assert "Type a prompt" in app.prompt_box.error.value
    app.uploader.add_bytes(b"\x89PNG\r\n\x1a\n broken", "broken.png")
    app.prompt_box.prompt.value = "Make it blue"
    app.prompt_box.run.click()
    assert "refused" in app.prompt_box.error.value
    assert "broken.png" in app.uploader.items[0]["error"]
    assert _generate_calls(emulator) == before


def test_a_blocked_answer_is_explained_and_run_is_enabled_again(emulator: Emulator) -> None:
    app = _studio(emulator)
    emulator.inject("blocked", reason="SAFETY")
    app.prompt_box.prompt.value = "Something the filters dislike"
    app.prompt_box.run.click()
    error = app.prompt_box.error.value
    assert "Blocked" in error and "What to do" in error and "Rephrase" in error
    assert "Failed after" in app.prompt_box.status.value
    assert not app.prompt_box.run.disabled
    assert app.state.turns == []  # the failed turn left the chat as it was
    app.prompt_box.prompt.value = "A harmless banana"
    app.prompt_box.run.click()
    assert app.prompt_box.error.value == "" and len(app.state.turns) == 1


def test_a_run_leaves_the_event_loop_free() -> None:
    with Emulator(api_keys=[KEY], latency=0.5) as slow:
        app = _studio(slow)
        app.prompt_box.prompt.value = "A slow banana"

        async def scenario() -> tuple[bool, bool, str, str]:
            task = app.run()
            assert isinstance(task, asyncio.Task)
            # Other work (another cell, another widget) runs while the request is out.
            for _ in range(3):
                await asyncio.sleep(0)
            pending_after_other_work = not task.done()
            disabled_while_running = app.prompt_box.run.disabled
            await asyncio.sleep(0.05)
            running_status = app.prompt_box.status.value
            await task
            return (
                pending_after_other_work,
                disabled_while_running,
                running_status,
                app.prompt_box.status.value,
            )

        pending, disabled, running, done = asyncio.run(scenario())
    assert pending and disabled
    assert "Running…" in running and "estimate $" in running
    assert "Done in" in done and not app.prompt_box.run.disabled


def _all_widget_state() -> str:
    """Every live widget's state, as the notebook would save it (bytes as base64 + raw)."""

    def default(value: Any) -> str:
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
            return base64.b64encode(raw).decode() + raw.decode("latin-1")
        return repr(value)

    with warnings.catch_warnings():  # Widget.widgets is deprecated but still the registry
        warnings.simplefilter("ignore", DeprecationWarning)
        registry = dict(ipywidgets.Widget.widgets)
    states = {model_id: widget.get_state() for model_id, widget in registry.items()}
    return json.dumps(states, default=default)


def test_the_api_key_never_reaches_widget_state(emulator: Emulator, upload: bytes) -> None:
    app = _studio(emulator)
    app.uploader.add_bytes(upload, "street.jpg")
    app.prompt_box.prompt.value = "Make the sky violet"
    app.prompt_box.run.click()
    assert app.compare.result is not None
    emulator.inject("blocked")  # an error message on screen as well
    app.prompt_box.run.click()
    assert app.prompt_box.error.value
    assert app.session._secret.reveal() == KEY  # the key is in use ...
    state = _all_widget_state()
    assert len(state) > 10_000 and "Make the sky violet" in state
    assert KEY not in state  # ... and in no widget's state
    saved = json.dumps(embed_data(views=[app])["manager_state"], default=repr)
    assert KEY not in saved


def test_studio_without_a_key_is_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    app = studio()
    assert app.session.offline
    assert "offline emulator" in app.children[0].value
    assert nbbanana.studio is studio


def test_changing_the_model_continues_from_the_latest_image(
    emulator: Emulator, upload: bytes
) -> None:
    app = _studio(emulator)
    app.uploader.add_bytes(upload, "street.jpg")
    box = app.prompt_box
    box.prompt.value = "Make the sky violet"
    box.run.click()
    (first,) = app.state.turns
    box.model.value = "gemini-3-pro-image"
    assert app.uploader.model == "gemini-3-pro-image"  # the gauge follows
    box.image_size.value = "2K"
    box.aspect_ratio.value = "16:9"
    box.prompt.value = "Now in widescreen"
    box.run.click()
    assert box.error.value == ""
    stem, second = app.state.turns  # a new chat on the new model, in the same tree ...
    assert stem is first
    assert second.model == "gemini-3-pro-image"
    assert second.image is not None and second.image.size == (2752, 1536)
    assert app.compare.canvas.before_size == list(first.image.size)  # ... from the last image
    assert [ref.source_sha256 for ref in second.inputs] != [
        ref.source_sha256 for ref in first.inputs
    ]


def test_a_text_only_answer_says_what_to_do(emulator: Emulator) -> None:
    app = _studio(emulator)
    emulator.inject("text_only")
    app.prompt_box.prompt.value = "A banana"
    app.prompt_box.run.click()
    assert "without an image" in app.prompt_box.error.value
    assert "Ask explicitly" in app.prompt_box.error.value


def test_the_status_shows_the_cap_and_what_is_left(emulator: Emulator) -> None:
    session = nbbanana.connect(
        api_key=KEY, base_url=emulator.base_url, endpoint="gemini", max_cost_usd=1.0
    )
    app = Studio(session)
    assert "Session spent $0.00 of $1.00 cap · $1.00 left" in app.prompt_box.status.value
    app.prompt_box.prompt.value = "A banana"
    app.prompt_box.run.click()
    status = app.prompt_box.status.value
    left = nbbanana._format.format_usd(1.0 - session.spent)
    assert f"of $1.00 cap · {left} left" in status

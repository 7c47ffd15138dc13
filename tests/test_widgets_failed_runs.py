"""A run that fails or is cancelled leaves the studio exactly as it was: the answer's image
strip and the picked image, the history, the chat the next run continues, and the gauges;
only the error and the status line say what happened.

Against the real emulator over HTTP with the real google-genai SDK (no patching): an
``ignore_input`` fault makes a regional answer unplaceable, ``blocked`` fails a turn,
``slow`` keeps one in flight long enough to cancel it.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from _client_helpers import Wire, recorded_session
from _imagegen import jpeg_bytes
from PIL import Image
from test_region_sdk import textured

from nbbanana.emulator import Emulator
from nbbanana.widgets import Studio
from nbbanana.widgets._answer import (
    THOUGHTS_NOTE,
    UNPLACED_NOTE,
    unplaced_heading,
    unplaced_html,
)

PRO = "gemini-3-pro-image"
NB2 = "gemini-3.1-flash-image"
SEVERAL = "Three variations of this street"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(seed=7) as emulator:
        yield emulator


def _studio_with_three_images(emulator: Emulator) -> tuple[Studio, Wire]:
    session, wire = recorded_session(emulator.base_url, model=PRO)
    app = Studio(session)
    app.uploader.add_bytes(jpeg_bytes(textured(1200, 800, seed=5), 95), "street.jpg")
    app.prompt_box.prompt.value = SEVERAL
    answer = app.run()
    assert answer is not None and len(answer.images) == 3
    return app, wire


def _view(app: Studio) -> dict[str, Any]:
    """Everything a failed run must leave as it was, as the user sees it and as the next
    run uses it."""
    state = app.state
    return {
        "strip": [b.description for b in app.answer.buttons],
        "caption": app.answer.caption.value,
        "answer shown": app.answer.layout.display,
        "picked": state.picked,
        "chat": state.chat,
        "chat turns": len(state.chat) if state.chat is not None else None,
        "settings": state._settings,
        "seed": list(state._seed),
        "before": state.before_image(),
        "references": state.reference_images(),
        "tree": [(t.number, t.parent) for t in state.tree.path()],
        "turns": len(state.tree),
        "current": state.tree.current,
        "history": [(b.description, b.tooltip) for b in app.history.buttons],
        "gauge": app.uploader.summary,
        "region source": app.region.tool.source,
        "region": app.region.tool.selection().get("region"),
    }


def _sent_image(body: dict[str, Any]) -> Image.Image:
    (content,) = body["contents"]
    (part,) = [p for p in content["parts"] if "inlineData" in p]
    return Image.open(io.BytesIO(base64.urlsafe_b64decode(part["inlineData"]["data"]))).convert(
        "RGB"
    )


def _difference(a: Image.Image, b: Image.Image) -> float:
    small = (64, 64)
    return float(
        np.abs(
            np.asarray(a.convert("RGB").resize(small), dtype=float)
            - np.asarray(b.convert("RGB").resize(small), dtype=float)
        ).mean()
    )


def test_a_failed_regional_run_on_a_picked_image_keeps_the_strip(emulator: Emulator) -> None:
    app, _wire = _studio_with_three_images(emulator)
    app.pick(2)
    app.region.rect = [0.3, 0.3, 0.6, 0.6]
    app.prompt_box.prompt.value = "paint a door"
    assert app.uploader.summary["title"] == "Next request: a region of image 3 of 3 of turn 1"
    before = _view(app)
    assert before["strip"] == ["Image 1", "Image 2", "Image 3 ●"]

    emulator.inject("ignore_input")  # the regional answer cannot be placed back
    assert app.run() is None

    assert "could not be placed back" in app.prompt_box.error.value
    assert "the next run still edits image 3 of 3 of turn 1" in app.prompt_box.error.value
    assert "Failed after" in app.prompt_box.status.value
    assert not app.prompt_box.run.disabled
    assert _view(app) == before  # the strip, the pick, the chat, history and gauge
    # The unblended answer is shown beside the crop, as the error says; the strip
    # still picks among the turn's images, and picking brings the image back.
    assert app.compare.result is not app.state.turns[-1]
    app.answer.buttons[2].click()
    assert app.compare.canvas.after_size == list(app.state.turns[-1].images[2].size)


def test_a_failed_run_after_a_pick_still_edits_the_picked_image(emulator: Emulator) -> None:
    app, wire = _studio_with_three_images(emulator)
    answer = app.state.turns[-1]
    app.pick(2)
    app.prompt_box.prompt.value = "Make it blue"
    before = _view(app)

    emulator.inject("blocked")
    assert app.run() is None
    assert "Blocked" in app.prompt_box.error.value and "Failed after" in app.prompt_box.status.value
    assert _view(app) == before

    # Another model starts a new chat: from the picked image, as the strip and gauge say.
    app.prompt_box.model.value = NB2
    result = app.run()
    assert result is not None and app.prompt_box.error.value == ""
    sent = _sent_image(wire.generate_bodies()[-1])
    picked, first = answer.images[2], answer.images[0]
    assert _difference(sent, picked) < _difference(sent, first) / 4


def test_a_cancelled_run_leaves_the_studio_as_it_was() -> None:
    with Emulator(seed=8) as emulator:
        app, wire = _studio_with_three_images(emulator)
        app.prompt_box.prompt.value = "Make it night"
        before = _view(app)
        emulator.inject("slow", seconds=1.5)

        async def cancel_while_running() -> None:
            task = app.run()
            assert isinstance(task, asyncio.Task)
            await asyncio.sleep(0.5)
            assert app.prompt_box.run.disabled and not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        threads_before = set(threading.enumerate())
        asyncio.run(cancel_while_running())
        assert "Cancelled after" in app.prompt_box.status.value
        assert not app.prompt_box.run.disabled
        assert _view(app) == before
        # The cancelled request goes on in its worker thread and is answered; its turn
        # must not join the chat the next run continues. asyncio.run returns only once
        # its default executor is shut down and that thread joined: the slow answer has
        # arrived and been handled by now, without sleeping for it.
        assert len(wire.generate_bodies()) == 2
        workers = {t for t in threading.enumerate() if t.name.startswith("asyncio_")}
        assert workers <= threads_before, "the cancelled send's thread still runs"
        assert _view(app) == before

        app.prompt_box.prompt.value = "Add a red kite"
        result = app.run()
        assert result is not None and app.prompt_box.error.value == ""
        contents = wire.generate_bodies()[-1]["contents"]
        assert len(contents) == 3  # turn 1's prompt and answer, then this prompt
        assert [(t.number, t.parent) for t in app.state.tree.path()] == [(1, None), (2, 1)]


def test_an_unplaced_answers_thoughts_and_sources_are_shown_apart(emulator: Emulator) -> None:
    app, wire = _studio_with_three_images(emulator)
    box = app.prompt_box
    box.show_thoughts.value = True
    box.grounding.value = True
    app.region.rect = [0.3, 0.3, 0.6, 0.6]
    box.prompt.value = "paint a door as they are in Lisbon today"
    panel = (app.answer.extras.value, [b.description for b in app.answer.buttons])
    assert app.unplaced.layout.display == "none"

    emulator.inject("ignore_input")  # the regional answer cannot be placed back
    assert app.run() is None
    assert "could not be placed back" in box.error.value
    # The crop's request carried the chat's options, so the answer holds its thoughts.
    thinking = wire.generate_bodies()[-1]["generationConfig"]["thinkingConfig"]
    assert thinking.get("includeThoughts", thinking.get("include_thoughts")) is True
    answer = app.compare.result
    assert answer is not None and answer.thoughts and answer.sources
    assert answer.search_suggestions_html
    # Shown under the before/after view, labelled as that answer's, thoughts collapsed;
    # the answer panel and its strip stay the current turn's.
    html = app.unplaced.value
    assert app.unplaced.layout.display == ""
    heading = "The unplaced answer's thoughts, sources and search suggestions"
    assert f"<b>{heading}</b> — {UNPLACED_NOTE}" in html
    assert '<details class="nbbanana-thoughts"' in html and "<details open" not in html
    assert f" — {THOUGHTS_NOTE}</summary>" in html
    assert all(s.url in html and s.title in html for s in answer.sources)
    assert answer.search_suggestions_html in html  # unchanged, as Google's terms require
    assert (app.answer.extras.value, [b.description for b in app.answer.buttons]) == panel
    children = list(app.children)
    assert children.index(app.unplaced) == children.index(app.compare) + 1

    # The next run (placed back this time) clears it.
    emulator.inject("transform", scale=1.0)
    box.prompt.value = "paint a door"
    assert app.run() is not None and box.error.value == ""
    assert app.unplaced.value == "" and app.unplaced.layout.display == "none"


def test_unplaced_html_labels_what_the_answer_holds(emulator: Emulator) -> None:
    session, _wire = recorded_session(emulator.base_url, model=PRO)
    plain = session.generate("A banana")
    assert unplaced_html(plain) == ""  # nothing beside the image: no section
    thoughtful = session.generate("A banana", include_thoughts=True)
    assert unplaced_heading(thoughtful) == "The unplaced answer's thoughts"
    assert unplaced_html(thoughtful).count("<details") == 1
    grounded = session.generate("Today's weather in Lisbon", grounding=True)
    assert unplaced_heading(grounded) == "The unplaced answer's sources and search suggestions"

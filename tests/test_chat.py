"""Chat: multi-turn editing on the SDK's chats, history, branching, failed turns."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _client_helpers import recorded_session

from nbbanana import errors
from nbbanana.emulator import Emulator
from nbbanana.result import Result
from nbbanana.samples import sample_path


@pytest.fixture(scope="module")
def emulator() -> Any:
    with Emulator(seed=3) as emu:
        yield emu


def _roles(body: dict[str, Any]) -> list[str]:
    return [content["role"] for content in body["contents"]]


def _texts(body: dict[str, Any]) -> list[str]:
    return [
        p["text"]
        for c in body["contents"]
        if c["role"] == "user"
        for p in c["parts"]
        if "text" in p
    ]


def test_turns_build_on_each_other(emulator: Emulator) -> None:
    session, wire = recorded_session(emulator.base_url)
    chat = session.chat(aspect_ratio="1:1")
    first = chat.send("a red bicycle")
    second = chat.send("now make it blue", images=sample_path("coffee.jpg"))
    third = chat.send("add a bell")
    assert chat.history == [first, second, third] and len(chat) == 3
    assert first.parent is None and second.parent is first and third.parent is second
    assert [r.image is not None for r in chat.history] == [True, True, True]
    assert second.inputs[0].name == "coffee.jpg" and third.inputs == []
    bodies = wire.generate_bodies()
    assert _roles(bodies[0]) == ["user"]
    assert _roles(bodies[2]) == ["user", "model", "user", "model", "user"]
    assert _texts(bodies[2]) == ["a red bicycle", "now make it blue", "add a bell"]
    # The model's image from turn 1 goes back as part of the history.
    assert any("inlineData" in p for p in bodies[1]["contents"][1]["parts"])
    assert bodies[2]["generationConfig"]["imageConfig"]["aspectRatio"] == "1:1"
    assert session.spent == pytest.approx(sum(r.cost_usd for r in chat.history))


def test_thought_signatures_are_sent_back(emulator: Emulator) -> None:
    session, wire = recorded_session(emulator.base_url, model="gemini-3-pro-image")
    chat = session.chat(include_thoughts=True)
    first = chat.send("a lighthouse at dusk")
    assert first.thoughts and first.thought_images  # a thinking model, thoughts asked for
    chat.send("add fog")
    answer = wire.generate_bodies()[1]["contents"][1]
    assert answer["role"] == "model"
    assert any("thoughtSignature" in p or "thought_signature" in p for p in answer["parts"])


def test_branch_continues_from_an_earlier_turn(emulator: Emulator) -> None:
    session, wire = recorded_session(emulator.base_url)
    chat = session.chat()
    first = chat.send("a cat")
    chat.send("make it orange")
    branch = chat.branch(1)
    assert branch.history == [first] and len(chat) == 2
    alternative = branch.send("make it grey instead")
    assert alternative.parent is first
    body = wire.generate_bodies()[-1]
    assert _texts(body) == ["a cat", "make it grey instead"]
    assert len(chat) == 2 and len(branch) == 2  # the original is untouched
    fresh = chat.branch(0)
    assert fresh.history == []
    fresh.send("a dog")
    assert _texts(wire.generate_bodies()[-1]) == ["a dog"]
    with pytest.raises(errors.InvalidRequest, match="between 0 and 2"):
        chat.branch(3)


def test_a_failed_turn_leaves_the_chat_unchanged(emulator: Emulator) -> None:
    session, wire = recorded_session(emulator.base_url)
    chat = session.chat()
    first = chat.send("a tree")
    emulator.inject("text_only")
    with pytest.raises(errors.NoImage) as info:
        chat.send("write a poem instead")
    assert info.value.text
    emulator.inject("image_safety")
    with pytest.raises(errors.Blocked):
        chat.send("something blocked")
    assert chat.history == [first]
    chat.send("add apples")
    assert _texts(wire.generate_bodies()[-1]) == ["a tree", "add apples"]


def test_chat_turns_respect_the_cost_cap(emulator: Emulator) -> None:
    session, _ = recorded_session(emulator.base_url, max_cost_usd=0.06)
    chat = session.chat()
    result = chat.send("one")
    assert isinstance(result, Result)
    with pytest.raises(errors.CostLimitExceeded):
        chat.send("two")
    assert len(chat) == 1


def test_asend_keeps_turns_in_order(emulator: Emulator) -> None:
    session, wire = recorded_session(emulator.base_url)
    chat = session.chat()

    async def main() -> list[Result]:
        first = await chat.asend("a boat")
        second = await chat.asend("make it red")
        return [first, second]

    first, second = asyncio.run(main())
    assert chat.history == [first, second] and second.parent is first
    assert _texts(wire.generate_bodies()[-1]) == ["a boat", "make it red"]


def test_history_size_is_never_underestimated(emulator: Emulator) -> None:
    session, _ = recorded_session(emulator.base_url, model="gemini-3-pro-image")
    chat = session.chat()
    chat.send("a red kite")
    chat.send("now blue", images=sample_path("chart.png"))
    predicted = chat._history_bytes() + session.budget().request_bytes(
        "and a tail", [], config=chat._options.config()
    )
    chat.send("and a tail")
    actual = emulator.requests[-1].body_bytes
    assert actual <= predicted <= actual * 1.2

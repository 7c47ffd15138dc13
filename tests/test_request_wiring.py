"""The Gemini 3 options and prices wired through every path of the request pipeline:
``connect(price_per_image=...)`` (Gemini and OpenAI-compatible), unknown prices shown as
unknown and refused under a cap, and thinking/thoughts/grounding through Chat, the async
twins and batch manifests — the real SDK over HTTP against the emulator."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _client_helpers import recorded_session

from nbbanana import connect, errors, models
from nbbanana.batch import run_batch
from nbbanana.batch._manifest import ManifestError
from nbbanana.emulator import Emulator

NB2 = "gemini-3.1-flash-image"
FLASH = "gemini-2.5-flash-image"
#: An image model nbbanana's table does not know (the emulator serves it generically).
MYSTERY = "gemini-9-mystery-image"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(seed=5, models=[NB2, FLASH, MYSTERY]) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _quiet_unknown_model() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not know the model")
        yield


def _camel(value: Any) -> Any:
    """The body with camelCase keys (the SDK writes some config fields in snake_case)."""
    if isinstance(value, dict):
        return {
            k.split("_")[0] + "".join(w.title() for w in k.split("_")[1:]): _camel(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def _posted(emu: Emulator) -> list[str]:
    return [r.path for r in emu.requests if ":generateContent" in r.path]


# --------------------------------------------------------------------------- prices


def test_an_unknown_price_is_unknown_everywhere(emu: Emulator) -> None:
    session = connect("k", base_url=emu.base_url, model=MYSTERY)
    estimate = session.estimate("a kite")
    assert estimate.usd is None and "cost unknown" in str(estimate)
    result = session.generate("a kite")
    assert result.cost_usd is None and session.spent == 0.0
    assert "cost unknown" in result.footer()


def test_a_cap_refuses_a_model_whose_price_is_unknown(emu: Emulator) -> None:
    emu.requests.clear()
    session = connect("k", base_url=emu.base_url, model=MYSTERY, max_cost_usd=5.0)
    with pytest.raises(errors.CostLimitExceeded, match=f"price of {MYSTERY} is unknown"):
        session.generate("a kite")
    assert _posted(emu) == []


def test_price_per_image_prices_the_sessions_model_for_this_session_only(emu: Emulator) -> None:
    priced = connect("k", base_url=emu.base_url, model=MYSTERY, price_per_image=0.05,
                     max_cost_usd=1.0)  # fmt: skip
    assert priced.estimate("a kite").usd == pytest.approx(0.05)
    result = priced.generate("a kite")
    assert result.cost_usd == pytest.approx(0.05)
    assert priced.spent == pytest.approx(0.05) and "price set to $0.05" in repr(priced)
    # Nothing global changed: another session and the table still do not know it.
    assert models.get_model(MYSTERY).price is None
    assert connect("k", base_url=emu.base_url, model=MYSTERY).estimate("x").usd is None
    with pytest.raises(errors.InvalidRequest, match="price_per_image must be 0 or more"):
        connect("k", base_url=emu.base_url, model=MYSTERY, price_per_image=-1)


def test_price_per_image_through_an_openai_gateway() -> None:
    with Emulator(seed=6, profile="proxy-20mb") as relay:
        url = relay.base_url + "/v1"
        unknown = connect("sk-1", base_url=url, api="openai", model="vendor/mystery-image")
        assert unknown.estimate("x").usd is None  # never another model's price
        with pytest.raises(errors.InvalidRequest, match="Pass price_per_image="):
            connect("sk-1", base_url=url, api="openai", model="vendor/mystery-image",
                    max_cost_usd=1.0)  # fmt: skip
        priced = connect("sk-1", base_url=url, api="openai", model="vendor/mystery-image",
                         max_cost_usd=1.0, price_per_image=0.02)  # fmt: skip
        assert priced.estimate("x").usd == pytest.approx(0.02)
        known = connect("sk-1", base_url=url, api="openai", model="google/" + FLASH,
                        price_per_image=0.5)  # fmt: skip
        assert known.estimate("x").usd == pytest.approx(0.5, rel=0.01)


# --------------------------------------------------------------------------- options


def test_chat_keeps_its_options_on_every_turn_and_branch(emu: Emulator) -> None:
    session, wire = recorded_session(emu.base_url, model=NB2)
    chat = session.chat(thinking_level="high", include_thoughts=True, grounding=True)
    first = chat.send("a lighthouse at dusk")
    assert first.params["thinking_level"] == "HIGH" and first.params["grounding"] is True
    assert first.thoughts and first.sources
    branch = chat.branch(1)
    assert (branch.thinking_level, branch.include_thoughts, branch.grounding) == (
        "HIGH", True, True,
    )  # fmt: skip
    branch.send("now in the rain")
    for body in _camel(wire.generate_bodies()):
        thinking = body["generationConfig"]["thinkingConfig"]
        assert thinking == {"thinkingLevel": "HIGH", "includeThoughts": True}
        assert body["tools"] == [{"googleSearch": {}}]
    with pytest.raises(errors.InvalidRequest, match="does not support Google Search"):
        session.chat(model=FLASH, grounding=True)


def test_async_twins_take_the_options(emu: Emulator) -> None:
    session, wire = recorded_session(emu.base_url, model=NB2)

    async def both() -> Any:
        made = await session.generate_async("a kite", thinking_level="minimal", grounding=True)
        edited = await session.edit_async(made, "make it red", include_thoughts=True)
        return made, edited

    made, edited = asyncio.run(both())
    assert made.params["thinking_level"] == "MINIMAL" and made.sources
    assert edited.params["include_thoughts"] is True and edited.thoughts
    bodies = _camel(wire.generate_bodies())
    assert bodies[0]["tools"] == [{"googleSearch": {}}] and "tools" not in bodies[1]
    with pytest.raises(errors.InvalidRequest, match="does not think"):
        asyncio.run(session.generate_async("x", model=FLASH, include_thoughts=True))


def test_batch_manifests_take_the_options(emu: Emulator, tmp_path: Path) -> None:
    session, wire = recorded_session(emu.base_url, model=NB2)
    items = [{"id": "a", "prompt": "a kite", "grounding": "yes", "thinking_level": "high"}]
    run_batch(items, tmp_path / "out", session=session, progress=False)
    (body,) = _camel(wire.generate_bodies())
    assert body["tools"] == [{"googleSearch": {}}]
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "HIGH"}
    with pytest.raises(ManifestError, match="does not support Google Search grounding"):
        run_batch([{"prompt": "x", "model": FLASH, "grounding": True}], tmp_path / "o2",
                  session=session, progress=False)  # fmt: skip
    with pytest.raises(ManifestError, match="'include_thoughts' must be true or false"):
        run_batch([{"prompt": "x", "include_thoughts": "maybe"}], tmp_path / "o3",
                  session=session, progress=False)  # fmt: skip

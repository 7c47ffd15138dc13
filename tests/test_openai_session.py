"""nbbanana's Session, Chat and Result over the OpenAI-compatible backend, against the
emulator's OpenAI surface in every answer shape: the same toolkit, a second backend."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from PIL import Image

from nbbanana import errors, models
from nbbanana._openai import OpenAIBackend, connect_openai
from nbbanana.emulator import Emulator

# The session runs on any backend once the request pipeline is in place.
Backend = pytest.importorskip("nbbanana._backend", reason="needs the request pipeline").Backend

FLASH = "gemini-2.5-flash-image"
KEY = "sk-session-secret-42"


@pytest.fixture
def relay() -> Iterator[Emulator]:
    with Emulator(seed=7, profile="proxy-20mb") as emu:
        yield emu


def _calls(emu: Emulator) -> list[int | None]:
    return [r.status for r in emu.requests if r.path.endswith(("completions", "edits"))]


def test_backend_conforms_to_the_protocol(relay: Emulator) -> None:
    backend = OpenAIBackend(base_url=relay.base_url + "/v1", api_key=KEY)
    assert isinstance(backend, Backend)


@pytest.mark.parametrize("shape", ["images", "markdown", "hosted", "b64_json", "url"])
def test_edit_in_every_shape(shape: str, tmp_path: object) -> None:
    with Emulator(seed=7, profile="proxy-20mb", openai_shape=shape) as emu:
        session = connect_openai(emu.base_url + "/v1", KEY, model="google/" + FLASH)
        photo = Image.new("RGB", (800, 600), (10, 120, 200))
        result = session.edit(photo, "make it warmer", aspect_ratio="16:9")
    assert session.model == FLASH  # the table's model: its sizes and prices
    assert result.image is not None and result.image.size == (1344, 768)
    assert result.cost_usd > 0 and session.spent == pytest.approx(result.cost_usd)
    if shape in ("images", "markdown", "hosted"):
        assert "edited image" in result.text


def test_generate_saves_with_provenance(relay: Emulator, tmp_path: object) -> None:
    session = connect_openai(relay.base_url + "/v1", KEY, model=FLASH)
    result = session.generate("a lighthouse at dusk", aspect_ratio="16:9")
    paths = result.save(str(tmp_path))
    sidecar = json.loads(paths[-1].read_text())
    assert sidecar["prompt"] == "a lighthouse at dusk"
    assert KEY not in paths[-1].read_text() and KEY not in repr(session)


def test_chat_sends_earlier_results_back(relay: Emulator) -> None:
    session = connect_openai(relay.base_url + "/v1", KEY, model=FLASH)
    chat = session.chat()
    first = chat.send("a red square")
    second = chat.send("now make it a circle")
    assert first.image is not None and second.image is not None
    assert second.parent is first
    messages = [r for r in relay.requests if r.path.endswith("completions")]
    assert messages[1].body_bytes > 2 * messages[0].body_bytes  # the first image went back


def test_blocked_and_no_image(relay: Emulator) -> None:
    session = connect_openai(relay.base_url + "/v1", KEY, model=FLASH)
    relay.inject("image_safety")
    with pytest.raises(errors.Blocked) as blocked:
        session.generate("something")
    assert blocked.value.reason == "IMAGE_SAFETY"
    relay.inject("text_only")
    with pytest.raises(errors.NoImage) as no_image:
        session.generate("something else")
    assert "no image" in no_image.value.text


def test_refit_after_413_with_the_relay_wording() -> None:
    # The session believes 10 MB; the relay says "20MB" but refuses far less, so the
    # refusal teaches a limit below what was sent, and the toolkit refits and retries once.
    with Emulator(profile="proxy-20mb", request_limit=600_000) as relay:
        session = connect_openai(
            relay.base_url + "/v1",
            KEY,
            model=FLASH,
            endpoint=models.EndpointProfile("custom", 10_000_000, files_api=False),
        )
        noisy = Image.effect_noise((1100, 700), 100).convert("RGB")
        result = session.edit(noisy, "fit the relay")
        assert _calls(relay) == [413, 200]
        sent = [r.body_bytes for r in relay.requests]
        assert sent[0] > 600_000 >= sent[1]
        assert result.image is not None
        learned = models.learned_limit(session.limit_key)
        assert learned is not None and learned <= 600_000


def test_errors_carry_the_remedy(relay: Emulator) -> None:
    bad = connect_openai(relay.base_url + "/v1", "invalid-" + KEY, model=FLASH)
    with pytest.raises(errors.AuthError, match="OPENAI_API_KEY") as caught:
        bad.generate("x")
    assert KEY not in str(caught.value)
    session = connect_openai(relay.base_url + "/v1", KEY, model=FLASH)
    relay.inject("429", retry=0)
    relay.inject("429", retry=0)
    relay.inject("429", retry=0)
    with pytest.raises(errors.RateLimited) as limited:
        session.generate("x")
    assert limited.value.retry_after == 0.0


def test_cost_cap_refuses_before_sending(relay: Emulator) -> None:
    session = connect_openai(relay.base_url + "/v1", KEY, model=FLASH, max_cost_usd=0.001)
    with pytest.raises(errors.CostLimitExceeded):
        session.generate("a cat")
    assert relay.requests == []


def test_connect_with_api_openai(relay: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbbanana

    monkeypatch.setenv("GEMINI_API_KEY", "AIza" + "g" * 35)  # must not reach the gateway
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    session = nbbanana.connect(
        base_url=relay.base_url + "/v1", api="openai", model="google/" + FLASH
    )
    assert session.endpoint.name == "proxy-20mb" and session.model == FLASH
    assert session.generate("a kite").image is not None
    with pytest.raises(errors.InvalidRequest, match="needs base_url"):
        nbbanana.connect(api="openai")
    with pytest.raises(errors.InvalidRequest, match="'gemini' or 'openai'"):
        nbbanana.connect(api="anthropic")


def test_a_cap_on_an_unknown_gateway_model_is_refused_up_front(relay: Emulator) -> None:
    with pytest.raises(errors.InvalidRequest, match="cannot enforce max_cost_usd"):
        connect_openai(relay.base_url + "/v1", KEY, model="vendor/mystery-image", max_cost_usd=1)
    assert relay.requests == []

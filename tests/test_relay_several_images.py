"""The relay settles an answer with several images for all of them, by the library's own
rule (:meth:`nbbanana.result.Usage.from_metadata`), also when its upstream reports no
usage or no per-modality split: the ledger and the participant's cap count every image.
Through the real google-genai SDK over HTTP: participant → relay → offline emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _relay_helpers import MODEL, running_relay, wait_settled
from google import genai
from google.genai import types

from nbbanana.emulator import Emulator
from nbbanana.models import MODELS
from nbbanana.relay import Relay
from nbbanana.relay._accounting import settle_usage
from nbbanana.relay._ledger import micros

pytestmark = pytest.mark.timeout(120)

PER_IMAGE = MODELS[MODEL].output_image_tokens(None)


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    with running_relay(tmp_path) as relay:
        yield relay


def _upstream(relay: Relay) -> Emulator:
    emulator = relay.upstream._emulator
    assert emulator is not None
    return emulator


def _client(relay: Relay, token: str) -> genai.Client:
    return genai.Client(api_key=token, http_options=types.HttpOptions(base_url=relay.base_url))


def _images(parts: list[types.Part] | None) -> int:
    return sum(1 for p in parts or [] if p.inline_data is not None and not p.thought)


@pytest.mark.parametrize("stream", [False, True])
def test_an_unmetered_answer_is_settled_for_every_image_and_the_cap_counts_them(
    relay: Relay, stream: bool
) -> None:
    # Room for one three-image answer and one more image's estimate: if the answer were
    # settled as one image (the estimate), the second request would still pass.
    cap = 3 * MODELS[MODEL].price_per_image() + 0.02
    (token,) = relay.add_participants(1, cap_usd=cap)
    client = _client(relay, token)
    _upstream(relay).inject("unmetered")
    prompt = "three variations of a kite"
    if stream:
        chunks = list(client.models.generate_content_stream(model=MODEL, contents=prompt))
        assert all(c.usage_metadata is None for c in chunks)  # the upstream reported none
        held = sum(
            _images(c.candidates[0].content.parts)
            for c in chunks
            if c.candidates and c.candidates[0].content
        )
    else:
        answer = client.models.generate_content(model=MODEL, contents=prompt)
        assert answer.usage_metadata is None
        assert answer.candidates and answer.candidates[0].content
        held = _images(answer.candidates[0].content.parts)
    assert held == 3
    wait_settled(relay)

    (row,) = relay.ledger.requests()
    assert row["status"] == "unmetered"
    every_image = micros(3 * MODELS[MODEL].price_per_image())
    assert row["cost_micros"] >= every_image > row["est_micros"]
    (participant,) = relay.participants()
    assert participant.spent_micros == row["cost_micros"]
    assert micros(relay.totals()["spent_usd"]) == row["cost_micros"]

    # What is left of the cap is less than one more image's estimate: refused, unsent.
    sent = len(_upstream(relay).requests)
    me = httpx.get(f"{relay.base_url}/relay/me", headers={"x-goog-api-key": token}).json()
    assert me["cap_usd"] - me["spent_usd"] < MODELS[MODEL].price_per_image()
    refused = httpx.post(
        f"{relay.base_url}/v1beta/models/{MODEL}:generateContent",
        json={"contents": [{"role": "user", "parts": [{"text": "a kite"}]}]},
        headers={"x-goog-api-key": token},
        timeout=60,
    )
    assert refused.status_code == 400 and "budget" in refused.json()["error"]["message"]
    assert len(_upstream(relay).requests) == sent


def test_a_metered_answer_with_several_images_is_settled_exactly_as_reported(
    relay: Relay,
) -> None:
    (token,) = relay.add_participants(1, cap_usd=1.0)
    client = _client(relay, token)  # kept: the SDK closes its connection when collected
    answer = client.models.generate_content(model=MODEL, contents="three variations of a kite")
    usage = answer.usage_metadata
    assert usage is not None and usage.candidates_tokens_details
    assert answer.candidates and answer.candidates[0].content
    assert _images(answer.candidates[0].content.parts) == 3
    wait_settled(relay)
    (row,) = relay.ledger.requests()
    image = sum(
        d.token_count or 0 for d in usage.candidates_tokens_details if d.modality == "IMAGE"
    )
    assert image == 3 * PER_IMAGE
    text = (usage.candidates_token_count or 0) - image
    expected = micros(
        (usage.prompt_token_count or 0) * 0.30 / 1e6 + image * 30 / 1e6 + text * 2.5 / 1e6
    )
    assert row["status"] == "ok" and row["cost_micros"] == expected
    assert row["output_tokens"] == usage.candidates_token_count


@pytest.mark.parametrize(
    ("usage", "images", "image_tokens"),
    [
        # A relay counting one image's tokens, no split: every image still counts.
        ({"promptTokenCount": 10, "candidatesTokenCount": PER_IMAGE}, 3, 3 * PER_IMAGE),
        # Text tokens only, no split: the images are not free.
        ({"promptTokenCount": 10, "candidatesTokenCount": 20}, 3, 3 * PER_IMAGE),
        # More than the table's: the server's number.
        ({"promptTokenCount": 10, "candidatesTokenCount": 9000}, 3, 9000),
        # Google's split: as said.
        (
            {
                "promptTokenCount": 10,
                "candidatesTokenCount": 3 * PER_IMAGE + 20,
                "candidatesTokensDetails": [
                    {"modality": "IMAGE", "tokenCount": 3 * PER_IMAGE},
                    {"modality": "TEXT", "tokenCount": 20},
                ],
            },
            3,
            3 * PER_IMAGE,
        ),
    ],
)
def test_usage_without_a_split_counts_every_image(
    usage: dict[str, object], images: int, image_tokens: int
) -> None:
    settled = settle_usage(MODEL, usage, images=images, image_size=None)
    assert settled is not None
    info = MODELS[MODEL]
    floor = info.cost_usd(input_tokens=10, output_image_tokens=image_tokens)
    assert floor is not None and settled.micros >= micros(floor)
    assert settled.output_tokens >= image_tokens

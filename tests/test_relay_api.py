"""The relay speaks the Gemini REST API: the plain google-genai SDK and nbbanana both
work against it with a participant token, including streaming, countTokens and models;
the join flow; the gallery's live events; the notebook gallery view."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _relay_helpers import MODEL, admin, generate, png, wait_settled
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

import nbbanana
from nbbanana.relay import Relay

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    with Relay(tmp_path_factory.mktemp("workshop"), "emulator") as relay:
        yield relay


def _client(relay: Relay, token: str) -> genai.Client:
    return genai.Client(api_key=token, http_options=types.HttpOptions(base_url=relay.base_url))


def test_the_plain_sdk_generates_streams_counts_and_lists_models(relay: Relay) -> None:
    (token,) = relay.add_participants(1, cap_usd=1.0, names=["sdk"])
    client = _client(relay, token)
    answer = client.models.generate_content(model=MODEL, contents="a banana on a bicycle")
    assert answer.candidates and answer.candidates[0].content
    assert any(p.inline_data for p in answer.candidates[0].content.parts or [])
    chunks = list(client.models.generate_content_stream(model=MODEL, contents="a streamed banana"))
    assert len(chunks) >= 2 and chunks[-1].usage_metadata is not None
    counted = client.models.count_tokens(model=MODEL, contents="count me")
    assert counted.total_tokens and counted.total_tokens > 0
    names = [m.name for m in client.models.list()]
    assert f"models/{MODEL}" in names
    assert client.models.get(model=MODEL).name == f"models/{MODEL}"
    wait_settled(relay)
    rows = [r for r in relay.ledger.requests() if r["name"] == "sdk"]
    assert [r["method"] for r in rows] == [
        "generateContent",
        "streamGenerateContent",
        "countTokens",
    ]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"]
    assert rows[0]["cost_micros"] > 0 and rows[1]["cost_micros"] > 0 and rows[2]["cost_micros"] == 0
    # settled from usage: the actual cost is at most the estimate that was reserved
    assert all(r["cost_micros"] <= r["est_micros"] for r in rows)


def test_nbbanana_connects_with_a_token_and_edits_through_the_relay(relay: Relay) -> None:
    (token,) = relay.add_participants(1, cap_usd=1.0)
    session = nbbanana.connect(base_url=relay.base_url, api_key=token)
    result = session.generate("a banana in a top hat")
    edited = session.edit(result, "make it blue")
    assert edited.image is not None and edited.cost_usd > 0


def test_the_sdk_surfaces_a_refusal_as_a_client_error_with_the_plain_words(relay: Relay) -> None:
    (token,) = relay.add_participants(1, cap_usd=0.01)
    client = _client(relay, token)  # kept: a dropped client closes its connections
    with pytest.raises(genai_errors.ClientError) as caught:
        client.models.generate_content(model=MODEL, contents="too dear")
    assert caught.value.code == 400
    assert "ask the facilitator" in str(caught.value.message)


def test_a_method_the_relay_does_not_offer_is_a_gemini_style_404(relay: Relay) -> None:
    (token,) = relay.add_participants(1)
    answer = httpx.post(
        f"{relay.base_url}/v1beta/models/{MODEL}:batchGenerateContent",
        json={}, headers={"x-goog-api-key": token},
    )  # fmt: skip
    assert answer.status_code == 404 and answer.json()["error"]["status"] == "NOT_FOUND"
    assert httpx.get(relay.base_url + "/v1beta/files").json()["error"]["code"] == 404


def test_joining_with_a_code_gives_a_token_with_the_codes_cap(relay: Relay) -> None:
    from nbbanana.errors import APIError
    from nbbanana.relay import join, me

    code = relay.join_code(cap_usd=0.25, uses=2)
    token = join(relay.base_url, code, "Grace")
    status = me(relay.base_url, token)
    assert status["name"] == "Grace" and status["cap_usd"] == 0.25 and status["spent_usd"] == 0
    with pytest.raises(APIError, match="workshop code is not valid"):
        join(relay.base_url, "AAAA-BBBB", "Mallory")
    page = httpx.get(relay.base_url + "/join")
    assert page.status_code == 200 and "Workshop code" in page.text


def test_the_gallery_streams_new_results_and_hides_them_live(relay: Relay) -> None:
    (token,) = relay.add_participants(1, names=["Live"])
    events: list[tuple[str, object]] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", relay.base_url + "/gallery/events", timeout=30) as stream:
            name = ""
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    events.append((name, json.loads(line[5:])))
                    ready.set()
                    if name == "hide":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(10)
    assert generate(relay.base_url, token, "a live banana").status_code == 200
    wait_settled(relay)
    item = next(i for i in relay.ledger.gallery() if i["name"] == "Live")
    image = httpx.get(relay.base_url + item["image"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    hidden = httpx.post(relay.base_url + f"/relay/admin/gallery/{item['id']}",
                        json={"hidden": True}, headers=admin(relay))  # fmt: skip
    assert hidden.status_code == 200
    listener.join(10)
    kinds = [name for name, _ in events]
    assert kinds[0] == "snapshot" and "item" in kinds and kinds[-1] == "hide"
    assert any(name == "item" and data["prompt"] == "a live banana" for name, data in events)  # type: ignore[index]
    assert httpx.get(relay.base_url + item["image"]).status_code == 404  # hidden: not served
    assert all(i["id"] != item["id"] for i in httpx.get(relay.base_url + "/gallery/items").json())


def test_the_notebook_gallery_shows_results_and_spend_per_participant(relay: Relay) -> None:
    (token,) = relay.add_participants(1, names=["Chart"], cap_usd=0.5)
    assert generate(relay.base_url, token, "a charted banana").status_code == 200
    wait_settled(relay)
    view = nbbanana.gallery(relay)
    assert view.items and view.items[0]["name"] == "Chart"
    assert view.spend["Chart"] == pytest.approx(0.0387, abs=1e-3)
    html = view._repr_html_()
    assert "a charted banana" in html and "data:image/png;base64," in html  # the chart
    assert view.figure().axes[0].get_title() == "Spend per participant"
    public = nbbanana.gallery(relay.base_url)  # without the admin token: no spend
    assert (
        public.items and not public.participants and "needs the admin token" in public._repr_html_()
    )


def test_edit_requests_carry_input_images_into_the_estimate(relay: Relay, tmp_path: Path) -> None:
    from _relay_helpers import generate_body

    (token,) = relay.add_participants(1)
    body = generate_body("make it blue", png(1600))
    answer = httpx.post(f"{relay.base_url}/v1beta/models/{MODEL}:generateContent", json=body,
                        headers={"x-goog-api-key": token}, timeout=60)  # fmt: skip
    assert answer.status_code == 200
    wait_settled(relay)
    row = relay.ledger.requests()[-1]
    # 1600×1600 is 3×3 tiles of 258 tokens on this model
    assert row["est_input_tokens"] >= 9 * 258 and row["input_tokens"] >= 9 * 258


def test_the_estimate_reads_a_skimmed_body_exactly_as_the_whole_one() -> None:
    import base64
    import io
    import json

    import numpy as np
    from _relay_helpers import generate_body
    from PIL import Image

    from nbbanana.relay._accounting import estimate, skim

    noise = np.random.default_rng(0).integers(0, 256, (1600, 1600, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG", compress_level=1)
    body = generate_body('a "data": trap in the prompt', buffer.getvalue())
    body["contents"][0]["parts"].append({"text": "data"})
    body["generationConfig"] = {"imageConfig": {"imageSize": "1K"}, "candidateCount": 2}
    raw = json.dumps(body).encode()
    skimmed = skim(raw)
    assert len(skimmed) < len(raw) / 2  # the image's base64 was cut...
    assert len(base64.b64decode(body["contents"][0]["parts"][1]["inlineData"]["data"])) > 1_000_000
    whole = estimate(MODEL, "generateContent", body)
    assert estimate(MODEL, "generateContent", json.loads(skimmed)) == whole  # ...and nothing else
    assert whole.input_tokens >= 9 * 258 and whole.prompt.startswith('a "data": trap')

"""RequestBudget: the request size is exact, checked against the bytes the SDK sends."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from google import genai
from google.genai import types

from nbbanana import models
from nbbanana.budget import (
    FILE_URI_RESERVE,
    SAFETY_MARGIN,
    RequestBudget,
    base64_size,
)
from nbbanana.errors import DoesNotFitError

_RESPONSE = json.dumps(
    {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "ok"}]}, "finishReason": "STOP"}
        ]
    }
).encode()


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Records the length of every request body, answers with a minimal valid response."""

    bodies: list[bytes]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.bodies.append(self.rfile.read(length))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(_RESPONSE)))
        self.end_headers()
        self.wfile.write(_RESPONSE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def recorder() -> Iterator[tuple[genai.Client, list[bytes]]]:
    bodies: list[bytes] = []
    handler = type("Handler", (_Recorder,), {"bodies": bodies})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = genai.Client(
        api_key="test",
        http_options=types.HttpOptions(base_url=f"http://127.0.0.1:{server.server_port}"),
    )
    try:
        yield client, bodies
    finally:
        server.shutdown()
        server.server_close()


PROMPTS = [
    "",
    "Make the sky violet",
    'Quotes " and back\\slashes\nnew line\ttab \x01 control',
    "Äpfel, naïve café — 日本語のプロンプト 🍌🍌 emoji",
]
IMAGE_SETS: list[list[tuple[int, str]]] = [
    [],
    [(1, "image/jpeg")],
    [(1000, "image/png"), (1001, "image/webp")],
    [(0, "image/jpeg"), (2, "image/heic"), (30_000, "image/jpeg")],
]
CONFIGS: list[types.GenerateContentConfig | None] = [
    None,
    types.GenerateContentConfig(
        response_modalities=["TEXT", "IMAGE"],
        image_config=types.ImageConfig(aspect_ratio="16:9", image_size="2K"),
    ),
    types.GenerateContentConfig(
        system_instruction="Réponds en français.",
        temperature=0.7,
        thinking_config=types.ThinkingConfig(include_thoughts=True),
        safety_settings=[
            types.SafetySetting(
                category=types.HarmCategory.HARM_CATEGORY_HARASSMENT,
                threshold=types.HarmBlockThreshold.BLOCK_ONLY_HIGH,
            )
        ],
    ),
]


# every combination except an empty prompt with no images (the SDK refuses empty contents)
CASES = [
    pytest.param(prompt, images, config, id=f"{p_id}-{len(images)}img-{c_id}")
    for prompt, p_id in zip(PROMPTS, ["empty", "ascii", "escapes", "unicode"], strict=True)
    for images in IMAGE_SETS
    for config, c_id in zip(CONFIGS, ["no-config", "image-config", "rich-config"], strict=True)
    if prompt or images
]


@pytest.mark.parametrize(("prompt", "images", "config"), CASES)
def test_request_bytes_match_the_wire(
    recorder: tuple[genai.Client, list[bytes]],
    prompt: str,
    images: list[tuple[int, str]],
    config: types.GenerateContentConfig | None,
) -> None:
    client, bodies = recorder
    parts: list[types.Part | str] = [prompt] if prompt else []
    parts += [
        types.Part.from_bytes(data=bytes([i % 251]) * n, mime_type=mime)
        for i, (n, mime) in enumerate(images)
    ]
    bodies.clear()
    client.models.generate_content(model="gemini-2.5-flash-image", contents=parts, config=config)
    assert len(bodies) == 1
    assert RequestBudget(limit=None).request_bytes(prompt, images, config=config) == len(bodies[0])


def test_base64_size_is_four_thirds_rounded_up() -> None:
    assert [base64_size(n) for n in range(7)] == [0, 4, 4, 4, 8, 8, 8]
    with pytest.raises(ValueError):
        base64_size(-1)


def test_image_allowance_is_the_largest_size_that_fits() -> None:
    budget = RequestBudget(limit=100_000)
    prompt = "a prompt"
    n = budget.image_allowance(prompt, other_images=[(5000, "image/png")])
    assert budget.request_bytes(prompt, [(5000, "image/png"), (n, "image/jpeg")]) <= (
        100_000 - SAFETY_MARGIN
    )
    assert budget.request_bytes(prompt, [(5000, "image/png"), (n + 1, "image/jpeg")]) > (
        100_000 - SAFETY_MARGIN
    )


def test_image_allowance_honours_the_per_image_limit() -> None:
    budget = RequestBudget(limit=None, per_image_limit=4000)
    n = budget.image_allowance()
    assert base64_size(n) <= 4000 < base64_size(n + 1)
    assert RequestBudget(limit=None).image_allowance() > 10**15


def test_image_allowance_is_zero_when_the_prompt_alone_is_too_large() -> None:
    budget = RequestBudget(limit=SAFETY_MARGIN + 100)
    assert budget.image_allowance("x" * 1000) == 0


def test_for_endpoint_uses_a_learned_smaller_limit() -> None:
    url = "http://test-learned-limit.invalid"
    assert RequestBudget.for_endpoint("gemini", base_url=url).limit == 100 * models.MB
    models.learn_limit(url, 5_000_000)
    budget = RequestBudget.for_endpoint("gemini", base_url=url)
    assert budget.limit == 5_000_000 and budget.files_api
    vertex = RequestBudget.for_endpoint("vertex")
    assert vertex.limit is None and vertex.per_image_limit == 7 * models.MB
    assert not vertex.files_api


def test_plan_keeps_everything_inline_when_it_fits() -> None:
    plan = RequestBudget(limit=1_000_000).plan("p", [(1000, "image/jpeg"), (2000, "image/png")])
    assert plan.inline == (True, True) and plan.all_inline
    assert plan.request_bytes == RequestBudget(limit=None).request_bytes(
        "p", [(1000, "image/jpeg"), (2000, "image/png")]
    )


def test_plan_moves_the_largest_images_to_the_files_api_first() -> None:
    budget = RequestBudget(limit=SAFETY_MARGIN + 60_000)
    images = [(20_000, "image/jpeg"), (40_000, "image/jpeg"), (10_000, "image/png")]
    plan = budget.plan("p", images)
    assert plan.inline == (True, False, True)
    assert plan.request_bytes <= budget.usable  # type: ignore[operator]
    # the file reference is counted with its reserved URI length
    assert plan.request_bytes > budget.request_bytes("p", [images[0], images[2]]) + (
        FILE_URI_RESERVE
    )


def test_plan_uploads_images_over_the_per_image_limit() -> None:
    budget = RequestBudget(limit=None, per_image_limit=10_000)
    assert budget.plan("p", [(9000, "image/jpeg"), (7000, "image/jpeg")]).inline == (False, True)


def test_plan_without_files_api_refuses_with_a_clear_message() -> None:
    budget = RequestBudget.for_endpoint("proxy-20mb")
    with pytest.raises(DoesNotFitError, match=r"no Files API.*Fit the images"):
        budget.plan("p", [(10_000_000, "image/jpeg"), (10_000_000, "image/jpeg")])
    assert budget.fits("p", [(7_000_000, "image/jpeg"), (7_000_000, "image/jpeg")])
    assert not budget.fits("p", [(8_000_000, "image/jpeg"), (7_000_000, "image/jpeg")])


def test_invalid_budgets_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        RequestBudget(limit=0)
    with pytest.raises(ValueError, match="negative"):
        RequestBudget(limit=10, margin=-1)

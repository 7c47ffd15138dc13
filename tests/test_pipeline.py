"""The request pipeline with a backend that is not Gemini's.

The backend below is a plain class written against :mod:`nbbanana._backend` only: it
answers in memory, words its body differently (so it counts its own bytes), has no Files
API and raises its own errors. Everything the pipeline promises — fitting to the
backend's byte count, the cost guard, typed errors, refit-and-retry-once, chats — must
hold for it without any change in the pipeline.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
from google.genai import types
from PIL import Image

from nbbanana import errors
from nbbanana._backend import Backend, BackendRequest, UploadRequest
from nbbanana.budget import base64_size
from nbbanana.models import get_profile
from nbbanana.samples import sample_path
from nbbanana.session import Session

#: Extra framing the toy service wraps around every request (counted by its body_bytes).
TOY_FRAMING = 50_000


class ToyRefusal(Exception):
    """What the toy service raises: a status and an optional named limit."""

    def __init__(self, status: int, limit: int | None = None) -> None:
        super().__init__(f"toy refused with {status}")
        self.status = status
        self.limit = limit


class ToyBackend:
    """An in-memory image service with its own body format and no Files API."""

    name = "toy"

    def __init__(self, *, refuse_over: int | None = None, fail_with: Exception | None = None):
        self.refuse_over = refuse_over
        self.fail_with = fail_with
        self.requests: list[BackendRequest] = []
        self.sizes: list[int] = []

    @property
    def files_api(self) -> bool:
        return False

    def _answer(self, request: BackendRequest) -> types.GenerateContentResponse:
        self.requests.append(request)
        if self.fail_with is not None:
            raise self.fail_with
        size = self.body_bytes(request.model, _emptied(request.contents), request.config) + sum(
            base64_size(len(p.inline_data.data))
            for c in request.contents
            for p in c.parts or []
            if p.inline_data is not None and p.inline_data.data
        )
        self.sizes.append(size)
        if self.refuse_over is not None and size > self.refuse_over:
            raise ToyRefusal(413, self.refuse_over)
        png = io.BytesIO()
        Image.new("RGB", (64, 48), "orange").save(png, "PNG")
        return types.GenerateContentResponse(
            candidates=[
                types.Candidate(
                    content=types.Content(
                        role="model",
                        parts=[types.Part.from_bytes(data=png.getvalue(), mime_type="image/png")],
                    ),
                    finish_reason=types.FinishReason.STOP,
                )
            ],
            usage_metadata=types.GenerateContentResponseUsageMetadata(
                prompt_token_count=100, candidates_token_count=1290, total_token_count=1390
            ),
        )

    def generate(self, request: BackendRequest) -> types.GenerateContentResponse:
        return self._answer(request)

    async def agenerate(self, request: BackendRequest) -> types.GenerateContentResponse:
        await asyncio.sleep(0)
        return self._answer(request)

    def generate_stream(self, request: BackendRequest) -> Iterator[types.GenerateContentResponse]:
        yield self._answer(request)

    async def agenerate_stream(
        self, request: BackendRequest
    ) -> AsyncIterator[types.GenerateContentResponse]:
        yield self._answer(request)

    def upload(self, upload: UploadRequest) -> types.Part:
        raise AssertionError("the toy has no Files API: the pipeline must not upload")

    async def aupload(self, upload: UploadRequest) -> types.Part:
        raise AssertionError("the toy has no Files API: the pipeline must not upload")

    def body_bytes(
        self,
        model: str,
        contents: Sequence[types.Content],
        config: types.GenerateContentConfig | None,
    ) -> int:
        body = {
            "model": model,
            "messages": [c.model_dump(mode="json", exclude_none=True) for c in contents],
        }
        return TOY_FRAMING + len(json.dumps(body))

    def map_error(self, exc: BaseException) -> errors.NbbananaError | None:
        if isinstance(exc, ToyRefusal) and exc.status == 413:
            return errors.RequestTooLarge("toy: too large", limit_bytes=exc.limit)
        if isinstance(exc, ToyRefusal):
            return errors.InvalidRequest(f"toy: refused ({exc.status})", code=exc.status)
        return None

    def close(self) -> None:
        pass


def _emptied(contents: Sequence[types.Content]) -> list[types.Content]:
    out = []
    for content in contents:
        parts = [
            types.Part.from_bytes(data=b"", mime_type=p.inline_data.mime_type or "")
            if p.inline_data is not None
            else p
            for p in content.parts or []
        ]
        out.append(types.Content(role=content.role, parts=parts))
    return out


def _session(backend: ToyBackend, *, base_url: str, **options: Any) -> Session:
    return Session(
        backend,
        model="gemini-2.5-flash-image",
        base_url=base_url,
        offline=False,
        endpoint=get_profile("gemini"),
        api_key="toy-key",
        max_cost_usd=options.get("max_cost_usd"),
    )


def test_the_toy_is_a_backend() -> None:
    assert isinstance(ToyBackend(), Backend)


def test_a_new_backend_serves_every_call(tmp_path: Any) -> None:
    backend = ToyBackend()
    session = _session(backend, base_url="https://toy.invalid/a")
    result = session.edit(sample_path("coffee.jpg"), "make it orange")
    assert result.image is not None and result.image.size == (64, 48)
    assert session.spent == pytest.approx(result.cost_usd) and session.calls == 1
    request = backend.requests[-1]
    assert request.model == "gemini-2.5-flash-image"
    user = request.contents[-1]
    assert user.role == "user" and user.parts is not None
    assert user.parts[0].text == "make it orange"
    assert user.parts[1].inline_data is not None  # no Files API: inline
    # The budget counted the request as the toy does, framing included, exactly.
    budget = session.budget()
    fitted = user.parts[1].inline_data
    assert fitted.data is not None
    assert (
        budget.request_bytes(
            "make it orange", [(len(fitted.data), fitted.mime_type or "")], config=request.config
        )
        == backend.sizes[-1]
    )


def test_the_budget_follows_the_backend_and_no_files_api() -> None:
    session = _session(ToyBackend(), base_url="https://toy.invalid/b")
    budget = session.budget()
    assert not budget.files_api  # the backend has none, whatever the profile says
    assert budget.request_bytes("", []) > TOY_FRAMING


def test_refit_and_retry_once_through_the_backend_sync_and_async() -> None:
    probe = ToyBackend()
    _session(probe, base_url="https://toy.invalid/c0").edit(sample_path("coffee.jpg"), "x")
    limit = TOY_FRAMING + (probe.sizes[0] - TOY_FRAMING) // 2

    backend = ToyBackend(refuse_over=limit)
    session = _session(backend, base_url="https://toy.invalid/c")
    result = session.edit(sample_path("coffee.jpg"), "x")
    assert result.image is not None
    assert len(backend.requests) == 2 and backend.sizes[0] > limit >= backend.sizes[1]
    assert session.budget().limit == limit

    backend_async = ToyBackend(refuse_over=limit)
    session_async = _session(backend_async, base_url="https://toy.invalid/d")
    result = asyncio.run(session_async.edit_async(sample_path("coffee.jpg"), "x"))
    assert result.image is not None
    assert len(backend_async.requests) == 2
    assert backend_async.sizes[0] > limit >= backend_async.sizes[1]


def test_backend_errors_are_mapped_and_others_propagate_unchanged() -> None:
    session = _session(ToyBackend(fail_with=ToyRefusal(400)), base_url="https://toy.invalid/e")
    with pytest.raises(errors.InvalidRequest) as info:
        session.generate("a kite")
    assert isinstance(info.value.__cause__, ToyRefusal)
    assert session.spent == 0 and session.calls == 0

    bug = KeyError("a bug in the backend")
    session = _session(ToyBackend(fail_with=bug), base_url="https://toy.invalid/f")
    with pytest.raises(KeyError) as raised:
        asyncio.run(session.generate_async("a kite"))
    assert raised.value is bug


def test_a_chat_sends_its_history_through_the_backend() -> None:
    backend = ToyBackend()
    chat = _session(backend, base_url="https://toy.invalid/g").chat()
    first = chat.send("a red kite")
    second = chat.send("now blue")
    assert second.parent is first and len(chat) == 2
    contents = backend.requests[-1].contents
    assert [c.role for c in contents] == ["user", "model", "user"]
    assert contents[0].parts is not None and contents[0].parts[0].text == "a red kite"
    assert chat.branch(1).history == [first]


def test_process_wide_state_shows_in_the_session_repr() -> None:
    from nbbanana import models

    probe = ToyBackend()
    _session(probe, base_url="https://toy.invalid/h").edit(sample_path("coffee.jpg"), "x")
    limit = TOY_FRAMING + (probe.sizes[0] - TOY_FRAMING) // 2
    session = _session(ToyBackend(refuse_over=limit), base_url="https://toy.invalid/h")
    assert "learned" not in repr(session)
    session.edit(sample_path("coffee.jpg"), "x")
    assert f"learned limit {limit:,} bytes" in repr(session)

    original = models.MODELS[session.model]
    try:
        models.set_price(session.model, input_per_m=1.0)
        assert "price set to $1/" in repr(session)
    finally:
        models.MODELS[session.model] = original
    assert "price set" not in repr(session)

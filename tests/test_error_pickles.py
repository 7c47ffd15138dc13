"""nbbanana's errors carry no API key by any route: str, repr, traceback, pickle, copy,
``__dict__`` — nor through the SDK error attached to them (its request's headers hold the
key, its URL may hold ``?key=``).

Every error is produced for real: the google-genai SDK talks to the emulator over HTTP
with a distinctive key that is deliberately not in Google's ``AIza…`` format, so the
generic redaction pattern cannot hide a leak.
"""

from __future__ import annotations

import asyncio
import copy
import gc
import pickle
import traceback
import types as pytypes
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _client_helpers import FAST_RETRY
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from PIL import Image

import nbbanana
from nbbanana import errors
from nbbanana._gemini import error_from_exception
from nbbanana.emulator import Emulator

KEY = "nbbPICKLE-4c1d2e9f8a7b6c5d-secret"

_SKIP_TYPES = (
    pytypes.FrameType,
    pytypes.TracebackType,
    pytypes.ModuleType,
    pytypes.FunctionType,
    pytypes.BuiltinFunctionType,
    pytypes.MethodType,
    pytypes.CodeType,
    type,
)


def _reachable(root: object) -> Iterator[object]:
    """Every object reachable from ``root`` by references, except code, classes, modules
    and tracebacks (frames hold the caller's local variables, which is not the error's
    content)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _SKIP_TYPES):
            continue
        seen.add(id(obj))
        yield obj
        stack.extend(gc.get_referents(obj))
        if isinstance(obj, BaseException):  # not always visible to gc.get_referents
            stack += [obj.__cause__, obj.__context__, *obj.args]


def _leaks(exc: BaseException) -> list[str]:
    """Every route by which ``exc`` would give away the key."""
    found: list[str] = []
    routes: dict[str, Callable[[], object]] = {
        "str": lambda: str(exc),
        "repr": lambda: repr(exc),
        "traceback": lambda: "".join(traceback.format_exception(exc)),
        "__dict__": lambda: repr(vars(exc)),
        "pickle": lambda: pickle.dumps(exc),
        "pickle of __cause__": lambda: pickle.dumps(exc.__cause__),
        "pickle of sdk_error": lambda: pickle.dumps(getattr(exc, "sdk_error", None)),
        "copy": lambda: repr(vars(copy.copy(exc))),
        "deepcopy": lambda: pickle.dumps(copy.deepcopy(exc)),
    }
    for route, get in routes.items():
        value = get()
        text = value if isinstance(value, bytes) else str(value).encode()
        if KEY.encode() in text:
            found.append(route)
    for obj in _reachable(exc):
        if isinstance(obj, str | bytes) and KEY.encode() in (
            obj if isinstance(obj, bytes) else obj.encode()
        ):
            found.append(f"reachable object {obj[:80]!r}")
            break
    return found


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(api_keys={KEY}, seed=3, request_limit=200_000) as emu:
        yield emu


def _session(emulator: Emulator, **options: Any) -> nbbanana.Session:
    return nbbanana.connect(
        KEY, base_url=emulator.base_url, endpoint="gemini", retry=FAST_RETRY, **options
    )


def _raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("no error was raised")


def _session_errors(emulator: Emulator) -> Iterator[tuple[str, BaseException]]:
    session = _session(emulator)
    for fault, params, name in (
        ("429", {"retry": 0.01}, "RateLimited"),
        ("503", {}, "ServiceUnavailable (503)"),
        ("500", {}, "ServiceUnavailable (500)"),
        ("reset", {}, "ServiceUnavailable (connection reset)"),
    ):
        emulator.inject(fault, count=3, **params)
        yield name, _raised(lambda: session.generate("fail"))
        emulator.clear_faults()
    slow = _session(emulator, timeout=0.3)
    emulator.inject("timeout", count=3, seconds=1)
    yield "ServiceUnavailable (timeout)", _raised(lambda: slow.generate("fail"))
    emulator.clear_faults()
    emulator.inject("429", count=3, retry=0.01)
    yield "RateLimited (async)", _raised(lambda: asyncio.run(session.agenerate("fail")))
    emulator.clear_faults()
    with pytest.warns(UserWarning):
        yield (
            "InvalidRequest (404)",
            _raised(lambda: session.generate("x", model="gemini-0-imaginary-image")),
        )
    with Emulator(api_keys={"another-key"}) as strict:
        refused = nbbanana.connect(KEY, base_url=strict.base_url, retry=FAST_RETRY)
        yield "AuthError", _raised(lambda: refused.generate("x"))


def _sdk_errors(emulator: Emulator) -> Iterator[tuple[str, BaseException]]:
    """Errors the SDK raised directly, mapped as the session maps them."""
    client = genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(
            base_url=emulator.base_url,
            retry_options=types.HttpRetryOptions(attempts=1),
        ),
    )
    noisy = Image.effect_noise((600, 400), 90).convert("RGB")
    odd_ratio = types.GenerateContentConfig(image_config=types.ImageConfig(aspect_ratio="7:3"))
    for name, contents, config in (
        ("RequestTooLarge", ["blend", noisy, noisy.rotate(90), noisy.rotate(180)], None),
        ("InvalidRequest (aspect ratio)", ["a banana"], odd_ratio),
    ):
        exc = _raised(
            lambda c=contents, k=config: client.models.generate_content(
                model="gemini-2.5-flash-image", contents=c, config=k
            )
        )
        assert isinstance(exc, genai_errors.APIError), exc
        mapped = error_from_exception(exc, KEY)
        assert mapped is not None
        yield name, mapped


def test_errors_carry_no_key_by_any_route(emulator: Emulator) -> None:
    produced = list(_session_errors(emulator)) + list(_sdk_errors(emulator))
    kinds = {type(exc).__name__ for _, exc in produced}
    assert kinds >= {
        "RateLimited",
        "ServiceUnavailable",
        "InvalidRequest",
        "AuthError",
        "RequestTooLarge",
    }, produced
    leaks = {name: _leaks(exc) for name, exc in produced}
    assert {name: found for name, found in leaks.items() if found} == {}


def test_errors_still_tell_what_happened_after_a_pickle_round_trip(
    emulator: Emulator,
) -> None:
    session = _session(emulator)
    emulator.inject("429", count=3, retry=0.01)
    original = _raised(lambda: session.generate("fail"))
    emulator.clear_faults()
    assert isinstance(original, errors.RateLimited)
    # The SDK's error is still attached (as the cause and on sdk_error), minus the
    # request and response objects that hold the key.
    assert isinstance(original.__cause__, genai_errors.ClientError)
    assert original.sdk_error is original.__cause__
    assert original.sdk_error.code == 429

    for clone in (pickle.loads(pickle.dumps(original)), copy.copy(original)):
        assert type(clone) is errors.RateLimited
        assert str(clone) == str(original)
        assert clone.code == 429 and clone.status == "RESOURCE_EXHAUSTED"
        assert clone.retry_after == original.retry_after
        # (the SDK's own unpickling rebuilds its base class, APIError)
        assert isinstance(clone.sdk_error, genai_errors.APIError)
        assert clone.sdk_error.code == 429


def test_every_error_class_survives_a_pickle_round_trip() -> None:
    samples: list[errors.NbbananaError] = [
        errors.CostLimitExceeded("over the cap", estimate_usd=0.04, spent_usd=1.0, cap_usd=1.0),
        errors.Blocked("blocked", reason="SAFETY", code=200),
        errors.NoImage("no image", text="a poem", finish_reason="STOP"),
        errors.RequestTooLarge("too large", limit_bytes=20_000_000, code=400),
        errors.CorruptImageError("damaged", source="a.png"),
    ]
    for error in samples:
        clone = pickle.loads(pickle.dumps(error))
        assert type(clone) is type(error)
        assert str(clone) == str(error)
        assert vars(clone) == vars(error)


def test_a_key_the_server_echoes_is_redacted_from_the_sdk_error_too() -> None:
    """Defence in depth: a relay that repeats the key in its error body."""
    sdk_error = genai_errors.ClientError(
        400, {"error": {"code": 400, "message": f"bad key {KEY}", "status": "INVALID_ARGUMENT"}}
    )
    mapped = error_from_exception(sdk_error, KEY)
    assert mapped is not None
    assert _leaks(mapped) == []


def test_the_callers_own_exceptions_in_the_chain_are_left_alone() -> None:
    class Mine(Exception):
        pass

    mine = Mine("the caller's")
    mine.response = "kept"  # type: ignore[attr-defined]
    sdk_error = genai_errors.ServerError(503, {"error": {"code": 503, "message": "busy"}})
    sdk_error.__context__ = mine
    mapped = error_from_exception(sdk_error, KEY)
    assert isinstance(mapped, errors.ServiceUnavailable)
    assert mine.response == "kept"  # type: ignore[attr-defined]

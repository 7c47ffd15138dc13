"""The API key never appears in any output, log, repr, exception or saved file.

Everything a user can do runs with a distinctive fake key against an emulator that
accepts it, with logging at DEBUG for every logger (the SDK's, httpx2's, ours); then
every captured byte is searched for the key. The key is deliberately not in Google's
``AIza…`` format, so the generic redaction pattern cannot hide a leak.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
import warnings
from pathlib import Path
from typing import Any

import pytest
from _client_helpers import FAST_RETRY
from PIL import Image

import nbbanana
from nbbanana import cli, errors
from nbbanana.emulator import Emulator
from nbbanana.models import EndpointProfile
from nbbanana.samples import sample_path

FAKE_KEY = "nbbSECRET-7f3a9c1e5d2b4a6f-do-not-leak"


def _exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


def test_the_key_never_leaks(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    out = tmp_path / "out"

    with Emulator(api_keys={FAKE_KEY}) as emulator, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = nbbanana.connect(
            FAKE_KEY, base_url=emulator.base_url, endpoint="gemini", retry=FAST_RETRY
        )
        texts += [repr(session), str(session), repr(vars(session)), repr(session.client)]

        results = [
            session.generate("a banana"),
            session.edit(sample_path("coffee.jpg"), "make it blue"),
            session.describe(sample_path("chart.png")),
        ]
        tight = nbbanana.connect(
            FAKE_KEY,
            base_url=emulator.base_url,
            endpoint=EndpointProfile("tight", request_limit=120_000, files_api=True),
            retry=FAST_RETRY,
        )
        noisy = Image.effect_noise((900, 600), 90).convert("RGB")
        files_result = tight.edit([noisy, noisy.rotate(90)], "blend")  # Files API upload
        assert any(ref.transport == "files-api" for ref in files_result.inputs)
        results.append(files_result)

        chat = session.chat()
        results.append(chat.send("a cat"))
        results.append(chat.branch(1).send("a grey cat"))
        texts.append(repr(chat))

        async def concurrent() -> list[Any]:
            return list(
                await asyncio.gather(
                    session.agenerate("async"), session.aedit(sample_path("text.png"), "async edit")
                )
            )

        results += asyncio.run(concurrent())

        for fault, params in (("429", {"retry": 0.01}), ("text_only", {}), ("blocked", {})):
            emulator.inject(fault, count=3, **params)
            with pytest.raises(errors.APIError) as info:
                session.generate("fail")
            texts.append(_exception_text(info.value))
            emulator.clear_faults()

        for result in results:
            texts += [repr(result), str(result.provenance())]
            texts += list(result._repr_mimebundle_().values())
            result.save(out)

        # The CLI with the key in the environment.
        monkeypatch.setenv("GEMINI_API_KEY", FAKE_KEY)
        status = cli.main(
            ["generate", "-p", "from the cli", "--base-url", emulator.base_url, "-o", str(out)]
        )
        assert status == 0
        image = out / "cli-input.png"
        Image.new("RGB", (50, 40), (1, 2, 3)).save(image)
        status = cli.main(
            ["edit", str(image), "-p", "cli edit", "--base-url", emulator.base_url, "-o", str(out)]
        )
        assert status == 0
        texts += [str(w.message) for w in caught]

    # A key the server refuses: the error must not repeat it.
    with Emulator(api_keys={"some-other-key"}) as strict:
        refused = nbbanana.connect(FAKE_KEY, base_url=strict.base_url, retry=FAST_RETRY)
        with pytest.raises(errors.AuthError) as info:
            refused.generate("x")
        texts.append(_exception_text(info.value))
        with pytest.raises(errors.AuthError) as info:
            asyncio.run(refused.agenerate("x"))
        texts.append(_exception_text(info.value))
        status = cli.main(
            ["generate", "-p", "refused", "--base-url", strict.base_url, "-o", str(out)]
        )
        assert status == 2

    captured = capfd.readouterr()
    texts += [captured.out, captured.err, caplog.text]
    texts += [record.getMessage() for record in caplog.records]
    assert "API key was refused" in captured.err  # the CLI did report the refusal

    saved = [p for p in out.rglob("*") if p.is_file()]
    assert len(saved) > 10
    leaks = [text[:200] for text in texts if FAKE_KEY in text]
    leaks += [str(p) for p in saved if FAKE_KEY.encode() in p.read_bytes()]
    assert leaks == []
    assert caplog.records  # logging was captured (the SDK and httpx2 do log)

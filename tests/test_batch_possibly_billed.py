"""What the batch report says about requests whose answer was lost (a dropped connection):
they may have run and been billed, at the library's estimate for one image each, and the
report says so: how many images an answer holds is the model's choice (a prompt may ask
for several; no request parameter sets it), so no larger figure can be known beforehand.
Through the real SDK over HTTP against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from google.genai import types

from nbbanana import Session, connect
from nbbanana._format import format_usd
from nbbanana.batch import run_batch
from nbbanana.emulator import Emulator

FAST_RETRY = types.HttpRetryOptions(attempts=2, initial_delay=0.05, max_delay=0.2, jitter=0.05)
PROMPT = "three variations of a kite"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nbbanana.batch._retries.BACKOFF_S", 0.02)


def _session(emulator: Emulator) -> Session:
    return connect(base_url=emulator.base_url, timeout=10, retry=FAST_RETRY)


def test_a_lost_answer_to_a_request_for_several_images_is_labelled_a_one_image_estimate(
    tmp_path: Path, emu: Emulator
) -> None:
    session = _session(emu)
    one_image = session.estimate(PROMPT)
    assert one_image.output_images is None and one_image.usd is not None  # per image
    emu.inject("reset", count=1)  # the first answer is lost; the retry gets three images
    report = run_batch(
        [{"id": "kites", "prompt": PROMPT}], tmp_path, session=session, progress=False
    )
    assert report.ok and len(report.outputs["kites"]) >= 3 + 1  # three images and a sidecar
    assert report.possibly_billed == 1
    assert report.possibly_billed_usd == pytest.approx(one_image.usd)
    # The answer that did arrive cost more than the figure: it is not an upper bound, and
    # the report must not call it one.
    assert report.spent_usd > 2 * report.possibly_billed_usd
    summary = report.summary()
    assert "up to" not in summary
    assert (
        f"possibly billed: 1 request whose answer was lost, ≈ {format_usd(one_image.usd)} "
        "at one image each, more for any that held several"
    ) in summary


def test_the_last_attempt_whose_answer_was_lost_is_counted_too(
    tmp_path: Path, emu: Emulator
) -> None:
    session = _session(emu)
    emu.inject("reset", count=2)
    report = run_batch(
        [{"id": "kite", "prompt": "a kite"}], tmp_path, session=session, attempts=2, progress=False
    )
    assert report.failed == 1
    assert report.possibly_billed == 2  # both requests may have run, not only the retried one
    assert report.possibly_billed_usd == pytest.approx(2 * (session.estimate("a kite").usd or 0))

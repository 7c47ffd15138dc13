"""A Batch API request's references share one request's budget, as an interactive
request's do: through the real google-genai SDK over HTTP against the emulator."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nbbanana._connect import connect
from nbbanana.batch import submit_batch
from nbbanana.budget import base64_size
from nbbanana.emulator import Emulator
from nbbanana.errors import DoesNotFitError, ImageError
from nbbanana.fit import fit_image
from nbbanana.models import get_profile
from nbbanana.session import Session

PRO = "gemini-3-pro-image"
#: A small explicit request limit, so that six 256 px noise references are "large".
LIMIT = 150_000


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(seed=3, batch_delay=0.0) as emulator:
        yield emulator


def _session(emu: Emulator, limit: int) -> Session:
    profile = get_profile("custom", request_limit=limit)
    return connect(base_url=emu.base_url, endpoint=profile, model=PRO, timeout=10)


def _noisy_refs(folder: Path, count: int, side: int = 256) -> list[str]:
    """References that hardly compress (noise), so that their fitted size is large."""
    rng = np.random.default_rng(7)
    paths = []
    for n in range(count):
        path = folder / f"ref{n}.png"
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("transport", ["inline", "file"])
def test_the_references_of_one_request_share_its_budget(
    tmp_path: Path, emu: Emulator, transport: str
) -> None:
    session = _session(emu, LIMIT)
    refs = _noisy_refs(tmp_path, 6)
    prompt = "a collage of all of these"
    # Each reference fits a request on its own; together, fitted one by one, they do not.
    alone = [fit_image(r, model=PRO, budget=session.budget(), prompt=prompt) for r in refs]
    assert sum(base64_size(len(f.data)) for f in alone) > LIMIT

    before = len(emu.requests)
    job = submit_batch(
        [{"id": "collage", "prompt": prompt, "images": refs}],
        session=session,
        inline_limit=10_000_000 if transport == "inline" else 300,
    )
    assert job.transport == transport
    sent = emu.requests[before:]
    # The create call (inline) or the uploaded JSONL file holds the one request, whole.
    assert max(r.body_bytes for r in sent) <= LIMIT - session.budget().margin
    assert job.wait(poll_interval=0.05, timeout=30, progress=False) == "JOB_STATE_SUCCEEDED"
    report = job.results(tmp_path / "out")
    assert report.ok and report.done == 1


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary folder of its own, where a requests file would be written."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_a_request_that_cannot_fit_is_refused_naming_the_item_before_anything_is_sent(
    tmp_path: Path, emu: Emulator, scratch: Path
) -> None:
    """The prompt is counted: a long one leaves the references no room at all."""
    session = _session(emu, 40_000)
    refs = _noisy_refs(tmp_path, 6, side=64)
    items = [
        {"id": "first", "prompt": "a banana"},
        {"id": "wordy", "prompt": "a banana " * 3_500, "images": refs},
    ]
    before = len(emu.requests)
    refused = r"^Item 'wordy' \(line 2\): its prompt and 6 reference image\(s\) do not fit"
    with pytest.raises(DoesNotFitError, match=refused):
        submit_batch(items, session=session, inline_limit=1)  # the first item is in a file
    assert len(emu.requests) == before  # nothing uploaded, no job created
    assert list(scratch.iterdir()) == []  # and no requests file left behind


def test_an_unreadable_reference_leaves_no_requests_file_behind(
    tmp_path: Path, emu: Emulator, scratch: Path
) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    items = [
        {"id": "first", "prompt": "a banana"},
        {"id": "broken", "prompt": "make it blue", "images": [str(broken)]},
    ]
    before = len(emu.requests)
    with pytest.raises(ImageError):
        submit_batch(items, session=_session(emu, LIMIT), inline_limit=1)
    assert len(emu.requests) == before
    assert list(scratch.iterdir()) == []

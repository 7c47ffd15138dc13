"""Gemini Batch API jobs, round trip through the SDK's client.batches against the emulator."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from nbbanana._connect import connect
from nbbanana.batch import BatchError, BatchJob, submit_batch
from nbbanana.batch._journal import JOURNAL_NAME, read_journal
from nbbanana.emulator import Emulator
from nbbanana.models import get_model
from nbbanana.session import Session


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(batch_delay=0.05) as emulator:
        yield emulator


@pytest.fixture
def session(emu: Emulator) -> Session:
    return connect(base_url=emu.base_url, timeout=10)


def _items(tmp_path: Path) -> list[dict[str, object]]:
    Image.new("RGB", (48, 32), "teal").save(tmp_path / "in.png")
    return [
        {"id": "gen", "prompt": "a banana on a desk"},
        {"id": "edit", "prompt": "make it violet", "images": [str(tmp_path / "in.png")]},
        {"id": "wide", "prompt": "a wide banana", "aspect_ratio": "16:9"},
    ]


def _check_outputs(out: Path, ids: list[str], job: BatchJob) -> None:
    assert sorted(p.name for p in out.glob("*.png")) == sorted(f"{i}.png" for i in ids)
    state = read_journal(out / JOURNAL_NAME)
    assert set(state.done) == set(ids)
    info = get_model(job.model)
    for item_id in ids:
        sidecar = json.loads((out / f"{item_id}.json").read_text(encoding="utf-8"))
        usage = sidecar["usage"]
        interactive = info.cost_usd(
            input_tokens=usage["prompt_tokens"],
            output_image_tokens=usage["output_image_tokens"],
            # Thoughts are billed as text output (a thinking default model has them).
            output_text_tokens=usage["output_tokens"]
            - usage["output_image_tokens"]
            + usage["thought_tokens"],
        )
        assert state.done[item_id]["cost_usd"] == pytest.approx(interactive / 2)  # half price
        assert state.done[item_id]["batch_job"] == job.name


@pytest.mark.parametrize("transport", ["inline", "file"])
def test_round_trip(tmp_path: Path, emu: Emulator, session: Session, transport: str) -> None:
    items = _items(tmp_path)
    job = submit_batch(
        items,
        session=session,
        display_name="workshop",
        inline_limit=10_000_000 if transport == "inline" else 300,
    )
    assert job.transport == transport
    paths = [r.path for r in emu.requests]
    assert any(p.endswith(":batchGenerateContent") for p in paths)
    assert any(p.startswith("/upload/") for p in paths) == (transport == "file")

    if transport == "inline":
        assert job.wait(poll_interval=0.05, timeout=30, progress=False) == "JOB_STATE_SUCCEEDED"
    else:  # the notebook form
        assert asyncio.run(job.wait_async(poll_interval=0.05, timeout=30)) == "JOB_STATE_SUCCEEDED"
    out = tmp_path / "out"
    report = job.results(out)
    assert report.ok and report.done == 3
    _check_outputs(out, ["gen", "edit", "wide"], job)
    with Image.open(out / "wide.png") as im:
        assert im.width > im.height  # 16:9 reached the server through the batch request

    again = job.results(out)  # idempotent: nothing written twice
    assert again.skipped == 3 and again.done == 0

    # A new handle for the same job, as after a kernel restart.
    attached = BatchJob.attach(job.name, items, session=session)
    assert attached.status() == "JOB_STATE_SUCCEEDED"


def test_results_before_success_and_one_model_per_job(tmp_path: Path, session: Session) -> None:
    with pytest.raises(BatchError, match="one model"):
        submit_batch(
            [{"prompt": "a"}, {"prompt": "b", "model": "gemini-3-pro-image"}],
            session=session,
        )
    job = submit_batch([{"prompt": "a"}], session=session)
    job.cancel()
    assert job.wait(poll_interval=0.05, timeout=30, progress=False) == "JOB_STATE_CANCELLED"
    with pytest.raises(BatchError, match="JOB_STATE_CANCELLED"):
        job.results(tmp_path / "out")


def test_cli_batch_api(tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    from nbbanana import cli

    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "y"}\n', "utf-8")
    common = ["-o", str(tmp_path / "out"), "--base-url", emu.base_url, "--poll", "0.05"]
    assert cli.main(["batch", str(manifest), *common, "--batch-api", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "2/2 items done" in printed
    name = printed.split()[1]
    assert name.startswith("batches/")
    # Re-attaching to the finished job writes nothing twice.
    assert cli.main(["batch", str(manifest), *common, "--attach", name, "--no-progress"]) == 0
    assert "(0 this run, 2 before)" in capsys.readouterr().out


def test_item_errors_in_a_results_file_are_journaled_as_failures(
    tmp_path: Path, session: Session
) -> None:
    """The service answers a refused request with an ``error`` entry; the item is recorded
    as failed (and can be run again), the others are written as usual."""
    from nbbanana.batch import BatchItem, BatchReport
    from nbbanana.batch._api import _parse_result_lines
    from nbbanana.batch._journal import Journal

    lines = [
        '{"key": "bad", "error": {"code": 400, "message": "Unsupported MIME type: image/gif"}}\n',
        '{"key": "odd", "response": {"candidates": [{"content": {"parts": [{"text": "no"}]},'
        ' "finishReason": "STOP"}]}}\n',
    ]
    parsed = list(_parse_result_lines(lines))
    assert [key for key, _, _ in parsed] == ["bad", "odd"]
    items = [BatchItem(id="bad", prompt="x", line=1), BatchItem(id="odd", prompt="y", line=2)]
    job = BatchJob("batches/x", items=items, session=session, model="gemini-2.5-flash-image")
    report = BatchReport(outdir=tmp_path, total=2)
    with Journal(tmp_path) as journal:
        for key, response, error in parsed:
            job._record(next(i for i in items if i.id == key), response, error, journal, report)
    state = read_journal(tmp_path / JOURNAL_NAME)
    assert state.failed["bad"]["error"]["code"] == 400
    assert "Unsupported MIME" in state.failed["bad"]["error"]["message"]
    assert state.failed["odd"]["error"]["type"] == "NoImage"
    assert report.failed == 2 and not list(tmp_path.glob("*.png"))

"""The local batch engine, driving the real SDK over real HTTP against the emulator."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.genai import types
from PIL import Image

from nbbanana import cli
from nbbanana._connect import connect
from nbbanana.batch import BatchError, BatchItem, ManifestError, run_batch, run_batch_async
from nbbanana.batch._journal import JOURNAL_NAME, read_journal
from nbbanana.emulator import Emulator
from nbbanana.session import Session

GENERATE = ":generateContent"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


#: The client's retries, made fast for tests (the default backs off 1 s, 2 s, 4 s).
FAST_RETRY = types.HttpRetryOptions(attempts=4, initial_delay=0.05, max_delay=0.2, jitter=0.05)


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's own back-off between attempts of an item, made fast for tests."""
    monkeypatch.setattr("nbbanana.batch._retries.BACKOFF_S", 0.02)


def _session(emulator: Emulator, **kwargs: Any) -> Session:
    return connect(base_url=emulator.base_url, timeout=10, retry=FAST_RETRY, **kwargs)


def _calls(emulator: Emulator) -> list[Any]:
    return [r for r in emulator.requests if r.path.endswith(GENERATE)]


def _image(path: Path, colour: str = "navy") -> Path:
    Image.new("RGB", (40, 30), colour).save(path)
    return path


def _manifest(tmp_path: Path, n: int, *, with_images: bool = True) -> Path:
    img = _image(tmp_path / "in.png")
    lines = []
    for i in range(n):
        record: dict[str, Any] = {"id": f"item{i:02d}", "prompt": f"variation {i}"}
        if with_images and i % 2:
            record["images"] = [img.name]
        lines.append(json.dumps(record))
    path = tmp_path / "manifest.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _done_records(outdir: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for line in (outdir / JOURNAL_NAME).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a record torn by kill -9
        if record.get("event") == "done":
            counts[record["id"]] += 1
    return counts


def test_outputs_named_after_ids_and_journaled(tmp_path: Path, emu: Emulator) -> None:
    manifest = _manifest(tmp_path, 5)
    out = tmp_path / "out"
    report = run_batch(manifest, out, session=_session(emu), concurrency=3, progress=False)
    assert report.ok and report.done == 5 and report.failed == 0
    assert sorted(p.name for p in out.glob("*.png")) == [f"item{i:02d}.png" for i in range(5)]
    sidecar = json.loads((out / "item01.json").read_text(encoding="utf-8"))
    assert sidecar["batch_item"] == {"id": "item01", "line": 2}
    assert sidecar["files"] == ["item01.png"]
    assert sidecar["inputs"][0]["name"] == "in.png"
    assert _done_records(out) == {f"item{i:02d}": 1 for i in range(5)}
    assert report.spent_usd == pytest.approx(sum(
        json.loads(line)["cost_usd"]
        for line in (out / JOURNAL_NAME).read_text(encoding="utf-8").splitlines()
        if '"done"' in line
    ))  # fmt: skip
    assert not (out / ".staging").exists()
    # A second run into the same folder must be asked for explicitly, and then sends nothing.
    with pytest.raises(BatchError, match="already holds a batch journal"):
        run_batch(manifest, out, session=_session(emu), progress=False)
    sent = len(_calls(emu))
    again = run_batch(manifest, out, session=_session(emu), resume=True, progress=False)
    assert again.ok and again.skipped == 5 and again.done == 0
    assert len(_calls(emu)) == sent


def test_manifest_problems_stop_everything_before_sending(tmp_path: Path, emu: Emulator) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        '{"id": "a", "prompt": "ok"}\n{"id": "b", "prompt": "x", "images": ["gone.png"]}\n',
        encoding="utf-8",
    )
    with pytest.raises(ManifestError, match="line 2: image not found"):
        run_batch(manifest, tmp_path / "out", session=_session(emu), progress=False)
    # An image size the session's default model does not have is caught up front too.
    with pytest.raises(ManifestError, match=r"line 1: .*image_size='512'"):
        run_batch([{"prompt": "x", "image_size": "512"}], tmp_path / "o2", session=_session(emu))
    # Nothing was sent: connecting listed the models (GET /models), no request was posted.
    assert [r for r in emu.requests if r.method != "GET"] == []


def test_failed_items_recorded_and_retried_alone(tmp_path: Path, emu: Emulator) -> None:
    manifest = _manifest(tmp_path, 4, with_images=False)
    out = tmp_path / "out"
    emu.inject("image_safety", count=1)  # the first model call: item00 (one lane)
    report = run_batch(manifest, out, session=_session(emu), concurrency=1, progress=False)
    assert report.failed == 1 and report.done == 3 and not report.ok
    assert "item00" in report.failures and "blocked" in report.failures["item00"].lower()
    state = read_journal(out / JOURNAL_NAME)
    assert state.failed["item00"]["error"]["type"] == "Blocked"
    assert not (out / "item00.png").exists()

    before = len(_calls(emu))
    retry = run_batch(manifest, out, session=_session(emu), retry_failed=True, progress=False)
    assert retry.done == 1 and retry.skipped == 3 and retry.ok
    assert len(_calls(emu)) == before + 1  # only the failed item was sent
    assert _done_records(out) == {f"item{i:02d}": 1 for i in range(4)}

    # --only runs just the named items (here: already done, so nothing).
    only = run_batch(manifest, out, session=_session(emu), only=["item02"], progress=False)
    assert only.done == 0 and len(_calls(emu)) == before + 1
    with pytest.raises(BatchError, match="No items with the ids"):
        run_batch(manifest, out, session=_session(emu), only=["nope"], progress=False)


def test_transient_faults_are_retried_by_the_client_and_counted(
    tmp_path: Path, emu: Emulator
) -> None:
    emu.inject("503", count=2)
    report = run_batch(
        [{"id": "a", "prompt": "x"}], tmp_path / "out", session=_session(emu), progress=False
    )
    assert report.ok and report.retries == 2
    assert [r.status for r in _calls(emu)] == [503, 503, 200]
    record = read_journal(tmp_path / "out" / JOURNAL_NAME).done["a"]
    assert record["retries"] == 2


def test_rpm_budget_never_exceeded(tmp_path: Path, emu: Emulator) -> None:
    rpm = 600  # one request every 0.1 s
    items = [{"id": f"i{i}", "prompt": f"p{i}"} for i in range(10)]
    run_batch(
        items, tmp_path / "out", session=_session(emu), concurrency=5, rpm=rpm, progress=False
    )
    starts = sorted(r.started for r in _calls(emu))
    assert len(starts) == 10
    interval = 60 / rpm
    # The limiter releases one request per interval and never bursts: any window of
    # k intervals holds at most k + 1 requests (one more allowed for arrival jitter).
    for window in (0.25, 0.5):
        budget = window / interval + 1
        for i, t in enumerate(starts):
            in_window = sum(1 for s in starts[i:] if s < t + window)
            assert in_window <= budget + 1, (window, in_window, starts)


class _Probe:
    """A Session stand-in that counts the calls in progress and can act between items.
    (It wraps the real Session, which drives the real SDK: nothing is patched.)"""

    def __init__(self, session: Session, after_first: Any = None) -> None:
        self.session = session
        self.active = 0
        self.peak = 0
        self.calls = 0
        self.after_first = after_first

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)

    async def _tracked(self, coro: Any) -> Any:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return await coro
        finally:
            self.active -= 1
            self.calls += 1
            if self.calls == 1 and self.after_first is not None:
                self.after_first()

    async def edit_async(self, images: Any, prompt: str, **kw: Any) -> Any:
        return await self._tracked(self.session.edit_async(images, prompt, **kw))

    async def generate_async(self, prompt: str, **kw: Any) -> Any:
        return await self._tracked(self.session.generate_async(prompt, **kw))


def test_concurrency_bound(tmp_path: Path) -> None:
    with Emulator(latency=0.15) as emulator:
        probe = _Probe(_session(emulator))
        manifest = _manifest(tmp_path, 8)
        report = run_batch(manifest, tmp_path / "out", session=probe, concurrency=2, progress=False)  # type: ignore[arg-type]
        records = _calls(emulator)
    assert report.ok and probe.peak == 2
    # On the wire, too: never more than two model calls overlapped.
    events = sorted(
        [(r.started, 1) for r in records] + [(r.started + r.seconds, -1) for r in records]
    )
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak == 2


def test_inputs_are_read_only_when_their_item_runs(tmp_path: Path, emu: Emulator) -> None:
    """Memory stays bounded because nothing is loaded up front: an input replaced on disk
    while the batch runs (after the check, before its item's turn) is the one sent."""
    first = _image(tmp_path / "first.png", "navy")
    last = _image(tmp_path / "last.png", "navy")
    items = [
        {"id": "a", "prompt": "edit a", "images": [str(first)]},
        {"id": "b", "prompt": "edit b"},
        {"id": "c", "prompt": "edit c", "images": [str(last)]},
    ]
    probe = _Probe(_session(emu), after_first=lambda: _image(last, "orange"))
    report = run_batch(items, tmp_path / "out", session=probe, concurrency=1, progress=False)  # type: ignore[arg-type]
    assert report.ok
    sent = json.loads((tmp_path / "out" / "c.json").read_text(encoding="utf-8"))["inputs"][0]
    assert sent["source_sha256"] == hashlib.sha256(last.read_bytes()).hexdigest()


def test_inside_a_running_event_loop(tmp_path: Path, emu: Emulator) -> None:
    """A notebook cell runs inside an event loop: ``run_batch`` must not crash there,
    and ``await run_batch_async`` is the direct way."""
    session = _session(emu)

    async def cell() -> tuple[Any, Any]:
        sync_report = run_batch([{"id": "a", "prompt": "x"}], tmp_path / "o1", session=session)
        async_report = await run_batch_async(
            [BatchItem(id="b", prompt="y")], tmp_path / "o2", session=session, progress=False
        )
        return sync_report, async_report

    first, second = asyncio.run(cell())
    assert first.ok and second.ok
    assert (tmp_path / "o1" / "a.png").is_file() and (tmp_path / "o2" / "b.png").is_file()


def test_cli_exit_status(tmp_path: Path, emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = _manifest(tmp_path, 3, with_images=False)
    emu.inject("image_safety", count=1)  # permanent: left for --retry-failed
    args = ["batch", str(manifest), "-o", str(tmp_path / "out"), "--base-url", emu.base_url]
    assert cli.main([*args, "--concurrency", "1", "--no-progress"]) == 2
    assert "1 failed" in capsys.readouterr().out
    assert cli.main([*args, "--no-progress"]) == 2  # no --resume: refused, nothing sent
    assert "--resume" in capsys.readouterr().err
    assert cli.main([*args, "--retry-failed", "--no-progress"]) == 0
    assert "3/3 items done" in capsys.readouterr().out


@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
def test_kill_9_then_resume_writes_every_output_exactly_once(tmp_path: Path) -> None:
    n = 12
    manifest = _manifest(tmp_path, n)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    with Emulator(latency=0.4) as emulator:
        command = [
            sys.executable, "-m", "nbbanana", "batch", str(manifest), "-o", str(out),
            "--base-url", emulator.base_url, "--concurrency", "2", "--no-progress",
        ]  # fmt: skip
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                if (out / JOURNAL_NAME).exists() and sum(_done_records(out).values()) >= n // 3:
                    break
                time.sleep(0.02)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
        first_run = set(_done_records(out))
        assert 0 < len(first_run) < n
        assert proc.returncode == -signal.SIGKILL

        resumed = subprocess.run(
            [*command, "--resume"], env=env, capture_output=True, text=True, timeout=60
        )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{n}/{n} items done" in resumed.stdout
    assert _done_records(out) == {f"item{i:02d}": 1 for i in range(n)}
    assert sorted(p.name for p in out.glob("*.png")) == [f"item{i:02d}.png" for i in range(n)]
    assert sorted(p.name for p in out.glob("*.json")) == [f"item{i:02d}.json" for i in range(n)]
    assert not (out / ".staging").exists()
    for i in range(n):
        with Image.open(out / f"item{i:02d}.png") as im:
            im.verify()  # complete, not a torn write


def test_cost_cap_stops_taking_items(tmp_path: Path, emu: Emulator) -> None:
    session = _session(emu, max_cost_usd=0.05)  # about one image of gemini-2.5-flash-image
    items = [{"id": f"i{i}", "prompt": f"p{i}"} for i in range(4)]
    report = run_batch(items, tmp_path / "out", session=session, concurrency=1, progress=False)
    assert report.done == 1 and report.failed == 1 and report.not_started == 2
    assert report.stopped is not None and "max_cost_usd" in report.stopped
    assert len(_calls(emu)) == 1  # the refused item was never sent
    assert "i1" in read_journal(tmp_path / "out" / JOURNAL_NAME).failed


def test_resume_warns_about_items_edited_after_they_were_done(
    tmp_path: Path, emu: Emulator
) -> None:
    out = tmp_path / "out"
    run_batch([{"id": "a", "prompt": "a cat"}], out, session=_session(emu), progress=False)
    with pytest.warns(UserWarning, match="1 items changed .* a\\. Delete"):
        again = run_batch(
            [{"id": "a", "prompt": "a dog"}],
            out,
            session=_session(emu),
            resume=True,
            progress=False,
        )
    assert again.skipped == 1 and len(_calls(emu)) == 1

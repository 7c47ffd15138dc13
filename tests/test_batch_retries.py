"""The batch engine retries what is worth retrying, a bounded number of times, and counts
requests whose answer was lost as possibly billed; permanent failures are left alone.
Ends with the issue's "done when": 40 items, 20 % injected faults, kill -9, resume."""

from __future__ import annotations

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

from nbbanana import Session, connect
from nbbanana._format import format_usd
from nbbanana.batch import run_batch
from nbbanana.batch._journal import JOURNAL_NAME
from nbbanana.emulator import Emulator
from nbbanana.emulator._faults import CONTENT_FAULTS, TRANSIENT_FAULTS

GENERATE = ":generateContent"
FAST_RETRY = types.HttpRetryOptions(attempts=4, initial_delay=0.05, max_delay=0.2, jitter=0.05)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nbbanana.batch._retries.BACKOFF_S", 0.02)


def _session(emulator: Emulator, attempts: int | None = None) -> Session:
    retry = FAST_RETRY if attempts is None else FAST_RETRY.model_copy(update={"attempts": attempts})
    return connect(base_url=emulator.base_url, timeout=10, retry=retry)


def _statuses(emulator: Emulator) -> list[int]:
    return [r.status for r in emulator.requests if r.path.endswith(GENERATE)]


def _records(outdir: Path, event: str) -> list[dict[str, Any]]:
    out = []
    for line in (outdir / JOURNAL_NAME).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # torn by kill -9
        if record.get("event") == event:
            out.append(record)
    return out


def test_dropped_connections_and_text_only_answers_are_retried_by_the_engine(
    tmp_path: Path, emu: Emulator
) -> None:
    # Each item meets its faults, then a clean answer: two resets (no HTTP answer, which
    # the SDK does not retry), four 503s (more than the client's own retries), one
    # text-only answer.
    out = tmp_path / "out"
    items = [{"id": f"i{n}", "prompt": f"p{n}"} for n in range(3)]
    faults = [("reset", 2), ("503", 4), ("text_only", 1)]
    reports = []
    for index, (fault, count) in enumerate(faults):
        emu.inject(fault, count=count)
        report = run_batch(
            items[: index + 1], out, session=_session(emu), resume=index > 0, progress=False
        )
        assert report.ok and report.failed == 0 and report.done == 1, report.summary()
        reports.append(report)
    # The two resets may have run on the server: counted apart, with an estimate.
    assert reports[0].possibly_billed == 2 and reports[0].possibly_billed_usd > 0
    assert "possibly billed: 2 requests whose answer was lost" in reports[0].summary()
    assert reports[1].possibly_billed == 0 and reports[2].possibly_billed == 0
    retries = _records(out, "retry")
    assert [(r["id"], r["error"]["type"]) for r in retries] == [
        ("i0", "ServiceUnavailable"), ("i0", "ServiceUnavailable"),
        ("i1", "ServiceUnavailable"), ("i2", "NoImage"),
    ]  # fmt: skip
    assert [r["possibly_billed_usd"] > 0 for r in retries] == [True, True, False, False]
    # The text-only answer was paid for: it is in the spend, beside the image kept.
    done_cost = next(r["cost_usd"] for r in _records(out, "done") if r["id"] == "i2")
    assert reports[2].spent_usd > done_cost
    assert reports[1].retries == 3 + 1  # the client's three, then the engine's one


def test_retries_are_bounded(tmp_path: Path, emu: Emulator) -> None:
    emu.inject("reset", count=10)
    out = tmp_path / "out"
    report = run_batch(
        [{"id": "a", "prompt": "x"}], out, session=_session(emu), attempts=3, progress=False
    )
    assert report.failed == 1 and not report.ok
    assert len(_statuses(emu)) == 3  # exactly `attempts` requests
    assert "--retry-failed" in report.summary(flags=True)


@pytest.mark.parametrize("fault", ["image_safety", "prohibited", "blocked"])
def test_permanent_failures_are_not_retried(tmp_path: Path, emu: Emulator, fault: str) -> None:
    emu.inject(fault, count=1)
    report = run_batch(
        [{"id": "a", "prompt": "x"}], tmp_path / "out", session=_session(emu), progress=False
    )
    assert report.failed == 1 and len(_statuses(emu)) == 1
    assert _records(tmp_path / "out", "retry") == []


@pytest.mark.filterwarnings("ignore:nbbanana does not know the model")
def test_a_refused_request_is_not_retried(tmp_path: Path, emu: Emulator) -> None:
    # An unknown model is a 404 from the server: the same request fails the same way.
    report = run_batch(
        [{"id": "a", "prompt": "x", "model": "gemini-0-nonexistent-image"}],
        tmp_path / "out",
        session=_session(emu),
        progress=False,
    )
    assert report.failed == 1 and len(_statuses(emu)) == 1


# --------------------------------------------------------------------------- done when

#: ``python -m nbbanana`` with the back-offs made fast, as the in-process tests make them
#: (the defaults pause 1 s, 2 s, 4 s in the client and 2 s, 4 s in the engine per fault):
#: what is checked is what gets retried and written, not how long the pauses are.
FAST_CLI = """
import sys
import nbbanana._connect as connect, nbbanana.batch._retries as retries
retries.BACKOFF_S = 0.02
connect.DEFAULT_RETRY = connect.DEFAULT_RETRY.model_copy(
    update={"initial_delay": 0.05, "max_delay": 0.2, "jitter": 0.05}
)
from nbbanana.cli import main
sys.exit(main())
"""


def _done_counts(outdir: Path) -> Counter[str]:
    return Counter(r["id"] for r in _records(outdir, "done"))


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")
def test_forty_items_with_faults_of_every_kind_killed_and_resumed(tmp_path: Path) -> None:
    """Every transient kind the emulator has, plus text-only answers, on 20 % of the
    model calls. (The safety faults are permanent by design, left for --retry-failed:
    see test_permanent_failures_are_not_retried.)"""
    n = 40
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(
        "".join(json.dumps({"id": f"item{i:02d}", "prompt": f"variation {i}"}) + "\n"
                for i in range(n)),
        encoding="utf-8",
    )  # fmt: skip
    kinds = [*TRANSIENT_FAULTS, "text_only"]
    assert set(kinds) | set(CONTENT_FAULTS) >= {"reset", "timeout", "429", "500", "503"}
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}
    with Emulator(fault_rate=0.2, fault_kinds=kinds, seed=7, latency=0.1) as emulator:
        command = [
            sys.executable, "-c", FAST_CLI, "batch", str(manifest), "-o", str(out),
            "--base-url", emulator.base_url, "--concurrency", "8", "--no-progress",
            "--timeout", "3",  # a "timeout" fault then costs seconds, not five minutes
        ]  # fmt: skip
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if (out / JOURNAL_NAME).exists() and sum(_done_counts(out).values()) >= n // 4:
                    break
                time.sleep(0.02)
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert 0 < len(_done_counts(out)) < n

        resumed = subprocess.run(
            [*command, "--resume"], env=env, capture_output=True, text=True, timeout=300
        )
        faulted = Counter(r.status for r in emulator.requests if r.path.endswith(GENERATE))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"{n}/{n} items done" in resumed.stdout and "0 failed" in resumed.stdout
    assert _done_counts(out) == {f"item{i:02d}": 1 for i in range(n)}
    assert sorted(p.name for p in out.glob("*.png")) == [f"item{i:02d}.png" for i in range(n)]
    assert not (out / ".staging").exists()
    # The faults did happen, of several kinds, and were retried.
    assert len(faulted) >= 3, faulted
    assert _records(out, "retry"), "no engine retries: the test injected nothing it had to retry"


# ------------------------------------------- what a lost answer may have cost
# How many images an answer holds is the model's choice (a prompt may ask for several; no
# request parameter sets it), so a lost answer is counted at the library's estimate for
# one image, and the report says so.

KITES = "three variations of a kite"


def test_a_lost_answer_to_a_request_for_several_images_is_labelled_a_one_image_estimate(
    tmp_path: Path, emu: Emulator
) -> None:
    session = _session(emu, attempts=2)
    one_image = session.estimate(KITES)
    assert one_image.output_images is None and one_image.usd is not None  # per image
    emu.inject("reset", count=1)  # the first answer is lost; the retry gets three images
    report = run_batch(
        [{"id": "kites", "prompt": KITES}], tmp_path, session=session, progress=False
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
    session = _session(emu, attempts=2)
    emu.inject("reset", count=2)
    report = run_batch(
        [{"id": "kite", "prompt": "a kite"}], tmp_path, session=session, attempts=2, progress=False
    )
    assert report.failed == 1
    assert report.possibly_billed == 2  # both requests may have run, not only the retried one
    assert report.possibly_billed_usd == pytest.approx(2 * (session.estimate("a kite").usd or 0))

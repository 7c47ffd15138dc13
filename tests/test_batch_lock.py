"""One batch run per output folder: a second run is refused at once, a lock left by a
killed run is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nbbanana import cli
from nbbanana.batch._journal import JOURNAL_NAME
from nbbanana.batch._lock import LOCK_NAME, FolderBusy, FolderLock
from nbbanana.emulator import Emulator

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="kill -9 is POSIX")

GENERATE = ":generateContent"

_HOLD = """
import sys, time
from pathlib import Path
from nbbanana.batch._lock import FolderLock
FolderLock(Path(sys.argv[1])).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY")}


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock of ``tmp_path / "out"``."""
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(out)], env=_env(), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _manifest(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "m.jsonl"
    path.write_text(
        "".join(json.dumps({"id": f"i{i:02d}", "prompt": f"p{i}"}) + "\n" for i in range(n)),
        encoding="utf-8",
    )
    return path


def _calls(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if r.path.endswith(GENERATE))


def test_a_second_run_is_refused_in_one_line_and_a_killed_holder_is_taken_over(
    tmp_path: Path, holder: subprocess.Popen[str], capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _manifest(tmp_path, 2)
    out = tmp_path / "out"
    with Emulator() as emulator:
        args = ["batch", str(manifest), "-o", str(out), "--base-url", emulator.base_url]
        assert cli.main([*args, "--resume", "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("nbbanana: ")
        assert "in use by another batch run" in err and f"process {holder.pid}" in err
        assert _calls(emulator) == 0 and not (out / JOURNAL_NAME).exists()

        os.kill(holder.pid, signal.SIGKILL)  # dies holding the lock
        holder.wait()
        assert cli.main([*args, "--resume", "--no-progress"]) == 0
        captured = capsys.readouterr()
        assert f"took over the lock left by process {holder.pid}" in captured.err
        assert "2/2 items done" in captured.out and _calls(emulator) == 2
    # Released at the end: the next run takes it without complaint.
    with FolderLock(out) as lock:
        assert lock.took_over is None


# The second run, started ahead with everything imported, waits for a go file: so it
# really starts while the first is sending, however slow the machine is to start Python.
_WAIT_THEN_RUN = """
import sys, time
from pathlib import Path
import nbbanana.batch, nbbanana.cli, nbbanana.session
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.01)
sys.exit(nbbanana.cli.main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_two_resumed_runs_at_once_pay_for_nothing_twice(tmp_path: Path) -> None:
    n = 12
    manifest = _manifest(tmp_path, n)
    out = tmp_path / "out"
    go = tmp_path / "go"
    with Emulator(latency=0.5) as emulator:
        args = [
            "batch", str(manifest), "-o", str(out), "--base-url", emulator.base_url,
            "--concurrency", "2", "--no-progress", "--resume",
        ]  # fmt: skip
        second = subprocess.Popen(
            [sys.executable, "-c", _WAIT_THEN_RUN, str(go), *args],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = subprocess.Popen(
            [sys.executable, "-m", "nbbanana", *args], env=_env(), stdout=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 60
            while _calls(emulator) == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            go.touch()
            second_out, second_err = second.communicate(timeout=60)
            first_was_running = first.poll() is None
            first_out, _ = first.communicate(timeout=60)
        finally:
            for proc in (first, second):
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
        assert second.returncode == 2, second_out
        assert first_was_running  # so the refusal was because of it
        assert len(second_err.strip().splitlines()) == 1
        assert "in use by another batch run" in second_err and second_out == ""
        assert first.returncode == 0 and f"{n}/{n} items done" in first_out
        assert _calls(emulator) == n  # every item paid for once


def test_lock_in_process(tmp_path: Path) -> None:
    with FolderLock(tmp_path) as lock:
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
        with pytest.raises(FolderBusy, match=f"process {os.getpid()}"):
            FolderLock(tmp_path).acquire()  # flock: a second open file is refused too
        assert lock.took_over is None
    assert (tmp_path / LOCK_NAME).read_text() == ""


def test_a_stale_pid_without_os_locks_is_taken_over(tmp_path: Path) -> None:
    """A lock file naming a process that is gone (no OS lock held) is stale."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    (tmp_path / LOCK_NAME).write_text(
        json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": 0})
    )
    with FolderLock(tmp_path) as lock:
        assert lock.took_over is not None and f"process {dead.pid}" in lock.took_over

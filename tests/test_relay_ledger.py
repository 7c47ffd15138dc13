"""The ledger: WAL mode, restart keeps every participant's spend, nothing is counted
twice, requests in flight at a crash are kept once, export and the CLI."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from _relay_helpers import generate, running_relay, wait_settled

from nbbanana.cli import main
from nbbanana.relay import Relay
from nbbanana.relay._ledger import Ledger, micros

pytestmark = pytest.mark.timeout(120)


def test_the_ledger_is_sqlite_in_wal_mode(tmp_path: Path) -> None:
    Ledger(tmp_path)
    mode = sqlite3.connect(tmp_path / "ledger.sqlite3").execute("PRAGMA journal_mode").fetchone()
    assert mode == ("wal",)


def test_a_restarted_relay_keeps_every_participants_spend_and_the_caps(tmp_path: Path) -> None:
    with running_relay(tmp_path) as relay:
        ada, bob = relay.add_participants(2, cap_usd=0.10)
        for _ in range(2):
            assert generate(relay.base_url, ada).status_code == 200
        assert generate(relay.base_url, bob).status_code == 200
        wait_settled(relay)
        before = {p.name: p.spent_micros for p in relay.participants()}
        admin_token = relay.admin_token
    with running_relay(tmp_path) as again:
        assert again.admin_token is None  # the same workshop: its admin token stays valid
        assert again.ledger.is_admin(admin_token or "")
        assert {p.name: p.spent_micros for p in again.participants()} == before
        assert generate(again.base_url, ada).status_code == 400  # the cap still counts the past
        assert generate(again.base_url, bob).status_code == 200
        assert again.recovered == 0
        wait_settled(again)
        spent = {p.name: p.spent_micros for p in again.participants()}
    assert spent["participant 1"] == before["participant 1"]
    assert spent["participant 2"] > before["participant 2"]


def test_requests_in_flight_at_a_crash_are_counted_once_at_their_estimate(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    ((participant, _),) = ledger.add_participants(1, cap_micros=micros(1.0), rate_per_min=None)
    rid = ledger.reserve(participant, model="m", method="generateContent", prompt="p",
                         est_input_tokens=10, est_output_tokens=1290, est_micros=40_000)  # fmt: skip
    ledger.close()  # the relay dies here, before settling
    ledger = Ledger(tmp_path)
    assert ledger.recover() == 1
    assert ledger.recover() == 0  # a second restart does not count it again
    assert ledger.participant(participant.id).spent_micros == 40_000
    # a late settlement of the same request changes nothing
    assert not ledger.settle(rid, status="ok", http_status=200, input_tokens=1,
                             output_tokens=1, cost_micros=1, latency_s=1.0)  # fmt: skip
    assert ledger.participant(participant.id).spent_micros == 40_000


def test_a_second_relay_on_the_same_workshop_is_refused(tmp_path: Path) -> None:
    with running_relay(tmp_path), pytest.raises(RuntimeError, match="Another relay"):
        Relay(tmp_path, "emulator").start()


def test_export_writes_prompts_images_and_costs_without_tokens(tmp_path: Path) -> None:
    with running_relay(tmp_path / "ws") as relay:
        (token,) = relay.add_participants(1, names=["Ada"], cap_usd=1.0)
        assert generate(relay.base_url, token, "a banana, exported").status_code == 200
    assert (
        main(["relay", "export", "--dir", str(tmp_path / "ws"), "--out", str(tmp_path / "out")])
        == 0
    )
    out = tmp_path / "out"
    rows = list(csv.DictReader((out / "requests.csv").open(encoding="utf-8")))
    assert rows[0]["participant"] == "Ada" and rows[0]["prompt"] == "a banana, exported"
    assert rows[0]["status"] == "ok" and float(rows[0]["cost_usd"]) == pytest.approx(
        0.0387, abs=1e-3
    )
    assert (out / rows[0]["images"]).exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"] == 1
    everything = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert token.encode() not in everything and b"token_hash" not in everything


def test_cli_manages_tokens_caps_and_pause_while_the_relay_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = str(tmp_path)
    with running_relay(tmp_path) as relay:
        assert main(["relay", "tokens", "add", "--dir", ws, "--count", "2", "--cap", "0.05",
                     "--names", "Ada"]) == 0  # fmt: skip
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[0] == "id\tname\ttoken" and len(lines) == 3
        ada = lines[1].split("\t")[2]
        assert generate(relay.base_url, ada).status_code == 200
        assert generate(relay.base_url, ada).status_code == 400  # the CLI's cap holds
        assert main(["relay", "cap", "--dir", ws, "--participant", "1", "0.50"]) == 0
        assert generate(relay.base_url, ada).status_code == 200
        assert main(["relay", "pause", "--dir", ws]) == 0
        assert "paused" in generate(relay.base_url, ada).text
        assert main(["relay", "resume", "--dir", ws]) == 0
        assert main(["relay", "cap", "--dir", ws, "--workshop", "0.01"]) == 0
        assert "whole workshop" in generate(relay.base_url, ada).text
        assert main(["relay", "cap", "--dir", ws, "--workshop", "none"]) == 0
        assert main(["relay", "tokens", "revoke", "--dir", ws, "1"]) == 0
        assert generate(relay.base_url, ada).status_code == 403
        capsys.readouterr()
        assert main(["relay", "tokens", "list", "--dir", ws]) == 0
        wait_settled(relay)
        listing = capsys.readouterr().out
        assert "Ada\t$0.50\t$0.0775\t2\trevoked" in listing and ada not in listing
        assert main(["relay", "tokens", "revoke", "--dir", ws, "99"]) == 2
        code_out = capsys.readouterr()
        assert "no participant 99" in code_out.err
        assert main(["relay", "join-code", "--dir", ws, "--cap", "1", "--uses", "1"]) == 0
        code = capsys.readouterr().out.strip()
        joined = httpx.post(
            relay.base_url + "/relay/join", json={"code": code.lower(), "name": "Cy"}
        )
        assert joined.status_code == 200 and joined.json()["participant"]["cap_usd"] == 1.0
        again = httpx.post(relay.base_url + "/relay/join", json={"code": code, "name": "Di"})
        assert again.status_code == 403 and "used up" in again.json()["error"]["message"]
        assert main(["relay", "admin-token", "--dir", ws]) == 0
        new_admin = capsys.readouterr().out.strip()
        assert relay.ledger.is_admin(new_admin) and not relay.ledger.is_admin(
            relay.admin_token or ""
        )


def test_serve_prints_its_url_first_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    import signal

    process = subprocess.Popen(
        [sys.executable, "-m", "nbbanana", "relay", "serve", "--dir", str(tmp_path),
         "--upstream", "emulator", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        health = httpx.get(url + "/healthz", timeout=10)
        assert health.json()["ok"] is True
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    err = process.stderr.read() if process.stderr else ""
    assert "admin token (shown only now" in err and "/gallery" in err


def test_stop_finishes_requests_in_flight(tmp_path: Path) -> None:
    import threading

    relay = Relay(tmp_path, "emulator", latency=1.0, grace=10).start()
    (token,) = relay.add_participants(1)
    answers: list[httpx.Response] = []
    caller = threading.Thread(target=lambda: answers.append(generate(relay.base_url, token)))
    caller.start()
    time.sleep(0.4)  # the request is with the upstream now
    relay.stop()
    caller.join(20)
    assert answers and answers[0].status_code == 200
    assert [r["status"] for r in Ledger(tmp_path).requests()] == ["ok"]


def test_the_same_image_stored_by_many_requests_at_once_is_stored_once(tmp_path: Path) -> None:
    """Identical answers settled together (a room asking for the same thing) must not
    collide on a shared temporary file name."""
    from concurrent.futures import ThreadPoolExecutor

    from nbbanana.relay._app import _store_image

    data = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16_000  # 4 MB: writes overlap
    with ThreadPoolExecutor(16) as pool:
        hashes = list(pool.map(lambda _: _store_image(tmp_path, "image/png", data), range(64)))
    assert len(set(hashes)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [f"{hashes[0]}.png"]
    assert (tmp_path / f"{hashes[0]}.png").read_bytes() == data

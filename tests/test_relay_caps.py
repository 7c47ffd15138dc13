"""Caps hold under concurrency: reservations make the check and the spend one step.

The emulator behind the relay waits a little on every call, so the requests below are
in flight together; without reservations they would all pass the cap check at once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from _relay_helpers import MODEL, generate, generate_body, running_relay, wait_settled

from nbbanana.relay._ledger import micros

pytestmark = pytest.mark.timeout(120)


async def _burst(base_url: str, tokens: list[str], per_token: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def one(token: str, n: int) -> httpx.Response:
            return await client.post(
                f"/v1beta/models/{MODEL}:generateContent",
                json=generate_body(f"banana {n}"),
                headers={"x-goog-api-key": token},
            )

        return await asyncio.gather(*(one(t, n) for t in tokens for n in range(per_token)))


def test_two_concurrent_requests_cannot_both_spend_the_last_dollar(tmp_path: Path) -> None:
    with running_relay(tmp_path, latency=0.3) as relay:
        # Room for one image (estimate ≈ $0.040), not two.
        (token,) = relay.add_participants(1, cap_usd=0.06)
        answers = asyncio.run(_burst(relay.base_url, [token], 8))
        ok = [a for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code == 400]
        assert len(ok) == 1 and len(refused) == 7
        assert "workshop budget of $0.06" in refused[0].json()["error"]["message"]
        assert refused[0].json()["error"]["status"] == "FAILED_PRECONDITION"
        wait_settled(relay)
        (participant,) = relay.participants()
        assert participant.spent_micros <= micros(0.06)


def test_thirty_participants_caps_and_the_workshop_cap_hold_exactly(tmp_path: Path) -> None:
    with running_relay(tmp_path, latency=0.2) as relay:
        tokens = relay.add_participants(30, cap_usd=0.10)  # two images each, not three
        relay.set_workshop_cap(1.00)  # room for 24 images, fewer than the 60 the caps allow
        answers = asyncio.run(_burst(relay.base_url, tokens, 4))
        ok = [a for a in answers if a.status_code == 200]
        assert all(a.status_code in (200, 400) for a in answers)
        # The relay's ledger equals the sum of what the answers themselves report.
        reported = sum(
            micros(
                a.json()["usageMetadata"]["promptTokenCount"] * 0.30 / 1e6
                + a.json()["usageMetadata"]["candidatesTokensDetails"][0]["tokenCount"] * 30 / 1e6
                + (a.json()["usageMetadata"]["candidatesTokenCount"]
                   - a.json()["usageMetadata"]["candidatesTokensDetails"][0]["tokenCount"]) * 2.5 / 1e6
            )
            for a in ok
        )  # fmt: skip
        wait_settled(relay)
        totals = relay.totals()
        assert micros(totals["spent_usd"]) == reported
        assert totals["spent_usd"] <= 1.00
        # The workshop cap bound first: it let through as many as its estimates allow.
        assert 22 <= len(ok) <= 25
        people = relay.participants()
        assert all(p.spent_micros <= micros(0.10) for p in people)
        assert sum(p.requests for p in people) == len(ok)
        workshop_refusals = [a for a in answers if "whole workshop" in a.text]
        assert workshop_refusals, "the workshop cap should have refused some"


def test_raising_a_cap_while_the_workshop_runs_lets_the_participant_continue(
    tmp_path: Path,
) -> None:
    with running_relay(tmp_path) as relay:
        (token,) = relay.add_participants(1, cap_usd=0.05)
        assert generate(relay.base_url, token).status_code == 200
        refused = generate(relay.base_url, token)
        assert refused.status_code == 400
        assert "ask the facilitator" in refused.json()["error"]["message"]
        relay.set_cap(1, 0.50)
        assert generate(relay.base_url, token).status_code == 200


def test_pause_refuses_everyone_and_resume_lets_them_back(tmp_path: Path) -> None:
    with running_relay(tmp_path) as relay:
        (token,) = relay.add_participants(1)
        relay.pause()
        refused = generate(relay.base_url, token)
        assert refused.status_code == 400
        assert "paused" in refused.json()["error"]["message"]
        relay.resume()
        assert generate(relay.base_url, token).status_code == 200


def test_request_rate_is_limited_per_participant_with_a_retry_delay(tmp_path: Path) -> None:
    with running_relay(tmp_path) as relay:
        slow, other = relay.add_participants(2, rate_per_min=2)
        assert generate(relay.base_url, slow).status_code == 200
        assert generate(relay.base_url, slow).status_code == 200
        limited = generate(relay.base_url, slow)
        assert limited.status_code == 429
        error = limited.json()["error"]
        assert error["status"] == "RESOURCE_EXHAUSTED" and "2 requests a minute" in error["message"]
        assert error["details"][0]["retryDelay"].endswith("s")
        assert int(limited.headers["retry-after"]) > 0
        assert generate(relay.base_url, other).status_code == 200  # per participant


def test_the_toolkit_shows_a_budget_refusal_plainly(tmp_path: Path) -> None:
    import nbbanana
    from nbbanana.errors import InvalidRequest

    with running_relay(tmp_path) as relay:
        (token,) = relay.add_participants(1, cap_usd=0.0)
        session = nbbanana.connect(base_url=relay.base_url, api_key=token)
        with pytest.raises(
            InvalidRequest, match=r"your workshop budget of \$0\.00 is used up; ask the facilitator"
        ):
            session.generate("a banana")
        # refused at once, not retried: one refusal recorded
        assert [r["status"] for r in relay.ledger.requests()] == ["refused"]

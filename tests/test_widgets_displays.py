"""How sessions, chats and results show themselves in a notebook, and money in words."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from _imagegen import jpeg_bytes, photo_like

import nbbanana
from nbbanana._format import format_count, format_usd
from nbbanana._spend import SpendSummary
from nbbanana.session import Session


@pytest.fixture(scope="module")
def session() -> Iterator[Session]:
    with nbbanana.connect(offline=True, max_cost_usd=1.0) as session:
        yield session


@pytest.mark.parametrize(
    ("usd", "text"),
    [
        (0, "$0.00"),
        (0.0001, "$0.0001"),
        (0.00003, "$0.00003"),
        (0.0039, "$0.0039"),
        (0.23597249999999997, "$0.24"),
        (0.23, "$0.23"),
        (12.5, "$12.50"),
        (1234.5, "$1,234.50"),
        (-0.5, "-$0.50"),
    ],
)
def test_format_usd_rounds_money_for_reading(usd: float, text: str) -> None:
    assert format_usd(usd) == text


def test_format_count_has_thousands_separators() -> None:
    assert format_count(1290) == "1,290"
    assert format_count(12) == "12"


def test_spend_summary_says_spent_cap_and_left() -> None:
    assert SpendSummary(0.23597249999999997, 1.0).text() == (
        "spent $0.24 of $1.00 cap · $0.76 left"
    )
    assert SpendSummary(0.2, None).text() == "spent $0.20 · no cap"
    over = SpendSummary(1.2, 1.0, offline=True)
    assert over.left == 0.0
    assert over.text().endswith("$0.00 left · offline: nothing billed")


def test_session_display_shows_spend_cap_and_left(session: Session) -> None:
    session.generate("A banana on a beach")
    page = session._repr_html_()
    assert f"spent {format_usd(session.spent)} of $1.00 cap" in page
    assert f"{format_usd(1.0 - session.spent)} left" in page
    assert not re.search(r"\d\.\d{5,}", page)  # no raw floats


def test_chat_display_shows_turns_as_thumbnails(session: Session) -> None:
    chat = session.chat()
    chat.send("A red kite over a field")
    chat.send("Make the kite blue")
    page = chat._repr_html_()
    assert page.count("<img ") == 2
    assert "Make the kite blue" in page
    assert "2 turns" in page
    assert "<nbbanana.Chat" not in page


def test_result_caption_gives_the_sent_size_not_the_thumbnail(session: Session) -> None:
    photo = photo_like(1536, 1024, seed=2)
    result = session.edit(jpeg_bytes(photo, 90), "Make the sky violet")
    sent_w, sent_h = result.inputs[0].size
    thumb = result.inputs[0].thumbnail
    assert thumb is not None and thumb.size != (sent_w, sent_h)
    page = result._repr_html_()
    assert f"({sent_w}×{sent_h} sent)" in page
    assert f"({thumb.width}×{thumb.height})" not in page

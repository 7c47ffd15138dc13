"""An answer with several images is costed for all of them: the estimate says it is per
image, Result.cost_usd and the session's ledger record every image (also when a relay
reports no usage), and a cap passed by such an answer holds from the next request on.
Through the real SDK (and the real ``openai`` SDK) over HTTP against the emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _client_helpers import session_for
from google.genai import types

from nbbanana import errors
from nbbanana._openai import connect_openai
from nbbanana.emulator import Emulator
from nbbanana.models import MODELS
from nbbanana.result import Usage

NB2 = "gemini-3.1-flash-image"
FLASH = "gemini-2.5-flash-image"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(seed=11) as emulator:
        yield emulator


def _model_calls(emu: Emulator) -> int:
    return sum(1 for r in emu.requests if r.path.endswith(":generateContent"))


# --------------------------------------------------------------------------- estimates


def test_an_estimate_says_it_is_per_image_when_the_count_is_unknown(emu: Emulator) -> None:
    session = session_for(emu.base_url, model=NB2)
    unknown = session.estimate("a paper boat", image_size="512")
    assert unknown.output_images is None
    assert str(unknown).startswith(f"≈ ${unknown.usd:.3f} per image (")
    assert unknown.usd_per_image == pytest.approx(MODELS[NB2].price_per_image("512"))

    three = session.estimate("a paper boat", image_size="512", output_images=3)
    assert "for 3 images" in str(three)
    assert three.usd == pytest.approx(unknown.usd + 2 * unknown.usd_per_image)
    one = session.estimate("a paper boat", image_size="512", output_images=1)
    assert one.usd == pytest.approx(unknown.usd) and " image" not in str(one)


# --------------------------------------------------------------------------- settling


def test_every_image_of_an_answer_is_costed_and_recorded(emu: Emulator) -> None:
    session = session_for(emu.base_url, model=NB2)
    estimate = session.estimate("four variations of a paper boat", image_size="512")
    result = session.generate("four variations of a paper boat", image_size="512")
    assert len(result.images) == 4
    assert result.usage.output_image_tokens == 4 * MODELS[NB2].output_image_tokens("512")
    assert result.cost_usd == pytest.approx(result.usage.cost_usd(MODELS[NB2]))
    assert result.cost_usd > 3 * MODELS[NB2].price_per_image("512")
    assert result.cost_usd > estimate.usd  # booked as one image, settled as four
    assert session.spent == pytest.approx(result.cost_usd)


def test_an_unmetered_answer_is_costed_by_its_images(emu: Emulator) -> None:
    """A relay that reports no usage must not make three images free."""
    session = session_for(emu.base_url, model=NB2)
    emu.inject("unmetered")
    result = session.generate("three variations of a kite", image_size="512")
    assert len(result.images) == 3
    assert result.usage.output_image_tokens == 3 * MODELS[NB2].output_image_tokens("512")
    assert result.cost_usd == pytest.approx(3 * MODELS[NB2].price_per_image("512"))
    assert session.spent == pytest.approx(result.cost_usd)


def test_a_gateway_reporting_no_usage_still_pays_for_every_image() -> None:
    with Emulator(seed=7, profile="proxy-20mb", openai_shape="images") as relay:
        session = connect_openai(relay.base_url + "/v1", "sk-test-key", model=FLASH)
        relay.inject("unmetered")
        result = session.generate("three variations of a kite")
    assert len(result.images) == 3
    assert result.cost_usd == pytest.approx(3 * MODELS[FLASH].price_per_image())
    assert session.spent == pytest.approx(result.cost_usd)


@pytest.mark.parametrize(
    ("reported", "details", "images", "expected"),
    [
        (3 * 750 + 20, [("IMAGE", 3 * 750), ("TEXT", 20)], 3, 3 * 750),  # Google: as said
        (750, None, 3, 3 * 750),  # a relay counting one image: all three
        (5000, None, 3, 5000),  # more than the table's: the server's number
        (20, [("TEXT", 20)], 0, 0),  # text only: nothing for images
    ],
)
def test_image_tokens_from_usage(
    reported: int, details: list[tuple[str, int]] | None, images: int, expected: int
) -> None:
    meta = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=10,
        candidates_token_count=reported,
        candidates_tokens_details=None
        if details is None
        else [types.ModalityTokenCount(modality=m, token_count=n) for m, n in details],
    )
    usage = Usage.from_metadata(meta, images=images, tokens_per_image=750)
    assert usage.output_image_tokens == expected
    assert usage.output_tokens >= usage.output_image_tokens
    assert usage.total_tokens >= 10 + usage.output_tokens


# --------------------------------------------------------------------------- the cap


def test_an_answer_dearer_than_its_reservation_is_recorded_and_the_cap_then_holds(
    emu: Emulator,
) -> None:
    one = session_for(emu.base_url, model=NB2).estimate("x" * 40, image_size="512")
    assert one.usd is not None
    cap = one.usd * 1.5  # room for one image's estimate, not for four images
    session = session_for(emu.base_url, model=NB2, max_cost_usd=cap)
    result = session.generate("four variations of a paper boat", image_size="512")
    assert result.cost_usd is not None and result.cost_usd > cap
    assert session.spent == pytest.approx(result.cost_usd)  # the real cost, not the booking
    before = _model_calls(emu)
    with pytest.raises(errors.CostLimitExceeded) as refused:
        session.generate("a paper boat", image_size="512")
    assert _model_calls(emu) == before  # nothing sent
    assert refused.value.spent_usd == pytest.approx(result.cost_usd)
    assert session.spent == pytest.approx(result.cost_usd)

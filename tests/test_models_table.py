"""The model table: GA and retired ids, aliases, the default, unknown models, and the
request options checked against it (nbbanana.options)."""

from __future__ import annotations

import warnings

import pytest
from google.genai import types

import nbbanana
from nbbanana import errors, models
from nbbanana.models import (
    ALIASES,
    DEFAULT_PREFERENCE,
    MODELS,
    RETIRED,
    default_model,
    get_model,
    is_image_model,
    resolve,
)
from nbbanana.options import build_config, check_request_options

GA = (
    "gemini-3-pro-image",
    "gemini-3.1-flash-image",
    "gemini-3.1-flash-lite-image",
    "gemini-nano-banana-2.1",
    "gemini-2.5-flash-image",
)


def test_the_table_holds_todays_ga_ids_and_no_preview_id() -> None:
    assert set(MODELS) == set(GA)
    assert not any(i.endswith("-preview") for i in MODELS)
    assert MODELS["gemini-3.1-flash-image"].status == "deprecated"


def test_every_fact_group_names_its_source() -> None:
    for info in MODELS.values():
        for fact in ("status", "sizes", "references", "price", "thinking", "grounding"):
            source = info.source(fact)
            assert source.source and source.as_of and source.confidence in ("high", "medium", "low")


@pytest.mark.parametrize("retired", sorted(RETIRED))
def test_a_retired_id_fails_naming_its_successor(retired: str) -> None:
    with pytest.raises(errors.ModelUnavailable) as caught:
        get_model(retired)
    successor = RETIRED[retired].successor
    assert caught.value.successor == successor
    message = str(caught.value)
    assert "\n" not in message and "shut down" in message and f'model="{successor}"' in message


def test_retired_successors_are_in_the_table() -> None:
    assert all(r.successor in MODELS for r in RETIRED.values())


def test_reported_retired_model_stays_usable_with_one_note(
    capsys: pytest.CaptureFixture[str],
) -> None:
    models._warned.discard("retired:gemini-2.5-flash-image")
    session = nbbanana.connect(offline=True, model="nano-banana")
    assert session.model == "gemini-2.5-flash-image"
    capsys.readouterr()
    result = session.generate("a banana")  # usable, offline too
    assert result.model == "gemini-2.5-flash-image"
    assert "reported shut down on 2026-10-02" in capsys.readouterr().err
    session.generate("a banana")
    get_model("gemini-2.5-flash-image")  # a lookup is not a use: no note
    assert capsys.readouterr().err == ""  # once only


@pytest.mark.parametrize(
    ("alias", "concrete"),
    [
        ("nano-banana", "gemini-2.5-flash-image"),
        ("nano-banana-pro", "gemini-3-pro-image"),
        ("Nano-Banana-2", "gemini-3.1-flash-image"),
        ("nano-banana-2-latest", "gemini-nano-banana-2.1"),
        ("nano-banana-lite", "gemini-3.1-flash-lite-image"),
        ("models/nano-banana-latest", DEFAULT_PREFERENCE[0]),
    ],
)
def test_aliases_resolve_to_a_concrete_id(alias: str, concrete: str) -> None:
    assert resolve(alias) == concrete
    assert get_model(alias).id == concrete


def test_an_alias_follows_what_is_available() -> None:
    assert resolve("nano-banana-2-latest", {"gemini-3.1-flash-image"}) == "gemini-3.1-flash-image"
    assert set(ALIASES["nano-banana-latest"]) <= set(MODELS)


def test_default_is_the_first_available_of_the_preference_list() -> None:
    assert models.DEFAULT_MODEL == DEFAULT_PREFERENCE[0] == default_model()
    assert default_model({"gemini-3-pro-image", "gemini-3.1-flash-image"}) == (
        "gemini-3.1-flash-image"
    )
    assert default_model({"gemini-9-image"}) == "gemini-9-image"  # only a new one served


def test_unknown_image_model_has_generic_facts_and_no_price() -> None:
    models._warned.discard("unknown:gemini-4-flash-image")
    with pytest.warns(UserWarning, match="does not know the model 'gemini-4-flash-image'"):
        info = get_model("gemini-4-flash-image")
    assert not info.known and info.price is None and info.status == "new"
    assert info.cost_usd(input_tokens=1000, output_image_tokens=1120) is None
    assert info.price_per_image("1K") is None


def test_warn_false_looks_up_an_unknown_model_without_the_warning() -> None:
    models._warned.discard("unknown:gemini-4-pro-image")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        info = get_model("gemini-4-pro-image", warn=False)
    assert not info.known and info.price is None
    # Silent look-ups do not use up the one warning a user's own call gets.
    with pytest.warns(UserWarning, match="does not know the model 'gemini-4-pro-image'"):
        get_model("gemini-4-pro-image")


def test_set_price_gives_an_unknown_model_a_price() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = models.set_price("gemini-5-image", per_image=0.05, image_size="1K")
        again = get_model("gemini-5-image")
    assert info.price_per_image("1K") == pytest.approx(0.05)
    assert again.price_per_image("1K") == pytest.approx(0.05)
    assert again.source("price").confidence == "user"


def test_prices_per_image_match_the_reference() -> None:
    pro = MODELS["gemini-3-pro-image"]
    assert pro.price_per_image("1K") == pytest.approx(0.1344)
    assert pro.price_per_image("4K") == pytest.approx(0.24)
    nb2 = MODELS["gemini-3.1-flash-image"]
    assert [round(nb2.price_per_image(s) or 0, 3) for s in ("512", "1K", "2K", "4K")] == [
        0.045, 0.067, 0.101, 0.151,
    ]  # fmt: skip
    assert MODELS["gemini-2.5-flash-image"].price_per_image() == pytest.approx(0.0387)
    assert MODELS["gemini-nano-banana-2.1"].price_per_image("1K") == pytest.approx(0.0336)
    assert MODELS["gemini-3.1-flash-lite-image"].price_per_image("1K") is None


def test_sizes_per_model() -> None:
    assert MODELS["gemini-3.1-flash-image"].image_sizes == ("512", "1K", "2K", "4K")
    assert MODELS["gemini-nano-banana-2.1"].image_sizes == ("1K", "2K", "4K")
    assert MODELS["gemini-3.1-flash-lite-image"].image_sizes == ("1K",)
    assert MODELS["gemini-3-pro-image"].output_size("16:9", "4K") == (5504, 3072)
    assert "8:1" in MODELS["gemini-nano-banana-2.1"].aspect_ratios


def test_is_image_model() -> None:
    assert is_image_model("models/gemini-3-pro-image")
    assert is_image_model("gemini-4-flash-image", ["generateContent"])
    assert is_image_model("gemini-nano-banana-3", ["generateContent", "countTokens"])
    assert not is_image_model("gemini-2.5-pro", ["generateContent"])
    assert not is_image_model("imagen-4.0-generate-001", ["predict"])
    assert not is_image_model("gemini-4-flash-image", ["embedContent"])


# --------------------------------------------------------------------------- options


def test_options_build_the_sdk_config() -> None:
    options = check_request_options(
        MODELS["gemini-3.1-flash-image"],
        image_size="2k",
        thinking_level="high",
        include_thoughts=True,
        grounding=True,
    )
    config = build_config(options)
    assert config.image_config is not None and config.image_config.image_size == "2K"
    assert config.thinking_config is not None
    assert config.thinking_config.thinking_level == types.ThinkingLevel.HIGH
    assert config.thinking_config.include_thoughts is True
    assert config.tools and config.tools[0].google_search is not None
    assert config.response_modalities == ["TEXT", "IMAGE"]
    plain = build_config(check_request_options(MODELS["gemini-2.5-flash-image"]))
    assert plain.thinking_config is None and plain.tools is None and plain.image_config is None


@pytest.mark.parametrize(
    ("model", "kwargs", "words"),
    [
        ("gemini-nano-banana-2.1", {"image_size": "512"}, "image_size='512' (1K, 2K, 4K)"),
        ("gemini-3.1-flash-lite-image", {"image_size": "2K"}, "(1K)"),
        ("gemini-2.5-flash-image", {"image_size": "1K"}, "none: omit image_size"),
        ("gemini-3-pro-image", {"thinking_level": "HIGH"}, "always thinks"),
        ("gemini-3.1-flash-image", {"thinking_level": "medium"}, "MINIMAL, HIGH"),
        ("gemini-2.5-flash-image", {"include_thoughts": True}, "does not think"),
        ("gemini-2.5-flash-image", {"grounding": True}, "Google Search grounding"),
        ("gemini-3-pro-image", {"aspect_ratio": "8:1"}, "aspect_ratio='8:1'"),
    ],
)
def test_options_a_model_does_not_take_are_refused(
    model: str, kwargs: dict[str, object], words: str
) -> None:
    with pytest.raises(errors.InvalidRequest) as caught:
        check_request_options(MODELS[model], **kwargs)  # type: ignore[arg-type]
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_fourteen_references_where_the_model_allows_it() -> None:
    pro = MODELS["gemini-3-pro-image"]
    with pytest.warns(UserWarning, match="6 objects and 5 people"):
        check_request_options(pro, reference_count=14)
    with pytest.raises(errors.TooManyReferenceImages, match=r"at most 14 .*6 objects and 5 people"):
        check_request_options(pro, reference_count=15)
    with pytest.raises(errors.TooManyReferenceImages, match="take up to 14"):
        check_request_options(MODELS["gemini-2.5-flash-image"], reference_count=4)
    nb2 = MODELS["gemini-3.1-flash-image"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_request_options(nb2, reference_count=14)


def test_unknown_models_pass_through_except_the_reference_limit() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = get_model("gemini-4-flash-image")
        options = check_request_options(info, image_size="8K", thinking_level="XHIGH")
    assert options.image_size == "8K" and options.thinking_level == "XHIGH"

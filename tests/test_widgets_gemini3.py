"""The studio and today's models: the picker lists what the endpoint serves, the controls
follow the chosen model (sizes, thinking, thoughts, grounding) and go into the request,
thoughts / sources / several images are shown after a run, references are checked with
the kernel's rule, and the gauges use the session's prices.

Against the real emulator over HTTP with the real google-genai SDK (no patching)."""

from __future__ import annotations

import asyncio
import re
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from _client_helpers import recorded_session
from _imagegen import jpeg_bytes, photo_like
from test_region_sdk import textured

import nbbanana
from nbbanana import discovery, models
from nbbanana.discovery import Catalogue, ListedModel, build_rows
from nbbanana.emulator import Emulator
from nbbanana.models import MODELS, RETIRED, get_model
from nbbanana.session import Session
from nbbanana.widgets import ImageUploader, PromptBox, Studio
from nbbanana.widgets._answer import THOUGHTS_NOTE, answer_html, strip_caption
from nbbanana.widgets._choices import (
    DEFAULT_LEVEL,
    discover_listing,
    listing_from_catalogue,
    model_controls,
    table_listing,
    thinking_features,
)
from nbbanana.widgets._prompt import aspect_ratio_options, reference_problem, validate_request

KEY = "AIzaSyD-nbbanana-gemini3-widget-key-12345"
PRO = "gemini-3-pro-image"
FLASH = "gemini-2.5-flash-image"
NB2 = "gemini-3.1-flash-image"
LITE = "gemini-3.1-flash-lite-image"
NEW = "gemini-4-flash-image"


@pytest.fixture(autouse=True)
def fresh_listing() -> Iterator[None]:
    """Listings are cached per base URL: every test asks its own emulator afresh."""
    discovery.clear_cache()
    yield
    discovery.clear_cache()


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with Emulator(api_keys=[KEY]) as emulator:
        yield emulator


def _session(emulator: Emulator, model: str = PRO, **options: Any) -> Session:
    return nbbanana.connect(api_key=KEY, base_url=emulator.base_url, model=model, **options)


def _listed(*ids: str) -> Catalogue:
    listed = [
        ListedModel(i, "Nano Banana 4" if i == NEW else "", ("generateContent",)) for i in ids
    ]
    return Catalogue("https://example.invalid", listed, 0.0, rows=build_rows(listed))


def _upload(n: int = 1) -> list[bytes]:
    return [jpeg_bytes(photo_like(320, 240, seed=20 + i), 80) for i in range(n)]


# ------------------------------------------------------------------ the picker


def test_the_picker_offers_what_the_service_lists_and_never_a_retired_id() -> None:
    # The service still lists a retired preview id: it is not offered.
    catalogue = _listed(PRO, NEW, "gemini-3-pro-image-preview")
    listing = listing_from_catalogue(catalogue, PRO)
    assert listing.discovered and listing.ids == [PRO, NEW]
    assert not any(i in RETIRED for i in listing.ids)
    labels = {c.id: c.label for c in listing.choices}
    assert labels[PRO] == f"Nano Banana Pro ({PRO})"
    assert labels[NEW] == f"Nano Banana 4 ({NEW}) — new to nbbanana, cost unknown"
    assert listing.default == PRO and listing.pick("anything-else") == PRO


def test_the_sessions_own_model_stays_offered_when_the_endpoint_does_not_list_it() -> None:
    listing = listing_from_catalogue(_listed(PRO), NB2)
    assert listing.ids == [PRO, NB2] and listing.pick(NB2) == NB2
    assert "not listed by this endpoint" in listing.choices[-1].label


def test_a_model_without_a_price_says_cost_unknown() -> None:
    listing = table_listing(PRO)
    assert listing.ids == list(MODELS) and not listing.discovered
    labels = {c.id: c.label for c in listing.choices}
    assert labels[LITE].endswith("cost unknown") and "cost unknown" not in labels[PRO]


class _Unlisting:
    """A session whose endpoint cannot be asked for its models."""

    model = PRO

    class pipeline:  # stands in for Session.pipeline
        model_info = staticmethod(get_model)

    def models(self) -> Catalogue:
        raise ConnectionError("connection refused\nmore lines")


def test_a_failed_listing_falls_back_to_the_table_and_says_why() -> None:
    listing = discover_listing(_Unlisting())  # type: ignore[arg-type]
    assert not listing.discovered and listing.ids == list(MODELS)
    assert listing.note == (
        "The model list could not be fetched (ConnectionError: connection refused); "
        "showing nbbanana's table."
    )


def test_the_studio_picker_lists_the_emulators_models_new_ones_with_generic_facts() -> None:
    with (
        Emulator(api_keys=[KEY], models=[PRO, NEW]) as emulator,
        _session(emulator) as session,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("error")  # the label says "new": no warning in the cell
        app = Studio(session)
        box = app.prompt_box
        assert [value for _, value in box.model.options] == [PRO, NEW]
        assert box.model.value == PRO
        box.model.value = NEW
        assert app.uploader.model == NEW
        # Generic facts: the family's sizes, no thinking or grounding controls.
        assert box.image_size.options == ("1K", "2K", "4K")
        assert box.features.layout.display == "none"
        assert "new to nbbanana, cost unknown" in box.model.label
        assert "Session" in box.status.value and "could not" not in box.status.value
        # A run on it: the image arrives, its cost is unknown (never a made-up number).
        box.prompt.value = "A banana"
        box.run.click()
        assert box.error.value == "" and app.state.turns[-1].cost_usd is None
        assert "Done in" in box.status.value and "cost unknown" in box.status.value


def test_the_picker_switches_no_warning_filter_and_leaves_the_users_warning() -> None:
    models._warned.discard("unknown:" + NEW)  # as in a fresh kernel

    def switched(*args: object, **kwargs: object) -> None:
        raise AssertionError("a process-wide warning filter was switched")

    with (
        Emulator(api_keys=[KEY], models=[PRO, NEW]) as emulator,
        _session(emulator) as session,
        warnings.catch_warnings(),
        pytest.MonkeyPatch.context() as patch,  # undone first, even when a check fails
    ):
        warnings.simplefilter("error")  # the label says "new": no warning in the cell
        for name in ("catch_warnings", "simplefilter", "filterwarnings", "resetwarnings"):
            patch.setattr(warnings, name, switched)
        app = Studio(session)  # the listing (a worker thread in a kernel) and the picker
        box = app.prompt_box
        box.model.value = NEW
        assert "new to nbbanana, cost unknown" in box.model.label
        app.uploader.add_bytes(_upload()[0], "street.jpg")
        box.prompt.value = "A banana"  # the gauge follows the prompt
        assert "cost unknown" in " ".join(app.uploader.summary["lines"])
        # Five references are above what a new model "works best with": advice the
        # gauge shows, not a problem (the kernel's check would warn: it is not asked).
        assert reference_problem(NEW, 5) is None
        assert validate_request("A banana", model=NEW, images=5) == []
    # The user's own look-up, in a later cell, still gets its one warning.
    with pytest.warns(UserWarning, match=f"does not know the model '{NEW}'"):
        get_model(NEW)


def test_the_studio_still_works_when_the_listing_fails() -> None:
    with Emulator(profile="proxy-20mb") as relay:
        session = nbbanana.connect(
            base_url=relay.base_url + "/v1", api="openai", api_key=KEY, model=FLASH
        )
        app = Studio(session)
        assert [value for _, value in app.prompt_box.model.options] == list(MODELS)
        status = app.prompt_box.status.value
        assert "could not be fetched (InvalidRequest" in status
        assert "showing nbbanana&#x27;s table" in status and "Session" in status
        session.close()


def test_set_models_keeps_the_choice_and_passes_on_only_real_changes() -> None:
    box = PromptBox(model=NB2)
    seen: list[str] = []
    box.on_model(seen.append)
    box.set_models(listing_from_catalogue(_listed(PRO, NB2), NB2))
    assert box.model.value == NB2 and seen == []  # no intermediate value passed on
    box.set_models(listing_from_catalogue(_listed(PRO), FLASH))
    assert seen == [PRO] and box.model.value == PRO
    assert box.image_size.options == ("1K", "2K", "4K")


# ------------------------------------------------------------------ the controls


@pytest.mark.parametrize(
    ("model", "sizes", "levels", "thoughts", "grounding"),
    [
        (FLASH, (), (), False, False),
        (PRO, ("1K", "2K", "4K"), (), True, True),
        (NB2, ("512", "1K", "2K", "4K"), ("MINIMAL", "HIGH"), True, True),
        (LITE, ("1K",), (), False, False),
    ],
)
def test_controls_follow_the_model(
    model: str, sizes: tuple[str, ...], levels: tuple[str, ...], thoughts: bool, grounding: bool
) -> None:
    controls = model_controls(get_model(model))
    assert (controls.image_sizes, controls.thinking_levels) == (sizes, levels)
    assert (controls.thoughts, controls.grounding) == (thoughts, grounding)
    box = PromptBox(model=model)
    assert box.image_size.options == sizes
    assert (box.thinking_level.layout.display == "") is bool(levels)
    assert (box.show_thoughts.layout.display == "") is thoughts
    assert (box.grounding.layout.display == "") is grounding
    assert (box.features.layout.display == "") is bool(levels or thoughts or grounding)


def test_only_what_the_model_takes_is_sent() -> None:
    pro, flash = get_model(PRO), get_model(FLASH)
    assert thinking_features(pro, level="HIGH", show_thoughts=True, grounding=True) == (
        None,  # Pro always thinks; it takes no level
        True,
        True,
    )
    assert thinking_features(flash, level="HIGH", show_thoughts=True, grounding=True) == (
        None,
        None,
        False,
    )
    assert thinking_features(get_model(NB2), level="MINIMAL") == ("MINIMAL", None, False)
    assert thinking_features(pro) == (None, None, False)  # unchecked: the model's default


def test_the_aspect_ratio_list_gives_sizes_at_the_chosen_image_size() -> None:
    assert ("1:1  (4096×4096)", "1:1") in aspect_ratio_options(PRO, "4K")
    assert ("16:9  (688×384)", "16:9") in aspect_ratio_options(NB2, "512")
    box = PromptBox(model=PRO)
    box.aspect_ratio.value = "16:9"
    box.image_size.value = "4K"
    assert box.aspect_ratio.label == "16:9  (5504×3072)" and box.aspect_ratio.value == "16:9"
    box.model.value = FLASH  # one size per ratio
    assert box.aspect_ratio.label == "16:9  (1344×768)"


def test_the_prompt_box_request_carries_the_gemini3_options() -> None:
    box = PromptBox(model=NB2, prompt="A banana")
    box.thinking_level.value = "HIGH"
    box.show_thoughts.value = True
    box.grounding.value = True
    box.image_size.value = "4K"
    request = box.request()
    assert (request.thinking_level, request.include_thoughts, request.grounding) == (
        "HIGH",
        True,
        True,
    )
    assert request.image_size == "4K"
    box.model.value = PRO  # no levels: the level resets, the boxes stay
    assert box.thinking_level.value == DEFAULT_LEVEL
    assert box.request().thinking_level is None and box.request().grounding
    box.model.value = FLASH  # takes none of them
    assert box.request().include_thoughts is None and not box.request().grounding


# ------------------------------------------------------------------ after a run


def test_a_run_sends_size_thoughts_and_grounding_and_shows_them(emulator: Emulator) -> None:
    session, wire = recorded_session(emulator.base_url, key=KEY, model=PRO)
    app = Studio(session)
    box = app.prompt_box
    box.prompt.value = "A poster of today's weather in Lisbon"
    box.image_size.value = "4K"
    box.show_thoughts.value = True
    box.grounding.value = True
    box.run.click()
    assert box.error.value == ""
    body = wire.generate_bodies()[-1]
    config = body["generationConfig"]
    assert config["imageConfig"]["imageSize"] == "4K"
    # The SDK (3.6.1) writes this one field in snake_case on the wire.
    thinking = config["thinkingConfig"]
    assert thinking.get("includeThoughts", thinking.get("include_thoughts")) is True
    assert body["tools"] == [{"googleSearch": {}}]
    assert app.compare.canvas.after_size == [4096, 4096]
    result = app.state.turns[-1]
    assert result.thoughts and result.sources and result.search_suggestions_html
    html = app.answer.extras.value
    assert '<details class="nbbanana-thoughts"' in html and "<details open" not in html
    assert f" — {THOUGHTS_NOTE}</summary>" in html
    assert all(s.url in html and s.title in html for s in result.sources)
    assert result.search_suggestions_html in html  # unchanged, as Google's terms require
    assert app.answer.layout.display == "" and app.answer.buttons == []
    # The chat keeps the options for the next turn.
    assert app.state.chat is not None and app.state.chat.grounding
    assert app.state.chat.include_thoughts is True


def test_answer_html_is_empty_for_a_plain_answer(emulator: Emulator) -> None:
    with _session(emulator, model=FLASH) as session:
        result = session.generate("A banana")
    assert answer_html(result) == ""


def test_every_image_of_an_answer_can_be_picked_and_edited_next(emulator: Emulator) -> None:
    session, wire = recorded_session(emulator.base_url, key=KEY, model=PRO)
    app = Studio(session)
    box = app.prompt_box
    box.prompt.value = "Three variations of a banana logo"
    box.run.click()
    result = app.state.turns[-1]
    assert len(result.images) == 3
    assert [b.description for b in app.answer.buttons] == ["Image 1 ●", "Image 2", "Image 3"]
    assert strip_caption(3, 0) in app.answer.caption.value
    # The strip comes first in the panel, right under the view it picks for.
    children = list(app.answer.children)
    assert children.index(app.answer.strip) < children.index(app.answer.extras)
    first_after = app.compare.canvas.after
    app.answer.buttons[2].click()
    assert app.state.picked == 2 and app.compare.canvas.after != first_after
    assert app.answer.buttons[2].description == "Image 3 ●"
    assert "Image 3 of 3 is the After image" in box.status.value
    assert app.state.before_image() is result.images[2]
    # The next run edits the picked image: a new chat that starts from it alone.
    assert app.state.reference_images() == [result.images[2]]
    # The gauge describes that one image, not the uploads or the whole chat.
    gauge = app.state.next_gauge(box.request())
    assert gauge is not None and gauge.size == result.images[2].size
    assert gauge.history_bytes < app.state.tree[1].chat._history_bytes()
    # ...and says what happens to it: a new chat, not the chat history.
    assert app.uploader.summary["title"] == "Next request: image 3 of 3 of turn 1"
    said = app.uploader.summary["lines"][0]
    assert "a new chat starts from it" in said and "goes back in the chat history" not in said
    box.prompt.value = "Make it blue"
    box.run.click()
    assert box.error.value == ""
    sent = wire.generate_bodies()[-1]["contents"]
    assert len(sent) == 1  # no history: only the picked image and the prompt
    assert sum(1 for part in sent[0]["parts"] if "inlineData" in part) == 1
    assert app.state.picked is None and len(app.state.turns) == 2
    assert len(app.history.buttons) == 2


# ------------------------------------------------------------------ references


def test_references_are_checked_with_the_kernels_rule_and_guidance() -> None:
    assert reference_problem(PRO, 14) is None
    problem = reference_problem(PRO, 15)
    assert problem is not None and "at most 14" in problem
    assert "up to 6 objects and 5 people" in problem
    assert "10 objects and 4 characters" in (reference_problem(NB2, 15) or "")
    assert validate_request("x", model=PRO, images=14) == []
    (message,) = validate_request("x", model=PRO, images=16)
    assert "up to 6 objects and 5 people" in message and message.endswith("Remove 2.")


def test_the_uploader_takes_fourteen_references_and_refuses_the_fifteenth() -> None:
    uploader = ImageUploader(model=PRO)
    assert uploader.max_images == 14
    for n, data in enumerate(_upload(14)):
        uploader.add_bytes(data, f"ref{n}.jpg")
    assert len(uploader.images) == 14
    with pytest.raises(Exception, match="up to 6 objects and 5 people"):
        uploader.tracker.begin("one-more", name="ref14.jpg", size=100)


# ------------------------------------------------------------------ prices in the gauge


def test_the_gauge_uses_the_sessions_price_per_image(emulator: Emulator) -> None:
    with _session(emulator, model=PRO, price_per_image=0.5) as session:
        app = Studio(session)
        (data,) = _upload()
        app.uploader.add_bytes(data, "a.jpg")
        gauge = app.uploader.gauge()
        assert gauge is not None and gauge.cost_usd is not None
        # $0.50 for the image (the session's price, not the table's $0.134) plus the
        # table's input price for ≈1,100 tokens.
        assert 0.5 < gauge.cost_usd < 0.51
        assert gauge.lines()[-1].startswith("≈") and "≈ $0.50 on" in gauge.lines()[-1]
        # After a turn, the gauge of the next one (the turn's image) too.
        app.prompt_box.prompt.value = "Make it blue"
        app.prompt_box.run.click()
        assert app.uploader.summary["title"] == "Next request: turn 1's image"
        assert re.search(r"≈ \$0\.5\d on gemini-3-pro-image$", app.uploader.summary["lines"][-1])


def test_a_model_without_a_price_shows_cost_unknown_in_the_gauge() -> None:
    uploader = ImageUploader(model=LITE)
    (data,) = _upload()
    uploader.add_bytes(data, "a.jpg")
    assert uploader.items[0]["lines"][-1].endswith("(cost unknown)")
    assert "cost unknown" in uploader.summary["lines"][-1]


def test_a_slow_listing_does_not_hold_up_the_studio_in_a_kernel() -> None:
    """In a kernel (a running event loop) the listing runs in a worker thread: the
    studio is built with the table's models, and offers the endpoint's once it answers."""

    async def scenario(emulator: Emulator) -> tuple[list[str], list[str]]:
        session = _session(emulator)
        release = threading.Event()
        listing = session.models

        def slow_models(*, refresh: bool = False) -> Catalogue:
            assert release.wait(30), "the listing was never released"
            return listing(refresh=refresh)

        session.models = slow_models  # type: ignore[method-assign]
        app = Studio(session)  # returns although the listing is still blocked
        before = [value for _, value in app.prompt_box.model.options]
        release.set()
        for _ in range(600):
            await asyncio.sleep(0.05)
            after = [value for _, value in app.prompt_box.model.options]
            if after != before:
                break
        session.close()
        return before, after

    with Emulator(api_keys=[KEY], models=[PRO, NEW]) as emulator:
        before, after = asyncio.run(scenario(emulator))
    assert before == list(MODELS)
    assert after == [PRO, NEW]


def test_the_region_gauge_uses_the_sessions_price_per_image(emulator: Emulator) -> None:
    with _session(emulator, model=PRO, price_per_image=0.5) as session:
        app = Studio(session)
        app.uploader.add_bytes(jpeg_bytes(photo_like(640, 480, seed=3), 85), "a.jpg")
        app.region.select((160, 120, 480, 360))
        app._update_gauge()
        assert app.uploader.summary["title"].startswith("Next request: a region of")
        # the session's $0.50 for the image, not the table's $0.134
        assert any(re.search(r"≈ \$0\.5\d", line) for line in app.uploader.summary["lines"])


def test_a_studio_run_on_a_new_model_warns_nowhere_and_leaves_the_users_warning() -> None:
    # The picker's label told the user; the run's own look-ups (estimate, chat, pipeline,
    # in the run's task and its worker thread) must not print the warning under the cell.
    models._warned.discard("unknown:" + NEW)  # as in a fresh kernel
    with (
        Emulator(api_keys=[KEY], models=[PRO, NEW]) as emulator,
        _session(emulator) as session,
    ):
        app = Studio(session)
        box = app.prompt_box
        box.model.value = NEW
        app.uploader.add_bytes(jpeg_bytes(textured(1200, 800, seed=5), 92), "photo.jpg")
        emulator.inject("transform", scale=1.0)  # an answer that can be placed back

        async def run_in_a_kernel() -> None:  # a task on a running loop, as in Jupyter
            task = app.run()
            assert isinstance(task, asyncio.Task)
            await task

        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            # A regional run: the crop goes through the regional machinery.
            app.region.rect = [0.3, 0.3, 0.6, 0.6]
            box.prompt.value = "paint a door"
            asyncio.run(run_in_a_kernel())
            assert box.error.value == "" and len(app.state.turns) == 1
            app.region.clear()
            box.prompt.value = "A banana on the sill"
            app.run()  # and a whole-picture one, outside a kernel
            assert box.error.value == "" and len(app.state.turns) == 2
        assert "unknown:" + NEW not in models._warned  # not used up by an error swallowed
    # The user's own call, in a later cell, still gets its one warning.
    with pytest.warns(UserWarning, match=f"does not know the model '{NEW}'"):
        get_model(NEW)


def test_told_unknown_holds_for_its_own_thread_only() -> None:
    # The user's code in another thread (or after the block) still gets the warning.
    models._warned.discard("unknown:" + NEW)
    heard: list[str] = []

    def users_thread() -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            get_model(NEW)
        heard.extend(str(w.message) for w in caught)

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        with models.told_unknown(f"models/{NEW}"):
            assert get_model(NEW).id == NEW  # quiet here
            thread = threading.Thread(target=users_thread)
            thread.start()
            thread.join()
    assert len(heard) == 1 and f"does not know the model '{NEW}'" in heard[0]

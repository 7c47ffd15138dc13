"""The prompt box: model-dependent choices, validation, error messages, status, Run."""

from __future__ import annotations

import pytest

from nbbanana.errors import (
    AuthError,
    Blocked,
    CorruptImageError,
    CostLimitExceeded,
    NoImage,
    RateLimited,
    RequestTooLarge,
    ServiceUnavailable,
)
from nbbanana.models import get_model
from nbbanana.widgets import PromptBox
from nbbanana.widgets._prompt import (
    KEEP_RATIO,
    TEMPLATES,
    RunRequest,
    aspect_ratio_options,
    describe_error,
    image_size_options,
    status_text,
    validate_request,
)

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image"
FLASH_31 = "gemini-3.1-flash-image"
KEY = "AIzaSyD-nbbanana-test-key-0123456789abc"


def test_image_sizes_are_only_those_the_model_supports() -> None:
    assert image_size_options(FLASH) == ()
    assert image_size_options(PRO) == ("1K", "2K", "4K")
    assert image_size_options(FLASH_31) == get_model(FLASH_31).image_sizes


def test_aspect_ratio_options_show_the_output_size() -> None:
    options = aspect_ratio_options(FLASH)
    assert options[0][1] == KEEP_RATIO
    assert ("16:9  (1344×768)", "16:9") in options
    assert [value for _, value in options[1:]] == list(get_model(FLASH).aspect_ratios)
    assert "1:4" in [value for _, value in aspect_ratio_options(FLASH_31)]


def test_validate_request_names_every_problem() -> None:
    assert validate_request("Make it blue", model=FLASH, images=1) == []
    problems = validate_request(
        "  ",
        model=FLASH,
        image_size="4K",
        images=5,
        uploads_busy=True,
        upload_errors=1,
    )
    text = " ".join(problems)
    assert "Type a prompt" in text
    assert "Wait until every image has arrived" in text
    assert "refused" in text
    assert "gemini-2.5-flash-image accepts at most 3 per request" in text and "Remove 2." in text
    assert "no image size '4K'" in text


@pytest.mark.parametrize(
    ("error", "title", "action"),
    [
        (Blocked("Prompt blocked", reason="SAFETY"), "safety filters (SAFETY)", "Rephrase"),
        (NoImage("No image", text="I cannot draw that."), "without an image", "Ask explicitly"),
        (RateLimited("Quota exceeded", retry_after=37), "Rate limited", "Wait 37 s"),
        (AuthError("API key not valid"), "API key was refused", "GEMINI_API_KEY"),
        (RequestTooLarge("too large", limit_bytes=20_000_000), "too large", "Run again"),
        (ServiceUnavailable("overloaded"), "busy or down", "in a minute"),
        (
            CostLimitExceeded("cap", estimate_usd=0.1, spent_usd=1.0, cap_usd=1.0),
            "cost limit",
            "max_cost_usd",
        ),
        (CorruptImageError("photo.jpg is damaged"), "could not be used", "another image"),
    ],
)
def test_errors_become_messages_with_what_to_do(error: Exception, title: str, action: str) -> None:
    message = describe_error(error)
    assert title in message.title
    assert action in message.action
    html = message.html()
    assert "What to do" in html and "role='alert'" in html


def test_what_the_model_said_is_shown_for_a_text_only_answer() -> None:
    message = describe_error(NoImage("No image", text="I cannot draw that."))
    assert "I cannot draw that." in message.detail


def test_unexpected_errors_are_one_line_and_never_show_a_key() -> None:
    message = describe_error(RuntimeError(f"boom with ?key={KEY} inside"))
    assert "RuntimeError" in message.detail
    assert KEY not in message.detail + message.html()
    assert "<script>" not in describe_error(ValueError("<script>")).html()


def test_status_text_shows_spend_cap_and_what_is_left() -> None:
    running = status_text(state="running", elapsed=2.345, estimate_usd=0.039, spent_usd=0.1)
    assert running == "Running… 2.3 s · estimate $0.039 · session spent $0.10 · no cap"
    done = status_text(
        state="done", elapsed=1.0, cost_usd=0.039, spent_usd=0.139, cap_usd=0.5, offline=True
    )
    assert done == (
        "Done in 1.0 s · cost $0.039 · session spent $0.14 of $0.50 cap · $0.36 left"
        " · offline: nothing billed"
    )
    assert status_text(state="failed", elapsed=0.5).startswith("Failed after 0.5 s")


def test_image_size_follows_the_model() -> None:
    box = PromptBox(model=FLASH)
    assert box.image_size.options == ()
    assert box.image_size.layout.display == "none" and box.image_size.disabled
    assert box.request().image_size is None
    box.model.value = PRO
    assert box.image_size.options == ("1K", "2K", "4K")
    assert box.image_size.value == "1K" and not box.image_size.disabled
    box.image_size.value = "4K"
    box.model.value = FLASH_31
    assert box.image_size.value == "4K"  # kept: the new model has it too
    box.model.value = FLASH
    assert box.request().image_size is None


def test_aspect_ratio_is_kept_across_models_when_possible() -> None:
    box = PromptBox(model=FLASH_31)
    box.aspect_ratio.value = "1:4"
    box.model.value = FLASH  # no 1:4 here
    assert box.aspect_ratio.value == KEEP_RATIO
    box.aspect_ratio.value = "16:9"
    box.model.value = PRO
    assert box.request().aspect_ratio == "16:9"


def test_a_template_fills_the_prompt() -> None:
    box = PromptBox()
    text = next(iter(TEMPLATES.values()))
    box.template.value = text
    assert box.prompt.value == text
    assert box.template.value == ""  # ready to pick again


def test_run_click_sends_the_request_and_not_while_running() -> None:
    box = PromptBox(model=PRO, prompt="  A banana on the moon ")
    box.aspect_ratio.value = "3:2"
    box.image_size.value = "2K"
    requests: list[RunRequest] = []
    box.on_run(requests.append)
    box.run.click()
    assert requests == [RunRequest("A banana on the moon", PRO, "3:2", "2K")]
    box.set_running(True)
    assert box.run.disabled and box.run.description == "Running…"
    box.run.click()
    assert len(requests) == 1
    box.set_running(False)
    box.run.click()
    assert len(requests) == 2


def test_problems_and_errors_are_shown_and_cleared() -> None:
    box = PromptBox()
    box.show_problems(["Type a prompt."])
    assert "Type a prompt." in box.error.value
    box.show_problems([])
    assert box.error.value == ""
    box.show_error(describe_error(RateLimited("slow down", retry_after=5)))
    assert "Wait 5 s" in box.error.value
    box.show_status("Done <b>")
    assert "Done &lt;b&gt;" in box.status.value


@pytest.mark.parametrize(
    "error",
    [
        Blocked("The answer was blocked (finishReason SAFETY).", reason="SAFETY"),
        RateLimited("Rate limit or quota exceeded (429).", retry_after=37),
        ServiceUnavailable("The service failed (503)."),
        CostLimitExceeded("This call would cost $1.", estimate_usd=1, spent_usd=0, cap_usd=1),
        CorruptImageError("photo.jpg is damaged: export it again."),
    ],
)
def test_the_advice_comes_from_the_error_once(error: Exception) -> None:
    message = describe_error(error)
    assert message.action and message.action == getattr(error, "hint", None)
    assert message.action not in message.detail  # shown once, under "What to do"


def test_layout_nothing_is_cut_off() -> None:
    box = PromptBox()
    # Labels as wide as their text; each list wide enough for its longest option.
    for dropdown in (box.model, box.aspect_ratio, box.image_size):
        assert dropdown.style.description_width == "initial"
    longest = max(len(label) for label, _ in box.aspect_ratio.options)
    assert int(box.aspect_ratio.layout.width.removesuffix("px")) >= 7 * longest + 60
    # The prompt box is not 100 % wide plus margins (its right border was clipped).
    assert box.prompt.layout.width != "100%"
    assert box.children[1].layout.flex_flow == "row wrap"

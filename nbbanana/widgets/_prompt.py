"""The prompt box: what to ask, of which model, at which size — and what came of it.

The rules (which sizes a model offers, what makes a request incomplete, how an error is
explained to a person, what the status line says) are plain functions here; the
:class:`PromptBox` widget only shows them and calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

import ipywidgets as w

from .._spend import SpendSummary
from ..errors import (
    APIError,
    AuthError,
    Blocked,
    CostLimitExceeded,
    ImageError,
    NbbananaError,
    NoImage,
    RateLimited,
    RequestTooLarge,
    ServiceUnavailable,
    TooManyReferenceImages,
    redact,
)
from ..models import DEFAULT_MODEL, MODELS, get_model
from ._gauge import format_usd

__all__ = [
    "KEEP_RATIO",
    "TEMPLATES",
    "PromptBox",
    "RunRequest",
    "UserMessage",
    "aspect_ratio_options",
    "describe_error",
    "image_size_options",
    "status_text",
    "validate_request",
]

#: Prompt templates offered in the box; ``{}``-free so they can be used as they are.
TEMPLATES: dict[str, str] = {
    "Remove the background": "Remove the background and place the subject on plain white.",
    "Watercolour": "Turn this photo into a soft watercolour painting, keeping the composition.",
    "Golden hour": "Relight the scene as if at golden hour, with warm low sunlight.",
    "Product shot": "Make a clean studio product shot of the main object on a light grey table.",
    "Sketch": "Redraw this as a detailed pencil sketch.",
}

#: The aspect-ratio option meaning "let the model decide" (edits keep the input's ratio).
KEEP_RATIO = "auto"


@dataclass(frozen=True)
class RunRequest:
    """One click of Run, validated: what the studio will send."""

    prompt: str
    model: str
    aspect_ratio: str | None
    image_size: str | None


@dataclass(frozen=True)
class UserMessage:
    """An error as a person should read it: what happened, and what to do."""

    title: str
    detail: str
    action: str

    def html(self) -> str:
        return (
            f"<div class='nbb-error' role='alert'><b>{escape(self.title)}</b>"
            + (f"<div>{escape(self.detail)}</div>" if self.detail else "")
            + (f"<div><i>What to do:</i> {escape(self.action)}</div>" if self.action else "")
            + "</div>"
        )


def image_size_options(model: str) -> tuple[str, ...]:
    """The ``image_size`` values ``model`` supports; empty for models without the option."""
    return get_model(model).image_sizes


def aspect_ratio_options(model: str) -> list[tuple[str, str]]:
    """(label, value) pairs for the aspect-ratio choice, "auto" first."""
    info = get_model(model)
    sizes = info.output_sizes[info.default_image_size]
    options = [("auto (an edit keeps its input's shape)", KEEP_RATIO)]
    for ratio in info.aspect_ratios:
        if ratio in sizes:
            width, height = sizes[ratio]
            options.append((f"{ratio}  ({width}×{height})", ratio))
        else:
            options.append((ratio, ratio))
    return options


def validate_request(
    prompt: str,
    *,
    model: str,
    image_size: str | None = None,
    images: int = 0,
    uploads_busy: bool = False,
    upload_errors: int = 0,
) -> list[str]:
    """Everything that stops a request from being sent, in plain words (empty: ready)."""
    info = get_model(model)
    problems = []
    if not prompt.strip():
        problems.append("Type a prompt: say what to generate, or how to change the images.")
    if uploads_busy:
        problems.append("Wait until every image has arrived and been fitted.")
    if upload_errors:
        problems.append("Remove the images that were refused (marked in red) first.")
    if images > info.max_reference_images:
        problems.append(
            f"{info.name} accepts at most {info.max_reference_images} images: remove "
            f"{images - info.max_reference_images}."
        )
    if image_size is not None and image_size not in info.image_sizes:
        problems.append(
            f"{info.name} has no image size {image_size!r}; choose one of "
            f"{', '.join(info.image_sizes) or 'none'}."
        )
    return problems


#: The heading the studio shows above each kind of error (the advice is the error's own
#: ``hint``); the first class that matches wins.
_TITLES: tuple[tuple[type[NbbananaError], str], ...] = (
    (Blocked, "Blocked by the safety filters"),
    (NoImage, "The model answered without an image"),
    (RateLimited, "Rate limited: too many requests for your quota"),
    (AuthError, "The API key was refused"),
    (RequestTooLarge, "The request was too large for this endpoint"),
    (TooManyReferenceImages, "Too many images"),
    (ServiceUnavailable, "The service is busy or down"),
    (CostLimitExceeded, "Stopped by the session's cost limit"),
    (ImageError, "An image could not be used"),
    (APIError, "The request failed"),
    (NbbananaError, "The request could not be made"),
)


def describe_error(exc: BaseException) -> UserMessage:
    """Turn any failure of a request into a message for the person at the keyboard:
    a heading, the error's :attr:`~nbbanana.errors.NbbananaError.message` and its
    :attr:`~nbbanana.errors.NbbananaError.hint`."""
    if not isinstance(exc, NbbananaError):
        return UserMessage(
            "Something unexpected went wrong",
            f"{type(exc).__name__}: {redact(str(exc))}",
            "Run again; if it keeps happening, please report it with the steps that led here.",
        )
    title = next(title for kind, title in _TITLES if isinstance(exc, kind))
    if isinstance(exc, Blocked) and exc.reason:
        title += f" ({exc.reason})"
    detail = redact(exc.message or str(exc))
    if isinstance(exc, NoImage) and exc.text.strip():
        detail = f"The model said: “{redact(exc.text.strip()[:300])}”"
    return UserMessage(title, detail, exc.hint)


def status_text(
    *,
    state: str,
    elapsed: float,
    estimate_usd: float | None = None,
    cost_usd: float | None = None,
    spent_usd: float = 0.0,
    cap_usd: float | None = None,
    offline: bool = False,
) -> str:
    """The one-line status under the Run button.

    ``state`` is "running", "done" or "failed"; then the session's spend, its cap and
    what is left; offline sessions say that nothing is billed.
    """
    parts = []
    if state == "running":
        parts.append(f"Running… {elapsed:.1f} s")
        if estimate_usd is not None:
            parts.append(f"estimate {format_usd(estimate_usd)}")
    elif state == "done":
        parts.append(f"Done in {elapsed:.1f} s")
        if cost_usd is not None:
            parts.append(f"cost {format_usd(cost_usd)}")
    else:
        parts.append(f"Failed after {elapsed:.1f} s")
    parts.append("session " + SpendSummary(spent_usd, cap_usd, offline=offline).text())
    return " · ".join(parts)


class PromptBox(w.VBox):  # type: ignore[misc]
    """Prompt, model, aspect ratio, image size, templates, a Run button and a status line."""

    def __init__(self, *, model: str = DEFAULT_MODEL, prompt: str = "") -> None:
        model_ids = list(MODELS)
        if model not in model_ids:
            model_ids.append(model)
        # Not width 100%: the widget's own margins would push its right border out of
        # the studio's box, where it is clipped.
        self.prompt = w.Textarea(
            value=prompt,
            placeholder="Describe the image to generate, or how to change the uploaded ones…",
            layout=w.Layout(width="auto", height="80px", margin="2px 4px 2px 2px"),
        )
        self.prompt.add_class("nbb-prompt")
        self.template = w.Dropdown(
            options=[("Templates…", ""), *((name, text) for name, text in TEMPLATES.items())],
            value="",
            layout=w.Layout(width="180px"),
        )
        # Labels as wide as their text ("initial"), and each list as wide as its longest
        # option, so no choice is cut off; the row wraps on narrow screens.
        label = {"description_width": "initial"}
        self.model = w.Dropdown(
            options=[(f"{get_model(m).name} ({m})", m) for m in model_ids],
            value=model,
            description="Model",
            style=label,
            layout=w.Layout(width="400px"),
        )
        self.aspect_ratio = w.Dropdown(
            description="Aspect", style=label, layout=w.Layout(width="330px")
        )
        self.image_size = w.Dropdown(
            description="Size", style=label, layout=w.Layout(width="130px")
        )
        self.run = w.Button(description="Run", button_style="primary", icon="play")
        self.run.add_class("nbb-run")
        self.status = w.HTML(value="")
        self.status.add_class("nbb-status")
        self.error = w.HTML(value="")
        self.error.add_class("nbb-error-box")
        self._run_callbacks: list[Callable[[RunRequest], None]] = []
        self._update_model_options(model)

        self.template.observe(self._template_chosen, names="value")
        self.model.observe(lambda change: self._update_model_options(change["new"]), names="value")
        self.run.on_click(lambda _button: self._clicked())
        super().__init__(
            children=[
                self.prompt,
                w.HBox(
                    [self.model, self.aspect_ratio, self.image_size, self.template],
                    layout=w.Layout(flex_flow="row wrap"),
                ),
                w.HBox([self.run, self.status], layout=w.Layout(align_items="center")),
                self.error,
            ]
        )
        self.add_class("nbb-prompt-box")

    # ------------------------------------------------------------------ behaviour

    def on_run(self, callback: Callable[[RunRequest], None]) -> None:
        """Call ``callback(request)`` when Run is clicked with a complete request."""
        self._run_callbacks.append(callback)

    def request(self) -> RunRequest:
        aspect = self.aspect_ratio.value
        return RunRequest(
            prompt=self.prompt.value.strip(),
            model=self.model.value,
            aspect_ratio=None if aspect == KEEP_RATIO else aspect,
            image_size=self.image_size.value if self.image_size.options else None,
        )

    def set_running(self, running: bool) -> None:
        self.run.disabled = running
        self.run.description = "Running…" if running else "Run"
        self.run.icon = "spinner" if running else "play"

    def show_status(self, text: str) -> None:
        self.status.value = f"<span class='nbb-status-text'>{escape(text)}</span>"

    def show_error(self, message: UserMessage | None) -> None:
        self.error.value = message.html() if message else ""

    def show_problems(self, problems: list[str]) -> None:
        if problems:
            self.show_error(UserMessage("Not ready to run", " ".join(problems), ""))
        else:
            self.show_error(None)

    # ------------------------------------------------------------------ callbacks

    def _template_chosen(self, change: dict[str, Any]) -> None:
        if change["new"]:
            self.prompt.value = change["new"]
            self.template.value = ""

    def _update_model_options(self, model: str) -> None:
        current_ratio = self.aspect_ratio.value
        options = aspect_ratio_options(model)
        self.aspect_ratio.options = options
        values = [value for _, value in options]
        self.aspect_ratio.value = current_ratio if current_ratio in values else KEEP_RATIO
        sizes = image_size_options(model)
        current_size = self.image_size.value
        self.image_size.options = sizes
        if sizes:
            default = get_model(model).default_image_size
            self.image_size.value = current_size if current_size in sizes else default or sizes[0]
        self.image_size.layout.display = "" if sizes else "none"
        self.image_size.disabled = not sizes

    def _clicked(self) -> None:
        if self.run.disabled:
            return
        request = self.request()
        for callback in list(self._run_callbacks):
            callback(request)

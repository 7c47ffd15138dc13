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

from .._options import check_reference_count
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
from ..models import DEFAULT_MODEL, ModelInfo, get_model
from ._choices import (
    DEFAULT_LEVEL,
    ModelInfoFn,
    ModelListing,
    model_controls,
    quiet_model_info,
    table_listing,
    thinking_features,
)
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
    "reference_problem",
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
    #: Gemini 3 options, only where the model takes them (see :func:`._choices.thinking_features`).
    thinking_level: str | None = None
    include_thoughts: bool | None = None
    grounding: bool = False

    @property
    def settings(self) -> tuple[str | bool | None, ...]:
        """What a chat is made with: a change of any of these starts a new chat."""
        return (
            self.model,
            self.aspect_ratio,
            self.image_size,
            self.thinking_level,
            self.include_thoughts,
            self.grounding,
        )


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


def image_size_options(model: str | ModelInfo) -> tuple[str, ...]:
    """The ``image_size`` values ``model`` supports; empty for models without the option."""
    return get_model(model).image_sizes


def reference_problem(model: str | ModelInfo, images: int) -> str | None:
    """Why ``images`` references are too many for ``model`` (the kernel's own check and
    wording, with the model's guidance on objects and people), or ``None``."""
    info = get_model(model, warn=False)  # an unknown id: the picker says so
    # Only a refusal is asked for: above "works best with up to …" the kernel's check
    # warns, and that is advice the gauge shows, not a problem.
    if images > info.max_reference_images:
        try:
            check_reference_count(info, images)
        except TooManyReferenceImages as exc:
            return str(exc)
    return None


def aspect_ratio_options(
    model: str | ModelInfo, image_size: str | None = None
) -> list[tuple[str, str]]:
    """(label, value) pairs for the aspect-ratio choice, "auto" first; each label gives
    the output size at ``image_size`` (default: the model's default size)."""
    info = get_model(model)
    key = image_size if image_size in info.output_sizes else info.default_image_size
    sizes = info.output_sizes[key]
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
    model: str | ModelInfo,
    image_size: str | None = None,
    images: int = 0,
    uploads_busy: bool = False,
    upload_errors: int = 0,
) -> list[str]:
    """Everything that stops a request from being sent, in plain words (empty: ready)."""
    info = get_model(model, warn=False)  # an unknown id is no problem: the server decides
    problems = []
    if not prompt.strip():
        problems.append("Type a prompt: say what to generate, or how to change the images.")
    if uploads_busy:
        problems.append("Wait until every image has arrived and been fitted.")
    if upload_errors:
        problems.append("Remove the images that were refused (marked in red) first.")
    too_many = reference_problem(info, images)
    if too_many:
        problems.append(f"{too_many} Remove {images - info.max_reference_images}.")
    if image_size is not None and info.known and image_size not in info.image_sizes:
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

    ``state`` is "running", "done", "failed" or "cancelled"; then the session's spend, its cap and
    what is left; offline sessions say that nothing is billed.
    """
    parts = []
    if state == "running":
        parts.append(f"Running… {elapsed:.1f} s")
        if estimate_usd is not None:
            parts.append(f"estimate {format_usd(estimate_usd)}")
    elif state == "done":
        parts.append(f"Done in {elapsed:.1f} s")
        # A model without a known price (new to nbbanana, or none published) says so.
        parts.append(f"cost {format_usd(cost_usd)}" if cost_usd is not None else "cost unknown")
    elif state == "cancelled":  # nothing changed; a request already sent may still be billed
        parts.append(f"Cancelled after {elapsed:.1f} s")
    else:
        parts.append(f"Failed after {elapsed:.1f} s")
        if cost_usd is not None:  # paid for all the same (a regional answer not placed)
            parts.append(f"cost {format_usd(cost_usd)}")
    parts.append("session " + SpendSummary(spent_usd, cap_usd, offline=offline).text())
    return " · ".join(parts)


class PromptBox(w.VBox):  # type: ignore[misc]
    """Prompt, model, aspect ratio, image size, the Gemini 3 options (thinking, thoughts,
    Google Search) where the model takes them, templates, a Run button and a status line.

    ``listing`` is what the model picker offers (default: nbbanana's table; the studio
    replaces it with what the endpoint serves, :meth:`set_models`). ``model_info`` gives
    a model's facts (the studio passes its session's, which knows a price set with
    ``connect(price_per_image=...)``).
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        prompt: str = "",
        listing: ModelListing | None = None,
        model_info: ModelInfoFn = get_model,
    ) -> None:
        self._model_info = quiet_model_info(model_info)
        listing = listing or table_listing(model, model_info)
        self.listing = listing
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
            options=[(c.label, c.id) for c in listing.choices],
            value=listing.pick(model),
            description="Model",
            style=label,
            layout=w.Layout(width=_model_width(listing)),
        )
        self.model.add_class("nbb-model")
        self.aspect_ratio = w.Dropdown(
            description="Aspect", style=label, layout=w.Layout(width="330px")
        )
        self.image_size = w.Dropdown(
            description="Size", style=label, layout=w.Layout(width="130px")
        )
        self.image_size.add_class("nbb-size")
        self.thinking_level = w.Dropdown(
            options=[("default", DEFAULT_LEVEL)],
            value=DEFAULT_LEVEL,
            description="Thinking",
            style=label,
            layout=w.Layout(width="170px"),
        )
        self.thinking_level.add_class("nbb-thinking")
        self.show_thoughts = w.Checkbox(
            value=False, description="Show thoughts", indent=False, layout=w.Layout(width="auto")
        )
        self.show_thoughts.add_class("nbb-show-thoughts")
        self.grounding = w.Checkbox(
            value=False,
            description="Google Search grounding",
            indent=False,
            layout=w.Layout(width="auto"),
        )
        self.grounding.add_class("nbb-grounding")
        self.features = w.HBox(
            [self.thinking_level, self.show_thoughts, self.grounding],
            layout=w.Layout(flex_flow="row wrap", align_items="center", grid_gap="4px 16px"),
        )
        self.features.add_class("nbb-features")
        self.run = w.Button(description="Run", button_style="primary", icon="play")
        self.run.add_class("nbb-run")
        self.status = w.HTML(value="")
        self.status.add_class("nbb-status")
        self.error = w.HTML(value="")
        self.error.add_class("nbb-error-box")
        self._run_callbacks: list[Callable[[RunRequest], None]] = []
        self._model_callbacks: list[Callable[[str], None]] = []
        self._updating = False
        self._updating_sizes = False
        self._update_model_options(self.model.value)

        self.template.observe(self._template_chosen, names="value")
        self.model.observe(self._model_changed, names="value")
        self.image_size.observe(lambda _change: self._update_ratio_labels(), names="value")
        self.run.on_click(lambda _button: self._clicked())
        super().__init__(
            children=[
                self.prompt,
                w.HBox(
                    [self.model, self.aspect_ratio, self.image_size, self.template],
                    layout=w.Layout(flex_flow="row wrap"),
                ),
                self.features,
                w.HBox([self.run, self.status], layout=w.Layout(align_items="center")),
                self.error,
            ]
        )
        self.add_class("nbb-prompt-box")

    # ------------------------------------------------------------------ behaviour

    def on_run(self, callback: Callable[[RunRequest], None]) -> None:
        """Call ``callback(request)`` when Run is clicked with a complete request."""
        self._run_callbacks.append(callback)

    def on_model(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(model_id)`` when the chosen model changes (by the person, or
        because a new listing no longer offers it)."""
        self._model_callbacks.append(callback)

    def set_models(self, listing: ModelListing) -> None:
        """Offer ``listing``'s models; the chosen one stays when it is still offered."""
        current = self.model.value
        chosen = listing.pick(current)
        self.listing = listing
        # Changing a dropdown's options selects its first entry: the intermediate values
        # are no choice of anyone's, so they are not passed on.
        self._updating = True
        try:
            self.model.options = [(c.label, c.id) for c in listing.choices]
            self.model.value = chosen
            self.model.layout.width = _model_width(listing)
        finally:
            self._updating = False
        self._update_model_options(chosen)
        if chosen != current:
            self._notify_model(chosen)

    def request(self) -> RunRequest:
        aspect = self.aspect_ratio.value
        level, include, grounding = thinking_features(
            self._model_info(self.model.value),
            level=self.thinking_level.value or DEFAULT_LEVEL,
            show_thoughts=bool(self.show_thoughts.value),
            grounding=bool(self.grounding.value),
        )
        return RunRequest(
            prompt=self.prompt.value.strip(),
            model=self.model.value,
            aspect_ratio=None if aspect == KEEP_RATIO else aspect,
            image_size=self.image_size.value if self.image_size.options else None,
            thinking_level=level,
            include_thoughts=include,
            grounding=grounding,
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

    def _model_changed(self, change: dict[str, Any]) -> None:
        if self._updating or change["new"] is None:
            return
        self._update_model_options(change["new"])
        self._notify_model(change["new"])

    def _notify_model(self, model: str) -> None:
        for callback in list(self._model_callbacks):
            callback(model)

    def _update_model_options(self, model: str) -> None:
        info = self._model_info(model)
        controls = model_controls(info)
        sizes = controls.image_sizes
        current_size = self.image_size.value
        self._updating_sizes = True
        try:
            self.image_size.options = sizes
            if sizes:
                default = controls.default_size
                self.image_size.value = (
                    current_size if current_size in sizes else default or sizes[0]
                )
        finally:
            self._updating_sizes = False
        self.image_size.layout.display = "" if sizes else "none"
        self.image_size.disabled = not sizes
        self._update_ratio_labels(info)
        # Thinking level, thoughts and grounding: shown only where the model takes them
        # (a checked box the model cannot take is not sent: :func:`thinking_features`).
        level = self.thinking_level.value
        self.thinking_level.options = controls.level_options
        self.thinking_level.value = level if level in controls.thinking_levels else DEFAULT_LEVEL
        _show(self.thinking_level, bool(controls.thinking_levels))
        _show(self.show_thoughts, controls.thoughts)
        _show(self.grounding, controls.grounding)
        _show(
            self.features, bool(controls.thinking_levels or controls.thoughts or controls.grounding)
        )

    def _update_ratio_labels(self, info: ModelInfo | None = None) -> None:
        """The aspect-ratio list of the chosen model, each with its size at the chosen
        image size (a 4K choice shows 4K pixel sizes)."""
        if self._updating_sizes:
            return
        info = info or self._model_info(self.model.value)
        current_ratio = self.aspect_ratio.value
        options = aspect_ratio_options(
            info, self.image_size.value if self.image_size.options else None
        )
        if list(self.aspect_ratio.options) == options:
            return
        self.aspect_ratio.options = options
        values = [value for _, value in options]
        self.aspect_ratio.value = current_ratio if current_ratio in values else KEEP_RATIO

    def _clicked(self) -> None:
        if self.run.disabled:
            return
        request = self.request()
        for callback in list(self._run_callbacks):
            callback(request)


def _show(widget: w.Widget, visible: bool) -> None:
    widget.layout.display = "" if visible else "none"
    if hasattr(widget, "disabled"):
        widget.disabled = not visible


def _model_width(listing: ModelListing) -> str:
    """Wide enough for the longest label (JupyterLab's font: about 7 px a character)."""
    longest = max((len(c.label) for c in listing.choices), default=30)
    return f"{max(400, 7 * longest + 80)}px"

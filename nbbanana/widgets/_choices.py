"""Which models the studio offers, and which controls each one gets — without widgets.

The model picker lists what the endpoint serves (:meth:`Session.models`, the
service's ``models.list``; offline, the emulator's catalogue), never the static table
alone: ids the service no longer serves, or that nbbanana knows were shut down, are not
offered, and an image model new to nbbanana is offered with generic facts and "cost
unknown". When the listing fails, the table is offered and the status line says why.

The size, thinking and grounding controls follow the chosen model's facts
(:class:`~nbbanana.models.ModelInfo`): a control the model does not take is not shown,
and what is sent never carries an option the model would refuse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..errors import redact
from ..models import MODELS, RETIRED, ModelInfo, default_model, get_model

if TYPE_CHECKING:
    from ..discovery import Catalogue
    from ..session import Session

__all__ = [
    "DEFAULT_LEVEL",
    "ModelChoice",
    "ModelControls",
    "ModelListing",
    "discover_listing",
    "fetch_catalogue",
    "listing_for",
    "listing_from_catalogue",
    "model_controls",
    "quiet_model_info",
    "table_listing",
    "thinking_features",
]

#: The thinking-level option meaning "the model's default" (nothing is sent).
DEFAULT_LEVEL = ""


class ModelInfoFn(Protocol):
    """A model-facts function: :func:`~nbbanana.models.get_model`, or a session's
    ``pipeline.model_info`` (which knows a price set with ``connect(price_per_image=...)``).
    ``warn=False`` looks an unknown id up without the one-time warning."""

    def __call__(self, model_id: str, /, *, warn: bool = True) -> ModelInfo: ...


def quiet_model_info(model_info: ModelInfoFn = get_model) -> Callable[[str], ModelInfo]:
    """``model_info`` without the one-time "nbbanana does not know the model" warning:
    the picker says so in the model's label instead of in the cell's output. Asked with
    ``warn=False`` (no process-wide warning filter is switched: the listing runs in a
    worker thread), so the user's own later look-up still gets its one warning."""

    def info(model_id: str) -> ModelInfo:
        return model_info(model_id, warn=False)

    return info


@dataclass(frozen=True)
class ModelChoice:
    """One entry of the model picker."""

    id: str
    label: str
    #: Not in nbbanana's table: generic facts, cost unknown.
    new: bool = False


@dataclass(frozen=True)
class ModelListing:
    """What the picker offers: the choices, the endpoint's default, and where they came from."""

    choices: tuple[ModelChoice, ...]
    default: str
    #: True when the service listed them; False: nbbanana's table (the listing failed).
    discovered: bool
    #: One line for the status line ("" when there is nothing to say).
    note: str = ""

    @property
    def ids(self) -> list[str]:
        return [choice.id for choice in self.choices]

    def pick(self, current: str) -> str:
        """``current`` when offered, else the endpoint's default (else the first)."""
        ids = self.ids
        if current in ids:
            return current
        return self.default if self.default in ids else ids[0]


def _label(info: ModelInfo, *, name: str = "", new: bool = False, listed: bool = True) -> str:
    notes = []
    if new:
        notes.append("new to nbbanana")
    if info.price is None:
        notes.append("cost unknown")
    if not listed:
        notes.append("not listed by this endpoint")
    label = f"{name or info.name} ({info.id})"
    return label + (f" — {', '.join(notes)}" if notes else "")


def table_listing(
    current: str, model_info: ModelInfoFn = get_model, *, note: str = ""
) -> ModelListing:
    """The picker from nbbanana's table alone (before discovery, or when it fails)."""
    info = quiet_model_info(model_info)
    ids = list(MODELS)
    if current not in ids and current not in RETIRED:
        ids.append(current)
    choices = tuple(
        ModelChoice(i, _label(info(i), new=i not in MODELS), new=i not in MODELS) for i in ids
    )
    return ModelListing(choices, default_model(), discovered=False, note=note)


def listing_from_catalogue(
    catalogue: Catalogue, current: str, model_info: ModelInfoFn = get_model
) -> ModelListing:
    """The picker from what the endpoint serves: the table's models it lists, then the
    image models new to nbbanana. Retired ids are never offered, even when the service
    still lists one. The session's own model stays offered (marked) when not listed,
    so a studio never silently switches the model it was given."""
    info = quiet_model_info(model_info)
    choices: list[ModelChoice] = []
    for row in catalogue.rows:
        if row.status not in ("available", "new") or row.id in RETIRED:
            continue
        new = row.status == "new" or row.id not in MODELS
        name = row.name if new and row.name != row.id else ""
        choices.append(ModelChoice(row.id, _label(info(row.id), name=name, new=new), new=new))
    ids = [choice.id for choice in choices]
    if current not in ids and current not in RETIRED:
        choices.append(
            ModelChoice(
                current,
                _label(info(current), new=current not in MODELS, listed=False),
                new=current not in MODELS,
            )
        )
    if not choices:
        return table_listing(
            current,
            model_info,
            note="The endpoint lists no image models: showing nbbanana's table.",
        )
    return ModelListing(tuple(choices), catalogue.default_model, discovered=True)


def fetch_catalogue(session: Session) -> Catalogue | Exception:
    """What ``session``'s endpoint serves, or why it could not say. Never raises: it
    runs in a worker thread, where an exception would be lost."""
    try:
        return session.models()
    except Exception as exc:  # the picker must still work: the caller falls back
        return exc


def listing_for(
    session: Session, fetched: Catalogue | Exception, model_info: ModelInfoFn | None = None
) -> ModelListing:
    """The picker for ``session`` from what :func:`fetch_catalogue` gave: the endpoint's
    models, or, when the listing failed (no network, a gateway that cannot list, a
    refusal), nbbanana's table with :attr:`ModelListing.note` saying why."""
    model_info = model_info or session.pipeline.model_info
    if isinstance(fetched, Exception):
        text = str(fetched).strip()
        reason = redact(text.splitlines()[0]) if text else ""
        reason = reason if len(reason) <= 140 else reason[:139] + "…"
        what = type(fetched).__name__ + (f": {reason}" if reason else "")
        return table_listing(
            session.model,
            model_info,
            note=f"The model list could not be fetched ({what}); showing nbbanana's table.",
        )
    return listing_from_catalogue(fetched, session.model, model_info)


def discover_listing(session: Session, model_info: ModelInfoFn | None = None) -> ModelListing:
    """The picker for ``session``'s endpoint (:func:`fetch_catalogue` then
    :func:`listing_for`). Never raises."""
    return listing_for(session, fetch_catalogue(session), model_info)


@dataclass(frozen=True)
class ModelControls:
    """The controls the prompt box shows for one model."""

    image_sizes: tuple[str, ...]
    default_size: str | None
    #: Levels that can be chosen (empty: no level control).
    thinking_levels: tuple[str, ...]
    #: The model thinks, so "show thoughts" (``include_thoughts``) is offered.
    thoughts: bool
    #: Google Search grounding is offered.
    grounding: bool

    @property
    def level_options(self) -> list[tuple[str, str]]:
        """(label, value) pairs of the thinking-level list, the model's default first."""
        return [
            ("default", DEFAULT_LEVEL),
            *((level.lower(), level) for level in self.thinking_levels),
        ]


def model_controls(info: ModelInfo) -> ModelControls:
    """Which sizes and Gemini 3 options ``info`` takes. A model new to nbbanana gets the
    family's sizes (the server decides) and no thinking or grounding controls: nothing
    says it takes them."""
    return ModelControls(
        image_sizes=info.image_sizes,
        default_size=info.default_image_size,
        thinking_levels=info.thinking_levels,
        thoughts=info.thinking,
        grounding=info.grounding,
    )


def thinking_features(
    info: ModelInfo,
    *,
    level: str = DEFAULT_LEVEL,
    show_thoughts: bool = False,
    grounding: bool = False,
) -> tuple[str | None, bool | None, bool]:
    """``(thinking_level, include_thoughts, grounding)`` to send for what the controls
    say, keeping only what ``info`` takes (a control hidden for this model sends nothing)."""
    controls = model_controls(info)
    chosen_level = level if level and level in controls.thinking_levels else None
    include = True if show_thoughts and controls.thoughts else None
    return chosen_level, include, bool(grounding and controls.grounding)

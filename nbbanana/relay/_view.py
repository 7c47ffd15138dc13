"""``nbbanana.gallery(...)``: the workshop gallery in a notebook, with spend per participant.

A plain object over the relay's HTTP API (the same endpoints the gallery page uses):
it fetches the latest results and, with the admin token, every participant's spend;
it displays as an HTML grid (names and prompts escaped) with a bar chart of spend
against caps. :meth:`GalleryView.refresh` fetches again.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from PIL import Image

from ..errors import APIError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ._server import Relay

__all__ = ["GalleryView", "gallery"]

_THUMB_SIDE = 160


@dataclass
class GalleryView:
    """The gallery of a relay at one moment (``refresh()`` to update)."""

    base_url: str
    admin_token: str | None = field(default=None, repr=False)
    limit: int = 12
    items: list[dict[str, Any]] = field(default_factory=list)
    participants: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    _thumbs: dict[str, str] = field(default_factory=dict, repr=False)

    def refresh(self) -> GalleryView:
        with httpx.Client(base_url=self.base_url, timeout=30) as client:
            response = client.get("/gallery/items")
            raise_for(response)
            self.items = list(response.json())[: self.limit]
            for item in self.items:
                if item["image"] not in self._thumbs:
                    image = client.get(item["image"])
                    if image.status_code == 200:
                        self._thumbs[item["image"]] = _thumbnail(image.content)
            if self.admin_token:
                summary = client.get(
                    "/relay/admin/summary", headers={"Authorization": f"Bearer {self.admin_token}"}
                )
                raise_for(summary)
                data = summary.json()
                self.participants = list(data.pop("participants"))
                self.totals = data
        return self

    @property
    def spend(self) -> dict[str, float]:
        """Settled spend in dollars per participant name (needs the admin token)."""
        return {p["name"]: p["spent_usd"] for p in self.participants}

    def figure(self) -> Figure:
        """Spend per participant against each cap (a matplotlib figure)."""
        from matplotlib.figure import Figure

        people = self.participants
        fig = Figure(figsize=(7, 0.3 * max(4, len(people)) + 0.8), dpi=80)
        ax = fig.add_subplot()
        names = [p["name"] for p in people]
        ax.barh(names, [p["spent_usd"] for p in people], color="#e0a800", label="spent")
        ax.barh(names, [p["reserved_usd"] for p in people], left=[p["spent_usd"] for p in people],
                color="#f3d98b", label="in flight")  # fmt: skip
        caps = [
            (n, p["cap_usd"])
            for n, p in zip(names, people, strict=True)
            if p["cap_usd"] is not None
        ]
        if caps:
            ax.scatter([c for _, c in caps], [n for n, _ in caps], marker="|", s=200, color="#c00",
                       label="cap", zorder=3)  # fmt: skip
        ax.invert_yaxis()
        ax.set_xlabel("US dollars")
        ax.set_title("Spend per participant")
        ax.legend(loc="lower right", fontsize="small")
        fig.tight_layout()
        return fig

    def _chart_html(self) -> str:
        if not self.participants:
            return "<p><em>Spend per participant needs the admin token.</em></p>"
        buffer = io.BytesIO()
        self.figure().savefig(buffer, format="png")
        data = base64.b64encode(buffer.getvalue()).decode()
        return f'<img alt="spend per participant" src="data:image/png;base64,{data}">'

    def _repr_html_(self) -> str:
        cards = []
        for item in self.items:
            thumb = self._thumbs.get(item["image"], "")
            img = f'<img src="{thumb}" width="{_THUMB_SIDE}">' if thumb else ""
            cards.append(
                '<figure style="margin:0;width:160px">'
                f"{img}<figcaption><b>{html.escape(item['name'])}</b> #{int(item['id'])}<br>"
                f'<span style="font-size:85%">{html.escape(item["prompt"])}</span>'
                "</figcaption></figure>"
            )
        grid = "".join(cards) or "<p>No images yet.</p>"
        totals = ""
        if self.totals:
            cap = self.totals.get("workshop_cap_usd")
            totals = (
                f"<p>Spent ${self.totals['spent_usd']:.4f}"
                + (f" of the workshop's ${cap:.2f}" if cap is not None else "")
                + f" in {self.totals['requests']} requests"
                + (f" ({self.totals['refused']} refused)" if self.totals.get("refused") else "")
                + (" · <b>paused</b>" if self.totals.get("paused") else "")
                + "</p>"
            )
        return (
            f"<div><h4>Workshop gallery ({len(self.items)} latest)</h4>"
            f'<div style="display:flex;flex-wrap:wrap;gap:8px">{grid}</div>'
            f"{totals}{self._chart_html()}</div>"
        )

    def __repr__(self) -> str:
        return f"<GalleryView {len(self.items)} items, {len(self.participants)} participants>"


def gallery(source: Relay | str, *, admin_token: str | None = None, limit: int = 12) -> GalleryView:
    """The gallery of a relay (a :class:`~nbbanana.relay.Relay` or its URL) for a notebook.

    Pass ``admin_token`` (or a ``Relay`` that created its own) to see spend per participant.
    """
    if isinstance(source, str):
        base_url = source.rstrip("/")
    else:
        base_url = source.base_url
        admin_token = admin_token or source.admin_token
    return GalleryView(base_url, admin_token, limit).refresh()


def raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    raise APIError(f"The relay refused: {message}", code=response.status_code)


def _thumbnail(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail((_THUMB_SIDE, _THUMB_SIDE))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()

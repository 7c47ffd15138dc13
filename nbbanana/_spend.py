"""A session's spend in words: what was spent, the cap, and what is left of it.

Shared by the session's display and the studio, so both say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._format import format_usd

__all__ = ["SpendSummary"]


@dataclass(frozen=True)
class SpendSummary:
    """Spend against an optional cap (``None``: no cap)."""

    spent: float
    cap: float | None = None
    offline: bool = False

    @property
    def left(self) -> float | None:
        """What the cap still allows (never below zero); ``None`` without a cap."""
        return None if self.cap is None else max(0.0, self.cap - self.spent)

    def text(self) -> str:
        """One line: "spent $0.24 of $1.00 cap · $0.76 left" (or "· no cap")."""
        parts = [f"spent {format_usd(self.spent)}"]
        if self.cap is None:
            parts.append("no cap")
        else:
            parts[0] += f" of {format_usd(self.cap)} cap"
            parts.append(f"{format_usd(self.left or 0.0)} left")
        if self.offline:
            parts.append("offline: nothing billed")
        return " · ".join(parts)

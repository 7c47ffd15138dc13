"""Numbers as people read them: money and counts."""

from __future__ import annotations

import math

__all__ = ["format_count", "format_usd"]

#: Smallest amount shown with its own digits; anything smaller and above zero is "<$0.000001".
_SMALLEST = 1e-6


def format_usd(usd: float | None) -> str:
    """``cost unknown`` for a price nbbanana does not know (never a made-up figure);
    ``$1,234.50``, ``$0.24``, ``$0.039``, ``$0.0001``: cents from ten cents up, else two
    significant digits, so a $0.0001 cap never reads as "$0.00" and a float sum like
    0.23597249999999997 reads as "$0.24"."""
    if usd is None:
        return "cost unknown"
    if usd < 0:
        return "-" + format_usd(-usd)
    if usd == 0 or not math.isfinite(usd):
        return "$0.00" if usd == 0 else f"${usd}"
    if usd >= 0.1:
        return f"${usd:,.2f}"
    if usd < _SMALLEST:
        return "<$0.000001"
    decimals = 1 - math.floor(math.log10(usd))
    text = f"{usd:.{decimals}f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"${whole}.{cents.ljust(2, '0')}"


def format_count(n: int | None) -> str:
    """``1,290`` (thousands separators); ``-`` for an unknown count."""
    return "-" if n is None else f"{n:,}"

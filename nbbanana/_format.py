"""Numbers as people read them: money rounded sensibly, counts with thousands separators.

One place for these rules, so a price reads the same in a repr, a widget, a notebook and
the command line.
"""

from __future__ import annotations

__all__ = ["format_count", "format_usd"]


def format_usd(x: float) -> str:
    """Dollars rounded for reading: cents from one cent up ("$0.23", "$12.50"), four
    decimals below a cent ("$0.0001"), so a cheap request never reads as "$0.00"."""
    if x < 0:
        return "-" + format_usd(-x)
    if x == 0:
        return "$0.00"
    if x < 0.00005:
        return "<$0.0001"
    if x < 0.01:
        return f"${x:.4f}"
    return f"${x:,.2f}"


def format_count(n: int) -> str:
    """A count with thousands separators ("1,290")."""
    return f"{n:,}"

"""Tokens of the relay: random, shown once, stored only as hashes, compared in constant time.

A participant token, a join code and the admin token are each 128+ bits from
:mod:`secrets`. The ledger keeps ``sha256(token)`` only, so a copied ledger or export
cannot be used to spend. Hashing (not a slow password hash) is enough because the tokens
are random and long: there is nothing to brute-force from a hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["hash_token", "new_admin_token", "new_join_code", "new_token", "same_hash"]

PARTICIPANT_PREFIX = "nbr-"
ADMIN_PREFIX = "nbr-admin-"
#: Join codes are typed by hand: no 0/O or 1/I/L, groups of four.
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"


def new_token() -> str:
    """A participant token (what ``api_key=`` takes)."""
    return PARTICIPANT_PREFIX + secrets.token_urlsafe(24)


def new_admin_token() -> str:
    return ADMIN_PREFIX + secrets.token_urlsafe(32)


def new_join_code() -> str:
    """A workshop code to type by hand: 20 symbols of a 31-letter alphabet (~99 bits)."""
    symbols = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(20))
    return "-".join(symbols[i : i + 4] for i in range(0, 20, 4))


def normalise_code(code: str) -> str:
    """Join codes are read case- and space-insensitively (people type them)."""
    return "".join(c for c in code.upper() if c.isalnum())


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_hash(a: str, b: str) -> bool:
    """Constant-time comparison of two hex digests."""
    return hmac.compare_digest(a.encode(), b.encode())

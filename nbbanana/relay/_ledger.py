"""The workshop ledger: participants, every request, the images — one SQLite file.

Why SQLite: it is in the standard library, a single file the facilitator can copy, and
its transactions make the cap check and the reservation one atomic step. WAL mode lets
the CLI (``nbbanana relay tokens add``, ``pause``, ``cap``) write while the relay reads
and serves; ``BEGIN IMMEDIATE`` serialises writers, even across processes.

Money is kept in integer micro-dollars, so sums are exact. A participant's spend is
derived from the request rows — settled rows count their actual cost, pending rows
their estimate (a *reservation*) — so there is no second counter to drift: each request
is one row, settled at most once (``UPDATE … WHERE status = 'pending'``). A relay that
dies with requests in flight leaves them pending; the next :meth:`Ledger.recover` marks
them ``interrupted`` and keeps their estimate as their cost (the upstream may have
billed them), so a restart neither forgets nor doubles them.

Images live next to the ledger in ``images/``, named by the SHA-256 of their bytes.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import _secrets

__all__ = ["Ledger", "Participant", "Refusal", "micros", "usd"]

LEDGER_FILE = "ledger.sqlite3"
IMAGES_DIR = "images"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS participants (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    cap_micros INTEGER,
    rate_per_min INTEGER,
    revoked INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    via TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS join_codes (
    id INTEGER PRIMARY KEY,
    code_hash TEXT NOT NULL UNIQUE,
    cap_micros INTEGER,
    rate_per_min INTEGER,
    uses_left INTEGER,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    participant_id INTEGER NOT NULL REFERENCES participants(id),
    time REAL NOT NULL,
    model TEXT NOT NULL,
    method TEXT NOT NULL,
    prompt TEXT NOT NULL,
    est_input_tokens INTEGER NOT NULL,
    est_output_tokens INTEGER NOT NULL,
    est_micros INTEGER NOT NULL,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_micros INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    http_status INTEGER,
    latency_s REAL,
    upstream_s REAL,
    relay_s REAL,
    error TEXT,
    hidden INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS requests_by_participant ON requests(participant_id, status);
CREATE TABLE IF NOT EXISTS images (
    request_id INTEGER NOT NULL REFERENCES requests(id),
    position INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    mime TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (request_id, position)
);
CREATE INDEX IF NOT EXISTS images_by_hash ON images(sha256);
"""

#: What a request counts against a cap: its actual cost once settled, else its estimate.
_SPEND = "COALESCE(SUM(CASE WHEN status = 'pending' THEN est_micros ELSE cost_micros END), 0)"


def micros(dollars: float) -> int:
    """Dollars → integer micro-dollars (exact sums; a cent is 10 000)."""
    return round(dollars * 1_000_000)


def usd(amount_micros: int) -> str:
    """``$2.00`` for whole cents, ``$0.0387`` below a cent's precision."""
    dollars = amount_micros / 1_000_000
    return f"${dollars:,.2f}" if amount_micros % 10_000 == 0 else f"${dollars:,.4f}"


class Refusal(Exception):
    """A request the relay will not forward; carries the Gemini-style error to send."""

    def __init__(
        self, code: int, status: str, message: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.retry_after = retry_after


@dataclass(frozen=True)
class Participant:
    id: int
    name: str
    cap_micros: int | None
    rate_per_min: int | None
    revoked: bool
    spent_micros: int = 0  # settled requests
    reserved_micros: int = 0  # requests in flight (their estimates)
    requests: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "cap_usd": None if self.cap_micros is None else self.cap_micros / 1e6,
            "rate_per_min": self.rate_per_min,
            "revoked": self.revoked,
            "spent_usd": self.spent_micros / 1e6,
            "reserved_usd": self.reserved_micros / 1e6,
            "requests": self.requests,
        }


class Ledger:
    """The ledger of one workshop directory (created on first use)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.images_dir = self.directory / IMAGES_DIR
        self.images_dir.mkdir(exist_ok=True)
        self.path = self.directory / LEDGER_FILE
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL is durable across a crash of the relay process in WAL mode; only a power
        # cut can lose the last commits — never corrupt the file.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=10000")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, serialised in this process and across processes."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._db.execute(sql, args))

    # ----------------------------------------------------------------- settings

    def _setting(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def _set(self, db: sqlite3.Connection, key: str, value: str | None) -> None:
        if value is None:
            db.execute("DELETE FROM settings WHERE key = ?", (key,))
        else:
            db.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    def ensure_admin_token(self) -> str | None:
        """Create the admin token if there is none; returns it then (the only time it is
        known), else ``None``."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM settings WHERE key = 'admin_hash'").fetchone():
                return None
            token = _secrets.new_admin_token()
            self._set(db, "admin_hash", _secrets.hash_token(token))
            return token

    def rotate_admin_token(self) -> str:
        token = _secrets.new_admin_token()
        with self._write() as db:
            self._set(db, "admin_hash", _secrets.hash_token(token))
        return token

    def is_admin(self, token: str) -> bool:
        stored = self._setting("admin_hash")
        return stored is not None and _secrets.same_hash(stored, _secrets.hash_token(token))

    @property
    def workshop_cap_micros(self) -> int | None:
        value = self._setting("workshop_cap_micros")
        return None if value is None else int(value)

    def set_workshop_cap(self, cap_micros: int | None) -> None:
        with self._write() as db:
            self._set(db, "workshop_cap_micros", None if cap_micros is None else str(cap_micros))

    @property
    def paused(self) -> bool:
        return self._setting("paused") == "1"

    def set_paused(self, paused: bool) -> None:
        with self._write() as db:
            self._set(db, "paused", "1" if paused else None)

    # ------------------------------------------------------------- participants

    def add_participants(
        self,
        count: int,
        *,
        cap_micros: int | None,
        rate_per_min: int | None,
        names: Sequence[str] = (),
        via: str = "token",
    ) -> list[tuple[Participant, str]]:
        """Create ``count`` participants; returns each with its token (shown only now)."""
        if not 1 <= count <= 1000:
            raise ValueError(f"count must be between 1 and 1000 (got {count}).")
        out: list[tuple[Participant, str]] = []
        with self._write() as db:
            first = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM participants").fetchone()[0]
            for n in range(count):
                token = _secrets.new_token()
                name = clean_name(names[n] if n < len(names) else "") or f"participant {first + n}"
                cursor = db.execute(
                    "INSERT INTO participants (token_hash, name, cap_micros, rate_per_min, "
                    "created, via) VALUES (?, ?, ?, ?, ?, ?)",
                    (_secrets.hash_token(token), name, cap_micros, rate_per_min, time.time(), via),
                )
                pid = int(cursor.lastrowid or 0)
                out.append((Participant(pid, name, cap_micros, rate_per_min, False), token))
        return out

    def add_join_code(
        self, *, cap_micros: int | None, rate_per_min: int | None, uses: int | None
    ) -> str:
        code = _secrets.new_join_code()
        with self._write() as db:
            db.execute(
                "INSERT INTO join_codes (code_hash, cap_micros, rate_per_min, uses_left, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    _secrets.hash_token(_secrets.normalise_code(code)),
                    cap_micros,
                    rate_per_min,
                    uses,
                    time.time(),
                ),
            )
        return code

    def join(self, code: str, name: str) -> tuple[Participant, str]:
        """Trade a join code for a participant token (the code's cap and rate apply)."""
        code_hash = _secrets.hash_token(_secrets.normalise_code(code))
        with self._write() as db:
            row = db.execute(
                "SELECT * FROM join_codes WHERE code_hash = ?", (code_hash,)
            ).fetchone()
            if row is None or not _secrets.same_hash(row["code_hash"], code_hash):
                raise Refusal(
                    403,
                    "PERMISSION_DENIED",
                    "that workshop code is not valid; check it with the facilitator",
                )
            if row["uses_left"] is not None and row["uses_left"] <= 0:
                raise Refusal(
                    403,
                    "PERMISSION_DENIED",
                    "that workshop code has been used up; ask the facilitator",
                )
            if row["uses_left"] is not None:
                db.execute(
                    "UPDATE join_codes SET uses_left = uses_left - 1 WHERE id = ?", (row["id"],)
                )
            token = _secrets.new_token()
            shown = clean_name(name)
            cursor = db.execute(
                "INSERT INTO participants (token_hash, name, cap_micros, rate_per_min, created, via) "
                "VALUES (?, ?, ?, ?, ?, 'join')",
                (
                    _secrets.hash_token(token),
                    shown or "?",
                    row["cap_micros"],
                    row["rate_per_min"],
                    time.time(),
                ),
            )
            pid = int(cursor.lastrowid or 0)
            if not shown:
                shown = f"participant {pid}"
                db.execute("UPDATE participants SET name = ? WHERE id = ?", (shown, pid))
        return Participant(pid, shown, row["cap_micros"], row["rate_per_min"], False), token

    def authenticate(self, token: str) -> Participant | None:
        """The participant holding ``token`` (revoked ones included), else ``None``."""
        token_hash = _secrets.hash_token(token)
        rows = self._read("SELECT * FROM participants WHERE token_hash = ?", (token_hash,))
        if not rows or not _secrets.same_hash(rows[0]["token_hash"], token_hash):
            return None
        return _participant(rows[0])

    def participant(self, pid: int) -> Participant:
        rows = self._read(
            f"SELECT p.*, (SELECT {_SPEND} FROM requests r WHERE r.participant_id = p.id "
            "AND r.status != 'pending') AS spent, "
            f"(SELECT {_SPEND} FROM requests r WHERE r.participant_id = p.id "
            "AND r.status = 'pending') AS reserved, "
            "(SELECT COUNT(*) FROM requests r WHERE r.participant_id = p.id "
            "AND r.status != 'refused') AS n FROM participants p WHERE p.id = ?",
            (pid,),
        )
        if not rows:
            raise KeyError(f"There is no participant {pid}.")
        return _participant(rows[0])

    def participants(self) -> list[Participant]:
        ids = [row["id"] for row in self._read("SELECT id FROM participants ORDER BY id")]
        return [self.participant(pid) for pid in ids]

    def _update_participant(self, pid: int, sql: str, args: Sequence[Any]) -> Participant:
        with self._write() as db:
            cursor = db.execute(f"UPDATE participants SET {sql} WHERE id = ?", (*args, pid))
            if cursor.rowcount == 0:
                raise KeyError(
                    f"There is no participant {pid}; `nbbanana relay tokens list` shows them."
                )
        return self.participant(pid)

    def revoke(self, pid: int) -> Participant:
        return self._update_participant(pid, "revoked = 1", ())

    def set_cap(self, pid: int, cap_micros: int | None) -> Participant:
        return self._update_participant(pid, "cap_micros = ?", (cap_micros,))

    def set_all_caps(self, cap_micros: int | None) -> int:
        with self._write() as db:
            return db.execute("UPDATE participants SET cap_micros = ?", (cap_micros,)).rowcount

    # ----------------------------------------------------------------- requests

    def reserve(
        self,
        participant: Participant,
        *,
        model: str,
        method: str,
        prompt: str,
        est_input_tokens: int,
        est_output_tokens: int,
        est_micros: int,
    ) -> int:
        """Check pause, revocation and both caps and reserve the estimate, in one
        transaction; returns the request id. Raises :class:`Refusal` (and records it)."""
        with self._write() as db:
            refusal = self._refusal(db, participant.id, est_micros)
            cursor = db.execute(
                "INSERT INTO requests (participant_id, time, model, method, prompt, "
                "est_input_tokens, est_output_tokens, est_micros, status, http_status, error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    participant.id,
                    time.time(),
                    model,
                    method,
                    prompt,
                    est_input_tokens,
                    est_output_tokens,
                    est_micros,
                    "refused" if refusal else "pending",
                    refusal.code if refusal else None,
                    refusal.message if refusal else None,
                ),
            )
        if refusal is not None:
            raise refusal
        return int(cursor.lastrowid or 0)

    def _refusal(self, db: sqlite3.Connection, pid: int, est: int) -> Refusal | None:
        settings = {r["key"]: r["value"] for r in db.execute("SELECT * FROM settings")}
        row = db.execute(
            "SELECT revoked, cap_micros FROM participants WHERE id = ?", (pid,)
        ).fetchone()
        if row is None or row["revoked"]:
            return Refusal(
                403, "PERMISSION_DENIED", "this participant token was revoked; ask the facilitator"
            )
        if settings.get("paused") == "1":
            return Refusal(
                400,
                "FAILED_PRECONDITION",
                "the facilitator has paused the workshop; wait until they resume it",
            )
        cap = row["cap_micros"]
        if cap is not None:
            spent = db.execute(
                f"SELECT {_SPEND} FROM requests WHERE participant_id = ?", (pid,)
            ).fetchone()[0]
            if spent + est > cap:
                return Refusal(
                    400,
                    "FAILED_PRECONDITION",
                    _cap_message("your workshop budget", cap, spent, est),
                )
        workshop_cap = settings.get("workshop_cap_micros")
        if workshop_cap is not None:
            total = db.execute(f"SELECT {_SPEND} FROM requests").fetchone()[0]
            if total + est > int(workshop_cap):
                return Refusal(
                    400,
                    "FAILED_PRECONDITION",
                    _cap_message("the whole workshop's budget", int(workshop_cap), total, est),
                )
        return None

    def settle(
        self,
        request_id: int,
        *,
        status: str,
        http_status: int | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cost_micros: int,
        latency_s: float,
        upstream_s: float | None = None,
        relay_s: float | None = None,
        error: str | None = None,
    ) -> bool:
        """Record the outcome of a reserved request. Returns False if it was already
        settled (nothing is counted twice)."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE requests SET status = ?, http_status = ?, input_tokens = ?, "
                "output_tokens = ?, cost_micros = ?, latency_s = ?, upstream_s = ?, relay_s = ?, "
                "error = ? "
                "WHERE id = ? AND status = 'pending'",
                (
                    status,
                    http_status,
                    input_tokens,
                    output_tokens,
                    cost_micros,
                    latency_s,
                    upstream_s,
                    relay_s,
                    error,
                    request_id,
                ),
            )
            return cursor.rowcount == 1

    def recover(self) -> int:
        """After a crash: requests left pending become ``interrupted`` and keep their
        estimate as their cost. Only the relay that serves this ledger calls this."""
        with self._write() as db:
            return db.execute(
                "UPDATE requests SET status = 'interrupted', cost_micros = est_micros, "
                "error = 'the relay stopped while this request was in flight' "
                "WHERE status = 'pending'"
            ).rowcount

    def add_image(self, request_id: int, position: int, sha256: str, mime: str, size: int) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO images (request_id, position, sha256, mime, bytes) "
                "VALUES (?, ?, ?, ?, ?)",
                (request_id, position, sha256, mime, size),
            )

    def set_hidden(self, request_id: int, hidden: bool) -> bool:
        with self._write() as db:
            return (
                db.execute(
                    "UPDATE requests SET hidden = ? WHERE id = ?", (int(hidden), request_id)
                ).rowcount
                == 1
            )

    def gallery(self, limit: int = 48) -> list[dict[str, Any]]:
        """The latest visible results: one item per image, newest first."""
        rows = self._read(
            "SELECT r.id, r.time, r.prompt, r.model, p.name, i.position, i.sha256, i.mime "
            "FROM images i JOIN requests r ON r.id = i.request_id "
            "JOIN participants p ON p.id = r.participant_id "
            "WHERE r.hidden = 0 ORDER BY r.id DESC, i.position LIMIT ?",
            (limit,),
        )
        return [gallery_item(dict(row)) for row in rows]

    def image(self, sha256: str) -> tuple[Path, str] | None:
        """A visible image's file and type (hidden images are not served)."""
        rows = self._read(
            "SELECT i.mime FROM images i JOIN requests r ON r.id = i.request_id "
            "WHERE i.sha256 = ? AND r.hidden = 0 LIMIT 1",
            (sha256,),
        )
        if not rows:
            return None
        path = self.images_dir / image_filename(sha256, rows[0]["mime"])
        return (path, rows[0]["mime"]) if path.exists() else None

    def requests(self, participant_id: int | None = None) -> list[dict[str, Any]]:
        where, args = (
            ("WHERE r.participant_id = ?", (participant_id,)) if participant_id else ("", ())
        )
        rows = self._read(
            "SELECT r.*, p.name FROM requests r JOIN participants p ON p.id = r.participant_id "
            f"{where} ORDER BY r.id",
            args,
        )
        return [dict(row) for row in rows]

    def images(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read("SELECT * FROM images ORDER BY request_id, position")]

    def totals(self) -> dict[str, Any]:
        row = self._read(
            "SELECT COALESCE(SUM(CASE WHEN status != 'pending' THEN cost_micros END), 0) AS spent, "
            "COALESCE(SUM(CASE WHEN status = 'pending' THEN est_micros END), 0) AS reserved, "
            "COALESCE(SUM(status != 'refused'), 0) AS n, "
            "COALESCE(SUM(status = 'refused'), 0) AS refused FROM requests"
        )[0]
        cap = self.workshop_cap_micros
        return {
            "spent_usd": row["spent"] / 1e6,
            "reserved_usd": row["reserved"] / 1e6,
            "requests": row["n"],
            "refused": row["refused"],
            "workshop_cap_usd": None if cap is None else cap / 1e6,
            "paused": self.paused,
        }


def _cap_message(budget: str, cap: int, spent: int, est: int) -> str:
    if spent >= cap:
        return f"{budget} of {usd(cap)} is used up; ask the facilitator"
    return (
        f"this request could cost up to {usd(est)} but only {usd(cap - spent)} of {budget} "
        f"of {usd(cap)} is left; ask the facilitator"
    )


def _participant(row: sqlite3.Row) -> Participant:
    keys = row.keys()
    return Participant(
        id=row["id"],
        name=row["name"],
        cap_micros=row["cap_micros"],
        rate_per_min=row["rate_per_min"],
        revoked=bool(row["revoked"]),
        spent_micros=row["spent"] if "spent" in keys else 0,
        reserved_micros=row["reserved"] if "reserved" in keys else 0,
        requests=row["n"] if "n" in keys else 0,
    )


def clean_name(name: str) -> str:
    """A display name: printable, one line, at most 40 characters (rendered as text)."""
    return " ".join("".join(c for c in name if c.isprintable()).split())[:40]


_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


def image_filename(sha256: str, mime: str) -> str:
    return f"{sha256}.{_EXTENSIONS.get(mime, 'bin')}"


def gallery_item(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "time": row["time"],
        "name": row["name"],
        "prompt": row["prompt"],
        "model": row["model"],
        "image": f"/gallery/images/{row['sha256']}",
        "key": f"{row['id']}-{row['position']}",
    }

"""A tool host's ledger: each side effect by idempotency key, so that none runs twice.

A step is dispatched at least once, and each of its tool calls carries the
same key on every attempt of one visit of the step (a loop that reaches the
step again makes new keys). Before a tool with side effects runs, its key is
committed as started, with a digest of the tool and its arguments; after, its
reply is committed beside it. A call whose key is settled gets the recorded
reply without running again, but only if its arguments are the recorded ones:
a call with other arguments under a known key is refused as a conflict. A
call whose key started and never settled (the host died in between) gets an
"outcome unknown" refusal, not a second run: at most once, with the doubt
made visible.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from actors._errors import ActorError
from protocols import Arguments, ToolReply

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS effects (
        key TEXT PRIMARY KEY,
        tool TEXT NOT NULL,
        started_at REAL NOT NULL,
        reply BLOB,
        settled_at REAL
    )
    """,
    # Keys claimed before digests were kept have none, and are checked by tool alone.
    "ALTER TABLE effects ADD COLUMN digest TEXT",
)
"""The schema's history: migration N takes `user_version` N-1 to N."""

_DIGEST_ENCODER = msgspec.msgpack.Encoder(order="deterministic")


def call_digest(tool: str, args: Arguments) -> str:
    """What identifies a call's effect besides its key: the tool and its arguments,
    encoded with sorted keys so that the same arguments always give the same digest."""
    return hashlib.sha256(_DIGEST_ENCODER.encode((tool, args))).hexdigest()


class LedgerError(ActorError):
    """The ledger cannot be opened or written: no effect may run without it."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"ledger {path}: {reason}")


@dataclass(frozen=True, slots=True)
class Claim:
    """What the ledger says of a key: run it (`fresh`), or answer without running."""

    fresh: bool
    reply: ToolReply | None = None
    """The recorded reply of a settled key (its `call_id` is the first call's)."""
    problem: str = ""
    """Why the call may not run: its key started and never settled, or named another tool."""
    conflict: bool = False
    """The key was recorded for other arguments: the call is refused, never answered with
    another call's reply."""


class Ledger:
    """Effects by key in one SQLite file (WAL, `synchronous=FULL`), or in memory.

    Calls block on the disk: run them in a worker thread.
    """

    def __init__(self, path: Path | None) -> None:
        self.description = "memory://" if path is None else str(path)
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                ":memory:" if path is None else path, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(self.description, str(exc)) from None
        self._lock = threading.Lock()
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(ToolReply)

    def _migrate(self) -> None:
        # The version is read under the write lock: hosts sharing a ledger that start at
        # once must not both apply the same migration.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version > len(MIGRATIONS):
                raise sqlite3.DatabaseError(
                    f"the ledger is at schema version {version}, newer than this host's "
                    f"{len(MIGRATIONS)}"
                )
            if (
                version == 0
                and self._db.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = 'effects'"
                ).fetchone()
            ):
                # A ledger written before versions were kept has the first table already.
                version = 1
            for number, statement in enumerate(MIGRATIONS[version:], start=version + 1):
                self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {number}")
            self._db.execute("COMMIT")
        finally:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")

    def claim(self, key: str, tool: str, digest: str = "") -> Claim:
        """Commit `key` as started unless it is known; say what to do with the call.

        `digest` (see `call_digest`) binds the key to the call's arguments.
        """
        with self._lock:
            try:
                # Read and claim under the write lock: another host on the same ledger file
                # must not claim the key between the two.
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute(
                    "SELECT tool, reply, started_at, digest FROM effects WHERE key = ?", (key,)
                ).fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO effects (key, tool, started_at, digest) VALUES (?, ?, ?, ?)",
                        (key, tool, time.time(), digest or None),
                    )
                self._db.execute("COMMIT")
                if row is None:
                    return Claim(fresh=True)
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise LedgerError(self.description, str(exc)) from None
        recorded_tool, reply, started_at, recorded_digest = row
        if recorded_tool != tool:
            return Claim(
                fresh=False,
                conflict=True,
                problem=f"key {key!r} was used for tool {recorded_tool!r} already",
            )
        if digest and recorded_digest and digest != recorded_digest:
            return Claim(
                fresh=False,
                conflict=True,
                problem=f"key {key!r} was used for a call of {tool!r} with other arguments; "
                "a recorded reply never answers a different call",
            )
        if reply is None:
            return Claim(
                fresh=False,
                problem=f"outcome unknown: a call with key {key!r} started at "
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(started_at))} and never "
                "finished; it is not run again",
            )
        return Claim(fresh=False, reply=self._decoder.decode(reply))

    def settle(self, key: str, reply: ToolReply) -> None:
        """Commit the reply of a call whose key was claimed."""
        with self._lock:
            try:
                self._db.execute(
                    "UPDATE effects SET reply = ?, settled_at = ? WHERE key = ?",
                    (self._encoder.encode(reply), time.time(), key),
                )
            except sqlite3.Error as exc:
                raise LedgerError(self.description, str(exc)) from None

    def release(self, key: str) -> None:
        """Forget a claimed key whose call failed without effect."""
        with self._lock:
            try:
                self._db.execute("DELETE FROM effects WHERE key = ? AND reply IS NULL", (key,))
            except sqlite3.Error as exc:
                raise LedgerError(self.description, str(exc)) from None

    def keys(self) -> dict[str, bool]:
        """Every key with whether it settled: for inspection and tests."""
        with self._lock:
            rows = self._db.execute("SELECT key, reply IS NOT NULL FROM effects").fetchall()
        return {key: bool(settled) for key, settled in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()

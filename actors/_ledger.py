"""A tool host's ledger: each side effect by idempotency key, so that none runs twice.

A step is dispatched at least once, and each of its tool calls carries the
same key on every attempt. Before a tool with side effects runs, its key is
committed as started; after, its reply is committed beside it. A call whose
key is settled gets the recorded reply without running again. A call whose
key started and never settled (the host died in between) gets an "outcome
unknown" refusal, not a second run: at most once, with the doubt made visible.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from actors._errors import ActorError
from protocols import ToolReply

SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    key TEXT PRIMARY KEY,
    tool TEXT NOT NULL,
    started_at REAL NOT NULL,
    reply BLOB,
    settled_at REAL
)
"""


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
            self._db.execute(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(self.description, str(exc)) from None
        self._lock = threading.Lock()
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(ToolReply)

    def claim(self, key: str, tool: str) -> Claim:
        """Commit `key` as started unless it is known; say what to do with the call."""
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT tool, reply, started_at FROM effects WHERE key = ?", (key,)
                ).fetchone()
                if row is None:
                    self._db.execute(
                        "INSERT INTO effects (key, tool, started_at) VALUES (?, ?, ?)",
                        (key, tool, time.time()),
                    )
                    return Claim(fresh=True)
            except sqlite3.Error as exc:
                raise LedgerError(self.description, str(exc)) from None
        recorded_tool, reply, started_at = row
        if recorded_tool != tool:
            return Claim(
                fresh=False, problem=f"key {key!r} was used for tool {recorded_tool!r} already"
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

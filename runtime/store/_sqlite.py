"""The SQLite journal: one file, group commits, a schema that migrates itself."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import anyio
import msgspec

from runtime.engine._events import JournalEvent
from runtime.errors import StoreError
from runtime.store._journal import Answered, ClockReading, JournalRecord

Synchronous = Literal["FULL", "NORMAL"]

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS events (
        run_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        at REAL NOT NULL,
        body BLOB NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    """,
    """
    CREATE TABLE IF NOT EXISTS clock (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        wall REAL NOT NULL,
        monotonic REAL NOT NULL,
        boot TEXT NOT NULL
    );
    """,
)
"""The schema's history: migration N takes `user_version` N-1 to N, in one transaction."""
SCHEMA_VERSION = len(MIGRATIONS)
BUSY_TIMEOUT = 1.0
"""Seconds a commit waits for another writer of the journal file before it fails."""


class SqliteStore:
    """An event journal in one SQLite file: WAL, one transaction per batch.

    `synchronous=FULL` (the default) fsyncs each commit, so a batch survives
    power loss where the disk honours fsync; `NORMAL` is faster and may lose
    the last commits on power loss (not on a process crash). Writes run in a
    thread so that the event loop never waits on the disk itself.
    """

    def __init__(
        self,
        path: Path,
        synchronous: Synchronous = "FULL",
        *,
        inline: bool = True,
        max_pages: int | None = None,
    ) -> None:
        self.path = path
        self.synchronous: Synchronous = synchronous
        self.max_pages = max_pages
        self.inline = inline
        """Commit on the caller's thread: a local disk's fsync (about 0.2 ms here) costs
        less than the two thread hops that would hide it (about 0.25 ms)."""
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(JournalEvent)
        self._lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(1)
        try:
            # A writer that holds the file longer than this makes the commit fail, rather
            # than stall the runtime's loop: the runtime stops and says why.
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT
            )
            self._prepare()
        except sqlite3.Error as exc:
            raise StoreError(self.description, str(exc)) from exc

    @property
    def description(self) -> str:
        cap = "" if self.max_pages is None else f"&max_pages={self.max_pages}"
        thread = "" if self.inline else "&commit=thread"
        return f"sqlite:///{self.path}?synchronous={self.synchronous}{cap}{thread}"

    def _prepare(self) -> None:
        db = self._db
        (ok,) = db.execute("PRAGMA integrity_check").fetchone()
        if ok != "ok":
            raise StoreError(self.description, f"integrity check failed: {ok}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous}")
        if self.max_pages is not None:
            db.execute(f"PRAGMA max_page_count={int(self.max_pages)}")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                self.description,
                f"schema version {version} is newer than this runtime's {SCHEMA_VERSION}",
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            db.executescript(
                f"BEGIN; {MIGRATIONS[number - 1]} PRAGMA user_version = {number}; COMMIT;"
            )

    def append_soon(
        self,
        records: Sequence[JournalRecord],
        reading: ClockReading | None,
        answered: Answered,
    ) -> bool:
        return False

    def append_nowait(
        self, records: Sequence[JournalRecord], reading: ClockReading | None = None
    ) -> bool:
        if not self.inline:
            return False
        if records or reading is not None:
            self._write(self._rows(records), reading)
        return True

    async def append(
        self, records: Sequence[JournalRecord], reading: ClockReading | None = None
    ) -> None:
        if records or reading is not None:
            rows = self._rows(records)
            await anyio.to_thread.run_sync(self._write, rows, reading, limiter=self._limiter)

    def _rows(self, records: Sequence[JournalRecord]) -> list[tuple[str, int, float, bytes]]:
        return [(r.run_id, r.seq, r.at, self._encoder.encode(r.event)) for r in records]

    def _write(
        self, rows: list[tuple[str, int, float, bytes]], reading: ClockReading | None
    ) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT INTO events VALUES (?, ?, ?, ?)", rows)
                if reading is not None:
                    self._db.execute(
                        "INSERT OR REPLACE INTO clock VALUES (1, ?, ?, ?)",
                        (reading.wall, reading.monotonic, reading.boot),
                    )
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(self.description, str(exc)) from exc

    async def journal(self, run_id: str) -> list[JournalRecord]:
        return await anyio.to_thread.run_sync(self._read, run_id, limiter=self._limiter)

    async def run_ids(self) -> list[str]:
        return await anyio.to_thread.run_sync(self._run_ids, limiter=self._limiter)

    def mark_ended(self, run_id: str) -> None:
        """Nothing to mark: every run is taken up at start, ended or not."""

    async def clock_reading(self) -> ClockReading | None:
        return await anyio.to_thread.run_sync(self._clock_reading, limiter=self._limiter)

    def _clock_reading(self) -> ClockReading | None:
        with self._lock:
            row = self._db.execute("SELECT wall, monotonic, boot FROM clock").fetchone()
        return None if row is None else ClockReading(row[0], row[1], row[2])

    def _run_ids(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT run_id FROM events WHERE seq = 1 ORDER BY at, run_id"
            ).fetchall()
        return [run_id for (run_id,) in rows]

    def _read(self, run_id: str) -> list[JournalRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, at, body FROM events WHERE run_id = ? ORDER BY seq", (run_id,)
            ).fetchall()
        return [
            JournalRecord(run_id, seq, at, self._decoder.decode(body)) for seq, at, body in rows
        ]

    async def close(self) -> None:
        with self._lock:
            self._db.close()


def read_journals(path: Path) -> dict[str, list[JournalRecord]]:
    """Every run's journal in a SQLite file, read-only (a runtime may be writing to it)."""
    where = f"sqlite:///{path}"
    if not path.is_file():
        raise StoreError(where, "no such journal file")
    decoder = msgspec.msgpack.Decoder(JournalEvent)
    journals: dict[str, list[JournalRecord]] = {}
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT run_id, seq, at, body FROM events ORDER BY run_id, seq")
            for run_id, seq, at, body in rows:
                record = JournalRecord(run_id, seq, at, decoder.decode(body))
                journals.setdefault(run_id, []).append(record)
    except (sqlite3.Error, msgspec.DecodeError) as exc:
        raise StoreError(where, f"cannot read the journal: {exc}") from None
    return journals


def backup(source: Path, destination: Path) -> int:
    """Copy a live journal with SQLite's online backup, then check the copy; its event count.

    Safe while a runtime writes to `source`: the copy is one consistent
    snapshot (never copy the file itself, which may be mid-transaction).
    """
    where = f"sqlite:///{source}"
    if not source.is_file():
        raise StoreError(where, "no such journal file")
    if destination.exists():
        raise StoreError(f"sqlite:///{destination}", "already exists; a backup never overwrites")
    try:
        with (
            contextlib.closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True)) as src,
            contextlib.closing(sqlite3.connect(destination)) as dst,
        ):
            src.backup(dst)
            (ok,) = dst.execute("PRAGMA integrity_check").fetchone()
            if ok != "ok":
                raise StoreError(f"sqlite:///{destination}", f"the copy failed its check: {ok}")
            (count,) = dst.execute("SELECT count(*) FROM events").fetchone()
    except sqlite3.Error as exc:
        destination.unlink(missing_ok=True)
        raise StoreError(where, f"backup failed: {exc}") from None
    return int(count)

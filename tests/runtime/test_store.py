"""The SQLite journal: schema migrations, integrity at start, clock readings, and online
backups."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from runtime.cli import app
from runtime.engine._events import RunStarted, StepDispatched
from runtime.errors import StoreError
from runtime.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    ClockReading,
    JournalRecord,
    MemoryStore,
    SqliteStore,
    backup,
)

runner = CliRunner()


def journal_of(path: Path, runs: int) -> None:
    """A journal file holding two events for each of `runs` runs."""

    async def write() -> None:
        store = SqliteStore(path)
        for n in range(runs):
            run_id = f"run-{n}"
            await store.append(
                [
                    JournalRecord(run_id, 1, 1.0, RunStarted(run_id, "w", "1", "f", {})),
                    JournalRecord(run_id, 2, 2.0, StepDispatched(run_id, "a", 1, "agent")),
                ]
            )
        await store.close()

    anyio.run(write)


class TestSchema:
    """A journal file is brought to this runtime's schema, or refused."""

    def test_a_new_file_gets_the_current_schema(self, tmp_path: Path) -> None:
        SqliteStore(tmp_path / "j.db")
        with sqlite3.connect(tmp_path / "j.db") as db:
            assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)

    def test_a_newer_schema_is_refused(self, tmp_path: Path) -> None:
        with sqlite3.connect(tmp_path / "j.db") as db:
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        with pytest.raises(StoreError, match="is newer than this runtime's"):
            SqliteStore(tmp_path / "j.db")

    def test_a_file_that_is_no_database_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "j.db").write_bytes(b"not a database at all" * 200)
        with pytest.raises(StoreError):
            SqliteStore(tmp_path / "j.db")

    def test_runs_are_listed_in_start_order(self, tmp_path: Path) -> None:
        journal_of(tmp_path / "j.db", 3)

        async def listed() -> list[str]:
            return await SqliteStore(tmp_path / "j.db").run_ids()

        assert anyio.run(listed) == ["run-0", "run-1", "run-2"]

    def test_a_journal_of_the_first_schema_is_brought_up_to_date(self, tmp_path: Path) -> None:
        with sqlite3.connect(tmp_path / "j.db") as db:
            db.executescript(f"{MIGRATIONS[0]} PRAGMA user_version = 1;")
            db.execute("INSERT INTO events VALUES ('run-x', 1, 3.0, x'00')")

        async def opened() -> ClockReading | None:
            store = SqliteStore(tmp_path / "j.db")
            try:
                return await store.clock_reading()
            finally:
                await store.close()

        assert anyio.run(opened) is None
        with sqlite3.connect(tmp_path / "j.db") as db:
            assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            assert db.execute("SELECT count(*) FROM events").fetchone() == (1,)


class TestClockReading:
    """The clock reading a batch was journaled on commits with it, or not at all."""

    def test_it_is_kept_until_the_next_one(self, tmp_path: Path) -> None:
        reading = ClockReading(1_700_000_000.5, 1_234.25, "boot")
        started = JournalRecord("r", 1, 1.0, RunStarted("r", "w", "1", "f", {}))
        dispatched = JournalRecord("r", 2, 2.0, StepDispatched("r", "a", 1, "agent"))

        async def write() -> tuple[ClockReading | None, ClockReading | None]:
            store = SqliteStore(tmp_path / "j.db")
            await store.append([started], reading)
            store.append_nowait([dispatched])
            await store.close()
            store = SqliteStore(tmp_path / "j.db")
            kept = await store.clock_reading()
            later = ClockReading(1_700_000_100.0, 1_334.0, "boot")
            store.append_nowait([], later)
            return kept, await store.clock_reading()

        assert anyio.run(write) == (reading, ClockReading(1_700_000_100.0, 1_334.0, "boot"))

    def test_a_batch_that_fails_leaves_the_reading_before_it(self, tmp_path: Path) -> None:
        first = ClockReading(100.0, 10.0, "boot")
        started = JournalRecord("r", 1, 1.0, RunStarted("r", "w", "1", "f", {}))

        async def write() -> ClockReading | None:
            store = SqliteStore(tmp_path / "j.db")
            await store.append([started], first)
            with pytest.raises(StoreError):
                await store.append([started], ClockReading(4_000.0, 20.0, "boot"))
            return await store.clock_reading()

        assert anyio.run(write) == first

    def test_a_memory_store_keeps_the_last(self) -> None:
        async def write() -> ClockReading | None:
            store = MemoryStore()
            await store.append([], ClockReading(1.0, 2.0, "boot"))
            store.append_nowait([])
            return await store.clock_reading()

        assert anyio.run(write) == ClockReading(1.0, 2.0, "boot")


class TestBackup:
    """`baton backup` copies a live journal and checks the copy."""

    def test_the_copy_holds_every_event(self, tmp_path: Path) -> None:
        journal_of(tmp_path / "j.db", 5)
        result = runner.invoke(
            app, ["backup", str(tmp_path / "copy.db"), "--store", f"sqlite:///{tmp_path}/j.db"]
        )
        assert result.exit_code == 0, result.output
        assert "10 events, integrity ok" in result.output
        with sqlite3.connect(tmp_path / "copy.db") as db:
            assert db.execute("SELECT count(*) FROM events").fetchone() == (10,)

    def test_while_a_writer_holds_the_journal(self, tmp_path: Path) -> None:
        """A transaction open on the source does not stop the copy of what is committed."""
        journal_of(tmp_path / "j.db", 2)
        writer = sqlite3.connect(tmp_path / "j.db", isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO events VALUES ('run-x', 1, 3.0, x'00')")
        try:
            assert backup(tmp_path / "j.db", tmp_path / "copy.db") == 4
        finally:
            writer.execute("ROLLBACK")
            writer.close()

    def test_an_existing_copy_is_never_overwritten(self, tmp_path: Path) -> None:
        journal_of(tmp_path / "j.db", 1)
        (tmp_path / "copy.db").write_text("keep me")
        result = runner.invoke(
            app, ["backup", str(tmp_path / "copy.db"), "--store", f"sqlite:///{tmp_path}/j.db"]
        )
        assert result.exit_code == 2
        assert "already exists" in result.output
        assert (tmp_path / "copy.db").read_text() == "keep me"

    def test_only_a_sqlite_journal_can_be_backed_up(self, tmp_path: Path) -> None:
        result = runner.invoke(app, ["backup", str(tmp_path / "c.db"), "--store", "memory://"])
        assert result.exit_code == 2
        assert "only a SQLite journal" in result.output
        result = runner.invoke(
            app, ["backup", str(tmp_path / "c.db"), "--store", f"sqlite:///{tmp_path}/none.db"]
        )
        assert result.exit_code == 2
        assert "no such journal file" in result.output

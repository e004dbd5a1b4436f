"""The journal's contract, held alike by the memory, SQLite and PostgreSQL stores.

What a store does of its own (SQLite's migrations and backups, PostgreSQL's leases)
is tested beside it; here is what the supervisor may count on from any of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.engine._events import RunStarted, StepDispatched
from runtime.errors import LeaseLapsed, StoreError
from runtime.store import ClockReading, JournalRecord, MemoryStore, SqliteStore, Store

pytestmark = pytest.mark.anyio

KINDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
FIRST = ClockReading(1_700_000_000.5, 1_234.25, "boot-1")
LATER = ClockReading(1_700_000_100.0, 1_334.0, "boot-1")


@pytest.fixture
def anyio_backend() -> str:
    # psycopg's async connections run on asyncio.
    return "asyncio"


def started(run_id: str, at: float) -> JournalRecord:
    return JournalRecord(run_id, 1, at, RunStarted(run_id, "w", "1", "f", {"n": 1}))


def dispatched(run_id: str, seq: int, at: float) -> JournalRecord:
    return JournalRecord(run_id, seq, at, StepDispatched(run_id, f"s{seq}", 1, "agent"))


class Place:
    """Where one kind of store keeps its journals; opening it again is what a runtime
    started again on it does."""

    def __init__(self, kind: str, path: Path, url: str) -> None:
        self.kind = kind
        self.path = path
        self.url = url
        self.fence: int | None = None
        self.durable = kind != "memory"

    async def open(self) -> Store:
        if self.kind == "memory":
            return MemoryStore()
        if self.kind == "sqlite":
            return SqliteStore(self.path)
        from runtime.store._leases import Leases  # noqa: PLC0415 - psycopg, only for these
        from runtime.store._postgres import PostgresStore  # noqa: PLC0415

        store = PostgresStore(self.url)
        await store.open()
        if self.fence is None:
            self.fence = await Leases(store).join("agents", "control", ttl=600)
        store.fence = self.fence
        return store


@pytest.fixture(params=KINDS)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else ""
    return Place(request.param, tmp_path / "journal.db", url)


@pytest.fixture
async def store(place: Place) -> AsyncIterator[Store]:
    opened = await place.open()
    try:
        yield opened
    finally:
        await opened.close()


class TestAppend:
    """What is appended reads back whole, run by run, in order."""

    async def test_each_run_reads_back_in_the_order_it_was_journaled(self, store: Store) -> None:
        a = [started("a", 1.0), dispatched("a", 2, 2.5), dispatched("a", 3, 4.0)]
        b = [started("b", 2.0), dispatched("b", 2, 3.0)]
        await store.append([a[0]])
        await store.append([b[0], a[1]])
        await store.append([b[1], a[2]])
        assert await store.journal("a") == a
        assert await store.journal("b") == b

    async def test_a_run_never_journaled_has_no_records(self, store: Store) -> None:
        await store.append([started("a", 1.0)])
        assert await store.journal("nobody") == []

    async def test_append_nowait_appends_all_or_says_to_wait(self, store: Store) -> None:
        """A store that cannot append without waiting says so and keeps nothing."""
        batch = [started("a", 1.0), dispatched("a", 2, 2.0)]
        if not store.append_nowait(batch):
            assert await store.journal("a") == []
            await store.append(batch)
        assert await store.journal("a") == batch


class TestRunIds:
    """The runs to take up at start, in the order they started."""

    async def test_runs_are_listed_in_the_order_they_started(self, store: Store) -> None:
        for at, run_id in enumerate(["m", "z", "a"], start=1):
            await store.append([started(run_id, float(at))])
        await store.append([dispatched("a", 2, 4.0), dispatched("m", 2, 5.0)])
        assert await store.run_ids() == ["m", "z", "a"]

    async def test_a_run_marked_ended_is_left_out_by_a_store_that_indexes_open_runs(
        self, store: Store, place: Place
    ) -> None:
        """PostgreSQL lists the open runs its writer owns; the others list every run."""
        await store.append([started("done", 1.0), started("open", 2.0)])
        store.mark_ended("done")
        await store.append([dispatched("done", 2, 3.0)])
        expected = ["open"] if place.kind == "postgres" else ["done", "open"]
        assert await store.run_ids() == expected
        assert [r.seq for r in await store.journal("done")] == [1, 2]


class TestOneTransactionPerBatch:
    """A batch is kept whole or not at all."""

    async def test_a_batch_that_fails_leaves_nothing_of_itself(self, store: Store) -> None:
        await store.append([started("a", 1.0)], FIRST)
        doomed = [
            dispatched("a", 2, 2.0),
            started("b", 2.0),
            dispatched("b", 2, 3.0),
            dispatched("a", 2, 3.0),  # the same (run, seq) twice
        ]
        with pytest.raises(StoreError) as refused:
            await store.append(doomed, LATER)
        assert not isinstance(refused.value, LeaseLapsed)
        assert await store.journal("a") == [started("a", 1.0)]
        assert await store.journal("b") == []
        assert await store.run_ids() == ["a"]
        assert await store.clock_reading() == FIRST

    async def test_an_event_already_journaled_is_refused(self, store: Store) -> None:
        kept = [started("a", 1.0), dispatched("a", 2, 2.0)]
        await store.append(kept)
        with pytest.raises(StoreError):
            await store.append([dispatched("a", 2, 9.0), dispatched("a", 3, 9.5)])
        assert await store.journal("a") == kept

    async def test_the_store_goes_on_after_a_refused_batch(self, store: Store) -> None:
        await store.append([started("a", 1.0)])
        with pytest.raises(StoreError):
            await store.append([started("a", 1.0)])
        await store.append([dispatched("a", 2, 2.0)])
        assert [r.seq for r in await store.journal("a")] == [1, 2]


class TestClockReading:
    """The clock reading a batch was journaled on stands until the next one."""

    async def test_there_is_none_before_the_first(self, store: Store) -> None:
        await store.append([started("a", 1.0)])
        assert await store.clock_reading() is None

    async def test_it_is_kept_until_the_next_one(self, store: Store) -> None:
        await store.append([started("a", 1.0)], FIRST)
        await store.append([dispatched("a", 2, 2.0)])
        assert await store.clock_reading() == FIRST
        await store.append([], LATER)
        assert await store.clock_reading() == LATER


class TestClose:
    """A durable store keeps everything for the runtime that opens it next."""

    async def test_closing_twice_is_harmless(self, store: Store) -> None:
        await store.append([started("a", 1.0)])
        await store.close()
        await store.close()

    async def test_what_was_appended_is_there_when_opened_again(
        self, store: Store, place: Place
    ) -> None:
        """Memory forgets with its process; SQLite and PostgreSQL keep it all."""
        journal = [started("a", 1.0), dispatched("a", 2, 2.0)]
        await store.append(journal, FIRST)
        await store.close()
        again = await place.open()
        try:
            assert await again.journal("a") == (journal if place.durable else [])
            assert await again.run_ids() == (["a"] if place.durable else [])
            assert await again.clock_reading() == (FIRST if place.durable else None)
        finally:
            await again.close()

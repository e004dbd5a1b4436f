"""The PostgreSQL store while its server goes away and comes back, under a stream of appends.

What a runtime counts on: an append fails with `StoreUnavailable` within the store's
bound while the server is gone, every append that returned is still journaled when
it is back, and appends succeed again without opening the store anew.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from itertools import count

import anyio
import anyio.lowlevel
import psycopg
import pytest

from runtime.cluster import LocalPostgres
from runtime.errors import StoreError, StoreUnavailable
from runtime.store._leases import Leases
from runtime.store._postgres import POOL_SIZE, PostgresStore
from tests.runtime.test_store_contract import dispatched, started

pytestmark = pytest.mark.anyio

BOUND = 2.0
"""The store's timeout here: how long an append may take before it is given up."""
SLACK = 1.0
"""What an append may take beyond the bound: the scheduling of a busy test machine."""
WRITERS = 4
"""Appends asked for at once: they queue for the store's one appending connection."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    opened = PostgresStore(postgres_url, timeout=BOUND)
    await opened.open()
    opened.fence = await Leases(opened).join("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", 600)
    try:
        yield opened
    finally:
        await opened.close()


class Load:
    """Writers appending a new run each time, noting which appends returned and which
    failed, with how long each failure took."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store
        self.acknowledged: list[str] = []
        self.failures: list[tuple[StoreError, float, float]] = []
        """Each failed append: why, when it began and how long it took (monotonic)."""
        self._ids = count()
        self._changed = anyio.Event()

    async def until(self, condition: Callable[[], bool], limit: float = 30.0) -> None:
        """Return once `condition` holds, looked at after each append; fail after `limit` s."""
        with anyio.fail_after(limit):
            while not condition():
                await self._changed.wait()

    async def write(self, stop: anyio.Event) -> None:
        while not stop.is_set():
            run_id = f"run-{next(self._ids):05}"
            at = time.time()
            began = time.monotonic()
            try:
                await self.store.append([started(run_id, at), dispatched(run_id, 2, at)])
            except StoreError as exc:
                self.failures.append((exc, began, time.monotonic() - began))
            else:
                self.acknowledged.append(run_id)
            self._changed.set()
            self._changed = anyio.Event()
            # A failure may come at once (a session ended in flight): let the others run.
            await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_appends_carry_on_through_a_server_restart(
    postgres: LocalPostgres, store: PostgresStore, outage: str
) -> None:
    """Stopped or killed mid-stream, the server takes nothing acknowledged with it."""
    load = Load(store)
    halt = postgres.stop if outage == "stop" else postgres.kill
    stop = anyio.Event()
    with anyio.fail_after(90):
        async with anyio.create_task_group() as writers:
            for _ in range(WRITERS):
                writers.start_soon(load.write, stop)
            await load.until(lambda: len(load.acknowledged) >= 50)
            await anyio.to_thread.run_sync(halt)
            await load.until(lambda: len(load.failures) >= WRITERS)
            await anyio.to_thread.run_sync(postgres.start)
            restarted = time.monotonic()
            back = len(load.acknowledged)
            await load.until(lambda: len(load.acknowledged) >= back + 50)
            stop.set()

    unexpected = [exc for exc, _, _ in load.failures if not isinstance(exc, StoreUnavailable)]
    assert unexpected == []
    slowest = max(took for _, _, took in load.failures)
    assert slowest <= BOUND + SLACK, f"an append took {slowest:.1f} s to fail"
    late = [exc for exc, began, _ in load.failures if began > restarted]
    assert late == [], "an append begun after the server was back failed"
    journals = await store.all_journals()
    lost = [run for run in load.acknowledged if [r.seq for r in journals.get(run, [])] != [1, 2]]
    assert lost == [], f"{len(lost)} acknowledged runs are not journaled"


async def test_a_store_opened_while_the_server_is_down_says_so(
    postgres: LocalPostgres, postgres_url: str
) -> None:
    await anyio.to_thread.run_sync(postgres.stop)
    store = PostgresStore(postgres_url, timeout=1)
    began = time.monotonic()
    with pytest.raises(StoreUnavailable) as refused:
        await store.open()
    assert time.monotonic() - began <= 1 + SLACK
    assert str(refused.value).startswith(f"store {postgres_url} failed: ")


async def fill(store: PostgresStore) -> None:
    """Open every connection the pool may hold, by holding them all at once."""
    held: list[object] = []
    everyone = anyio.Event()

    async def hold() -> None:
        async with store.connection() as conn:
            held.append(conn)
            if len(held) == POOL_SIZE:
                everyone.set()
            await everyone.wait()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as holders:
            for _ in range(POOL_SIZE):
                holders.start_soon(hold)


@pytest.mark.parametrize("outage", ["stop", "kill"])
async def test_a_restart_while_idle_costs_no_append(
    postgres: LocalPostgres, store: PostgresStore, outage: str
) -> None:
    """Connections the restart ended while they sat idle, the appending one and those in the
    pool, are never used again: neither appends nor reads fail once the server is back."""
    await store.append([started("before", 1.0)])
    await fill(store)
    assert store.connections().get_stats()["pool_size"] == POOL_SIZE
    load = Load(store)
    await anyio.to_thread.run_sync(postgres.stop if outage == "stop" else postgres.kill)
    await anyio.to_thread.run_sync(postgres.start)
    reads = [await store.fetch("SELECT 1") for _ in range(POOL_SIZE * 2)]
    stop = anyio.Event()
    async with anyio.create_task_group() as writers:
        for _ in range(WRITERS):
            writers.start_soon(load.write, stop)
        await load.until(lambda: len(load.acknowledged) >= 40)
        stop.set()
    assert load.failures == []
    assert reads == [[(1,)]] * (POOL_SIZE * 2)


async def test_an_append_the_server_does_not_answer_fails_within_the_bound(
    postgres_url: str, store: PostgresStore
) -> None:
    """A server that takes the statement and never answers (here: the writer's lease's
    lock held elsewhere, as a takeover holds it) makes the store unavailable, not the
    runtime stuck; whether the abandoned batch landed is unknown, but it is whole or
    absent."""
    await store.append([started("before", 1.0)])
    with psycopg.connect(postgres_url) as blocker:
        blocker.execute("SELECT pg_advisory_lock(%s)", (store.fence,))
        began = time.monotonic()
        with pytest.raises(StoreUnavailable) as refused:
            await store.append([dispatched("before", 2, 2.0), started("lost", 2.0)])
        took = time.monotonic() - began
    assert refused.value.reason == f"no answer within {BOUND:g} s"
    assert BOUND <= took <= BOUND + SLACK
    await store.append([started("after", 3.0)])
    with anyio.fail_after(10):
        # The abandoned statement ends once the lock is gone, committed or cancelled.
        while True:
            pending = await store.fetch(
                "SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT baton.append%%' "
                "AND state = 'active' AND pid <> pg_backend_pid()"
            )
            if not pending:
                break
            await anyio.sleep(0.01)
    landed = await store.journals(["before", "lost"])
    assert [r.seq for r in landed["before"]] in ([1], [1, 2])
    assert len(landed["before"]) - 1 == len(landed.get("lost", []))
    assert [r.seq for r in await store.journal("after")] == [1]

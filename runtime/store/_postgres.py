"""The PostgreSQL journal: one transaction per batch, each checked against its writer's lease.

Several runtimes may share one database; each run is owned by one of them at a
time (see `runtime.store._leases`). Every append names the writer's fencing
token, and `baton.append` refuses the whole batch unless that token's lease is
live and owns every run in it: a runtime that stalled past its lease finds its
writes refused, and acts on none of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from runtime.engine._events import JournalEvent, RunStarted
from runtime.errors import StoreError, StoreUnavailable
from runtime.store._journal import Answered, ClockReading, JournalRecord
from runtime.store._open import redact
from runtime.store._postgres_appender import Appender
from runtime.store._postgres_schema import migrate, version
from runtime.store._postgres_sessions import first_line, has_input

POOL_SIZE = 3
"""Pooled connections a runtime holds at most, for reads and the lease's renewals and
claims; appends have one of their own and the cluster's LISTEN another, 5 in all. Small
on purpose: many runtimes restarting at once must not exhaust the server's connections."""
CONNECT_SECONDS = 10.0
"""How long a connection, or an append, may take before the store is reported unavailable."""

IDLE_IN_TRANSACTION = 5.0
"""Seconds the server lets one of the runtime's sessions sit inside a transaction with
no statement before it ends the session. A runtime stopped mid-claim (SIGSTOP, a paused
VM) holds the row locks of the runs it was claiming: the other runtimes' claims skip
locked rows, so those runs would wait for the stalled one for as long as it is stopped,
long after its lease lapsed. Ended by the server, its locks go and the runs are claimed
at the next check. A claim's statements follow each other in well under a second."""

Connection = psycopg.AsyncConnection[tuple[Any, ...]]


class PostgresStore:
    """Journals in a PostgreSQL database shared by a cluster of runtimes.

    `open()` connects and migrates; a runtime then joins the cluster (`Leases.join`)
    and sets `fence` to its lease's token before appending. Without a fence the
    store only reads (reports, `inspect --at` from beside the cluster).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = CONNECT_SECONDS,
        idle_in_transaction: float = IDLE_IN_TRANSACTION,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.idle_in_transaction = idle_in_transaction
        """Seconds a session of this store may idle inside a transaction (see
        `IDLE_IN_TRANSACTION`)."""
        """Seconds an append may take, the wait for a connection included, and a connection
        may take to open, before the store is reported unavailable."""
        self.schema: int | None = None
        """The schema version `migrate()` found, once it ran."""
        self.fence: int | None = None
        """The fencing token of this runtime's lease, checked by every append."""
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(JournalEvent)
        self.pool: AsyncConnectionPool[Connection] | None = None
        self._appender = Appender(url, self.description, timeout)
        self._ended: list[str] = []
        """Runs ended since the last append, marked so with it."""

    @property
    def description(self) -> str:
        return redact(self.url)

    def migrate(self) -> int:
        """Connect once, check the server and bring the schema up to date; the version found."""
        self.schema = self._once(migrate)
        return self.schema

    def check_schema(self) -> int:
        """Connect once and read the schema's version, changing nothing: for a reader beside
        the cluster, which must not create or migrate a schema where it looks."""
        self.schema = self._once(version)
        return self.schema

    def _once(self, run: Callable[[psycopg.Connection[tuple[object, ...]], str], int]) -> int:
        try:
            with psycopg.connect(
                self.url, connect_timeout=max(1, round(self.timeout)), autocommit=True
            ) as conn:
                return run(conn, self.description)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(self.description, first_line(exc)) from None
        except psycopg.Error as exc:
            raise StoreError(self.description, first_line(exc)) from None

    async def open(self, *, migrate: bool = True) -> None:
        """Open the connection pool; the schema is migrated first if not yet, or with
        `migrate=False` only checked, for a store that will only read."""
        if self.pool is not None:
            return
        if self.schema is None:
            await anyio.to_thread.run_sync(self.migrate if migrate else self.check_schema)
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={"autocommit": True, "prepare_threshold": 0},
            timeout=self.timeout,
            # The pool retries a lost connection with a back-off that doubles up to this,
            # then leaves it to the next request: kept short so that the first appends
            # after the server is back do not wait out a back-off of minutes.
            reconnect_timeout=self.timeout,
            open=False,
            name="baton",
            configure=self._configure,
        )
        try:
            await pool.open(wait=True, timeout=self.timeout)
        except PoolTimeout:
            await pool.close()
            raise StoreUnavailable(self.description, "no connection within "
                                   f"{self.timeout:g} s") from None  # fmt: skip
        self.pool = pool

    async def _configure(self, conn: Connection) -> None:
        """Set up each new pooled connection: the server ends it when it idles inside a
        transaction longer than `idle_in_transaction` (a stalled runtime's locks go)."""
        milliseconds = max(1, round(self.idle_in_transaction * 1000))
        await conn.execute(
            b"SELECT set_config('idle_in_transaction_session_timeout', %s, false)",
            (str(milliseconds),),
        )

    def connections(self) -> AsyncConnectionPool[Connection]:
        if self.pool is None:
            raise StoreError(self.description, "the store is not open")
        return self.pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A connection of the pool that the server has not ended while it sat there.

        After the server restarted, every pooled connection is dead, and each would fail
        the statement it is given: they are put aside here until a live one comes, so
        that the first reads and renewals after a restart succeed.
        """
        pool = self.connections()
        while True:
            async with pool.connection() as conn:
                if await _live(conn):
                    yield conn
                    return
                # Closed, it is replaced by the pool rather than handed out again.
                await conn.close()

    def mark_ended(self, run_id: str) -> None:
        self._ended.append(run_id)

    def append_nowait(
        self, records: Sequence[JournalRecord], reading: ClockReading | None = None
    ) -> bool:
        return False

    def append_soon(
        self,
        records: Sequence[JournalRecord],
        reading: ClockReading | None,
        answered: Answered,
    ) -> bool:
        """Send the batch now when the appending connection is open and idle; `answered`
        is told in the event loop's reader callback that takes the server's answer, so the
        runtime sends the batch's frames and the next batch without a task to wake first."""
        if not self._appender.idle:
            return False
        params = self._params(records, reading)
        if params is None:
            answered(None)
        else:
            self._appender.send_now(params, answered)
        return True

    async def append(
        self, records: Sequence[JournalRecord], reading: ClockReading | None = None
    ) -> None:
        params = self._params(records, reading)
        if params is not None:
            await self._appender.append(params)

    def _params(
        self, records: Sequence[JournalRecord], reading: ClockReading | None
    ) -> tuple[object, ...] | None:
        """`baton.append`'s parameters for a batch and the runs ended since the last one;
        None when there is nothing to write."""
        if not records and reading is None and not self._ended:
            return None
        if self.fence is None:
            raise StoreError(self.description, "this runtime holds no lease to write under")
        ended, self._ended = self._ended, []
        encode = self._encoder.encode
        fresh = [r for r in records if r.seq == 1 and isinstance(r.event, RunStarted)]
        return (
            self.fence,
            [r.run_id for r in fresh],
            [r.at for r in fresh],
            ended,
            [r.run_id for r in records],
            [r.seq for r in records],
            [r.at for r in records],
            [encode(r.event) for r in records],
            None if reading is None else reading.wall,
            None if reading is None else reading.monotonic,
            None if reading is None else reading.boot,
        )

    async def fetch(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        try:
            async with self.connection() as conn:
                cursor = await conn.execute(query, params, binary=True)
                return await cursor.fetchall()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise StoreUnavailable(self.description, first_line(exc)) from None
        except psycopg.Error as exc:
            raise StoreError(self.description, first_line(exc)) from None

    async def journal(self, run_id: str) -> list[JournalRecord]:
        rows = await self.fetch(
            "SELECT seq, at, body FROM baton.events WHERE run_id = %s ORDER BY seq", (run_id,)
        )
        return self._group(rows, run_id).get(run_id, [])

    async def journals(self, run_ids: Sequence[str]) -> dict[str, list[JournalRecord]]:
        """The journals of several runs, in one query."""
        rows = await self.fetch(
            "SELECT run_id, seq, at, body FROM baton.events WHERE run_id = ANY(%s::text[]) "
            "ORDER BY run_id, seq",
            (list(run_ids),),
        )
        return self._group(rows)

    async def all_journals(self) -> dict[str, list[JournalRecord]]:
        """Every run's journal, for reports read from beside the cluster."""
        rows = await self.fetch(
            "SELECT run_id, seq, at, body FROM baton.events ORDER BY run_id, seq"
        )
        return self._group(rows)

    def _group(
        self, rows: list[tuple[Any, ...]], run_id: str | None = None
    ) -> dict[str, list[JournalRecord]]:
        """Records by run, from rows of (run_id, seq, at, body), or of (seq, at, body) for
        `run_id` alone."""
        decode = self._decoder.decode
        journals: dict[str, list[JournalRecord]] = {}
        try:
            for row in rows:
                run, seq, at, body = row if run_id is None else (run_id, *row)
                journals.setdefault(run, []).append(JournalRecord(run, seq, at, decode(body)))
        except msgspec.DecodeError as exc:
            raise StoreError(self.description, f"cannot read the journal: {exc}") from None
        return journals

    async def run_ids(self) -> list[str]:
        """The runs this runtime owns that have not ended, in the order they started."""
        if self.fence is None:
            return []
        rows = await self.fetch(
            "SELECT run_id FROM baton.runs WHERE owner = %s AND NOT ended "
            "ORDER BY started_at, run_id",
            (self.fence,),
        )
        return [run_id for (run_id,) in rows]

    async def clock_reading(self) -> ClockReading | None:
        rows = await self.fetch("SELECT wall, monotonic, boot FROM baton.clock")
        return None if not rows else ClockReading(rows[0][0], rows[0][1], rows[0][2])

    async def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            await self._appender.close()
            await pool.close()


async def _live(conn: Connection) -> bool:
    """Whether a connection idle in the pool still has its server session: a round trip
    is spent to find out only when it has something to read, so a healthy one costs none."""
    if conn.closed:
        return False
    if not has_input(conn):
        return True
    try:
        await conn.execute("")
    except psycopg.Error:
        return False
    return True

"""The PostgreSQL journal's appends: one connection of their own, driven from the event loop.

Appends are the hot path, one call of `baton.append` per batch. The batch is
sent without blocking the moment it is taken, and its answer is read in the
event loop's reader callback as soon as the socket has it: no thread to hand
the batch to and none to be woken by, which cost about 2 ms of each commit's
round trip under load. Taking turns with a connection used from a worker
thread, this gave 1.24 times the steps/s (median of 6 pairs, `benchmarks/RESULTS.md`).

Commits go one at a time. Sending the next batch while one commits (libpq's
pipeline mode, the later batch refused unless the earlier one's last record
was in the journal) was measured and not kept: the batches got smaller, the
commits more frequent, and steps/s fell to 0.89 of one at a time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio
import psycopg
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

from runtime.errors import LeaseLapsed, StoreError, StoreUnavailable
from runtime.store._journal import Answered
from runtime.store._postgres_schema import LEASE_LAPSED, NOT_OWNER
from runtime.store._postgres_sessions import first_line

APPEND = (
    b"SELECT baton.append($1, $2::text[], $3::float8[], $4::text[], $5::text[], $6::int4[], "
    b"$7::float8[], $8::bytea[], $9::float8, $10::float8, $11::text)"
)
_BINARY = (PyFormat.BINARY,) * 11
"""Parameters in binary: a batch's arrays are dumped without quoting each element."""

SyncConnection = psycopg.Connection[tuple[Any, ...]]


class _Line:
    """One connection, read and written without blocking from the event loop."""

    def __init__(self, conn: SyncConnection, description: str) -> None:
        self.conn = conn
        self.pgconn = conn.pgconn
        self.description = description
        self.transformer = Transformer(conn)
        self.waiting: Answered | None = None
        """Whom to tell of the answer to the batch on its way, if one is."""
        self.quiet = asyncio.Event()
        """Set while no batch is on its way."""
        self.quiet.set()
        self.refusal: StoreError | None = None
        """The error the server answered the batch on its way with, if it did."""
        self.broken: StoreError | None = None
        """Why the connection can no longer be used."""
        self.loop = asyncio.get_running_loop()
        self._overdue: asyncio.TimerHandle | None = None
        self.pgconn.nonblocking = 1
        self.socket = self.pgconn.socket
        # Read even while idle: a session the server ended is found before the next append.
        self.loop.add_reader(self.socket, self._read)

    def send(self, params: Sequence[object], answered: Answered, timeout: float) -> None:
        """Send one batch; `answered` is told of the server's answer, or of the connection
        lost, or after `timeout` seconds without an answer, right where it is learnt."""
        if self.broken is not None:
            raise self.broken
        if self.waiting is not None:
            raise StoreError(self.description, "an append is already on its way")
        tx = self.transformer
        values = tx.dump_sequence(params, _BINARY)
        try:
            self.pgconn.send_query_params(
                APPEND, values, tx.types, tx.formats, result_format=pq.Format.BINARY
            )
        except psycopg.Error as exc:
            error = StoreUnavailable(self.description, first_line(exc))
            self.fail(error)
            raise error from None
        self.waiting = answered
        self.quiet.clear()
        self.refusal = None
        self._overdue = self.loop.call_later(timeout, self._too_late, timeout)
        self._flush()

    def _too_late(self, timeout: float) -> None:
        # Whether the batch commits is unknown: the connection is not used again.
        self.fail(StoreUnavailable(self.description, f"no answer within {timeout:g} s"))

    def _flush(self) -> None:
        try:
            pending = self.pgconn.flush()
        except psycopg.Error as exc:
            self.fail(StoreUnavailable(self.description, first_line(exc)))
            return
        if pending:
            # The socket's buffer is full: the rest goes once the server has read some.
            self.loop.add_writer(self.socket, self._flush_more)

    def _flush_more(self) -> None:
        self.loop.remove_writer(self.socket)
        if self.broken is None:
            self._flush()

    def _read(self) -> None:
        """The socket is readable: take the answer if it is whole."""
        pgconn = self.pgconn
        try:
            pgconn.consume_input()
            if self.waiting is None:
                # Nothing was asked: the server may be ending the session (reading its end
                # of the stream raised above), or it said something the next append ignores.
                if pgconn.status != pq.ConnStatus.OK:
                    raise psycopg.OperationalError("the server ended the session")
                return
            while not pgconn.is_busy():
                result = pgconn.get_result()
                if result is None:
                    self._answered(self.refusal)
                    return
                if result.status == pq.ExecStatus.FATAL_ERROR:
                    self.refusal = _refusal(self.description, result)
        except psycopg.Error as exc:
            self.fail(StoreUnavailable(self.description, first_line(exc)))

    def _answered(self, error: StoreError | None) -> None:
        answered, self.waiting = self.waiting, None
        if self._overdue is not None:
            self._overdue.cancel()
            self._overdue = None
        self.quiet.set()
        if answered is not None:
            answered(error)

    def fail(self, error: StoreError) -> None:
        """The connection is lost: the batch on its way, if any, fails with `error`."""
        if self.broken is not None:
            return
        self.broken = error
        self.loop.remove_reader(self.socket)
        self.loop.remove_writer(self.socket)
        self.conn.close()
        self._answered(error)


def _refusal(description: str, result: pq.abc.PGresult) -> StoreError:
    state = (result.error_field(pq.DiagnosticField.SQLSTATE) or b"").decode()
    message = (result.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"").decode(
        errors="replace"
    )
    if state in (LEASE_LAPSED, NOT_OWNER):
        return LeaseLapsed(description, message)
    return StoreError(description, message or f"error {state}")


class Appender:
    """Commits batches through `baton.append`, one at a time, each bounded by `timeout`."""

    def __init__(self, url: str, description: str, timeout: float) -> None:
        self._url = url
        self._description = description
        self._timeout = timeout
        self._line: _Line | None = None
        self._turn = anyio.Lock()
        """Appends asked for at once wait here for the one on its way."""

    @property
    def idle(self) -> bool:
        """Whether the connection is open with nothing on its way: `send_now` may send."""
        line = self._line
        return (
            line is not None
            and line.broken is None
            and line.waiting is None
            and not self._turn.locked()
        )

    def send_now(self, params: Sequence[object], answered: Answered) -> None:
        """Send one batch while `idle`, and tell `answered` in the reader callback that
        takes the answer (the connection refuses a batch sent while another is on its way)."""
        if self._line is None:
            raise StoreUnavailable(self._description, "not connected")
        self._line.send(params, answered, self._timeout)

    async def append(self, params: Sequence[object]) -> None:
        """Commit one batch; `LeaseLapsed`, `StoreUnavailable` or `StoreError` if not."""
        try:
            with anyio.fail_after(self._timeout):
                async with self._turn:
                    line = await self._connected()
                    while line.waiting is not None:
                        # A batch sent at once is on its way: this one follows it.
                        await line.quiet.wait()
                        line = await self._connected()
                    answer: asyncio.Future[None] = line.loop.create_future()
                    line.send(params, partial(_settle, answer), self._timeout)
                    try:
                        await answer
                    except anyio.get_cancelled_exc_class():
                        # Out of time, or the runtime is stopping, with the batch on its
                        # way: whether it commits is unknown, so the connection is dropped.
                        line.fail(StoreUnavailable(self._description, "an append was given up"))
                        raise
        except TimeoutError:
            raise StoreUnavailable(
                self._description, f"no answer within {self._timeout:g} s"
            ) from None

    async def _connected(self) -> _Line:
        line = self._line
        if line is not None and line.broken is None:
            return line
        # None yet, or the server went away: this append opens a new connection.
        self._line = None
        abandoned = threading.Event()
        try:
            conn = await anyio.to_thread.run_sync(self._connect, abandoned, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            abandoned.set()
            raise
        line = self._line = _Line(conn, self._description)
        return line

    def _connect(self, abandoned: threading.Event) -> SyncConnection:
        try:
            conn = psycopg.connect(
                self._url, autocommit=True, connect_timeout=max(1, int(self._timeout))
            )
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(self._description, first_line(exc)) from None
        except psycopg.Error as exc:
            raise StoreError(self._description, first_line(exc)) from None
        if abandoned.is_set():
            # The append that asked for it gave up meanwhile, and nothing will use it.
            conn.close()
        return conn

    async def close(self) -> None:
        """Close the connection; a batch still on its way fails."""
        line, self._line = self._line, None
        if line is not None:
            line.fail(StoreUnavailable(self._description, "the store was closed"))


def _settle(answer: asyncio.Future[None], error: StoreError | None) -> None:
    if answer.done():
        return
    if error is None:
        answer.set_result(None)
    else:
        answer.set_exception(error)

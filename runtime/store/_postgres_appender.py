"""The PostgreSQL journal's appends: one connection of their own, used from a worker thread.

Appends are the hot path, one call of `baton.append` per batch, and the event
loop goes on gathering the next batch while one commits. Made on a blocking
connection in a thread, a commit's answer is taken the moment it arrives
rather than when the loop is next free, and psycopg's protocol steps cost the
loop nothing: taking turns with the pool's async connections in one run it
gave 4 to 22 % more steps/s (see `benchmarks/RESULTS.md`).

A thread cannot be cancelled, so an append that outlives its bound is
abandoned: its connection is left to that thread, which closes it once the
server answers or the socket fails, and the next append opens another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import psycopg

from runtime.errors import LeaseLapsed, StoreError, StoreUnavailable
from runtime.store._postgres_schema import LEASE_LAPSED, NOT_OWNER
from runtime.store._postgres_sessions import first_line, has_input

APPEND = (
    "SELECT baton.append(%b, %b::text[], %b::float8[], %b::text[], %b::text[], %b::int4[], "
    "%b::float8[], %b::bytea[], %b::float8, %b::float8, %b::text)"
)
"""Parameters in binary (`%b`): a batch's arrays are dumped without quoting each element."""

SyncConnection = psycopg.Connection[tuple[Any, ...]]


class _Line:
    """One connection and whether the appender gave it up to a thread that overran."""

    __slots__ = ("abandoned", "conn")

    def __init__(self) -> None:
        self.conn: SyncConnection | None = None
        self.abandoned = False


class Appender:
    """Commits batches through `baton.append`, one at a time, each bounded by `timeout`."""

    def __init__(self, url: str, description: str, timeout: float) -> None:
        self._url = url
        self._description = description
        self._timeout = timeout
        self._line = _Line()
        self._limiter = anyio.CapacityLimiter(1)

    async def append(self, params: Sequence[object]) -> None:
        """Commit one batch; `LeaseLapsed`, `StoreUnavailable` or `StoreError` if not."""
        line = self._line
        try:
            with anyio.fail_after(self._timeout):
                await anyio.to_thread.run_sync(
                    self._append, line, params, limiter=self._limiter, abandon_on_cancel=True
                )
        except TimeoutError:
            # The limiter is free again: the next append's thread takes a new line.
            line.abandoned = True
            self._line = _Line()
            raise StoreUnavailable(
                self._description, f"no answer within {self._timeout:g} s"
            ) from None

    async def close(self) -> None:
        """Close the connection, once the append under way (if any) is done."""
        line, self._line = self._line, _Line()
        line.abandoned = True
        with anyio.move_on_after(self._timeout):
            await anyio.to_thread.run_sync(
                _close, line, limiter=self._limiter, abandon_on_cancel=True
            )

    def _append(self, line: _Line, params: Sequence[object]) -> None:
        try:
            conn = self._connected(line)
            conn.execute(APPEND, params, binary=True)
        except psycopg.OperationalError as exc:
            # The server went away or restarted: the next append opens a new connection.
            _close(line)
            raise StoreUnavailable(self._description, first_line(exc)) from None
        except psycopg.Error as exc:
            if exc.sqlstate in (LEASE_LAPSED, NOT_OWNER):
                raise LeaseLapsed(self._description, first_line(exc)) from None
            raise StoreError(self._description, first_line(exc)) from None
        finally:
            if line.abandoned:
                _close(line)

    def _connected(self, line: _Line) -> SyncConnection:
        conn = line.conn
        if conn is not None and (conn.closed or has_input(conn)):
            _close(line)
            conn = None
        if conn is None:
            conn = psycopg.connect(
                self._url,
                autocommit=True,
                prepare_threshold=0,
                connect_timeout=max(1, int(self._timeout)),
            )
            line.conn = conn
        return conn


def _close(line: _Line) -> None:
    conn, line.conn = line.conn, None
    if conn is not None:
        conn.close()

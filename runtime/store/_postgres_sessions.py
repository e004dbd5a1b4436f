"""What the PostgreSQL store's connections share: whether an idle session still stands,
and how a driver error reads in a log line or an error reply."""

from __future__ import annotations

import select
from typing import Any

import psycopg


def has_input(conn: psycopg.BaseConnection[Any]) -> bool:
    """Whether an idle connection has something to read: it has nothing unless its server
    ended the session (its farewell, or the end of the stream, waits there)."""
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN)
    return bool(poller.poll(0))


def first_line(exc: BaseException) -> str:
    """An exception's first line, short enough for a log field or an error reply."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:500]

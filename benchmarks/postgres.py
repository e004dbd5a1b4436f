"""A PostgreSQL server for the benchmark, and an empty database for each measurement."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from runtime.cluster import LocalPostgres, LocalPostgresError


@contextmanager
def postgres_server() -> Iterator[LocalPostgres | None]:
    """A server of the benchmark's own, removed after; None (and why, on stderr) when this
    machine has none to run (the postgres-server extra is missing)."""
    try:
        server = LocalPostgres()
    except LocalPostgresError:
        yield None
        return
    with server:
        yield server


def fresh_database(server: LocalPostgres) -> str:
    """The URL of a new, empty database on `server`: each measurement starts with no runs.

    The databases of earlier measurements are dropped and a checkpoint taken first, so
    that no measurement pays for the last one's writes being flushed or vacuumed: taking
    turns without this, whichever PostgreSQL measurement came second was the slower.
    """
    import psycopg  # noqa: PLC0415 - with the postgres extra only

    name = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(server.url, autocommit=True) as conn:
        earlier = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'bench%'")
        for (old,) in earlier.fetchall():
            conn.execute(f"DROP DATABASE {old} WITH (FORCE)".encode())
        conn.execute(b"CHECKPOINT")
        conn.execute(f"CREATE DATABASE {name}".encode())
    return f"postgresql://baton@/{name}?host={server.folder}"

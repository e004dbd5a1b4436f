"""A PostgreSQL server for the benchmark, and an empty database for each measurement."""

from __future__ import annotations

import secrets
import statistics
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from benchmarks._progress import Progress
from benchmarks.workflow import measure_workflow
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


TURNS = 3
"""Pairs of SQLite FULL and PostgreSQL measurements taken in turn for their ratio."""
TURN_LATENCY_RUNS = 20
"""Runs one at a time before each measurement in turn: only its steps/s counts."""


@dataclass(frozen=True)
class Turns:
    """Steps/s of one runtime on SQLite FULL and on PostgreSQL, measured in turn."""

    sqlite_full: list[float]
    postgres: list[float]

    @property
    def ratios(self) -> list[float]:
        return [pg / full for full, pg in zip(self.sqlite_full, self.postgres, strict=True)]

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.ratios)


def measure_turns(server: LocalPostgres, runs: int, progress: Progress) -> Turns:
    """One runtime on SQLite FULL and on PostgreSQL, each pair's order the other's reverse,
    each measurement on an empty journal: both halves of each ratio see the same machine
    within seconds, where measurements a minute apart saw its load drift by a third."""
    full: list[float] = []
    postgres: list[float] = []
    with tempfile.TemporaryDirectory(prefix="baton-bench-turns-") as folder:
        for turn in range(TURNS):
            stores = [("sqlite", f"sqlite:///{folder}/full-{turn}.db?synchronous=FULL"),
                      ("postgres", "")]  # fmt: skip
            for kind, store in stores if turn % 2 == 0 else stores[::-1]:
                result = measure_workflow(
                    secure=True,
                    store=store or fresh_database(server),
                    latency_runs=TURN_LATENCY_RUNS,
                    pipelined_runs=runs,
                    progress=progress,
                )
                (full if kind == "sqlite" else postgres).append(result.steps_per_s)
    return Turns(full, postgres)

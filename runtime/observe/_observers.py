"""What the supervisor tells its observers: history entries as they are written, and gauges.

The backends (Prometheus in `runtime.observe._prometheus`, OpenTelemetry in
`runtime.observe._tracing`) are optional, so the supervisor knows them only by these
protocols.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from protocols import TERMINAL_STATUSES, HistoryEntry
from runtime.engine._run import Run

RUN_ENDINGS: Mapping[str, str] = {f"run_{status}": status for status in TERMINAL_STATUSES}
"""The history event that ends a run, and the status it ends in."""


@dataclass(frozen=True, slots=True)
class Gauges:
    """What the loop saw at its last heartbeat."""

    active_runs: int = 0
    stuck_runs: int = 0
    queued_steps: int = 0
    agents: Mapping[str, int] = field(default_factory=dict)
    refused: Mapping[str, int] = field(default_factory=dict)
    cluster: ClusterSeen | None = None
    """For a runtime of a cluster: its lease and what it did with it."""


@dataclass(frozen=True, slots=True)
class ClusterSeen:
    """A cluster's runtime at its last heartbeat; the counts are since the process started."""

    runs_owned: int
    members: int
    lease_left: float
    """Seconds its lease is held for as far as it knows; 0 once lost."""
    leases_lost: int
    takeovers: int
    runs_taken_over: int
    fenced_writes: int
    fenced_sends: int


Handler = Callable[[Run, HistoryEntry], None]
"""Takes in one entry just written to the run's history."""

OTHER_EVENTS = "*"
"""The key of an observer's handler for every event it does not name."""


class Observer(Protocol):
    def handlers(self) -> Mapping[str, Handler | None]:
        """The history events this observer takes in, each with its handler; `OTHER_EVENTS`
        for the events not named, and None for an event named to be left alone."""


class Observers:
    """Every observer's handlers, by event.

    The loop writes a few entries per step, most of which no observer wants:
    one lookup per entry finds the handlers that do, where asking each
    observer in turn cost a call apiece.
    """

    def __init__(self, observers: Iterable[Observer]) -> None:
        tables = [observer.handlers() for observer in observers]
        named = {event for table in tables for event in table if event != OTHER_EVENTS}

        def chain(event: str) -> tuple[Handler, ...]:
            found = (table.get(event, table.get(OTHER_EVENTS)) for table in tables)
            return tuple(handler for handler in found if handler is not None)

        self._table = {event: chain(event) for event in named}
        self._otherwise = chain(OTHER_EVENTS)

    def observe(self, run: Run, seen: int) -> None:
        """Hand the entries of `run`'s history from index `seen` on to their handlers."""
        table = self._table
        otherwise = self._otherwise
        history = run.history
        for index in range(seen, len(history)):
            entry = history[index]
            for handle in table.get(entry.event, otherwise):
                handle(run, entry)


class Metrics(Observer, Protocol):
    gauges: Gauges
    """Replaced whole by the loop each heartbeat, so a reader on another thread sees one
    consistent snapshot."""


class Tracer(Observer, Protocol):
    def traceparent(self, run_id: str, step: str, attempt: int, *more: object) -> str:
        """The traceparent an assignment (or, with `more`, a forwarded tool call) carries."""

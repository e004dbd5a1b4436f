"""A run rebuilt from its journal: the record is the fold of its events.

The supervisor folds each event into its run with the time it journaled it
with, so folding the journal again, in order, with those times, gives the same
run. This is what recovery and `inspect --at` rest on.
"""

from __future__ import annotations

from collections.abc import Iterable

from runtime import engine
from runtime.engine._events import RunStarted
from runtime.engine._run import Run
from runtime.errors import BatonError
from runtime.store._journal import JournalRecord
from runtime.workflow._catalog import Catalog


class JournalUnreadable(BatonError):
    """A run's journal cannot be folded into a run: the reason says where it breaks."""

    def __init__(self, run_id: str, reason: str) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(f"the journal of run {run_id!r} cannot be replayed: {reason}")


class GraphNotLoaded(JournalUnreadable):
    """The run started on a version of its workflow that this runtime has not loaded."""

    def __init__(self, started: RunStarted, reason: str) -> None:
        self.started = started
        super().__init__(started.run_id, reason)


def replay(
    catalog: Catalog, records: Iterable[JournalRecord], *, version: int | None = None
) -> Run:
    """Fold `records` (one run's journal, in order) into its run.

    With `version`, stop after the event that brought the record to that
    version: the `seq` of its history entries, which is what users see.
    The graph is the one the run started on, found by its fingerprint: a run is
    never replayed on a graph it did not run on.
    """
    run: Run | None = None
    expected = 1
    for record in records:
        if run is not None and version is not None and run.seq >= version:
            break
        if record.seq != expected:
            raise JournalUnreadable(record.run_id, f"seq {record.seq} where {expected} was due")
        expected += 1
        if run is None:
            run = _begin(catalog, record)
            continue
        engine.apply(run, record.event, record.at)
    if run is None:
        raise JournalUnreadable("", "the journal is empty")
    return run


def _begin(catalog: Catalog, record: JournalRecord) -> Run:
    event = record.event
    if not isinstance(event, RunStarted):
        raise JournalUnreadable(record.run_id, f"it begins with {type(event).__name__}")
    graph = catalog.find(event.workflow, event.version, event.fingerprint)
    if isinstance(graph, str):
        raise GraphNotLoaded(event, graph)
    run, _ = engine.start(graph, event, record.at)
    return run

"""What a runtime takes up from its store: the runs, and any past version of one."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import structlog

from protocols import ControlError, Message, RunReply
from runtime.engine._run import Run
from runtime.errors import StoreError
from runtime.planes._views import record_view
from runtime.store import JournalRecord, JournalUnreadable, Store, replay
from runtime.store._held import HeldRun
from runtime.workflow._catalog import Catalog

log = structlog.get_logger("baton.runtime")


@dataclass(frozen=True, slots=True)
class Recovered:
    """A run rebuilt from its journal, and the seq its journal goes on from."""

    run: Run
    last_seq: int


async def recovered_runs(store: Store, catalog: Catalog) -> AsyncIterator[Recovered | HeldRun]:
    """Every run the store holds: rebuilt, or held as stuck with the reason it cannot be."""
    for run_id in await store.run_ids():
        records = await store.journal(run_id)
        try:
            run = replay(catalog, records)
        except JournalUnreadable as exc:
            # The reason says what is wrong with the journal; a traceback would not.
            log.error("run.unrecoverable", run_id=run_id, reason=exc.reason)  # noqa: TRY400
            yield HeldRun(run_id, records, exc.reason)
            continue
        except Exception as exc:
            # A journal the engine cannot fold must not stop every other run from
            # being taken up: this one is held, and the traceback logged.
            log.exception("run.replay_failed", run_id=run_id)
            yield HeldRun(run_id, records, f"replaying its journal failed: {exc!r}")
            continue
        yield Recovered(run, records[-1].seq)


async def past_record(
    store: Store,
    catalog: Catalog,
    pending: Callable[[], Sequence[JournalRecord]],
    request: int,
    run_id: str,
    version: int,
) -> Message:
    """The reply to a request for `run_id` as it was at `version`: its record, or why not.

    `pending` gives the records not yet in the store, the journal's next part; it is
    asked after the store was read, so that no record is in both or in neither
    (unless a commit landed between the two, which the version check then catches).
    """
    try:
        records = await store.journal(run_id)
        records += [r for r in pending() if r.run_id == run_id]
        run = replay(catalog, records, version=version)
    except (JournalUnreadable, StoreError) as exc:
        return ControlError(id=request, code="internal", message=str(exc)[:1_000])
    if run.seq < version:
        text = f"version {version} is still being written to the journal; ask again"
        return ControlError(id=request, code="overloaded", message=text)
    return RunReply(id=request, record=record_view(run))

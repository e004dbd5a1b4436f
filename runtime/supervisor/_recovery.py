"""What a runtime takes up from its store: the runs, and any past version of one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import structlog

from protocols import ControlError, Message, RunReply
from runtime.engine._run import Run
from runtime.errors import StoreError
from runtime.planes._views import record_view
from runtime.store import JournalRecord, JournalUnreadable, Store, replay
from runtime.store._held import HeldRun
from runtime.workflow._catalog import Catalog

log = structlog.get_logger("baton.runtime")


@dataclass(slots=True)
class TakenUp:
    """The runs a store holds: rebuilt, or held as stuck; and each one's last seq."""

    runs: dict[str, Run] = field(default_factory=dict)
    held: dict[str, HeldRun] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)


async def take_up(store: Store, catalog: Catalog, run_ids: Sequence[str] | None = None) -> TakenUp:
    """Every run the store holds (or those of `run_ids`): rebuilt, or held as stuck with the
    reason it cannot be."""
    taken = TakenUp()
    for run_id in await store.run_ids() if run_ids is None else run_ids:
        records = await store.journal(run_id)
        taken.last_seq[run_id] = records[-1].seq if records else 0
        try:
            taken.runs[run_id] = replay(catalog, records)
        except JournalUnreadable as exc:
            # The reason says what is wrong with the journal; a traceback would not.
            log.error("run.unrecoverable", run_id=run_id, reason=exc.reason)  # noqa: TRY400
            taken.held[run_id] = HeldRun(run_id, records, exc.reason)
        except Exception as exc:
            # A journal the engine cannot fold must not stop every other run from
            # being taken up: this one is held, and the traceback logged.
            log.exception("run.replay_failed", run_id=run_id)
            taken.held[run_id] = HeldRun(run_id, records, f"replaying its journal failed: {exc!r}")
    return taken


class PastRead(NamedTuple):
    """A client's request for a run's record as it was at `version`, to answer off the loop."""

    identity: bytes
    request: int
    run_id: str
    version: int


class PastReads:
    """Requests for past records, kept until whoever drives the runtime answers them off
    its loop (the journal may have to be read from disk)."""

    __slots__ = ("_catalog", "_pending", "_reads", "_store")

    def __init__(
        self, store: Store, catalog: Catalog, pending: Callable[[], Sequence[JournalRecord]]
    ) -> None:
        """`pending` gives the records not yet committed to `store`."""
        self._store = store
        self._catalog = catalog
        self._pending = pending
        self._reads: list[PastRead] = []

    def add(self, read: PastRead) -> None:
        self._reads.append(read)

    def take(self) -> list[PastRead]:
        """The requests kept since the last call, to answer with `answer`."""
        reads, self._reads = self._reads, []
        return reads

    async def answer(self, read: PastRead) -> Message:
        return await past_record(
            self._store,
            self._catalog,
            self._pending,
            request=read.request,
            run_id=read.run_id,
            version=read.version,
        )


async def past_record(
    store: Store,
    catalog: Catalog,
    pending: Callable[[], Sequence[JournalRecord]],
    *,
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

"""What the runtime gathers between two commits: journal records, and the frames they caused.

Persist, then act: the records of a batch are appended to the store in one
call, and the frames gathered with them leave only once that call returned.
A clock reading taken meanwhile is committed with the batch, so that the
journal always says which reading its latest events were taken on. When the
process is told to rehearse crashes, it dies on either side of a commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

import structlog

from actors import KillPoints
from runtime.engine._events import JournalEvent, StepDispatched, StepSucceeded
from runtime.errors import StoreError
from runtime.planes._sessions import Session
from runtime.store import ClockReading, JournalRecord, Store

log = structlog.get_logger("baton.runtime")

AGENTS: Final = 0
"""Frames for the agent plane's peers."""
CONTROL: Final = 1
"""Frames for the control plane's clients."""

Outgoing = tuple[int, bytes, bytes, Session | None]
"""A frame to send: the plane (`AGENTS` or `CONTROL`), the routing id, the payload, and the
session it is for (None: for whichever connection holds the routing id)."""


@dataclass(frozen=True, slots=True)
class Commit:
    """A batch taken out to be made durable, and what may leave once it is."""

    records: list[JournalRecord]
    frames: list[Outgoing]
    reading: ClockReading | None


class Batch:
    """The records and frames gathering for the next commit, and each run's last seq.

    Commit with `append_now`, or `take` and `commit`; then send what `take_frames`
    gives (or the commit's frames), through `live`. Whoever is told of a batch's
    records as they go to the store (`on_journal`) may add frames that are to leave
    only once those records are durable.
    """

    __slots__ = (
        "_count",
        "_kill_points",
        "_on_journal",
        "_seqs",
        "_store",
        "batches",
        "failure",
        "frames",
        "reading",
        "records",
    )

    def __init__(
        self,
        store: Store,
        kill_points: KillPoints,
        count: Callable[[str], None],
        on_journal: Callable[[list[JournalRecord]], None] | None = None,
    ) -> None:
        """`count` counts a refusal by its reason: here, of a frame whose session ended.
        `on_journal` is told of each batch of records as it is handed to the store; the
        frames it adds leave with the batch's, once the records are durable."""
        self._store = store
        self._on_journal = on_journal
        self._kill_points = kill_points
        self._count = count
        self._seqs: dict[str, int] = {}
        self.records: list[JournalRecord] = []
        self.frames: list[Outgoing] = []
        self.reading: ClockReading | None = None
        """A new clock reading, to be committed with the next records."""
        self.batches = 0
        """Batches committed."""
        self.failure: StoreError | None = None
        """Why the store refused a batch: nothing is committed or sent after it."""

    def write(self, event: JournalEvent, now: float) -> JournalRecord:
        """Add `event` to the batch as its run's next record."""
        seq = self._seqs.get(event.run_id, 0) + 1
        self._seqs[event.run_id] = seq
        record = JournalRecord(event.run_id, seq, now, event)
        self.records.append(record)
        return record

    def go_on_from(self, run_id: str, seq: int) -> None:
        """Number the run's next record after `seq`, the last one in the store."""
        self._seqs[run_id] = seq

    def take_frames(self) -> list[Outgoing]:
        """The frames gathered, which the records before them made leave-able."""
        frames, self.frames = self.frames, []
        return frames

    def take(self) -> Commit:
        """Everything gathered, to commit while the next batch gathers."""
        if self.records and self._on_journal is not None:
            self._on_journal(self.records)
        commit = Commit(self.records, self.frames, self.reading)
        self.records, self.frames, self.reading = [], [], None
        return commit

    def append_now(self) -> bool:
        """Append the records if the store can at once (then they are no longer held
        here); False to `commit` them instead, or if the store refused them."""
        records = self.records
        rehearsing = self._kill_points.armed
        if rehearsing:
            self._pass_kill_points(records, StepSucceeded, "result-received")
        try:
            appended = self._store.append_nowait(records, self.reading)
        except StoreError as exc:
            self._failed(exc)
            return False
        if not appended:
            return False
        if rehearsing:
            self._pass_kill_points(records, StepDispatched, "dispatch-persisted")
        self.records = []
        self.reading = None
        self.batches += 1
        if records and self._on_journal is not None:
            self._on_journal(records)
        return True

    async def commit(self, commit: Commit) -> bool:
        """Make a batch taken out durable; False if the store refused it."""
        rehearsing = self._kill_points.armed
        if rehearsing:
            self._pass_kill_points(commit.records, StepSucceeded, "result-received")
        try:
            await self._store.append(commit.records, commit.reading)
        except StoreError as exc:
            self._failed(exc)
            return False
        if rehearsing:
            self._pass_kill_points(commit.records, StepDispatched, "dispatch-persisted")
        self.batches += 1
        return True

    def commit_soon(self, commit: Commit, done: Callable[[bool], None]) -> bool:
        """Hand a batch taken out to a store that starts appending it at once (see
        `Store.append_soon`): `done` is told whether it is durable as soon as the store
        knows. False if the store cannot, or crashes are being rehearsed (their points
        are passed in order by `commit`): then `commit` it."""
        if self._kill_points.armed:
            return False

        def answered(error: StoreError | None) -> None:
            if error is not None:
                self._failed(error)
                done(False)
                return
            self.batches += 1
            done(True)

        try:
            return self._store.append_soon(commit.records, commit.reading, answered)
        except StoreError as exc:
            answered(exc)
            return True

    def live(self, frames: list[Outgoing]) -> Iterator[tuple[int, bytes, bytes]]:
        """(plane, routing id, payload) of each frame still to send: those for a session
        that ended since are dropped and counted, for its routing id may be another
        key's connection now."""
        for plane, identity, payload, session in frames:
            if session is not None and not session.live:
                self._count("session_ended")
                continue
            yield plane, identity, payload

    def _failed(self, exc: StoreError) -> None:
        """The journal refused a batch: nothing it caused may leave, nor anything after.

        Its events are not in the journal and its sends are dropped unsent, so
        a runtime started again on the journal resumes from the last batch that
        was made durable, which is all anyone outside was ever told about.
        """
        log.critical("store.failed", store=self._store.description, reason=exc.reason)
        self.records, self.frames, self.reading = [], [], None
        self.failure = exc

    def _pass_kill_points(self, records: list[JournalRecord], kind: type, point: str) -> None:
        for record in records:
            if isinstance(record.event, kind):
                self._kill_points.passing(point)

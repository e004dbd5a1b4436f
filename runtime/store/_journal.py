"""The journal's contract: what a store keeps per run, and the clock reading beside it.

The supervisor appends each batch of events in one call and sends the batch's
commands only after the call returned, so whatever left the process is
already in the journal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from runtime.engine._events import JournalEvent
from runtime.errors import StoreError

Answered = Callable[[StoreError | None], None]
"""Told how an append that was started at once ended: None when it is durable, else why not."""


@dataclass(frozen=True, slots=True)
class ClockReading:
    """Both clocks read at one moment, and the boot they were read in."""

    wall: float
    monotonic: float
    boot: str
    """The boot's id; empty where the system does not give one."""


class JournalRecord(msgspec.Struct, frozen=True, array_like=True):
    """One journaled event of one run: its place in the run's journal and when it happened."""

    run_id: str
    seq: int
    at: float
    event: JournalEvent


class Store(Protocol):
    """A journal of events per run."""

    @property
    def description(self) -> str: ...

    async def append(
        self, records: Sequence[JournalRecord], reading: ClockReading | None = None
    ) -> None:
        """Make every record durable (as the store defines it), all or none; with `reading`,
        in the same transaction, the clock reading they and the records after are taken on."""

    def append_nowait(
        self, records: Sequence[JournalRecord], reading: ClockReading | None = None
    ) -> bool:
        """Append at once if this store can without waiting; False means use `append`."""

    def append_soon(
        self,
        records: Sequence[JournalRecord],
        reading: ClockReading | None,
        answered: Answered,
    ) -> bool:
        """Start appending at once, without waiting, if this store can: `answered` is told
        how it ended (None: durable) the moment the store learns it. False, with nothing
        started, means use `append`."""

    def mark_ended(self, run_id: str) -> None:
        """Note that a run ended, for a store that keeps an index of open runs to mark with
        the next append (the one that journals how it ended, or a later one)."""

    async def clock_reading(self) -> ClockReading | None:
        """The clock reading appended last, if any."""

    async def journal(self, run_id: str) -> list[JournalRecord]:
        """A run's records in order."""

    async def run_ids(self) -> list[str]:
        """Every run with a journal, in the order they started."""

    async def close(self) -> None: ...

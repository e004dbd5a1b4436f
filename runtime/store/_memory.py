"""A store that keeps journals in this process: for tests and throwaway runs."""

from __future__ import annotations

from collections.abc import Sequence

from runtime.errors import StoreError
from runtime.store._journal import Answered, ClockReading, JournalRecord


class MemoryStore:
    """Keeps journals in this process: fast, and gone when it exits."""

    def __init__(self) -> None:
        self._journals: dict[str, list[JournalRecord]] = {}
        self._reading: ClockReading | None = None

    @property
    def description(self) -> str:
        return "memory://"

    async def append(
        self, records: Sequence[JournalRecord], reading: ClockReading | None = None
    ) -> None:
        self.append_nowait(records, reading)

    def append_soon(
        self,
        records: Sequence[JournalRecord],
        reading: ClockReading | None,
        answered: Answered,
    ) -> bool:
        return False

    def append_nowait(
        self, records: Sequence[JournalRecord], reading: ClockReading | None = None
    ) -> bool:
        journals = self._journals
        # Checked before anything is kept, so that a refused batch leaves nothing of itself,
        # as a durable store's transaction does: the same (run, seq) twice is refused.
        last: dict[str, int] = {}
        for record in records:
            before = last.get(record.run_id)
            if before is None:
                journal = journals.get(record.run_id)
                before = journal[-1].seq if journal else 0
            if record.seq <= before:
                raise StoreError(
                    self.description,
                    f"run {record.run_id} event {record.seq} does not follow event {before}",
                )
            last[record.run_id] = record.seq
        if reading is not None:
            self._reading = reading
        for record in records:
            journal = journals.get(record.run_id)
            if journal is None:
                journals[record.run_id] = [record]
            else:
                journal.append(record)
        return True

    async def journal(self, run_id: str) -> list[JournalRecord]:
        return list(self._journals.get(run_id, ()))

    async def run_ids(self) -> list[str]:
        return list(self._journals)

    def mark_ended(self, run_id: str) -> None:
        """Nothing to mark: every run is taken up at start, ended or not."""

    async def clock_reading(self) -> ClockReading | None:
        return self._reading

    async def close(self) -> None:
        self._journals.clear()
        self._reading = None

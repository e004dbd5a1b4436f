"""Runs the runtime keeps but cannot fold: shown as `stuck`, with the reason, until cancelled.

A run whose graph is not loaded, or whose journal breaks off, cannot be
rebuilt, yet it must not vanish from `baton runs`: its journal is kept as it
is, its history lists the journaled events, and `baton cancel` ends it by
appending to that journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from protocols import HistoryEntry, RunRecord, RunStatus, RunSummary, clip
from runtime.engine._events import RunCancelled, RunForked, RunStarted
from runtime.store._journal import JournalRecord


class HeldRun:
    """What the journal of an unfoldable run tells without its graph."""

    __slots__ = (
        "created_at",
        "fingerprint",
        "forked_at",
        "forked_from",
        "history",
        "inputs",
        "last_seq",
        "reason",
        "run_id",
        "status",
        "updated_at",
        "version",
        "workflow",
    )

    def __init__(self, run_id: str, records: Sequence[JournalRecord], reason: str) -> None:
        self.run_id = run_id
        first = records[0].event if records else None
        started = first if isinstance(first, RunStarted) else None
        self.workflow = started.workflow if started else "?"
        self.version = started.version if started else ""
        self.fingerprint = started.fingerprint if started else ""
        self.inputs: dict[str, Any] = dict(started.inputs) if started else {}
        self.created_at = records[0].at if records else 0.0
        self.updated_at = records[-1].at if records else 0.0
        self.last_seq = records[-1].seq if records else 0
        self.status: RunStatus = "stuck"
        self.reason = clip(reason)
        self.history = [_entry(record) for record in records]
        self.forked_from = ""
        self.forked_at = 0
        for record in records:
            if isinstance(record.event, RunCancelled):
                self._cancelled(record.event, record.at)
            elif isinstance(record.event, RunForked):
                self.forked_from = record.event.parent
                self.forked_at = record.event.at

    @property
    def seq(self) -> int:
        return self.last_seq

    def cancel(self, record: JournalRecord) -> None:
        """Take in the journaled `RunCancelled` that ends this run."""
        assert isinstance(record.event, RunCancelled)
        self.last_seq = record.seq
        self.updated_at = record.at
        self.history.append(_entry(record))
        self._cancelled(record.event, record.at)

    def _cancelled(self, event: RunCancelled, at: float) -> None:
        self.status = "cancelled"
        self.reason = clip(event.reason or "cancelled by an operator")
        self.updated_at = at

    def record(self) -> RunRecord:
        return RunRecord(
            run_id=self.run_id,
            workflow=self.workflow,
            version=self.version,
            fingerprint=self.fingerprint,
            status=self.status,
            created_at=self.created_at,
            updated_at=self.updated_at,
            inputs=self.inputs,
            data=self.inputs,
            provenance={},
            flags={},
            caveats={},
            steps={},
            history=list(self.history),
            reason=self.reason,
            seq=self.last_seq,
            forked_from=self.forked_from,
            forked_at=self.forked_at,
        )

    def summary(self) -> RunSummary:
        return RunSummary(
            run_id=self.run_id,
            workflow=self.workflow,
            status=self.status,
            created_at=self.created_at,
            updated_at=self.updated_at,
            reason=self.reason,
        )


def _entry(record: JournalRecord) -> HistoryEntry:
    """A journaled event as a history line; its seq is the journal's, as nothing is folded."""
    event = record.event
    step = getattr(event, "step", "")
    return HistoryEntry(
        seq=record.seq,
        at=record.at,
        event=str(type(event).__struct_config__.tag),
        step=step if isinstance(step, str) else "",
        attempt=getattr(event, "attempt", 0),
        principal=getattr(event, "principal", "") or getattr(event, "started_by", ""),
        message="journaled, not folded (the run's reason says why)",
    )

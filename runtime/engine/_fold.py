"""One event's fold: the run it changes, the time that stamps it, the commands it causes,
and the history entries it writes.

Every function of the engine takes a `Fold` instead of threading the run, the time
and the command list through its arguments; `start` and `apply` make one each
and hand back its commands.
"""

from __future__ import annotations

from typing import Any

from protocols import HistoryEntry, clip
from runtime.engine._events import Command, JournalEvent, TimerFired
from runtime.engine._run import Run, StepState


class Fold:
    """The run an event is folded into, the time it is folded at, and the commands so far."""

    __slots__ = ("now", "out", "run")

    def __init__(self, run: Run, now: float) -> None:
        self.run = run
        self.now = now
        self.out: list[Command] = []

    def record(
        self,
        event: str,
        *,
        step: str = "",
        attempt: int = 0,
        agent: str = "",
        principal: str = "",
        message: str = "",
        detail: dict[str, Any] | None = None,
        seq_taken: bool = False,
    ) -> None:
        """Add an entry to the run's history, at a new version of the record unless a write
        of values just took one (`seq_taken`), so the entry shares the write's version."""
        run = self.run
        if not seq_taken:
            run.seq += 1
        run.history.append(
            HistoryEntry(
                seq=run.seq,
                at=self.now,
                event=event,
                step=step,
                attempt=attempt,
                agent=agent,
                principal=principal,
                message=clip(message),
                detail=detail or {},
            )
        )

    def record_stale(self, step: str, attempt: int, what: str, note: str) -> None:
        """An event about an attempt the run has moved past: audited, otherwise ignored."""
        self.record(
            "stale_ignored", step=step, attempt=attempt,
            message=f"{what} for an attempt that is no longer current ({note})",
        )  # fmt: skip

    def record_late(self, event: JournalEvent) -> None:
        """An event for a run that is not running: audited, otherwise ignored.

        A timer firing late is routine (its cancellation may cross it) and leaves no entry.
        """
        if isinstance(event, TimerFired):
            return
        self.record(
            "late_ignored", step=getattr(event, "step", ""), attempt=getattr(event, "attempt", 0),
            message=f"{type(event).__name__} while the run is {self.run.status}",
        )  # fmt: skip


def current(run: Run, name: str, attempt: int, status: str) -> StepState | None:
    """The step's state if `attempt` is its latest and the step is in `status`."""
    state = run.steps.get(name)
    if state is None or state.attempt != attempt or state.status != status:
        return None
    return state

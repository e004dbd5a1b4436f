"""The counters a worker keeps, and the frozen view of them it hands out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    """Counters since the worker started.

    `tasks_started` counts handler runs; `tasks_succeeded` and `tasks_failed`
    the `StepResult`s and `StepFailure`s produced, the latter with the tasks that
    ended on a refused tool call (the runtime fails those); `tool_calls` the calls made
    (by an agent) or served (by a tool host); `bad_frames` the frames from the
    runtime that did not decode; `reconnects` the connections opened after the
    first; `in_flight` the tasks or calls admitted and not yet finished;
    `supervisors` the supervisors served, each over a connection of its own. Every
    count is over all of them.
    """

    tasks_started: int
    tasks_succeeded: int
    tasks_failed: int
    tool_calls: int
    bad_frames: int
    reconnects: int
    in_flight: int
    supervisors: int = 1


@dataclass(slots=True)
class Counters:
    """The mutable counters behind `WorkerStatistics`, shared by the worker's parts."""

    tasks_started: int = 0
    tasks_succeeded: int = 0
    tasks_failed: int = 0
    tool_calls: int = 0
    bad_frames: int = 0
    reconnects: int = 0

    def freeze(self, in_flight: int, *, supervisors: int = 1) -> WorkerStatistics:
        return WorkerStatistics(
            tasks_started=self.tasks_started,
            tasks_succeeded=self.tasks_succeeded,
            tasks_failed=self.tasks_failed,
            tool_calls=self.tool_calls,
            bad_frames=self.bad_frames,
            reconnects=self.reconnects,
            in_flight=in_flight,
            supervisors=supervisors,
        )

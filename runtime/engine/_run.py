"""The engine's working state of one run; the fold of its journal."""

from __future__ import annotations

from typing import Any, Literal

from protocols import (
    AttemptOutcome,
    DecisionKind,
    FailureKind,
    HistoryEntry,
    ModelReply,
    Provenance,
    RunStatus,
    StepStatus,
)
from runtime.engine._events import StepSucceeded
from runtime.workflow._graph import Graph
from runtime.workflow._policies import EscalateTo, Halt, Reject


class Attempt:
    """One attempt of a step, as the engine tracks it."""

    __slots__ = ("agent", "ended_at", "failure", "message", "number", "outcome", "started_at")

    def __init__(self, number: int, started_at: float) -> None:
        self.number = number
        self.agent = ""
        self.started_at = started_at
        self.ended_at: float | None = None
        self.outcome: AttemptOutcome = "running"
        self.failure: FailureKind | None = None
        self.message = ""


class OpenDecision:
    """A decision a step waits for: a checkpoint before or after it, or an escalation of its
    failure. `digest` names this version of it; a decision must quote it."""

    __slots__ = (
        "approvers",
        "attempt",
        "deadline",
        "digest",
        "held",
        "kind",
        "on_timeout",
        "opened_at",
        "reason",
        "reviewed",
        "separate_duties",
        "version",
        "when",
    )

    def __init__(
        self,
        *,
        kind: Literal["checkpoint", "escalation"],
        when: Literal["before", "after", "failed"],
        attempt: int,
        approvers: tuple[str, ...],
        reason: str,
        reviewed: dict[str, Any],
        separate_duties: bool,
        on_timeout: Halt | Reject | EscalateTo,
        opened_at: float,
        deadline: float | None,
        held: StepSucceeded | None = None,
    ) -> None:
        self.kind: Literal["checkpoint", "escalation"] = kind
        self.when: Literal["before", "after", "failed"] = when
        self.attempt = attempt
        self.approvers = approvers
        self.reason = reason
        self.reviewed = reviewed
        self.separate_duties = separate_duties
        self.on_timeout: Halt | Reject | EscalateTo = on_timeout
        self.opened_at = opened_at
        self.deadline = deadline
        self.held = held
        """After a step: its agent's result, applied once approved."""
        self.version = 0
        """The record's version when the decision was opened (or last escalated)."""
        self.digest = ""

    @property
    def choices(self) -> tuple[DecisionKind, ...]:
        if self.kind == "checkpoint":
            return ("approve", "reject")
        return ("retry", "skip", "abort")


class StepState:
    """A node's progress in one run."""

    __slots__ = (
        "attempt",
        "attempts",
        "replies",
        "retry_at",
        "stands_for",
        "status",
        "tally",
        "tries",
        "visits",
    )

    def __init__(self) -> None:
        self.status: StepStatus = "pending"
        self.visits = 0
        self.attempt = 0
        """Number of the latest attempt; never reused, so (run, step, attempt) names a task."""
        self.tries = 0
        """Attempts spent in the current visit, which bounds `Retry`."""
        self.attempts: list[Attempt] = []
        self.tally: dict[str, bool] = {}
        """Incoming edges resolved so far: fired (True) or ruled out (False)."""
        self.stands_for: str | None = None
        """For a fallback step in flight: the step it replaces."""
        self.retry_at: float | None = None
        """While it waits to retry: when the wait ends, on the wall clock as it is now."""
        self.replies: list[ModelReply] = []
        """The model calls journaled for the current attempt, in the order they came: the
        attempt sent again carries them, so that its agent need not pay for them twice."""


class Run:
    """Everything known about a run. Mutated only by `runtime.engine.apply`."""

    __slots__ = (
        "active",
        "created_at",
        "data",
        "decisions",
        "forked_at",
        "forked_from",
        "graph",
        "history",
        "inputs",
        "provenance",
        "reason",
        "recoveries",
        "refusals",
        "route_counts",
        "run_id",
        "seq",
        "started_by",
        "status",
        "steps",
        "updated_at",
    )

    def __init__(
        self, run_id: str, graph: Graph, inputs: dict[str, Any], now: float, started_by: str = ""
    ) -> None:
        self.run_id = run_id
        self.graph = graph
        self.status: RunStatus = "running"
        self.reason = ""
        self.created_at = now
        self.updated_at = now
        self.started_by = started_by
        self.inputs = inputs
        self.data: dict[str, Any] = dict(inputs)
        self.provenance: dict[str, Provenance] = {}
        self.steps = {name: StepState() for name in graph.nodes}
        self.history: list[HistoryEntry] = []
        self.seq = 0
        self.refusals = 0
        """Refused requests recorded in the history, which the shell bounds."""
        self.recoveries = 0
        """Recoveries since a step last finished, which `RunRecovered.budget` bounds."""
        self.route_counts: dict[tuple[str, int], int] = {}
        self.active: set[str] = set()
        """Steps queued, running, waiting to retry or for a decision: while empty, nothing
        more can happen."""
        self.decisions: dict[str, OpenDecision] = {}
        """Open decisions, by the step that waits for them."""
        self.forked_from = ""
        """For a fork: the run it was forked from, at its version `forked_at`."""
        self.forked_at = 0

    @property
    def workflow(self) -> str:
        return self.graph.workflow.name

    def attempt(self, step: str, number: int) -> Attempt | None:
        """Attempt `number` (from 1) of `step`, if the run has made it."""
        state = self.steps.get(step)
        if state is None or not 0 < number <= len(state.attempts):
            return None
        return state.attempts[number - 1]

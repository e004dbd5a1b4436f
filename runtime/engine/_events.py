"""What the engine consumes (events, journaled) and what it produces (commands).

Events are msgspec Structs because they are written to the journal and
replayed; commands are never stored, so they are plain slotted dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from protocols import (
    Arguments,
    Data,
    DecisionKind,
    ErrorCode,
    FailureKind,
    ModelCall,
    Name,
    Text,
    Value,
)
from protocols._base import Confidence, Count

TimerPurpose = Literal["timeout", "retry", "decision"]
Skew = Annotated[float, msgspec.Meta(ge=-1e9, le=1e9)]
"""Seconds the wall clock moved: finite, and within a few decades."""


class Event(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag_field="event"):
    """Base of every journaled event; `run_id` says whose journal it belongs to."""

    run_id: Name


class RunStarted(Event, frozen=True, tag="run_started"):
    workflow: Name
    version: Text
    fingerprint: Text
    inputs: Data
    started_by: Text = ""


class StepDispatched(Event, frozen=True, tag="step_dispatched"):
    step: Name
    attempt: Count
    agent: Text


class StepDeferred(Event, frozen=True, tag="step_deferred"):
    """The agent an attempt was placed on had no room for it (it said it was overloaded):
    the attempt goes back to its role's queue, spending nothing of its step's policy."""

    step: Name
    attempt: Count
    agent: Text
    message: Text = ""


class StepSucceeded(Event, frozen=True, tag="step_succeeded"):
    step: Name
    attempt: Count
    agent: Text
    outputs: Data
    rationale: Text = ""
    confidence: Confidence = 1.0
    caveats: list[Text] = []
    principal: Text = ""


class StepFailed(Event, frozen=True, tag="step_failed"):
    step: Name
    attempt: Count
    kind: FailureKind
    message: Text = ""
    agent: Text = ""
    principal: Text = ""


class TimerFired(Event, frozen=True, tag="timer_fired"):
    purpose: TimerPurpose
    step: Name
    attempt: Count


class ToolCallRequested(Event, frozen=True, tag="tool_requested"):
    step: Name
    attempt: Count
    agent: Text
    agent_tools: list[Name]
    call: Count
    tool: Name
    args: Arguments = {}
    idempotency_key: Text = ""
    principal: Text = ""


class ToolCallCompleted(Event, frozen=True, tag="tool_completed"):
    step: Name
    attempt: Count
    call: Count
    tool: Name
    ok: bool
    error: ErrorCode | None = None
    message: Text = ""


class ModelCalled(Event, frozen=True, tag="model_called"):
    """An agent reported a model call it made for the attempt, answered: its figures go in
    the history, and its reply is kept for the attempt, so that the same task sent again
    takes the reply instead of paying for the call twice."""

    step: Name
    attempt: Count
    agent: Text
    index: Count
    model: Text
    request_digest: Text
    reply: Value = None
    tokens_in: Count = 0
    tokens_out: Count = 0
    latency_ms: Annotated[float, msgspec.Meta(ge=0.0, le=86_400_000.0)] = 0.0
    finish_reason: Text = ""
    principal: Text = ""

    @classmethod
    def of(cls, message: ModelCall, agent: str, principal: str = "") -> ModelCalled:
        """The event of `message`, reported by `agent` under `principal`'s key."""
        return cls(
            run_id=message.run_id,
            step=message.step,
            attempt=message.attempt,
            agent=agent,
            index=message.index,
            model=message.model,
            request_digest=message.request_digest,
            reply=message.reply,
            tokens_in=message.tokens_in,
            tokens_out=message.tokens_out,
            latency_ms=message.latency_ms,
            finish_reason=message.finish_reason,
            principal=principal,
        )


class RunRecovered(Event, frozen=True, tag="run_recovered"):
    """The runtime restarted and took the run up again from its journal.

    `budget` is how many recoveries in a row without a step finishing the run
    may have before it is parked as stuck (0: no limit): a run that crashes
    the runtime each time it is taken up must not keep it crash-looping.
    """

    budget: Count = 0
    taken_over: Text = ""
    """Where a cluster's runtime took the run over from another whose lease lapsed: that
    runtime's name; empty for a restart of the same runtime."""


class ClockJumped(Event, frozen=True, tag="clock_jumped"):
    """The wall clock moved `skew` seconds (forward if positive) against the monotonic clock.

    The run keeps its deadlines as wall-clock times: each moves with the clock, so that
    it keeps the real time it had left, and a later restart finds it in the clock's
    present frame.
    """

    skew: Skew


class RunResumed(Event, frozen=True, tag="run_resumed"):
    """An operator let a stuck run carry on."""

    principal: Text = ""


class RunCancelled(Event, frozen=True, tag="run_cancelled"):
    """An operator stopped a run that had not ended."""

    principal: Text = ""
    reason: Text = ""


class RunForked(Event, frozen=True, tag="run_forked"):
    """This run is a fork: its journal began with a copy of the events of run `parent` that
    brought that run's record to version `at`, and from here it goes its own way.

    `values` are written over its data as given by `principal`; steps that were in flight
    or waiting at that version are taken up again, and steps completed by then are not
    run again. The parent's journal is not touched.
    """

    parent: Name
    at: Count
    principal: Text = ""
    reason: Text = ""
    values: Data = {}


class DecisionMade(Event, frozen=True, tag="decision_made"):
    """A person with authority decided an open checkpoint or escalation.

    The shell journals it only once it checked the principal's authority and
    that `digest` names the decision as it is open now.
    """

    step: Name
    attempt: Count
    decision: DecisionKind
    principal: Text
    digest: Text
    comment: Text = ""
    values: Data = {}


class RequestRefused(Event, frozen=True, tag="refused"):
    """A principal asked something of this run that it may not: the audit trail."""

    principal: Text
    action: Name
    code: ErrorCode
    message: Text = ""
    step: Text = ""
    attempt: Count = 0


JournalEvent = (
    RunStarted
    | StepDispatched
    | StepDeferred
    | StepSucceeded
    | StepFailed
    | TimerFired
    | ToolCallRequested
    | ToolCallCompleted
    | ModelCalled
    | RequestRefused
    | RunRecovered
    | ClockJumped
    | RunResumed
    | RunCancelled
    | DecisionMade
    | RunForked
)
"""Every event a run's journal may hold."""


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Send one attempt of a step to an agent of `role` with free capacity."""

    run_id: str
    step: str
    attempt: int
    role: str
    inputs: dict[str, Any]
    flags: dict[str, list[str]]
    tools: tuple[str, ...]
    timeout: float


@dataclass(frozen=True, slots=True)
class CancelTask:
    """The attempt's outcome is no longer wanted: withdraw it from its agent or queue."""

    run_id: str
    step: str
    attempt: int
    reason: str


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Fire `TimerFired(purpose, step, attempt)` after `delay` seconds."""

    run_id: str
    purpose: TimerPurpose
    step: str
    attempt: int
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    """The timer is moot; the shell may forget it (a stale firing is ignored anyway)."""

    run_id: str
    purpose: TimerPurpose
    step: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ForwardToolCall:
    """Pass an allowed tool call on to a host serving the tool."""

    run_id: str
    step: str
    attempt: int
    agent: str
    call: int
    tool: str
    args: dict[str, Any]
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class RefuseToolCall:
    """Answer the agent's tool call with a typed refusal; nothing reaches a host."""

    run_id: str
    agent: str
    call: int
    tool: str
    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class RunEnded:
    """The run reached a final status; release anyone waiting for it."""

    run_id: str
    status: str
    reason: str = ""


Command = (
    Dispatch | CancelTask | StartTimer | CancelTimer | ForwardToolCall | RefuseToolCall | RunEnded
)

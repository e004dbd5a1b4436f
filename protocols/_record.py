"""The run record as it travels to operators: status, data, provenance, steps, history."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from protocols._base import Confidence, Count
from protocols._values import MAX_ITEMS, Data, Name, Text

RunStatus = Literal["running", "waiting", "stuck", "completed", "failed", "halted", "cancelled"]
"""`stuck`: the run cannot make progress by itself (its reason says why) until an
operator resumes or cancels it."""
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "halted", "cancelled"})

StepStatus = Literal[
    "pending",  # not reached yet
    "queued",  # ready, waiting for an agent of its role with free capacity
    "running",  # dispatched to an agent
    "retry_wait",  # failed, waiting out its backoff before the next attempt
    "awaiting_decision",  # held at a checkpoint or an escalation until a person decides
    "completed",
    "flagged",  # failed, then proceeded with default outputs and a flag
    "replaced",  # failed, and a fallback step ran in its place
    "skipped",  # on a branch the run did not take
    "failed",  # failed, and its policy stopped the run
    "cancelled",  # was in flight when the run stopped
]

FailureKind = Literal[
    "error", "timeout", "agent_lost", "invalid_output", "tool_refused", "low_confidence"
]
"""Why an attempt failed; failure policies are selected by it."""

AttemptOutcome = Literal["running", "succeeded", "failed", "cancelled"]

Texts = Annotated[list[Text], Meta(max_length=4_096)]
MAX_HISTORY = 1_000_000


class _View(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Record views keep every field on the wire, so JSON consumers always find each key."""


class Provenance(_View, frozen=True):
    """Who wrote a key and why: the step, attempt and agent, with their reasoning."""

    step: Name
    attempt: Count
    agent: Text = ""
    rationale: Text = ""
    confidence: Confidence = 1.0
    caveats: Texts = []
    flags: Texts = []
    seq: Count = 0
    approved_by: Text = ""
    """The principal who approved this value at a checkpoint, if one did."""
    edited_by: Text = ""
    """The principal who wrote this value at a checkpoint or escalation, or gave it as an
    input when the run started (attempt 0)."""


DecisionKind = Literal["approve", "reject", "retry", "skip", "abort"]
"""`approve`/`reject` decide a checkpoint; `retry`/`skip`/`abort` decide an escalation."""


class PendingDecision(_View, frozen=True):
    """A decision a run waits for: what is to be decided, by whom, and why."""

    run_id: Name
    workflow: Name
    step: Name
    attempt: Count
    kind: Literal["checkpoint", "escalation"]
    when: Literal["before", "after", "failed"]
    approvers: Annotated[list[Name], Meta(max_length=64)]
    reason: Text = ""
    reviewed: Data = {}
    """The values under review: what the step will read (before), what it wrote (after), or
    what it failed with (escalation)."""
    choices: Annotated[list[DecisionKind], Meta(max_length=5)] = []
    started_by: Text = ""
    separate_duties: bool = True
    opened_at: float = 0.0
    deadline: float | None = None
    digest: Text = ""
    """Names exactly this version of the decision; a decision must quote it."""


class AttemptView(_View, frozen=True):
    """One attempt of a step."""

    attempt: Count
    agent: Text = ""
    started_at: float = 0.0
    ended_at: float | None = None
    outcome: AttemptOutcome = "running"
    failure: FailureKind | None = None
    message: Text = ""


class StepView(_View, frozen=True):
    """A step's state in a run."""

    status: StepStatus
    visits: Count = 0
    attempts: Annotated[list[AttemptView], Meta(max_length=100_000)] = []


class HistoryEntry(_View, frozen=True):
    """One event of the run, as it was journaled."""

    seq: Count
    at: float
    event: Name
    step: Text = ""
    attempt: Count = 0
    agent: Text = ""
    principal: Text = ""
    """Who caused the entry, by the key it authenticated with ("" when insecure)."""
    message: Text = ""
    detail: Data = {}


class RunSummary(_View, frozen=True):
    """A line of `baton runs`."""

    run_id: Name
    workflow: Name
    status: RunStatus
    created_at: float
    updated_at: float
    reason: Text = ""


class RunRecord(_View, frozen=True):
    """The one authoritative record of a run."""

    run_id: Name
    workflow: Name
    version: Text
    fingerprint: Text
    status: RunStatus
    created_at: float
    updated_at: float
    inputs: Data
    data: Data
    provenance: Annotated[dict[Name, Provenance], Meta(max_length=MAX_ITEMS)]
    flags: Annotated[dict[Name, Texts], Meta(max_length=MAX_ITEMS)]
    caveats: Annotated[dict[Name, Texts], Meta(max_length=MAX_ITEMS)]
    steps: Annotated[dict[Name, StepView], Meta(max_length=MAX_ITEMS)]
    history: Annotated[list[HistoryEntry], Meta(max_length=MAX_HISTORY)]
    reason: Text = ""
    waiting_for: Text = ""
    seq: Count = 0
    pending: Annotated[list[PendingDecision], Meta(max_length=MAX_ITEMS)] = []
    forked_from: Text = ""
    """For a fork: the run whose record it began from, as that was at version `forked_at`."""
    forked_at: Count = 0

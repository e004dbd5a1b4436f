"""A step starts to wait for a person: a checkpoint before or after it, or the escalation
of its failure.

The open decision is recorded, sealed with a digest that names this version of
it (what is decided, by whom, on what values), and timed when it may time out.
How it is decided, or what happens when nobody does, is `_decisions`.
"""

from __future__ import annotations

import hashlib

import msgspec

from protocols import FailureKind, clip
from runtime.engine._events import CancelTimer, StartTimer, StepSucceeded
from runtime.engine._fold import Fold
from runtime.engine._run import OpenDecision, StepState
from runtime.workflow._checkpoints import Checkpoint
from runtime.workflow._policies import Escalate


def open_checkpoint(
    f: Fold,
    name: str,
    state: StepState,
    checkpoint: Checkpoint,
    attempt: int,
    *,
    held: StepSucceeded | None = None,
) -> None:
    """Wait for an approver before the step's attempt `attempt` runs, or, with the agent's
    result `held`, before that result is applied."""
    run = f.run
    step = run.graph.step(name)
    if held is None:
        reviewed = {k: run.data[k] for k in step.reads if k in run.data}
    else:
        reviewed = dict(held.outputs)
    waiting = OpenDecision(
        kind="checkpoint",
        when=checkpoint.when,
        attempt=attempt,
        approvers=checkpoint.approvers,
        reason=checkpoint.reason or f"{step.consequence} step {name!r}",
        reviewed=reviewed,
        separate_duties=checkpoint.separate_duties,
        on_timeout=checkpoint.on_timeout,
        opened_at=f.now,
        deadline=None if checkpoint.timeout is None else f.now + checkpoint.timeout,
        held=held,
    )
    _open(f, name, state, waiting, checkpoint.timeout)


def open_escalation(
    f: Fold, name: str, state: StepState, policy: Escalate, *, kind: FailureKind, message: str
) -> None:
    """Ask a person what becomes of the step that failed with `kind` and `message`."""
    waiting = OpenDecision(
        kind="escalation",
        when="failed",
        attempt=state.attempt,
        approvers=policy.approvers,
        reason=policy.reason or f"step {name!r} failed ({kind})",
        reviewed={"failure": kind, "message": clip(message)},
        separate_duties=False,
        on_timeout=policy.on_timeout,
        opened_at=f.now,
        deadline=None if policy.timeout is None else f.now + policy.timeout,
    )
    _open(f, name, state, waiting, policy.timeout)


def withdraw(f: Fold, name: str) -> None:
    """The step was reached again: a decision it waited for is no longer wanted."""
    waiting = f.run.decisions.pop(name, None)
    if waiting is not None:
        f.out.append(CancelTimer(f.run.run_id, "decision", name, waiting.attempt))
        f.record("decision_withdrawn", step=name, message="the step was reached again")


def seal(f: Fold, name: str, waiting: OpenDecision) -> None:
    """Name this version of the open decision: what is decided, by whom, on what values."""
    run = f.run
    waiting.version = run.seq
    body = msgspec.msgpack.encode(
        [run.run_id, name, waiting.attempt, waiting.version, waiting.approvers, waiting.reviewed]
    )
    waiting.digest = hashlib.blake2b(body, digest_size=10).hexdigest()


def _open(
    f: Fold, name: str, state: StepState, waiting: OpenDecision, timeout: float | None
) -> None:
    """The step waits for a person's decision: recorded, named by a digest, maybe timed."""
    state.status = "awaiting_decision"
    f.run.decisions[name] = waiting
    event = "checkpoint_opened" if waiting.kind == "checkpoint" else "escalated"
    f.record(
        event, step=name, attempt=waiting.attempt,
        message=f"{waiting.reason}: {' or '.join(waiting.choices)} "
        f"by {', '.join(waiting.approvers)}",
        detail={"when": waiting.when, "approvers": list(waiting.approvers),
                "keys": sorted(waiting.reviewed)},
    )  # fmt: skip
    seal(f, name, waiting)
    if timeout is not None:
        f.out.append(StartTimer(f.run.run_id, "decision", name, waiting.attempt, timeout))

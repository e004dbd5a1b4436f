"""A person decides a step that waits, or nobody does in time.

A checkpoint is approved (the step runs, or its held result is applied, with any
edits) or rejected (its reject route: halt, or a step that stands in); an
escalated failure is retried, skipped with the values given, or aborted. A wait
that times out escalates to other approvers, rejects, or halts. The shell has
checked the principal's authority; the engine checks that the decision answers
the version of the wait that is open now.
"""

from __future__ import annotations

from runtime.engine._events import CancelTimer, DecisionMade, StartTimer
from runtime.engine._fold import Fold
from runtime.engine._run import StepState
from runtime.engine._traversal import fall_back, finish_node, halt, new_attempt
from runtime.engine._values import write_given, write_outputs
from runtime.engine._waiting import seal
from runtime.workflow._checkpoints import Checkpoint
from runtime.workflow._policies import EscalateTo, Goto, Halt, Reject


def on_decision(f: Fold, event: DecisionMade) -> None:
    """Apply a decision that answers the wait open now; record any other as ignored."""
    run = f.run
    name = event.step
    waiting = run.decisions.get(name)
    state = run.steps.get(name)
    if (
        waiting is None
        or state is None
        or waiting.attempt != event.attempt
        or waiting.digest != event.digest
        or event.decision not in waiting.choices
    ):
        f.record(
            "decision_ignored", step=name, attempt=event.attempt,
            principal=event.principal, message="no such decision is open in this version",
        )  # fmt: skip
        return
    del run.decisions[name]
    if waiting.deadline is not None:
        f.out.append(CancelTimer(run.run_id, "decision", name, waiting.attempt))
    edited = frozenset(event.values)
    f.record(
        "decision_made", step=name, attempt=event.attempt, principal=event.principal,
        message=f"{event.decision}" + (f": {event.comment}" if event.comment else "")
        + f" (shown version {waiting.version}, digest {event.digest})",
        detail={"decision": event.decision, "digest": event.digest, "version": waiting.version,
                "edited": sorted(edited)},
    )  # fmt: skip
    step = run.graph.step(name)
    match event.decision:
        case "approve" if waiting.held is not None:
            outputs = {**waiting.held.outputs, **event.values}
            write_outputs(
                f, name, waiting.held, outputs, approved_by=event.principal,
                edited_by=event.principal, edited=edited,
            )  # fmt: skip
            state.status = "completed"
            finish_node(f, name, state)
        case "approve":
            write_given(f, name, state.attempt + 1, event, edited)
            new_attempt(f, name, state)
        case "retry":
            state.tries = 0
            new_attempt(f, name, state)
        case "skip":
            write_given(f, name, state.attempt, event, frozenset(step.writes))
            state.status = "completed"
            finish_node(f, name, state)
        case "reject":
            checkpoint = run.graph.checkpoints[name]
            why = f"step {name!r} rejected by {event.principal}" + (
                f": {event.comment}" if event.comment else ""
            )
            _rejected(f, name, state, checkpoint, why)
        case "abort":
            run.active.discard(name)
            state.status = "failed"
            why = f"step {name!r} aborted by {event.principal}" + (
                f": {event.comment}" if event.comment else ""
            )
            halt(f, "halted", why)


def decision_timed_out(f: Fold, name: str, attempt: int) -> None:
    """Nobody decided in time: the wait's `on_timeout` applies, if it is still open."""
    run = f.run
    waiting = run.decisions.get(name)
    if waiting is None or waiting.attempt != attempt:
        return
    state = run.steps[name]
    policy = waiting.on_timeout
    late = f"nobody decided on step {name!r} in time"
    if isinstance(policy, EscalateTo):
        waiting.approvers = policy.approvers
        waiting.on_timeout = Halt()
        waiting.deadline = None if policy.timeout is None else f.now + policy.timeout
        f.record(
            "decision_escalated", step=name, attempt=attempt,
            message=f"{late}; now for {', '.join(policy.approvers)}",
            detail={"approvers": list(policy.approvers)},
        )  # fmt: skip
        seal(f, name, waiting)
        if policy.timeout is not None:
            f.out.append(StartTimer(run.run_id, "decision", name, attempt, policy.timeout))
        return
    del run.decisions[name]
    f.record("decision_timed_out", step=name, attempt=attempt, message=late)
    if isinstance(policy, Reject) and waiting.kind == "checkpoint":
        _rejected(f, name, state, run.graph.checkpoints[name], late)
        return
    run.active.discard(name)
    state.status = "failed"
    halt(f, "halted", policy.reason if isinstance(policy, Halt) and policy.reason else late)


def _rejected(f: Fold, name: str, state: StepState, checkpoint: Checkpoint, why: str) -> None:
    if isinstance(checkpoint.on_reject, Goto):
        fall_back(f, name, state, checkpoint.on_reject.step)
        return
    f.run.active.discard(name)
    state.status = "failed"
    halt(f, "halted", checkpoint.on_reject.reason or why)

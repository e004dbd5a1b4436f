"""A step's attempts as they are placed, deferred, answered and timed: what the agent
plane and the timers report about them.

Only the current attempt is acted on: a report about any other, or from an agent
that no longer holds it, is recorded as stale and changes nothing. A result is
checked against the step's declared outputs and minimum confidence before it is
written, and may be held at a checkpoint after the step.
"""

from __future__ import annotations

from typing import Any

import msgspec

from runtime.engine._decisions import decision_timed_out
from runtime.engine._events import (
    CancelTask,
    CancelTimer,
    StartTimer,
    StepDeferred,
    StepDispatched,
    StepFailed,
    StepSucceeded,
    TimerFired,
)
from runtime.engine._failures import step_failed
from runtime.engine._fold import Fold, current
from runtime.engine._traversal import dispatch, finish_node, new_attempt
from runtime.engine._values import write_outputs
from runtime.engine._waiting import open_checkpoint
from runtime.workflow._definition import Step


def on_dispatched(f: Fold, event: StepDispatched) -> None:
    """The attempt reached an agent: it runs, against the step's timeout."""
    run = f.run
    state = current(run, event.step, event.attempt, "queued")
    if state is None:
        f.record_stale(event.step, event.attempt, "step_dispatched", event.agent)
        return
    state.status = "running"
    attempt = state.attempts[-1]
    attempt.agent = event.agent
    attempt.started_at = f.now
    f.record("step_dispatched", step=event.step, attempt=event.attempt, agent=event.agent)
    step = run.graph.step(event.step)
    f.out.append(StartTimer(run.run_id, "timeout", event.step, event.attempt, step.timeout))


def on_deferred(f: Fold, event: StepDeferred) -> None:
    """The agent had no room for the attempt: it goes back to the queue, costing nothing."""
    run = f.run
    state = current(run, event.step, event.attempt, "running")
    if state is None or state.attempts[-1].agent != event.agent:
        f.record_stale(event.step, event.attempt, "step_deferred", event.agent)
        return
    f.record(
        "step_requeued", step=event.step, attempt=event.attempt, agent=event.agent,
        message=f"the agent had no room for it; it is dispatched again ({event.message})",
    )  # fmt: skip
    state.status = "queued"
    state.attempts[-1].agent = ""
    f.out.append(CancelTimer(run.run_id, "timeout", event.step, event.attempt))
    f.out.append(dispatch(run, event.step, state))


def on_succeeded(f: Fold, event: StepSucceeded) -> None:
    """The agent's result: checked, then written (or held for approval) and the walk goes on."""
    run = f.run
    name = event.step
    state = current(run, name, event.attempt, "running")
    if state is None or state.attempts[-1].agent != event.agent:
        f.record_stale(name, event.attempt, "step_succeeded", event.agent)
        return
    step = run.graph.step(name)
    f.out.append(CancelTimer(run.run_id, "timeout", name, event.attempt))
    problem = _output_problem(step, event.outputs)
    if problem is not None:
        step_failed(
            f, name, state, "invalid_output", problem, agent=event.agent,
            principal=event.principal,
        )  # fmt: skip
        return
    if event.confidence < step.min_confidence:
        message = f"confidence {event.confidence:g} is under the step's {step.min_confidence:g}"
        step_failed(
            f, name, state, "low_confidence", message, agent=event.agent,
            principal=event.principal,
        )  # fmt: skip
        return
    attempt = state.attempts[-1]
    attempt.outcome = "succeeded"
    # Nothing sends the attempt again once it succeeded: its replies need not be kept.
    state.replies = []
    attempt.ended_at = f.now
    run.recoveries = 0
    checkpoint = run.graph.checkpoints.get(name)
    if (
        checkpoint is not None
        and checkpoint.when == "after"
        and checkpoint.condition.holds({**run.data, **event.outputs})
    ):
        f.record(
            "step_succeeded", step=name, attempt=event.attempt, agent=event.agent,
            principal=event.principal, message=event.rationale,
            detail={"keys": sorted(event.outputs), "confidence": event.confidence, "held": True},
        )  # fmt: skip
        open_checkpoint(f, name, state, checkpoint, event.attempt, held=event)
        return
    write_outputs(f, name, event, event.outputs)
    state.status = "completed"
    finish_node(f, name, state)


def on_failed(f: Fold, event: StepFailed) -> None:
    """The agent, or the runtime for it, reports the attempt failed."""
    run = f.run
    state = current(run, event.step, event.attempt, "running")
    if state is None and not event.agent:
        # The runtime itself may fail an attempt still waiting for an agent.
        state = current(run, event.step, event.attempt, "queued")
    if state is None or (event.agent and state.attempts[-1].agent != event.agent):
        f.record_stale(event.step, event.attempt, "step_failed", event.message)
        return
    step_failed(
        f, event.step, state, event.kind, event.message, agent=event.agent,
        principal=event.principal,
    )  # fmt: skip


def on_timer(f: Fold, event: TimerFired) -> None:
    """An attempt ran out of time, a wait for a person did, or a retry's backoff ended."""
    run = f.run
    if event.purpose == "timeout":
        state = current(run, event.step, event.attempt, "running")
        if state is None:
            return
        step = run.graph.step(event.step)
        f.out.append(CancelTask(run.run_id, event.step, event.attempt, "timed out"))
        step_failed(
            f, event.step, state, "timeout", f"no result within {step.timeout:g}s",
            agent=state.attempts[-1].agent,
        )  # fmt: skip
        return
    if event.purpose == "decision":
        decision_timed_out(f, event.step, event.attempt)
        return
    state = current(run, event.step, event.attempt, "retry_wait")
    if state is not None:
        new_attempt(f, event.step, state)


def _output_problem(step: Step, outputs: dict[str, Any]) -> str | None:
    """Why the outputs do not match the step's declared writes, or None when they do."""
    if outputs.keys() == step.writes.keys() and all(t is object for t in step.writes.values()):
        return None
    missing = [k for k in step.writes if k not in outputs]
    if missing:
        return f"missing output key {missing[0]!r}"
    extra = [k for k in outputs if k not in step.writes]
    if extra:
        return f"output key {extra[0]!r} is not among the step's writes"
    for key, expected in step.writes.items():
        if expected is object:
            continue
        try:
            msgspec.convert(outputs[key], expected)
        except msgspec.ValidationError as exc:
            return f"output {key!r}: {exc}"
    return None

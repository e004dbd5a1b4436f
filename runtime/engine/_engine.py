"""The engine's front door: a run made from its first event, and each later event folded in.

`start(graph, event, now)` makes a run from its `RunStarted` event; `apply(run,
event, now)` folds one more event into it and returns the commands it caused. No
I/O, no clock (the caller passes `now`, which only stamps the record), no
randomness (jitter is derived from the attempt's identity), so a run is the fold
of its journal: recovery, replay and `inspect --at` share this code. For speed
the run is updated in place; copy it first to keep the old state.

Here are the events about the run as a whole (recovery, resumption, forking, clock
jumps, cancellation, refused requests); the rest go to the module of their concern.
"""

from __future__ import annotations

from protocols import TERMINAL_STATUSES
from runtime.engine._decisions import on_decision
from runtime.engine._events import (
    ClockJumped,
    Command,
    DecisionMade,
    JournalEvent,
    ModelCalled,
    RequestRefused,
    RunCancelled,
    RunForked,
    RunRecovered,
    RunResumed,
    RunStarted,
    StartTimer,
    StepDeferred,
    StepDispatched,
    StepFailed,
    StepSucceeded,
    TimerFired,
    ToolCallCompleted,
    ToolCallRequested,
)
from runtime.engine._fold import Fold
from runtime.engine._models import on_model_called
from runtime.engine._run import Run, StepState
from runtime.engine._steps import on_deferred, on_dispatched, on_failed, on_succeeded, on_timer
from runtime.engine._tools import on_tool_call, on_tool_completed
from runtime.engine._traversal import activate, dispatch, halt, settle
from runtime.engine._values import write_forked, write_inputs
from runtime.engine._waiting import seal
from runtime.workflow._graph import Graph

_STOPPED = "the attempt was out when the runtime stopped"
"""Why a step in flight is dispatched again when a run is recovered or resumed."""


def start(graph: Graph, event: RunStarted, now: float) -> tuple[Run, list[Command]]:
    """A new run from its `RunStarted` event, and the commands that begin it."""
    run = Run(event.run_id, graph, dict(event.inputs), now, event.started_by)
    f = Fold(run, now)
    f.record(
        "run_started", principal=event.started_by,
        message=f"{graph.name} {graph.workflow.version}",
    )  # fmt: skip
    write_inputs(f)
    activate(f, graph.start)
    settle(f)
    return run, f.out


def apply(run: Run, event: JournalEvent, now: float) -> list[Command]:
    """Fold `event` into `run`; return the commands it causes, in order."""
    f = Fold(run, now)
    if isinstance(event, RequestRefused):
        # Audited whatever the run's state: a refusal changes nothing else.
        run.refusals += 1
        f.record(
            "refused", step=event.step, attempt=event.attempt, principal=event.principal,
            message=f"{event.action}: {event.code}: {event.message}",
            detail={"action": event.action, "code": event.code},
        )  # fmt: skip
        return f.out
    if isinstance(event, ClockJumped):
        # A stuck run's deadlines move too: they count again once it is resumed.
        if run.status not in TERMINAL_STATUSES:
            _move_deadlines(f, event.skew)
        return f.out
    if isinstance(event, RunCancelled) and run.status not in TERMINAL_STATUSES:
        run.updated_at = now
        reason = event.reason or "cancelled by an operator"
        halt(f, "cancelled", reason, principal=event.principal)
        return f.out
    if isinstance(event, RunResumed) and run.status == "stuck":
        run.updated_at = now
        run.status = "running"
        run.reason = ""
        run.recoveries = 0
        f.record("run_resumed", principal=event.principal, message="resumed by an operator")
        _carry_on(f, _STOPPED)
        settle(f)
        return f.out
    if isinstance(event, RunForked):
        _on_forked(f, event)
        settle(f)
        return f.out
    if run.status != "running":
        f.record_late(event)
        return f.out
    run.updated_at = now
    match event:
        case StepDispatched():
            on_dispatched(f, event)
        case StepDeferred():
            on_deferred(f, event)
        case StepSucceeded():
            on_succeeded(f, event)
        case StepFailed():
            on_failed(f, event)
        case TimerFired():
            on_timer(f, event)
        case ToolCallRequested():
            on_tool_call(f, event)
        case ToolCallCompleted():
            on_tool_completed(f, event)
        case ModelCalled():
            on_model_called(f, event)
        case RunStarted():
            f.record("duplicate_start", message="a run id can start only once")
        case RunRecovered():
            _on_recovered(f, event)
        case DecisionMade():
            on_decision(f, event)
    settle(f)
    return f.out


def has_deadlines(run: Run) -> bool:
    """Whether the run, not ended, waits for a wall-clock time: a decision that may time
    out, or a retry."""
    if run.status in TERMINAL_STATUSES:
        return False
    if any(waiting.deadline is not None for waiting in run.decisions.values()):
        return True
    return any(state.status == "retry_wait" for state in run.steps.values())


def _on_recovered(f: Fold, event: RunRecovered) -> None:
    """The runtime restarted: carry on from where the journal left the run, unless it has
    been taken up too often in a row without a step finishing (then it is parked)."""
    run = f.run
    run.recoveries += 1
    if event.budget and run.recoveries > event.budget:
        run.status = "stuck"
        run.reason = (
            f"the runtime restarted {run.recoveries} times in a row while this run was in "
            f"flight, and no step finished in between (budget {event.budget}); inspect it, "
            "then resume or cancel it"
        )
        f.record("run_stuck", message=run.reason)
        return
    if event.taken_over:
        text = (
            f"taken over from runtime {event.taken_over}, whose lease lapsed; "
            "steps in flight resume"
        )
    else:
        text = "the runtime restarted; steps in flight resume"
    f.record("run_recovered", message=text)
    _carry_on(f, _STOPPED)


def _on_forked(f: Fold, event: RunForked) -> None:
    """The run begins as a fork of `event.parent` at version `event.at`, whose record it now
    holds: the values given are written, and what was in flight or waiting then carries on.

    A fork is a new run, so its own clock starts now: it is created now, by whoever
    forked it (separation of duties binds that principal at its checkpoints), with no
    recoveries counted, and its deadlines keep the time they had left at that version.
    A version at which the parent had already ended gives a fork that has ended too. A
    fork of a fork holds its parent's fork event among the copied ones: the latest names
    the run it was forked from.
    """
    run = f.run
    paused = run.history[-1].at if run.history else f.now
    run.forked_from = event.parent
    run.forked_at = event.at
    run.created_at = run.updated_at = f.now
    run.started_by = event.principal
    run.recoveries = 0
    if run.status == "stuck":
        run.status = "running"
        run.reason = ""
    write_forked(f, event)
    if run.status in TERMINAL_STATUSES:
        return
    _shift_deadlines(run, f.now - paused)
    for name, waiting in run.decisions.items():
        # What a checkpoint before a step shows must be what the step will read.
        edited = waiting.reviewed.keys() & event.values.keys()
        if waiting.when == "before" and edited:
            waiting.reviewed = {**waiting.reviewed, **{k: event.values[k] for k in edited}}
            seal(f, name, waiting)
    _carry_on(f, "the attempt was out at the version the run was forked from")


def _carry_on(f: Fold, why: str) -> None:
    """Take up every step in flight where the journal left it.

    A queued step is queued again; a running one (its agent's result, if any,
    never reached the journal) goes back to the queue under the same attempt,
    so that its tool calls keep their idempotency keys; a retry wait resumes
    with the time it had left.
    """
    run = f.run
    now = f.now
    for name, state in run.steps.items():
        if state.status == "queued":
            f.out.append(dispatch(run, name, state))
        elif state.status == "running":
            attempt = state.attempts[-1]
            f.record(
                "step_requeued", step=name, attempt=state.attempt, agent=attempt.agent,
                message=f"{why}; it is dispatched again",
            )  # fmt: skip
            state.status = "queued"
            f.out.append(dispatch(run, name, state))
        elif state.status == "retry_wait":
            f.out.append(
                StartTimer(run.run_id, "retry", name, state.attempt, _retry_left(state, now))
            )
        elif state.status == "awaiting_decision":
            waiting = run.decisions[name]
            if waiting.deadline is not None:
                left = max(0.0, waiting.deadline - now)
                f.out.append(StartTimer(run.run_id, "decision", name, waiting.attempt, left))


def _shift_deadlines(run: Run, skew: float) -> None:
    """Move every wall-clock deadline of the run by `skew` seconds."""
    for waiting in run.decisions.values():
        if waiting.deadline is not None:
            waiting.deadline += skew
    for state in run.steps.values():
        if state.status == "retry_wait" and state.retry_at is not None:
            state.retry_at += skew


def _retry_left(state: StepState, now: float) -> float:
    """Seconds left of a retry wait."""
    return 0.0 if state.retry_at is None else max(0.0, state.retry_at - now)


def _move_deadlines(f: Fold, skew: float) -> None:
    """The wall clock jumped by `skew`: every deadline moves with it, keeping the real time
    it had left. Timers already started run on the monotonic clock and need nothing."""
    _shift_deadlines(f.run, skew)
    f.record(
        "clock_jumped",
        message=f"the wall clock jumped {skew:+.0f}s; deadlines moved with it, keeping the "
        "time they had left",
        detail={"skew": skew},
    )  # fmt: skip

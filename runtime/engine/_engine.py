"""The engine: a pure state machine over runs.

`start(graph, event, now)` makes a run from its first event; `apply(run, event,
now)` folds one more event into it and returns the commands it caused. No I/O,
no clock (the caller passes `now`, which only stamps the record), no
randomness (jitter is derived from the attempt's identity), so a run is the
fold of its journal: recovery, replay and `inspect --at` share this code.
For speed the run is updated in place; copy it first to keep the old state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import msgspec

from protocols import TERMINAL_STATUSES, FailureKind, HistoryEntry, Provenance, clip
from runtime.engine._events import (
    CancelTask,
    CancelTimer,
    ClockJumped,
    Command,
    DecisionMade,
    Dispatch,
    ForwardToolCall,
    JournalEvent,
    RefuseToolCall,
    RequestRefused,
    RunCancelled,
    RunEnded,
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
from runtime.engine._run import Attempt, OpenDecision, Run, StepState
from runtime.workflow._checkpoints import Checkpoint
from runtime.workflow._definition import Decision, Step
from runtime.workflow._graph import Graph
from runtime.workflow._policies import (
    Escalate,
    EscalateTo,
    Goto,
    Halt,
    ProceedWithFlag,
    Reject,
    Retry,
)

MAX_CALL_KEY = 256
"""The longest call key an agent may give that is kept as it is; a longer one is hashed."""


def start(graph: Graph, event: RunStarted, now: float) -> tuple[Run, list[Command]]:
    """A new run from its `RunStarted` event, and the commands that begin it."""
    run = Run(event.run_id, graph, dict(event.inputs), now, event.started_by)
    out: list[Command] = []
    _record(run, now, "run_started", message=f"{graph.name} {graph.workflow.version}")
    _activate(run, graph.start, now, out)
    _settle(run, now, out)
    return run, out


def apply(run: Run, event: JournalEvent, now: float) -> list[Command]:
    """Fold `event` into `run`; return the commands it causes, in order."""
    out: list[Command] = []
    if isinstance(event, RequestRefused):
        # Audited whatever the run's state: a refusal changes nothing else.
        run.refusals += 1
        _record(
            run, now, "refused", step=event.step, attempt=event.attempt,
            principal=event.principal, message=f"{event.action}: {event.code}: {event.message}",
            detail={"action": event.action, "code": event.code},
        )  # fmt: skip
        return out
    if isinstance(event, ClockJumped):
        # A stuck run's deadlines move too: they count again once it is resumed.
        if run.status not in TERMINAL_STATUSES:
            _move_deadlines(run, event.skew, now)
        return out
    if isinstance(event, RunCancelled) and run.status not in TERMINAL_STATUSES:
        run.updated_at = now
        reason = event.reason or "cancelled by an operator"
        _halt(run, "cancelled", reason, now, out, principal=event.principal)
        return out
    if isinstance(event, RunResumed) and run.status == "stuck":
        run.updated_at = now
        run.status = "running"
        run.reason = ""
        run.recoveries = 0
        _record(
            run, now, "run_resumed", principal=event.principal, message="resumed by an operator"
        )
        _carry_on(run, now, out)
        _settle(run, now, out)
        return out
    if run.status != "running":
        _record_late(run, event, now)
        return out
    run.updated_at = now
    match event:
        case StepDispatched():
            _on_dispatched(run, event, now, out)
        case StepDeferred():
            _on_deferred(run, event, now, out)
        case StepSucceeded():
            _on_succeeded(run, event, now, out)
        case StepFailed():
            _on_failed(run, event, now, out)
        case TimerFired():
            _on_timer(run, event, now, out)
        case ToolCallRequested():
            _on_tool_call(run, event, now, out)
        case ToolCallCompleted():
            _on_tool_completed(run, event, now)
        case RunStarted():
            _record(run, now, "duplicate_start", message="a run id can start only once")
        case RunRecovered():
            _on_recovered(run, event, now, out)
        case DecisionMade():
            _on_decision(run, event, now, out)
    _settle(run, now, out)
    return out


def _on_failed(run: Run, event: StepFailed, now: float, out: list[Command]) -> None:
    state = _current(run, event.step, event.attempt, "running")
    if state is None and not event.agent:
        # The runtime itself may fail an attempt still waiting for an agent.
        state = _current(run, event.step, event.attempt, "queued")
    if state is None or (event.agent and state.attempts[-1].agent != event.agent):
        _record_stale(run, now, event.step, event.attempt, "step_failed", event.message)
        return
    _record(
        run,
        now,
        "step_failed",
        step=event.step,
        attempt=event.attempt,
        agent=event.agent,
        principal=event.principal,
        message=f"{event.kind}: {event.message}",
    )
    _fail(run, event.step, state, event.kind, event.message, now, out)


def _on_tool_completed(run: Run, event: ToolCallCompleted, now: float) -> None:
    _record(
        run,
        now,
        "tool_completed",
        step=event.step,
        attempt=event.attempt,
        message=f"{event.tool}: ok" if event.ok else f"{event.tool}: {event.error}",
        detail={"call": event.call, "tool": event.tool, "ok": event.ok}
        | ({"error": event.error, "error_message": event.message} if not event.ok else {}),
    )


def _on_dispatched(run: Run, event: StepDispatched, now: float, out: list[Command]) -> None:
    state = _current(run, event.step, event.attempt, "queued")
    if state is None:
        _record_stale(run, now, event.step, event.attempt, "step_dispatched", event.agent)
        return
    state.status = "running"
    attempt = state.attempts[-1]
    attempt.agent = event.agent
    attempt.started_at = now
    _record(run, now, "step_dispatched", step=event.step, attempt=event.attempt, agent=event.agent)
    step = run.graph.step(event.step)
    out.append(StartTimer(run.run_id, "timeout", event.step, event.attempt, step.timeout))


def _on_deferred(run: Run, event: StepDeferred, now: float, out: list[Command]) -> None:
    state = _current(run, event.step, event.attempt, "running")
    if state is None or state.attempts[-1].agent != event.agent:
        _record_stale(run, now, event.step, event.attempt, "step_deferred", event.agent)
        return
    _record(
        run, now, "step_requeued", step=event.step, attempt=event.attempt, agent=event.agent,
        message=f"the agent had no room for it; it is dispatched again ({event.message})",
    )  # fmt: skip
    state.status = "queued"
    state.attempts[-1].agent = ""
    out.append(CancelTimer(run.run_id, "timeout", event.step, event.attempt))
    out.append(_dispatch(run, event.step, state))


def _on_succeeded(run: Run, event: StepSucceeded, now: float, out: list[Command]) -> None:
    name = event.step
    state = _current(run, name, event.attempt, "running")
    if state is None or state.attempts[-1].agent != event.agent:
        _record_stale(run, now, name, event.attempt, "step_succeeded", event.agent)
        return
    step = run.graph.step(name)
    out.append(CancelTimer(run.run_id, "timeout", name, event.attempt))
    problem = _output_problem(step, event.outputs)
    if problem is not None:
        _record(
            run, now, "step_failed", step=name, attempt=event.attempt, agent=event.agent,
            principal=event.principal, message=f"invalid_output: {problem}",
        )  # fmt: skip
        _fail(run, name, state, "invalid_output", problem, now, out)
        return
    if event.confidence < step.min_confidence:
        message = f"confidence {event.confidence:g} is under the step's {step.min_confidence:g}"
        _record(
            run, now, "step_failed", step=name, attempt=event.attempt, agent=event.agent,
            principal=event.principal, message=f"low_confidence: {message}",
        )  # fmt: skip
        _fail(run, name, state, "low_confidence", message, now, out)
        return
    attempt = state.attempts[-1]
    attempt.outcome = "succeeded"
    attempt.ended_at = now
    run.recoveries = 0
    checkpoint = run.graph.checkpoints.get(name)
    if (
        checkpoint is not None
        and checkpoint.when == "after"
        and checkpoint.condition.holds({**run.data, **event.outputs})
    ):
        _record(
            run, now, "step_succeeded", step=name, attempt=event.attempt, agent=event.agent,
            principal=event.principal, message=event.rationale,
            detail={"keys": sorted(event.outputs), "confidence": event.confidence, "held": True},
        )  # fmt: skip
        _open_checkpoint(run, name, state, checkpoint, event.attempt, now, out, held=event)
        return
    _write_outputs(run, name, event, event.outputs, now)
    state.status = "completed"
    _finish_node(run, name, state, now, out)


def _write_outputs(
    run: Run,
    name: str,
    event: StepSucceeded,
    outputs: Mapping[str, Any],
    now: float,
    *,
    approved_by: str = "",
    edited_by: str = "",
    edited: frozenset[str] = frozenset(),
) -> None:
    """Write a step's outputs with their provenance, and record the success."""
    step = run.graph.step(name)
    inherited = _inherited_flags(run, step.reads)
    run.seq += 1
    for key, value in outputs.items():
        run.data[key] = value
        run.provenance[key] = Provenance(
            step=name,
            attempt=event.attempt,
            agent=event.agent,
            rationale=event.rationale,
            confidence=event.confidence,
            caveats=list(event.caveats),
            flags=inherited,
            seq=run.seq,
            approved_by=approved_by,
            edited_by=edited_by if key in edited else "",
        )
    if approved_by:
        _record(
            run, now, "outputs_applied", step=name, attempt=event.attempt, principal=approved_by,
            message=f"approved by {approved_by}",
            detail={"keys": sorted(outputs), "edited": sorted(edited)}, seq_taken=True,
        )  # fmt: skip
        return
    _record(
        run,
        now,
        "step_succeeded",
        step=name,
        attempt=event.attempt,
        agent=event.agent,
        principal=event.principal,
        message=event.rationale,
        detail={"keys": sorted(outputs), "confidence": event.confidence},
        seq_taken=True,
    )


def _on_timer(run: Run, event: TimerFired, now: float, out: list[Command]) -> None:
    if event.purpose == "timeout":
        state = _current(run, event.step, event.attempt, "running")
        if state is None:
            return
        step = run.graph.step(event.step)
        message = f"no result within {step.timeout:g}s"
        _record(
            run, now, "step_failed", step=event.step, attempt=event.attempt,
            agent=state.attempts[-1].agent, message=f"timeout: {message}",
        )  # fmt: skip
        out.append(CancelTask(run.run_id, event.step, event.attempt, "timed out"))
        _fail(run, event.step, state, "timeout", message, now, out)
        return
    if event.purpose == "decision":
        _decision_timed_out(run, event.step, event.attempt, now, out)
        return
    state = _current(run, event.step, event.attempt, "retry_wait")
    if state is not None:
        _new_attempt(run, event.step, state, now, out)


def _on_tool_call(run: Run, event: ToolCallRequested, now: float, out: list[Command]) -> None:
    state = _current(run, event.step, event.attempt, "running")
    detail: dict[str, Any] = {
        "call": event.call,
        "tool": event.tool,
        "args": dict(event.args),
        "idempotency_key": event.idempotency_key,
    }
    if state is not None and event.idempotency_key:
        # The agent's key counts calls within its task; the visit makes a step that a loop
        # reaches again do new work, while every attempt of one visit shares its keys.
        detail["idempotency_key"] = _idempotency_key(run, event.step, state, event.idempotency_key)
    if state is None:
        out.append(
            RefuseToolCall(
                run.run_id, event.agent, event.call, event.tool, "stale",
                f"attempt {event.attempt} of step {event.step!r} is not running",
            )
        )  # fmt: skip
        _record_stale(run, now, event.step, event.attempt, "tool_requested", event.tool)
        return
    step = run.graph.step(event.step)
    if event.tool in step.tools and event.tool in event.agent_tools:
        _record(
            run, now, "tool_called", step=event.step, attempt=event.attempt, agent=event.agent,
            principal=event.principal, message=event.tool, detail=detail,
        )  # fmt: skip
        out.append(
            ForwardToolCall(
                run.run_id, event.step, event.attempt, event.agent, event.call, event.tool,
                dict(event.args), detail["idempotency_key"],
            )
        )  # fmt: skip
        return
    where = "step" if event.tool not in step.tools else "agent's allowlist"
    message = f"tool {event.tool!r} is not in the {where} of step {event.step!r}"
    _record(
        run, now, "tool_refused", step=event.step, attempt=event.attempt, agent=event.agent,
        principal=event.principal, message=message, detail=detail,
    )  # fmt: skip
    out.append(
        RefuseToolCall(run.run_id, event.agent, event.call, event.tool, "tool_refused", message)
    )
    out.append(CancelTask(run.run_id, event.step, event.attempt, "tool refused"))
    out.append(CancelTimer(run.run_id, "timeout", event.step, event.attempt))
    _fail(run, event.step, state, "tool_refused", message, now, out)


def _idempotency_key(run: Run, step: str, state: StepState, call_key: str) -> str:
    if len(call_key) > MAX_CALL_KEY:
        # Still one key per call, and the whole stays within a message's text limit.
        call_key = "sha256-" + hashlib.sha256(call_key.encode()).hexdigest()
    return f"{run.run_id}:{step}:{state.visits}:{call_key}"


def _output_problem(step: Step, outputs: dict[str, Any]) -> str | None:
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


def _fail(
    run: Run,
    name: str,
    state: StepState,
    kind: FailureKind,
    message: str,
    now: float,
    out: list[Command],
) -> None:
    attempt = state.attempts[-1]
    attempt.outcome = "failed"
    attempt.failure = kind
    run.recoveries = 0
    attempt.message = clip(message)
    attempt.ended_at = now
    policy = run.graph.policies[name][kind]
    if isinstance(policy, Retry):
        if state.tries < policy.attempts:
            delay = policy.delay(state.tries, _spread(run.run_id, name, state.attempt))
            state.status = "retry_wait"
            state.retry_at = now + delay
            _record(
                run, now, "retry_scheduled", step=name, attempt=state.attempt,
                message=f"attempt {state.tries + 1} of {policy.attempts} in {delay:.3g}s",
                detail={"delay": delay, "kind": kind},
            )  # fmt: skip
            out.append(StartTimer(run.run_id, "retry", name, state.attempt, delay))
            return
        resolved: Halt | ProceedWithFlag | Goto | Escalate = policy.then
    else:
        resolved = policy
    if isinstance(resolved, Escalate):
        _open_escalation(run, name, state, resolved, kind, message, now, out)
        return
    run.active.discard(name)
    match resolved:
        case Halt():
            state.status = "failed"
            reason = resolved.reason or f"step {name!r} failed ({kind}): {message}"
            _halt(run, "halted", reason, now, out)
        case ProceedWithFlag():
            _proceed_with_flag(run, name, state, resolved, kind, message, now, out)
        case Goto():
            _fall_back(run, name, state, resolved.step, now, out)


def _fall_back(
    run: Run, name: str, state: StepState, target: str, now: float, out: list[Command]
) -> None:
    """`target` runs in place of step `name`, standing in for its outputs."""
    run.active.discard(name)
    state.status = "replaced"
    _record(run, now, "fallback", step=name, message=f"{target} stands in")
    fallback = run.steps[target]
    fallback.stands_for = state.stands_for or name
    state.stands_for = None
    _activate(run, target, now, out)


def _proceed_with_flag(
    run: Run,
    name: str,
    state: StepState,
    policy: ProceedWithFlag,
    kind: FailureKind,
    message: str,
    now: float,
    out: list[Command],
) -> None:
    step = run.graph.step(name)
    flag = policy.flag or f"{name}: {kind}: {message}"
    flags = sorted({flag, *_inherited_flags(run, step.reads)})
    run.seq += 1
    for key in step.writes:
        run.data[key] = policy.defaults[key]
        run.provenance[key] = Provenance(
            step=name,
            attempt=state.attempt,
            rationale="default written by the failure policy",
            confidence=0.0,
            flags=flags,
            seq=run.seq,
        )
    state.status = "flagged"
    _record(
        run, now, "step_flagged", step=name, attempt=state.attempt, message=flag,
        detail={"keys": sorted(step.writes)}, seq_taken=True,
    )  # fmt: skip
    _finish_node(run, name, state, now, out)


def _halt(
    run: Run,
    status: Literal["halted", "failed", "cancelled"],
    reason: str,
    now: float,
    out: list[Command],
    *,
    principal: str = "",
) -> None:
    run.decisions.clear()
    for other in sorted(run.active):
        state = run.steps[other]
        if state.status in {"running", "queued"}:
            out.append(CancelTask(run.run_id, other, state.attempt, "run stopped"))
            state.attempts[-1].outcome = "cancelled"
            state.attempts[-1].ended_at = now
        state.status = "cancelled"
    run.active.clear()
    run.status = status
    run.reason = clip(reason)
    _record(run, now, f"run_{run.status}", principal=principal, message=run.reason)
    out.append(RunEnded(run.run_id, run.status, run.reason))


def _finish_node(run: Run, name: str, state: StepState, now: float, out: list[Command]) -> None:
    """The node is done: its successors (or those of the step it stands for) get their edge."""
    run.active.discard(name)
    origin = state.stands_for
    if origin is not None:
        state.stands_for = None
        run.steps[origin].status = "replaced"
        name = origin
    for target in run.graph.successors[name]:
        _edge(run, name, target, fired=True, now=now, out=out)


def _edge(
    run: Run, source: str, target: str, *, fired: bool, now: float, out: list[Command]
) -> None:
    state = run.steps[target]
    state.tally[source] = fired
    waits_for = run.graph.joins[target]
    if len(state.tally) < len(waits_for) or not waits_for.issubset(state.tally):
        return
    go = any(state.tally[p] for p in waits_for)
    for pred in run.graph.in_loop[target]:
        state.tally.pop(pred, None)
    if go:
        _activate(run, target, now, out)
    else:
        _skip(run, target, now, out)


def _skip(run: Run, name: str, now: float, out: list[Command]) -> None:
    run.steps[name].status = "skipped"
    node = run.graph.nodes[name]
    targets = node.targets() if isinstance(node, Decision) else run.graph.successors[name]
    for target in targets:
        if (name, target) not in run.graph.back_routes:
            _edge(run, name, target, fired=False, now=now, out=out)


def _activate(run: Run, name: str, now: float, out: list[Command]) -> None:
    node = run.graph.nodes[name]
    state = run.steps[name]
    if state.status in {"queued", "running"}:
        # Reached again while an attempt is out: that attempt's outcome is no longer wanted.
        out.append(CancelTask(run.run_id, name, state.attempt, "step reached again"))
        state.attempts[-1].outcome = "cancelled"
        state.attempts[-1].ended_at = now
    waiting = run.decisions.pop(name, None)
    if waiting is not None:
        out.append(CancelTimer(run.run_id, "decision", name, waiting.attempt))
        _record(run, now, "decision_withdrawn", step=name, message="the step was reached again")
    state.visits += 1
    if isinstance(node, Decision):
        _decide(run, node, state, now, out)
        return
    state.tries = 0
    run.active.add(name)
    checkpoint = run.graph.checkpoints.get(name)
    if (
        checkpoint is not None
        and checkpoint.when == "before"
        and checkpoint.condition.holds(run.data)
    ):
        _open_checkpoint(run, name, state, checkpoint, state.attempt + 1, now, out)
        return
    _new_attempt(run, name, state, now, out)


def _new_attempt(run: Run, name: str, state: StepState, now: float, out: list[Command]) -> None:
    state.attempt += 1
    state.tries += 1
    state.status = "queued"
    state.attempts.append(Attempt(state.attempt, now))
    out.append(_dispatch(run, name, state))


def _dispatch(run: Run, name: str, state: StepState) -> Dispatch:
    """The command that places the step's current attempt on an agent of its role."""
    step = run.graph.step(name)
    inputs = {k: run.data[k] for k in step.reads if k in run.data}
    flags: dict[str, list[str]] = {}
    for k in step.reads:
        prov = run.provenance.get(k)
        if prov is not None and (prov.flags or prov.caveats):
            flags[k] = _at_most(MAX_ASSIGNED_FLAGS, [*prov.flags, *prov.caveats])
    return Dispatch(
        run.run_id, name, state.attempt, step.role, inputs, flags, step.tools, step.timeout
    )


def _on_recovered(run: Run, event: RunRecovered, now: float, out: list[Command]) -> None:
    """The runtime restarted: carry on from where the journal left the run, unless it has
    been taken up too often in a row without a step finishing (then it is parked)."""
    run.recoveries += 1
    if event.budget and run.recoveries > event.budget:
        run.status = "stuck"
        run.reason = (
            f"the runtime restarted {run.recoveries} times in a row while this run was in "
            f"flight, and no step finished in between (budget {event.budget}); inspect it, "
            "then resume or cancel it"
        )
        _record(run, now, "run_stuck", message=run.reason)
        return
    _record(run, now, "run_recovered", message="the runtime restarted; steps in flight resume")
    _carry_on(run, now, out)


def _carry_on(run: Run, now: float, out: list[Command]) -> None:
    """Take up every step in flight where the journal left it.

    A queued step is queued again; a running one (its agent's result, if any,
    never reached the journal) goes back to the queue under the same attempt,
    so that its tool calls keep their idempotency keys; a retry wait resumes
    with the time it had left.
    """
    for name, state in run.steps.items():
        if state.status == "queued":
            out.append(_dispatch(run, name, state))
        elif state.status == "running":
            attempt = state.attempts[-1]
            _record(
                run, now, "step_requeued", step=name, attempt=state.attempt, agent=attempt.agent,
                message="the attempt was out when the runtime stopped; it is dispatched again",
            )  # fmt: skip
            state.status = "queued"
            out.append(_dispatch(run, name, state))
        elif state.status == "retry_wait":
            out.append(
                StartTimer(run.run_id, "retry", name, state.attempt, _retry_left(state, now))
            )
        elif state.status == "awaiting_decision":
            waiting = run.decisions[name]
            if waiting.deadline is not None:
                left = max(0.0, waiting.deadline - now)
                out.append(StartTimer(run.run_id, "decision", name, waiting.attempt, left))


def _retry_left(state: StepState, now: float) -> float:
    """Seconds left of a retry wait."""
    return 0.0 if state.retry_at is None else max(0.0, state.retry_at - now)


def has_deadlines(run: Run) -> bool:
    """Whether the run, not ended, waits for a wall-clock time: a decision that may time
    out, or a retry."""
    if run.status in TERMINAL_STATUSES:
        return False
    if any(waiting.deadline is not None for waiting in run.decisions.values()):
        return True
    return any(state.status == "retry_wait" for state in run.steps.values())


def _move_deadlines(run: Run, skew: float, now: float) -> None:
    """The wall clock jumped by `skew`: every deadline moves with it, keeping the real time
    it had left. Timers already started run on the monotonic clock and need nothing."""
    for waiting in run.decisions.values():
        if waiting.deadline is not None:
            waiting.deadline += skew
    for state in run.steps.values():
        if state.status == "retry_wait" and state.retry_at is not None:
            state.retry_at += skew
    _record(
        run, now, "clock_jumped",
        message=f"the wall clock jumped {skew:+.0f}s; deadlines moved with it, keeping the "
        "time they had left",
        detail={"skew": skew},
    )  # fmt: skip


def _open_checkpoint(
    run: Run,
    name: str,
    state: StepState,
    checkpoint: Checkpoint,
    attempt: int,
    now: float,
    out: list[Command],
    *,
    held: StepSucceeded | None = None,
) -> None:
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
        opened_at=now,
        deadline=None if checkpoint.timeout is None else now + checkpoint.timeout,
        held=held,
    )
    _open(run, name, state, waiting, checkpoint.timeout, now, out)


def _open_escalation(
    run: Run,
    name: str,
    state: StepState,
    policy: Escalate,
    kind: FailureKind,
    message: str,
    now: float,
    out: list[Command],
) -> None:
    waiting = OpenDecision(
        kind="escalation",
        when="failed",
        attempt=state.attempt,
        approvers=policy.approvers,
        reason=policy.reason or f"step {name!r} failed ({kind})",
        reviewed={"failure": kind, "message": clip(message)},
        separate_duties=False,
        on_timeout=policy.on_timeout,
        opened_at=now,
        deadline=None if policy.timeout is None else now + policy.timeout,
    )
    _open(run, name, state, waiting, policy.timeout, now, out)


def _open(
    run: Run,
    name: str,
    state: StepState,
    waiting: OpenDecision,
    timeout: float | None,
    now: float,
    out: list[Command],
) -> None:
    """The step waits for a person's decision: recorded, named by a digest, maybe timed."""
    state.status = "awaiting_decision"
    run.decisions[name] = waiting
    event = "checkpoint_opened" if waiting.kind == "checkpoint" else "escalated"
    _record(
        run, now, event, step=name, attempt=waiting.attempt,
        message=f"{waiting.reason}: {' or '.join(waiting.choices)} "
        f"by {', '.join(waiting.approvers)}",
        detail={"when": waiting.when, "approvers": list(waiting.approvers),
                "keys": sorted(waiting.reviewed)},
    )  # fmt: skip
    _seal(run, name, waiting)
    if timeout is not None:
        out.append(StartTimer(run.run_id, "decision", name, waiting.attempt, timeout))


def _seal(run: Run, name: str, waiting: OpenDecision) -> None:
    """Name this version of the open decision: what is decided, by whom, on what values."""
    waiting.version = run.seq
    body = msgspec.msgpack.encode(
        [run.run_id, name, waiting.attempt, waiting.version, waiting.approvers, waiting.reviewed]
    )
    waiting.digest = hashlib.blake2b(body, digest_size=10).hexdigest()


def _on_decision(run: Run, event: DecisionMade, now: float, out: list[Command]) -> None:
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
        _record(
            run, now, "decision_ignored", step=name, attempt=event.attempt,
            principal=event.principal, message="no such decision is open in this version",
        )  # fmt: skip
        return
    del run.decisions[name]
    if waiting.deadline is not None:
        out.append(CancelTimer(run.run_id, "decision", name, waiting.attempt))
    edited = frozenset(event.values)
    _record(
        run, now, "decision_made", step=name, attempt=event.attempt, principal=event.principal,
        message=f"{event.decision}" + (f": {event.comment}" if event.comment else "")
        + f" (shown version {waiting.version}, digest {event.digest})",
        detail={"decision": event.decision, "digest": event.digest, "version": waiting.version,
                "edited": sorted(edited)},
    )  # fmt: skip
    step = run.graph.step(name)
    match event.decision:
        case "approve" if waiting.held is not None:
            outputs = {**waiting.held.outputs, **event.values}
            _write_outputs(
                run, name, waiting.held, outputs, now, approved_by=event.principal,
                edited_by=event.principal, edited=edited,
            )  # fmt: skip
            state.status = "completed"
            _finish_node(run, name, state, now, out)
        case "approve":
            _write_given(run, name, state.attempt + 1, event, edited, now)
            _new_attempt(run, name, state, now, out)
        case "retry":
            state.tries = 0
            _new_attempt(run, name, state, now, out)
        case "skip":
            _write_given(run, name, state.attempt, event, frozenset(step.writes), now)
            state.status = "completed"
            _finish_node(run, name, state, now, out)
        case "reject":
            checkpoint = run.graph.checkpoints[name]
            why = f"step {name!r} rejected by {event.principal}" + (
                f": {event.comment}" if event.comment else ""
            )
            _rejected(run, name, state, checkpoint, why, now, out)
        case "abort":
            run.active.discard(name)
            state.status = "failed"
            why = f"step {name!r} aborted by {event.principal}" + (
                f": {event.comment}" if event.comment else ""
            )
            _halt(run, "halted", why, now, out)


def _write_given(
    run: Run, name: str, attempt: int, event: DecisionMade, keys: frozenset[str], now: float
) -> None:
    """Values a person gave at a decision: written with their name as provenance."""
    if not event.values:
        return
    inherited = _inherited_flags(run, run.graph.step(name).reads)
    run.seq += 1
    for key in sorted(keys & event.values.keys()):
        run.data[key] = event.values[key]
        run.provenance[key] = Provenance(
            step=name,
            attempt=attempt,
            rationale=clip(event.comment or f"given by {event.principal}"),
            flags=inherited,
            seq=run.seq,
            edited_by=event.principal,
        )
    _record(
        run, now, "values_given", step=name, attempt=attempt, principal=event.principal,
        message=f"{', '.join(sorted(keys & event.values.keys()))} given by {event.principal}",
        seq_taken=True,
    )  # fmt: skip


def _rejected(
    run: Run,
    name: str,
    state: StepState,
    checkpoint: Checkpoint,
    why: str,
    now: float,
    out: list[Command],
) -> None:
    if isinstance(checkpoint.on_reject, Goto):
        _fall_back(run, name, state, checkpoint.on_reject.step, now, out)
        return
    run.active.discard(name)
    state.status = "failed"
    _halt(run, "halted", checkpoint.on_reject.reason or why, now, out)


def _decision_timed_out(run: Run, name: str, attempt: int, now: float, out: list[Command]) -> None:
    waiting = run.decisions.get(name)
    if waiting is None or waiting.attempt != attempt:
        return
    state = run.steps[name]
    policy = waiting.on_timeout
    late = f"nobody decided on step {name!r} in time"
    if isinstance(policy, EscalateTo):
        waiting.approvers = policy.approvers
        waiting.on_timeout = Halt()
        waiting.deadline = None if policy.timeout is None else now + policy.timeout
        _record(
            run, now, "decision_escalated", step=name, attempt=attempt,
            message=f"{late}; now for {', '.join(policy.approvers)}",
            detail={"approvers": list(policy.approvers)},
        )  # fmt: skip
        _seal(run, name, waiting)
        if policy.timeout is not None:
            out.append(StartTimer(run.run_id, "decision", name, attempt, policy.timeout))
        return
    del run.decisions[name]
    _record(run, now, "decision_timed_out", step=name, attempt=attempt, message=late)
    if isinstance(policy, Reject) and waiting.kind == "checkpoint":
        _rejected(run, name, state, run.graph.checkpoints[name], late, now, out)
        return
    run.active.discard(name)
    state.status = "failed"
    _halt(
        run,
        "halted",
        policy.reason if isinstance(policy, Halt) and policy.reason else late,
        now,
        out,
    )


def _decide(run: Run, node: Decision, state: StepState, now: float, out: list[Command]) -> None:
    chosen: tuple[str, ...] | None = None
    label = ""
    for index, route in enumerate(node.all_routes()):
        if route.limit is not None and run.route_counts.get((node.name, index), 0) >= route.limit:
            continue
        if route.when.holds(run.data):
            run.route_counts[(node.name, index)] = run.route_counts.get((node.name, index), 0) + 1
            chosen = route.to
            label = route.when.describe()
            break
    if chosen is None:
        state.status = "failed"
        _halt(run, "failed", f"decision {node.name!r}: no route matched", now, out)
        return
    state.status = "completed"
    _record(
        run, now, "decision_taken", step=node.name, message=f"{label} -> {', '.join(chosen)}",
        detail={"to": list(chosen)},
    )  # fmt: skip
    back = [t for t in chosen if (node.name, t) in run.graph.back_routes]
    for target in back:
        for pred in run.graph.in_loop[target]:
            run.steps[target].tally.pop(pred, None)
        _activate(run, target, now, out)
    if back:
        return
    for target in node.targets():
        if (node.name, target) not in run.graph.back_routes:
            _edge(run, node.name, target, fired=target in chosen, now=now, out=out)


def _settle(run: Run, now: float, out: list[Command]) -> None:
    if run.status == "running" and not run.active:
        run.status = "completed"
        _record(run, now, "run_completed")
        out.append(RunEnded(run.run_id, "completed"))


def _current(run: Run, name: str, attempt: int, status: str) -> StepState | None:
    """The step's state if `attempt` is its latest and the step is in `status`."""
    state = run.steps.get(name)
    if state is None or state.attempt != attempt or state.status != status:
        return None
    return state


def _inherited_flags(run: Run, keys: Iterable[str]) -> list[str]:
    found: set[str] = set()
    for key in keys:
        prov = run.provenance.get(key)
        if prov is not None:
            found.update(prov.flags)
    return sorted(found)


MAX_ASSIGNED_FLAGS = 256
"""Flags and caveats an `Assign` may carry per input key (the protocol's bound)."""


def _at_most(limit: int, notes: list[str]) -> list[str]:
    """The first of `notes`, with the last place saying how many more there were."""
    if len(notes) <= limit:
        return notes
    return [*notes[: limit - 1], f"… and {len(notes) - limit + 1} more"]


def _spread(run_id: str, step: str, attempt: int) -> float:
    digest = hashlib.blake2b(f"{run_id}/{step}/{attempt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _record(
    run: Run,
    now: float,
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
    if not seq_taken:
        run.seq += 1
    run.history.append(
        HistoryEntry(
            seq=run.seq,
            at=now,
            event=event,
            step=step,
            attempt=attempt,
            agent=agent,
            principal=principal,
            message=clip(message),
            detail=detail or {},
        )
    )


def _record_stale(run: Run, now: float, step: str, attempt: int, what: str, note: str) -> None:
    _record(
        run, now, "stale_ignored", step=step, attempt=attempt,
        message=f"{what} for an attempt that is no longer current ({note})",
    )  # fmt: skip


def _record_late(run: Run, event: JournalEvent, now: float) -> None:
    step = getattr(event, "step", "")
    attempt = getattr(event, "attempt", 0)
    if isinstance(event, TimerFired):
        return
    _record(
        run, now, "late_ignored", step=step, attempt=attempt,
        message=f"{type(event).__name__} while the run is {run.status}",
    )  # fmt: skip

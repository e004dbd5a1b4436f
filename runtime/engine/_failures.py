"""Where a failed attempt goes, by its step's policy for the failure kind: another attempt
after a backoff, a person who decides, a halt, defaults with a flag, or a fallback step.

Nothing fails silently: each failure is in the history with its kind and message
before its policy acts.
"""

from __future__ import annotations

import hashlib

from protocols import FailureKind, clip
from runtime.engine._events import StartTimer
from runtime.engine._fold import Fold
from runtime.engine._run import StepState
from runtime.engine._traversal import fall_back, finish_node, halt
from runtime.engine._values import write_defaults
from runtime.engine._waiting import open_escalation
from runtime.workflow._policies import Escalate, Goto, Halt, ProceedWithFlag, Retry


def step_failed(
    f: Fold,
    name: str,
    state: StepState,
    kind: FailureKind,
    message: str,
    *,
    agent: str = "",
    principal: str = "",
) -> None:
    """Record that the attempt failed, then let the step's policy act."""
    f.record(
        "step_failed", step=name, attempt=state.attempt, agent=agent, principal=principal,
        message=f"{kind}: {message}",
    )  # fmt: skip
    fail(f, name, state, kind, message)


def fail(f: Fold, name: str, state: StepState, kind: FailureKind, message: str) -> None:
    """The step's current attempt failed with `kind`: its policy decides what follows."""
    run = f.run
    now = f.now
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
            f.record(
                "retry_scheduled", step=name, attempt=state.attempt,
                message=f"attempt {state.tries + 1} of {policy.attempts} in {delay:.3g}s",
                detail={"delay": delay, "kind": kind},
            )  # fmt: skip
            f.out.append(StartTimer(run.run_id, "retry", name, state.attempt, delay))
            return
        resolved: Halt | ProceedWithFlag | Goto | Escalate = policy.then
    else:
        resolved = policy
    if isinstance(resolved, Escalate):
        open_escalation(f, name, state, resolved, kind=kind, message=message)
        return
    run.active.discard(name)
    match resolved:
        case Halt():
            state.status = "failed"
            halt(f, "halted", resolved.reason or f"step {name!r} failed ({kind}): {message}")
        case ProceedWithFlag():
            flag = resolved.flag or f"{name}: {kind}: {message}"
            state.status = "flagged"
            write_defaults(f, name, state.attempt, resolved.defaults, flag)
            finish_node(f, name, state)
        case Goto():
            fall_back(f, name, state, resolved.step)


def _spread(run_id: str, step: str, attempt: int) -> float:
    """Where in its jitter a retry's delay falls: derived from the attempt, not drawn, so
    that folding the journal again gives the same delay."""
    digest = hashlib.blake2b(f"{run_id}/{step}/{attempt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64

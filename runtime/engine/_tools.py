"""Tool calls: an agent's request is forwarded only inside both its step's tools and the
agent's allowlist, under an idempotency key scoped to the run, the step and the visit;
anything else is refused and fails the step. Every call, allowed or refused, and every
completion is in the run's history.
"""

from __future__ import annotations

import hashlib
from typing import Any

from runtime.engine._events import (
    CancelTask,
    CancelTimer,
    ForwardToolCall,
    RefuseToolCall,
    ToolCallCompleted,
    ToolCallRequested,
)
from runtime.engine._failures import fail
from runtime.engine._fold import Fold, current
from runtime.engine._run import Run, StepState

MAX_CALL_KEY = 256
"""The longest call key an agent may give that is kept as it is; a longer one is hashed."""


def on_tool_call(f: Fold, event: ToolCallRequested) -> None:
    """Forward the call, or refuse it: a refusal fails the step as `tool_refused`."""
    run = f.run
    state = current(run, event.step, event.attempt, "running")
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
        f.out.append(
            RefuseToolCall(
                run.run_id, event.agent, event.call, event.tool, "stale",
                f"attempt {event.attempt} of step {event.step!r} is not running",
            )
        )  # fmt: skip
        f.record_stale(event.step, event.attempt, "tool_requested", event.tool)
        return
    step = run.graph.step(event.step)
    if event.tool in step.tools and event.tool in event.agent_tools:
        f.record(
            "tool_called", step=event.step, attempt=event.attempt, agent=event.agent,
            principal=event.principal, message=event.tool, detail=detail,
        )  # fmt: skip
        f.out.append(
            ForwardToolCall(
                run.run_id, event.step, event.attempt, event.agent, event.call, event.tool,
                dict(event.args), detail["idempotency_key"],
            )
        )  # fmt: skip
        return
    why = (
        "it is not one of the step's tools"
        if event.tool not in step.tools
        else "it is not on the agent's allowlist"
    )
    message = f"tool {event.tool!r} is not allowed in step {event.step!r}: {why}"
    f.record(
        "tool_refused", step=event.step, attempt=event.attempt, agent=event.agent,
        principal=event.principal, message=message, detail=detail,
    )  # fmt: skip
    # The agent hears why before its attempt is withdrawn, so that its log says which
    # tool was refused and why; an attempt ended by a refusal is not reported back.
    f.out.append(
        RefuseToolCall(run.run_id, event.agent, event.call, event.tool, "tool_refused", message)
    )
    f.out.append(CancelTask(run.run_id, event.step, event.attempt, "tool refused"))
    f.out.append(CancelTimer(run.run_id, "timeout", event.step, event.attempt))
    fail(f, event.step, state, "tool_refused", message)


def on_tool_completed(f: Fold, event: ToolCallCompleted) -> None:
    """A host answered a forwarded call: recorded, whether it succeeded or not."""
    f.record(
        "tool_completed",
        step=event.step,
        attempt=event.attempt,
        message=f"{event.tool}: ok" if event.ok else f"{event.tool}: {event.error}",
        detail={"call": event.call, "tool": event.tool, "ok": event.ok}
        | ({"error": event.error, "error_message": event.message} if not event.ok else {}),
    )


def _idempotency_key(run: Run, step: str, state: StepState, call_key: str) -> str:
    if len(call_key) > MAX_CALL_KEY:
        # Still one key per call, and the whole stays within a message's text limit.
        call_key = "sha256-" + hashlib.sha256(call_key.encode()).hexdigest()
    return f"{run.run_id}:{step}:{state.visits}:{call_key}"

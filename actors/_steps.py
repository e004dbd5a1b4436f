"""How one assigned task becomes one `StepResult` or `StepFailure`, or ends with nothing
to report."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import anyio
import msgspec

from actors._agent import Agent
from actors._context import Context
from actors._errors import InvalidOutput, ToolRefused, describe
from actors._spans import Spans
from actors._task import Result, Task
from protocols import VALUE_DEPTH, FailureReason, StepFailure, StepResult, clip

Outcome = StepResult | StepFailure
Stopped = Literal["cancelled", "timed_out", "refused"]
"""Why a task ended with nothing to report: the runtime cancelled it, its time ran out, or
the runtime refused one of its tool calls, which failed the attempt there and then."""

ENDS_ATTEMPT = "tool_refused"
"""The code of a refused call outside the step's tools or the agent's allowlist: the
runtime fails the attempt as it refuses the call, and cancels the task."""
_STOPPED_TEXT: dict[Stopped, str] = {
    "cancelled": "cancelled",
    "timed_out": "timed out",
    "refused": "a tool call was refused",
}

_SETS = (set, frozenset)
_CONTAINERS = (set, frozenset, dict, list, tuple)


async def run_task(
    agent: Agent,
    task: Task,
    ctx: Context,
    scope: anyio.CancelScope,
    *,
    spans: Spans | None = None,
    trace: str = "",
) -> Outcome | Stopped:
    """Run the step within `scope`, in a span that joins the run's trace when there are
    `spans` and the runtime traces it (`trace`): its outcome, or why it has none."""
    if spans is None or not trace:
        return await _within(agent, task, ctx, scope)
    attributes: dict[str, str | int] = {
        "baton.run_id": task.run_id,
        "baton.step": task.step,
        "baton.attempt": task.attempt,
    }
    with spans.span(f"handle {task.step}", trace, attributes) as mark:
        outcome = await _within(agent, task, ctx, scope)
        if isinstance(outcome, StepResult):
            return outcome
        if isinstance(outcome, StepFailure):
            mark.fail(f"{outcome.reason}: {outcome.message}")
        else:
            mark.fail(_STOPPED_TEXT[outcome])
        return outcome


async def _within(
    agent: Agent, task: Task, ctx: Context, scope: anyio.CancelScope
) -> Outcome | Stopped:
    with scope:
        return await run_step(agent, task, ctx)
    return stopped(scope)


def stopped(scope: anyio.CancelScope) -> Stopped:
    """Why `scope` stopped its task: its deadline passed, or it was cancelled."""
    return "timed_out" if anyio.current_time() >= scope.deadline else "cancelled"


async def run_step(agent: Agent, task: Task, ctx: Context) -> Outcome | Literal["refused"]:
    """Run `agent.handle` and report what came of it. Cancellation passes through.

    A handler that ends on the refusal of a call outside its step's tools has nothing
    to report: the runtime failed the attempt when it refused the call. A handler
    that catches the refusal and returns a result still reports it.
    """
    try:
        result = await agent.handle(task, ctx)
    except InvalidOutput as exc:
        return failure(task, "invalid_output", clip(exc.detail))
    except Exception as exc:  # the step boundary: any failure is reported, never raised
        if isinstance(exc, ToolRefused) and exc.code == ENDS_ATTEMPT:
            # The refusal says all there is to say: no traceback, and no failure report,
            # which would reach the runtime after the attempt it names had ended.
            ctx.log.warning("actor.tool_refused", tool=exc.tool, message=exc.message)
            return "refused"
        ctx.log.warning("actor.task_failed", error=describe(exc), exc_info=exc)
        return failure(task, "error", describe(exc))
    return outcome(task, result)


def outcome(task: Task, result: object) -> Outcome:
    """`result` as a `StepResult` if it can be recorded, else an `invalid_output` failure."""
    if not isinstance(result, Result):
        return failure(
            task, "invalid_output", f"handle() returned {type(result).__name__}, not Result"
        )
    if not isinstance(result.outputs, Mapping):
        return failure(
            task, "invalid_output", f"outputs is {type(result.outputs).__name__}, not a mapping"
        )
    outputs = dict(result.outputs)
    # msgspec would turn a set into a list in whatever order the set iterates, which
    # differs between processes (string hashing is salted), so a replayed or retried
    # step could record different data. Refuse it instead.
    where = _find_set(outputs, "$.outputs", 0)
    if where is not None:
        message = f"Expected an ordered array, got a set - at `{where}`"
        return failure(task, "invalid_output", message)
    try:
        return msgspec.convert(
            {
                "run_id": task.run_id,
                "step": task.step,
                "attempt": task.attempt,
                "outputs": outputs,
                "rationale": result.rationale,
                "confidence": result.confidence,
                "caveats": result.caveats,
            },
            StepResult,
        )
    except msgspec.ValidationError as exc:
        return failure(task, "invalid_output", clip(str(exc)))


def failure(task: Task, reason: FailureReason, message: str) -> StepFailure:
    return StepFailure(
        run_id=task.run_id, step=task.step, attempt=task.attempt, reason=reason, message=message
    )


def _find_set(value: Any, path: str, depth: int) -> str | None:
    """The path of the first set inside `value`; nesting past the limit is msgspec's to refuse."""
    if isinstance(value, _SETS):
        return path
    if depth > VALUE_DEPTH:
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, _CONTAINERS):
                found = _find_set(item, f"{path}.{key}", depth + 1)
                if found is not None:
                    return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            if isinstance(item, _CONTAINERS):
                found = _find_set(item, f"{path}[{index}]", depth + 1)
                if found is not None:
                    return found
    return None

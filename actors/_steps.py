"""How one assigned task becomes one `StepResult` or `StepFailure`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from actors._agent import Agent
from actors._context import Context
from actors._errors import InvalidOutput, describe
from actors._task import Result, Task
from protocols import VALUE_DEPTH, FailureReason, StepFailure, StepResult, clip

Outcome = StepResult | StepFailure

_SETS = (set, frozenset)
_CONTAINERS = (set, frozenset, dict, list, tuple)


async def run_step(agent: Agent, task: Task, ctx: Context) -> Outcome:
    """Run `agent.handle` and report what came of it. Cancellation passes through."""
    try:
        result = await agent.handle(task, ctx)
    except InvalidOutput as exc:
        return failure(task, "invalid_output", clip(exc.detail))
    except Exception as exc:  # the step boundary: any failure is reported, never raised
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

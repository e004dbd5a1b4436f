"""What a handler receives and what it returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from protocols import Assign, ModelReply, OutputType, ToolSpec


@dataclass(frozen=True, slots=True)
class Task:
    """One attempt of one step, as the runtime assigned it.

    `(run_id, step, attempt)` names the task. `flags` lists, per input key, the
    caveats that travel with that value. `tools` are the tools this step may
    call. `timeout` is in seconds; 0 means none. `outputs` are the step's declared
    outputs and their types, `tool_specs` the specs of the tools it may call, and
    `model_replies` the model calls of this attempt the runtime journaled already.
    """

    run_id: str
    step: str
    attempt: int
    inputs: Mapping[str, Any]
    flags: Mapping[str, list[str]]
    tools: tuple[str, ...]
    timeout: float
    outputs: Mapping[str, OutputType] = field(default_factory=lambda: MappingProxyType({}))
    tool_specs: tuple[ToolSpec, ...] = ()
    model_replies: tuple[ModelReply, ...] = ()

    @classmethod
    def from_assign(cls, assign: Assign) -> Task:
        return cls(
            run_id=assign.run_id,
            step=assign.step,
            attempt=assign.attempt,
            inputs=MappingProxyType(assign.inputs),
            flags=MappingProxyType(assign.flags),
            tools=tuple(assign.tools),
            timeout=assign.timeout_ms / 1000,
            outputs=MappingProxyType(assign.outputs),
            tool_specs=tuple(assign.tool_specs),
            model_replies=tuple(assign.model_replies),
        )


@dataclass(frozen=True, slots=True)
class Result:
    """A handler's outputs, with the reasoning the run record keeps beside them.

    `outputs` must be JSON-like (see `protocols.Value`); `confidence` is in
    [0, 1]; `caveats` travel with every value derived from these outputs.
    """

    outputs: Mapping[str, Any]
    rationale: str = ""
    confidence: float = 1.0
    caveats: Sequence[str] = ()

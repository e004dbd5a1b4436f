"""What a handler may use while it runs: its task, a bound logger and its tools."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import msgspec
from structlog.typing import FilteringBoundLogger

from actors._errors import ToolFailed, ToolRefused
from actors._task import Task
from protocols import Arguments, Name, ToolReply, ToolSpec

_REFUSALS = frozenset({"tool_refused", "unknown_tool", "tool_unavailable", "idempotency_conflict"})
"""Codes meaning the call never reached a tool, so no side effect can have happened."""


class ToolCaller(Protocol):
    """The transport a `Tools` object calls through: the worker, or a test double."""

    async def call_tool(self, task: Task, tool: str, args: Arguments, key: str) -> ToolReply: ...

    def tool_specs(self) -> Mapping[str, ToolSpec]: ...


class Tools:
    """The tools one task may call, through the runtime.

    Each call carries the key `n`, which counts the calls of this task from 0;
    the runtime makes it the idempotency key `run_id:step:visit:n`, where `visit`
    counts the times the run reached the step. The key ignores the attempt on
    purpose: a retried step that makes the same calls in the same order reuses
    the keys, so a tool host's ledger can refuse to repeat a side effect, while a
    step that a loop reaches again does new work under new keys.
    """

    __slots__ = ("_caller", "_calls", "_task")

    def __init__(self, task: Task, caller: ToolCaller) -> None:
        self._task = task
        self._caller = caller
        self._calls = 0

    @property
    def names(self) -> tuple[str, ...]:
        """Names of the tools this task may call."""
        return self._task.tools

    @property
    def specs(self) -> list[ToolSpec]:
        """Specs of the tools this task may call, in the step's order, for handing to a model."""
        known = self._caller.tool_specs()
        return [known[name] for name in self._task.tools if name in known]

    async def call(self, tool: str, /, **args: Any) -> Any:
        """Call `tool` with keyword arguments and return its result.

        Raises `ToolRefused` when the call never reached a tool and `ToolFailed`
        when the tool failed or the arguments were invalid.
        """
        index = self._calls
        self._calls += 1
        try:
            msgspec.convert(tool, Name)
        except msgspec.ValidationError as exc:
            raise ToolRefused(tool, "unknown_tool", f"not a valid tool name: {exc}") from None
        try:
            data = msgspec.convert(args, Arguments)
        except msgspec.ValidationError as exc:
            raise ToolFailed(tool, "invalid_input", str(exc)) from None
        key = str(index)
        reply = await self._caller.call_tool(self._task, tool, data, key)
        if reply.ok:
            return reply.result
        code = reply.error or "internal"
        if code in _REFUSALS:
            raise ToolRefused(tool, code, reply.message)
        raise ToolFailed(tool, code, reply.message)


class Context:
    """Everything a handler may use besides its task's inputs."""

    __slots__ = ("_base_log", "_log", "task", "tools")

    def __init__(self, task: Task, tools: Tools, log: FilteringBoundLogger) -> None:
        self.task = task
        self.tools = tools
        self._base_log = log
        self._log: FilteringBoundLogger | None = None

    @property
    def log(self) -> FilteringBoundLogger:
        """A structlog logger bound to the run, step, attempt and agent."""
        # Bound on first use: most handlers never log, and binding costs on the hot path.
        if self._log is None:
            task = self.task
            self._log = self._base_log.bind(
                run_id=task.run_id, step=task.step, attempt=task.attempt
            )
        return self._log

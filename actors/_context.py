"""What a handler may use while it runs: its task, a bound logger, its tools and the
record of its model calls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import msgspec
from structlog.typing import FilteringBoundLogger

from actors._errors import ToolFailed, ToolRefused
from actors._task import Task
from protocols import Arguments, ModelCall, Name, ToolReply, ToolSpec, Value

_REFUSALS = frozenset({"tool_refused", "unknown_tool", "tool_unavailable", "idempotency_conflict"})
"""Codes meaning the call never reached a tool, so no side effect can have happened."""


class ToolCaller(Protocol):
    """The transport a `Tools` object calls through: the worker, or a test double."""

    async def call_tool(self, task: Task, tool: str, args: Arguments, key: str) -> ToolReply: ...

    def tool_specs(self) -> Mapping[str, ToolSpec]: ...


class ModelReporter(Protocol):
    """Where a `Models` object reports model calls: the worker, or a test double."""

    def report_model_call(self, call: ModelCall) -> None: ...


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
        """Specs of the tools this task may call, in the step's order, for handing to a model.

        The step's own specs when the runtime sent them with the task, else those of the
        welcome, which cover every tool of the role.
        """
        given = self._task.tool_specs
        known = {spec.name: spec for spec in given} if given else self._caller.tool_specs()
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


class Models:
    """The model calls of one task: those the runtime journaled, and reports of new ones.

    A handler that calls a model numbers its calls from 0 within the attempt and names
    each request by a digest. Before a call it asks `journaled` for the reply the
    runtime kept from an earlier dispatch of the same attempt, so that a task sent
    again after a crash does not pay for the same call twice; after a call it reports
    it with `called`, and the runtime keeps it in the run's history with its tokens.
    """

    __slots__ = ("_replies", "_reporter", "_task")

    def __init__(self, task: Task, reporter: ModelReporter | None = None) -> None:
        """Without a `reporter` (a handler run outside a worker), reports go nowhere."""
        self._task = task
        self._reporter = reporter
        self._replies = {(r.index, r.request_digest): r.reply for r in task.model_replies}

    def journaled(self, index: int, request_digest: str) -> Value:
        """The reply journaled for call `index` if it made the request `request_digest`,
        else None: a different request is a different call, made anew."""
        return self._replies.get((index, request_digest))

    def called(
        self,
        *,
        index: int,
        model: str,
        request_digest: str,
        reply: Any,
        tokens_in: int = 0,
        tokens_out: int = 0,
        latency_ms: float = 0.0,
        finish_reason: str = "",
    ) -> bool:
        """Report the answered call `index` to the runtime; False if its reply could not go
        with it (too large or too deep for the wire), which the call is reported without.

        Raises `msgspec.ValidationError` when the other fields are out of bounds.
        """
        fields = {
            "run_id": self._task.run_id,
            "step": self._task.step,
            "attempt": self._task.attempt,
            "index": index,
            "model": model,
            "request_digest": request_digest,
            "reply": reply,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "latency_ms": latency_ms,
            "finish_reason": finish_reason,
        }
        kept = True
        try:
            call = msgspec.convert(fields, ModelCall)
        except msgspec.ValidationError:
            kept = False
            call = msgspec.convert({**fields, "reply": None}, ModelCall)
        if self._reporter is not None:
            self._reporter.report_model_call(call)
        return kept


class Context:
    """Everything a handler may use besides its task's inputs."""

    __slots__ = ("_base_log", "_log", "models", "task", "tools")

    def __init__(
        self,
        task: Task,
        tools: Tools,
        log: FilteringBoundLogger,
        models: Models | None = None,
    ) -> None:
        self.task = task
        self.tools = tools
        self.models = Models(task) if models is None else models
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

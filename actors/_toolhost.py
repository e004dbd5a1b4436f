"""The tool host base class, and how one tool call becomes one reply."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import anyio.to_thread
import msgspec
import structlog
from structlog.typing import FilteringBoundLogger

from actors._errors import describe
from actors._kill_points import KillPoints
from actors._ledger import Ledger, LedgerError, call_digest
from actors._spans import Spans
from actors._tools import ToolDefinition, define_tool, tool_options
from protocols import ErrorCode, ToolCall, ToolReply, ToolSpec, Value, clip

_log = structlog.get_logger("baton.actors")


class ToolHost:
    """Subclass, set `name`, and mark methods with `@tool`.

    A tool host serves tools and never runs steps. Each tool's arguments are
    validated against its signature before it runs; plain (non-async) tools run
    in a worker thread so that they cannot stall the host.
    """

    name: ClassVar[str]
    """The role this host registers for; the runtime routes calls by tool name."""

    _baton_tools: ClassVar[Mapping[str, ToolDefinition]] = MappingProxyType({})

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        attributes: dict[str, object] = {}
        # Base classes first, so that an override (even one that is no tool) wins.
        for klass in reversed(cls.__mro__):
            attributes.update(vars(klass))
        tools: dict[str, ToolDefinition] = {}
        for attribute, value in attributes.items():
            options = tool_options(value)
            if options is None or not callable(value):
                continue
            definition = define_tool(attribute, value, options)
            if definition.name in tools:
                raise TypeError(
                    f"{cls.__qualname__} defines tool {definition.name!r} twice "
                    f"(methods {tools[definition.name].attribute!r} and {attribute!r})"
                )
            tools[definition.name] = definition
        cls._baton_tools = MappingProxyType(tools)

    async def setup(self) -> None:
        """Run once before the worker connects; open connections here."""

    async def teardown(self) -> None:
        """Run once after the worker has stopped, even when it stopped on an error."""


def tool_specs(host: type[ToolHost] | ToolHost) -> list[ToolSpec]:
    """The specs of every tool `host` serves, in definition order."""
    return [definition.spec for definition in host._baton_tools.values()]


async def serve_call(
    host: ToolHost,
    call: ToolCall,
    *,
    ledger: Ledger | None = None,
    kill_points: KillPoints | None = None,
    log: FilteringBoundLogger | None = None,
    spans: Spans | None = None,
) -> ToolReply:
    """`run_tool`, in a span that joins the run's trace when there are `spans` and the
    runtime traces the call."""
    if spans is None or not call.trace:
        return await run_tool(host, call, ledger, kill_points, log)
    attributes: dict[str, str | int] = {
        "baton.run_id": call.run_id,
        "baton.step": call.step,
        "baton.tool": call.tool,
    }
    with spans.span(f"execute {call.tool}", call.trace, attributes) as mark:
        reply = await run_tool(host, call, ledger, kill_points, log)
        if not reply.ok:
            mark.fail(f"{reply.error}: {reply.message}")
        return reply


async def run_tool(
    host: ToolHost,
    call: ToolCall,
    ledger: Ledger | None = None,
    kill_points: KillPoints | None = None,
    log: FilteringBoundLogger | None = None,
) -> ToolReply:
    """Run one call on `host`. Never raises: every failure becomes a refusing reply.

    With a `ledger`, a tool that is not read-only runs at most once per
    idempotency key: a known key gets its recorded reply, or a refusal when its
    outcome is unknown or when it was recorded for other arguments. A tool that
    raises is taken at its word that nothing happened, so its key is free again
    for the step's next attempt. What it logs is bound to the call's run, step,
    attempt and tool, on top of `log`'s own.
    """
    log = (log or _log).bind(
        run_id=call.run_id, step=call.step, attempt=call.attempt, tool=call.tool
    )
    definition = host._baton_tools.get(call.tool)
    if definition is None:
        return _refusal(call, "unknown_tool", f"this host serves no tool {call.tool!r}")
    try:
        args = msgspec.convert(call.args, definition.args_type)
    except msgspec.ValidationError as exc:
        return _refusal(call, "invalid_input", clip(str(exc)))
    if ledger is None or definition.spec.read_only or not call.idempotency_key:
        return await _execute(host, definition, args, call, log)
    key = call.idempotency_key
    try:
        claim = await anyio.to_thread.run_sync(
            ledger.claim, key, call.tool, call_digest(call.tool, call.args)
        )
    except LedgerError as exc:
        return _refusal(call, "tool_unavailable", clip(str(exc)))
    if claim.conflict:
        log.warning("tool.conflict", idempotency_key=key, reason=claim.problem)
        return _refusal(call, "idempotency_conflict", claim.problem)
    if claim.reply is not None:
        log.info("tool.replayed", idempotency_key=key, ok=claim.reply.ok)
        return msgspec.structs.replace(claim.reply, call_id=call.call_id)
    if not claim.fresh:
        log.warning("tool.not_rerun", idempotency_key=key, reason=claim.problem)
        return _refusal(call, "tool_failed", claim.problem)
    reply = await _execute(host, definition, args, call, log)
    if kill_points is not None and kill_points.armed:
        kill_points.passing("tool-executed")
    try:
        if reply.ok:
            await anyio.to_thread.run_sync(ledger.settle, key, reply)
        else:
            # A tool that raised reports no effect: a retry of the step may call it again.
            await anyio.to_thread.run_sync(ledger.release, key)
    except LedgerError as exc:
        # The effect happened; the next call with this key will be told its outcome is unknown.
        log.error("tool.unsettled", idempotency_key=key, reason=str(exc))  # noqa: TRY400
    if kill_points is not None and kill_points.armed:
        kill_points.passing("tool-settled")
    return reply


async def _execute(
    host: ToolHost,
    definition: ToolDefinition,
    args: Any,
    call: ToolCall,
    log: FilteringBoundLogger,
) -> ToolReply:
    """Run the tool, and leave a line in the host's own log: its audit trail of effects."""
    reply = await _invoke(host, definition, args, call, log)
    log.info("tool.executed", idempotency_key=call.idempotency_key, ok=reply.ok)
    return reply


async def _invoke(
    host: ToolHost,
    definition: ToolDefinition,
    args: Any,
    call: ToolCall,
    log: FilteringBoundLogger,
) -> ToolReply:
    method = getattr(host, definition.attribute)
    kwargs = msgspec.structs.asdict(args)
    try:
        if definition.is_async:
            result = await method(**kwargs)
        else:
            result = await anyio.to_thread.run_sync(functools.partial(method, **kwargs))
    except Exception as exc:  # the call boundary: any failure goes to the caller
        log.warning(
            "actor.tool_failed",
            call_id=call.call_id,
            error=describe(exc),
            exc_info=exc,
        )
        return _refusal(call, "tool_failed", describe(exc))
    try:
        value = msgspec.convert(msgspec.to_builtins(result), Value)
    except (msgspec.ValidationError, TypeError, ValueError, RecursionError) as exc:
        return _refusal(call, "tool_failed", clip(f"result is not a JSON-like value: {exc}"))
    return ToolReply(call_id=call.call_id, ok=True, result=value)


def _refusal(call: ToolCall, code: ErrorCode, message: str) -> ToolReply:
    return ToolReply(call_id=call.call_id, ok=False, error=code, message=message)

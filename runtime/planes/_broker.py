"""The tool broker: an agent's tool call goes to a host and its reply comes back.

The engine checks a call against the step's tools and the agent's allowlist;
the broker carries out its verdict. A forwarded call travels under the
runtime's own call id, so that replies of hosts cannot be confused with one
another, and its reply goes back under the agent's. A call with an
idempotency key that a host is running already goes to that host, which
answers it when the first finishes; a call whose host is lost is asked again
if keyed (the next host answers it from its ledger) and fails otherwise.
"""

from __future__ import annotations

import secrets
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

import structlog

from protocols import ErrorCode, ToolCall, ToolReply
from runtime.engine._events import (
    ForwardToolCall,
    RefuseToolCall,
    ToolCallCompleted,
    ToolCallRequested,
)
from runtime.planes._agent_host import AgentHost, AgentPlaneCounters, Outlet
from runtime.planes._sessions import PendingToolCall, Registry, Session

log = structlog.get_logger("baton.runtime")


class ToolBroker:
    """Tool calls waiting for a host of their tool, and those in flight at a host."""

    def __init__(
        self, host: AgentHost, outlet: Outlet, registry: Registry, counters: AgentPlaneCounters
    ) -> None:
        self._host = host
        self._outlet = outlet
        self._registry = registry
        self._counters = counters
        self.queues: defaultdict[str, deque[PendingToolCall]] = defaultdict(deque)
        self.calls: dict[int, PendingToolCall] = {}
        """Calls in flight at a host, by the runtime's call id."""
        # Not 1: a tool host still answering the calls of a runtime that ran here before
        # must find none of those ids in use again.
        self._next_call = secrets.randbits(40) + 1

    def request(self, session: Session, message: ToolCall) -> None:
        """An actor asks for a call: the engine judges it if made for a task the agent holds."""
        key = (message.run_id, message.step, message.attempt)
        if session.kind != "agent" or key not in session.in_flight:
            text = "tool calls are made on behalf of a task you hold"
            self._outlet.to_identity(
                session.identity,
                ToolReply(call_id=message.call_id, ok=False, error="stale", message=text),
            )
            self._host.audit(
                message.run_id, session.principal_name or session.name, "tool_call", "stale",
                f"{message.tool}: {text} (agent {session.name})", step=message.step,
                attempt=message.attempt,
            )  # fmt: skip
            return
        self._host.apply(
            ToolCallRequested(
                run_id=message.run_id,
                step=message.step,
                attempt=message.attempt,
                agent=session.name,
                agent_tools=sorted(session.tools),
                call=message.call_id,
                tool=message.tool,
                args=message.args,
                idempotency_key=message.idempotency_key,
                principal=session.principal_name,
            )
        )

    def refuse(self, command: RefuseToolCall) -> None:
        """Answer an agent's call the engine refused; nothing reaches a host."""
        self._counters.tool_calls_refused += 1
        agent = self._registry.by_name.get(command.agent)
        if agent is not None:
            self._outlet.to_session(
                agent,
                ToolReply(
                    call_id=command.call, ok=False, error=command.code, message=command.message
                ),
            )

    def forward(self, command: ForwardToolCall) -> None:
        """Send a call the engine allowed to a host of its tool, or queue it for one."""
        agent = self._registry.by_name.get(command.agent)
        if agent is None:
            return
        self._counters.tool_calls += 1
        pending = PendingToolCall(
            call=self._next_call,
            agent=agent,
            agent_call=command.call,
            run_id=command.run_id,
            step=command.step,
            attempt=command.attempt,
            tool=command.tool,
            args=command.args,
            idempotency_key=command.idempotency_key,
        )
        self._next_call += 1
        running = self._registry.running_keys.get(pending.idempotency_key)
        if running is not None and pending.tool in running.tools:
            self._send_repeat(running, pending)
            return
        # With no host serving the tool yet, the call waits as a step waits for an
        # agent; the step's timeout bounds the wait.
        self.queues[command.tool].append(pending)
        self._pump_tool(command.tool)

    def _send_repeat(self, host: Session, pending: PendingToolCall) -> None:
        """Send a call to the host that is running it already: it answers with that run's
        reply when it finishes, so the call needs no room of its own."""
        host.attached.add(pending.call)
        self.calls[pending.call] = pending
        self._send(host, pending)

    def pump(self, host: Session) -> None:
        """Place queued calls on `host`, now that it may have room, for any tool it serves."""
        for tool in sorted(host.tools):
            self._pump_tool(tool)

    def _pump_tool(self, tool: str) -> None:
        queue = self.queues.get(tool)
        pool = self._registry.tools.get(tool)
        while queue and pool is not None:
            host = pool.pick()
            if host is None:
                return
            pending = queue.popleft()
            host.tool_calls.add(pending.call)
            self.calls[pending.call] = pending
            self._send(host, pending)

    def _send(self, host: Session, pending: PendingToolCall) -> None:
        self._outlet.to_session(
            host,
            ToolCall(
                call_id=pending.call,
                run_id=pending.run_id,
                step=pending.step,
                attempt=pending.attempt,
                tool=pending.tool,
                args=pending.args,
                idempotency_key=pending.idempotency_key,
                trace=self._outlet.trace(
                    pending.run_id, pending.step, pending.attempt, "tool", pending.agent_call
                ),
            ),
        )

    def reply(self, host: Session, message: ToolReply) -> None:
        """A host answers a call: the agent gets the answer, unless the host had no room."""
        call = message.call_id
        pending = self.calls.get(call)
        if pending is None or (call not in host.tool_calls and call not in host.attached):
            self._host.reject("stale_tool_reply", host.identity, str(call), host.principal_name)
            return
        del self.calls[call]
        if call in host.attached:
            # The call the host was running when it registered has finished (or finished
            # just before its repeat arrived, which the host then had to take in anew).
            host.attached.discard(call)
            host.carried = max(0, host.carried - 1)
            if self._registry.running_keys.get(pending.idempotency_key) is host:
                del self._registry.running_keys[pending.idempotency_key]
        else:
            host.tool_calls.discard(call)
        if message.error == "overloaded":
            self._defer(host, pending)
            return
        self._answer(
            pending,
            ok=message.ok,
            result=message.result,
            error=message.error,
            message=message.message,
        )
        # The host has room again for any tool it serves, not only this call's.
        self.pump(host)

    def _defer(self, host: Session, pending: PendingToolCall) -> None:
        """The host had no room: the call waits at the head of its queue (the step's timeout
        bounds the wait) and the host counts as full until it reports or answers again."""
        host.fill()
        self._counters.deferred += 1
        log.info(
            "tool.deferred",
            host=host.name,
            run_id=pending.run_id,
            step=pending.step,
            tool=pending.tool,
        )
        self.queues[pending.tool].appendleft(pending)
        self._pump_tool(pending.tool)

    def _answer(
        self,
        pending: PendingToolCall,
        *,
        ok: bool,
        result: Any = None,
        error: ErrorCode | None = None,
        message: str = "",
    ) -> None:
        """Give the agent its answer under its own call id, and journal the outcome."""
        self._outlet.to_session(
            pending.agent,
            ToolReply(
                call_id=pending.agent_call, ok=ok, result=result, error=error, message=message
            ),
        )
        self._host.apply(
            ToolCallCompleted(
                run_id=pending.run_id,
                step=pending.step,
                attempt=pending.attempt,
                call=pending.agent_call,
                tool=pending.tool,
                ok=ok,
                error=error,
                message=message,
            )
        )

    def take_up(self, host: Session, calls: Sequence[str]) -> None:
        """Note the calls a host says it is still running: repeats of them, waiting now or
        asked later, go to it and are answered when the first finishes."""
        keys = {key for key in calls if key}
        host.carry(len(calls))
        for key in keys:
            self._registry.running_keys[key] = host
        for tool in sorted(host.tools):
            queue = self.queues.get(tool)
            if not queue:
                continue
            repeats = [p for p in queue if p.idempotency_key in keys]
            for pending in repeats:
                queue.remove(pending)
                self._send_repeat(host, pending)

    def host_lost(self, session: Session) -> None:
        """The calls the host was serving are asked again if keyed, and fail if not."""
        for call in sorted(session.tool_calls | session.attached):
            pending = self.calls.pop(call, None)
            if pending is None:
                continue
            if pending.idempotency_key:
                # A keyed call is safe to ask again: the next host (or this one, back)
                # answers it from its ledger, or says its outcome is unknown.
                self.queues[pending.tool].appendleft(pending)
            else:
                text = f"tool host {session.name} was lost"
                self._answer(pending, ok=False, error="tool_unavailable", message=text)
        session.tool_calls.clear()
        session.attached.clear()
        if session.kind == "tool_host":
            self.pump(session)

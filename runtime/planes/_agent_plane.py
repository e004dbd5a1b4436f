"""The agent plane: actors register, take steps, call tools, and are lost.

It owns the sessions, the queues of steps waiting for an agent of their role,
and the tool calls in flight between agents and hosts. Whatever must be
journaled it hands to the supervisor as an event through `AgentHost`, and
whatever it sends waits in the supervisor's outbox for the batch's commit.
"""

from __future__ import annotations

import secrets
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
import zmq

from protocols import (
    PROTOCOL_VERSION,
    ActorMessage,
    Assign,
    Bye,
    Cancel,
    Codec,
    Error,
    ErrorCode,
    Heartbeat,
    Message,
    ProtocolError,
    Register,
    StepFailure,
    StepResult,
    TaskRef,
    ToolCall,
    ToolReply,
    Welcome,
    clip,
)
from runtime.engine._events import (
    Dispatch,
    ForwardToolCall,
    JournalEvent,
    RefuseToolCall,
    StepDeferred,
    StepDispatched,
    StepFailed,
    StepSucceeded,
    ToolCallCompleted,
    ToolCallRequested,
)
from runtime.engine._run import Run
from runtime.planes._refusals import REPLY_TEXT, RefusalHost
from runtime.planes._restarts import RestartBudget
from runtime.planes._sessions import PendingToolCall, Registry, Session, TaskKey
from runtime.security._authenticator import PrincipalBook
from runtime.security._principals import Principal
from runtime.workflow._definition import Step
from runtime.workflow._graph import Graph

log = structlog.get_logger("baton.runtime")


class AgentHost(RefusalHost, Protocol):
    """What the agent plane needs of the supervisor."""

    @property
    def runs(self) -> Mapping[str, Run]: ...

    def apply(self, event: JournalEvent) -> None:
        """Journal `event` and fold it into its run."""

    def monotonic(self) -> float: ...

    def queue_agent_frame(
        self, identity: bytes, payload: bytes, session: Session | None = None
    ) -> None:
        """Send after the batch's commit; with `session`, only if it is still live then."""


@dataclass(slots=True)
class AgentPlaneCounters:
    steps_dispatched: int = 0
    results: int = 0
    tool_calls: int = 0
    tool_calls_refused: int = 0
    deferred: int = 0
    """Steps and tool calls put back in their queue because the actor had no room."""
    adopted: int = 0
    """Tasks taken up from an agent that registered again while running them."""
    crash_loops: int = 0
    """Times a role went over its restart budget."""


class AgentPlane:
    """Sessions, placement of steps on agents, and routing of tool calls."""

    def __init__(
        self,
        host: AgentHost,
        graphs: Sequence[Graph],
        codec: Codec[ActorMessage],
        *,
        heartbeat: float,
        secure: bool,
        restart_budget: int = 0,
        restart_window: float = 60.0,
        trace: Callable[..., str] | None = None,
    ) -> None:
        self._host = host
        self._trace = trace or _untraced
        """Gives the traceparent an assignment or forwarded tool call carries, when the
        runtime traces (`runtime.observe._trace_ids.traceparent`)."""
        self._restarts = RestartBudget(restart_budget, restart_window)
        self._secure = secure
        self._codec = codec
        self._heartbeat = heartbeat
        self._role_tools: dict[str, set[str]] = {}
        for graph in graphs:
            for role in graph.roles.values():
                self._role_tools.setdefault(role.name, set()).update(role.tools)
        self._registry = Registry()
        self._queues: defaultdict[str, deque[Dispatch]] = defaultdict(deque)
        self._tool_queues: defaultdict[str, deque[PendingToolCall]] = defaultdict(deque)
        self._tool_calls: dict[int, PendingToolCall] = {}
        # Not 1: a tool host still answering the calls of a runtime that ran here before
        # must find none of those ids in use again.
        self._next_call = secrets.randbits(40) + 1
        self.counters = AgentPlaneCounters()

    def agents_by_role(self) -> dict[str, int]:
        return self._registry.count_by_role()

    def queued_steps(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def dispatch(self, command: Dispatch) -> None:
        """Queue a step for its role and place it if an agent has room; with the role
        crash-looping, the attempt fails at once and goes to its failure policy."""
        if self._restarts.looping(command.role, self._host.monotonic()):
            self._fail_unplaced(command)
            return
        self._queues[command.role].append(command)
        self._pump_role(command.role)

    def _fail_unplaced(self, command: Dispatch) -> None:
        budget = self._restarts
        self._host.apply(
            StepFailed(
                run_id=command.run_id,
                step=command.step,
                attempt=command.attempt,
                kind="agent_lost",
                message=f"role {command.role!r} is crash-looping: it lost more than "
                f"{budget.budget} instances within {budget.window:g}s",
            )
        )

    def refuse_tool_call(self, command: RefuseToolCall) -> None:
        """Answer an agent's call the engine refused; nothing reaches a host."""
        self.counters.tool_calls_refused += 1
        agent = self._registry.by_name.get(command.agent)
        if agent is not None:
            self._send_session(
                agent,
                ToolReply(
                    call_id=command.call, ok=False, error=command.code, message=command.message
                ),
            )

    def heartbeat(self, now: float) -> None:
        """Beat to every actor; lose those silent for three intervals."""
        beat = self._codec.encode(Heartbeat())
        for session in list(self._registry.by_identity.values()):
            if now - session.last_seen > 3 * self._heartbeat:
                self.lose(session, f"silent for {now - session.last_seen:.1f}s", died=True)
            else:
                self._host.queue_agent_frame(session.identity, beat, session)

    def unreachable(self, identity: bytes) -> None:
        session = self._registry.by_identity.get(identity)
        if session is not None:
            self.lose(session, "unreachable", died=True)

    def goodbyes(self) -> tuple[bytes, list[bytes]]:
        """The `Bye` frame and every actor to send it to, for shutting down."""
        return self._codec.encode(Bye(reason="runtime stopping")), list(self._registry.by_identity)

    def _pump_role(self, role: str) -> None:
        queue = self._queues.get(role)
        pool = self._registry.roles.get(role)
        if not queue or pool is None:
            return
        while queue:
            command = queue[0]
            run = self._host.runs.get(command.run_id)
            state = run.steps.get(command.step) if run is not None else None
            if (
                run is None
                or state is None
                or state.attempt != command.attempt
                or state.status != "queued"
            ):
                queue.popleft()
                continue
            session = pool.pick()
            if session is None:
                return
            queue.popleft()
            key = (command.run_id, command.step, command.attempt)
            session.in_flight.add(key)
            self._registry.holders[key] = session
            self.counters.steps_dispatched += 1
            self._send_session(
                session,
                Assign(
                    run_id=command.run_id,
                    step=command.step,
                    attempt=command.attempt,
                    inputs=command.inputs,
                    tools=list(command.tools),
                    timeout_ms=int(command.timeout * 1000),
                    flags=command.flags,
                    trace=self._trace(command.run_id, command.step, command.attempt),
                ),
            )
            self._host.apply(
                StepDispatched(
                    run_id=command.run_id,
                    step=command.step,
                    attempt=command.attempt,
                    agent=session.name,
                )
            )

    def withdraw(self, key: TaskKey, reason: str) -> None:
        session = self._registry.holders.pop(key, None)
        if session is None:
            return
        session.in_flight.discard(key)
        run_id, step, attempt = key
        self._send_session(
            session, Cancel(run_id=run_id, step=step, attempt=attempt, reason=reason)
        )
        self._pump_role(session.role)

    def forward_tool_call(self, command: ForwardToolCall) -> None:
        agent = self._registry.by_name.get(command.agent)
        if agent is None:
            return
        self.counters.tool_calls += 1
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
        self._tool_queues[command.tool].append(pending)
        self._pump_tool(command.tool)

    def _send_repeat(self, host: Session, pending: PendingToolCall) -> None:
        """Send a call to the host that is running it already: it answers with that run's
        reply when it finishes, so the call needs no room of its own."""
        host.attached.add(pending.call)
        self._tool_calls[pending.call] = pending
        self._send_tool_call(host, pending)

    def _pump_tool(self, tool: str) -> None:
        queue = self._tool_queues.get(tool)
        pool = self._registry.tools.get(tool)
        while queue and pool is not None:
            host = pool.pick()
            if host is None:
                return
            pending = queue.popleft()
            host.tool_calls.add(pending.call)
            self._tool_calls[pending.call] = pending
            self._send_tool_call(host, pending)

    def _send_tool_call(self, host: Session, pending: PendingToolCall) -> None:
        self._send_session(
            host,
            ToolCall(
                call_id=pending.call,
                run_id=pending.run_id,
                step=pending.step,
                attempt=pending.attempt,
                tool=pending.tool,
                args=pending.args,
                idempotency_key=pending.idempotency_key,
                trace=self._trace(
                    pending.run_id, pending.step, pending.attempt, "tool", pending.agent_call
                ),
            ),
        )

    def _tool_failed(self, pending: PendingToolCall, code: ErrorCode, message: str) -> None:
        self._answer_tool_call(pending, ok=False, error=code, message=message)

    def _answer_tool_call(
        self,
        pending: PendingToolCall,
        *,
        ok: bool,
        result: Any = None,
        error: ErrorCode | None = None,
        message: str = "",
    ) -> None:
        """Give the agent its answer under its own call id, and journal the outcome."""
        self._send_session(
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

    def lose(self, session: Session, reason: str, *, died: bool = False) -> None:
        """The actor is gone: its tasks have unknown outcomes, its tool calls fail.

        `died`: it went without saying bye, which counts against its role's restart budget.
        """
        self._registry.remove(session)
        log.warning(
            "agent.lost",
            agent=session.name,
            role=session.role,
            reason=reason,
            in_flight=len(session.in_flight),
        )
        for run_id, step, attempt in sorted(session.in_flight):
            self._host.apply(
                StepFailed(
                    run_id=run_id,
                    step=step,
                    attempt=attempt,
                    kind="agent_lost",
                    message=clip(f"agent {session.name} was lost ({reason})"),
                    agent=session.name,
                )
            )
        session.in_flight.clear()
        if died and session.kind == "agent":
            self._count_death(session.role)
        for call in sorted(session.tool_calls | session.attached):
            pending = self._tool_calls.pop(call, None)
            if pending is None:
                continue
            if pending.idempotency_key:
                # A keyed call is safe to ask again: the next host (or this one, back)
                # answers it from its ledger, or says its outcome is unknown.
                self._tool_queues[pending.tool].appendleft(pending)
            else:
                self._tool_failed(pending, "tool_unavailable", f"tool host {session.name} was lost")
        session.tool_calls.clear()
        session.attached.clear()
        for tool in sorted(session.tools) if session.kind == "tool_host" else ():
            self._pump_tool(tool)

    def _count_death(self, role: str) -> None:
        if not self._restarts.lost(role, self._host.monotonic()):
            return
        self.counters.crash_loops += 1
        waiting = list(self._queues.pop(role, ()))
        log.error(
            "role.crash_looping",
            role=role,
            lost=self._restarts.budget + 1,
            window=self._restarts.window,
            waiting_steps=len(waiting),
        )
        for command in waiting:
            run = self._host.runs.get(command.run_id)
            state = run.steps.get(command.step) if run is not None else None
            if state is not None and state.attempt == command.attempt and state.status == "queued":
                self._fail_unplaced(command)

    def _send_agent(self, identity: bytes, message: Message) -> None:
        """Answer whichever connection holds `identity` now: refusals of its frames."""
        self._host.queue_agent_frame(identity, self._codec.encode(message))

    def _send_session(self, session: Session, message: Message) -> None:
        """Send to `session` only: dropped if the session ends before the frame leaves, so
        that nothing meant for it reaches another key's connection on its routing id."""
        self._host.queue_agent_frame(session.identity, self._codec.encode(message), session)

    def disconnected(self, fd: int) -> None:
        """A connection of the plane closed: the session on it, if any, has ended."""
        session = self._registry.by_fd.get(fd)
        if session is not None:
            self.lose(session, "its connection closed", died=True)

    def on_frame(
        self,
        identity: bytes,
        principal: Principal | None,
        payload: bytes | memoryview,
        parts: int,
        frame: zmq.Frame | None = None,
    ) -> None:
        """Handle one frame from `identity`, sent under `principal`'s key (None: insecure);
        `frame` is the ZeroMQ frame it came in, which knows its connection."""
        who = "" if principal is None else principal.name
        # Refusals are answered at the pace `reject` keeps: a peer that sends bad frames
        # and reads nothing would otherwise have the runtime hold a reply for each.
        if parts != 1:
            if self._host.reject("malformed", identity, f"{parts} frames, expected 1", who):
                self._send_agent(
                    identity, Error(code="malformed", message="send one frame per message")
                )
            return
        try:
            message: ActorMessage = self._codec.decode(payload)
        except ProtocolError as exc:
            if self._host.reject(exc.reason, identity, exc.detail, who):
                code: ErrorCode = (
                    "oversize" if exc.reason == "oversize" else
                    "malformed" if exc.reason == "malformed" else "invalid_message"
                )  # fmt: skip
                self._send_agent(identity, Error(code=code, message=clip(str(exc), REPLY_TEXT)))
            return
        session = self._registry.by_identity.get(identity)
        if session is not None and session.key != (
            b"" if principal is None else principal.public_key
        ):
            # The routing id is the peer's choice: a session answers to its key alone. Another
            # key's connection on its routing id means the session's own connection is gone,
            # and nothing more of the session's may leave on that routing id.
            answer = self._host.reject("identity_mismatch", identity, session.name, who)
            self.lose(session, "another key's connection took its routing id", died=True)
            if answer:
                text = "this connection's key does not own the session"
                self._send_agent(identity, Error(code="unauthorized", message=text))
            return
        if isinstance(message, Register):
            self._register(identity, principal, message, session, _descriptor(frame))
            return
        if session is None:
            self._unregistered(identity, who, message)
            return
        session.last_seen = self._host.monotonic()
        match message:
            case Heartbeat():
                carried = session.carried
                session.reported(message.in_flight)
                if session.carried < carried:
                    self._pump_session(session)
            case StepResult() | StepFailure():
                if self._release(session, message):
                    self.counters.results += 1
                    self._host.apply(_outcome_event(session, message))
            case ToolCall():
                self._on_tool_call(session, message)
            case ToolReply():
                self._on_tool_reply(session, message)
            case Bye():
                self.lose(session, f"said bye: {message.reason}" if message.reason else "said bye")
            case Error(code="overloaded"):
                self._on_overloaded(session, message)
            case Error():
                log.warning("agent.error", agent=session.name, code=message.code, ref=message.ref)

    def _pump_session(self, session: Session) -> None:
        """Place queued work on `session`'s role or tools, now that it may have room."""
        if session.kind == "agent":
            self._pump_role(session.role)
            return
        for tool in sorted(session.tools):
            self._pump_tool(tool)

    def _on_overloaded(self, session: Session, message: Error) -> None:
        """An agent had no room for an assignment: back-pressure, not a failure. The
        attempt goes back to the queue, and the agent counts as full until it reports."""
        run_id, _, rest = message.ref.partition("/")
        step, _, attempt = rest.rpartition("/")
        key = (run_id, step, int(attempt)) if attempt.isdigit() else None
        if key is None or key not in session.in_flight:
            log.warning("agent.error", agent=session.name, code=message.code, ref=message.ref)
            return
        session.in_flight.discard(key)
        self._registry.holders.pop(key, None)
        session.fill()
        self.counters.deferred += 1
        log.info("step.deferred", agent=session.name, run_id=run_id, step=step, attempt=key[2])
        self._host.apply(
            StepDeferred(
                run_id=run_id,
                step=step,
                attempt=key[2],
                agent=session.name,
                message=clip(message.message),
            )
        )

    def _unregistered(self, identity: bytes, who: str, message: ActorMessage) -> None:
        """A message from a connection with no session: refused, and audited if about a run."""
        if isinstance(message, Bye | Error):
            return
        text = "register before anything else"
        about = message.run_id if isinstance(message, StepResult | StepFailure | ToolCall) else ""
        if self._host.reject("not_registered", identity, about, who):
            # One answer a second: a peer flooding before registering gets no flood back.
            self._send_agent(identity, Error(code="not_registered", message=text))
        if isinstance(message, StepResult | StepFailure | ToolCall):
            self._host.audit(
                message.run_id, who, _action(message), "not_registered", text,
                step=message.step, attempt=message.attempt,
            )  # fmt: skip

    def reload(self, book: PrincipalBook) -> None:
        """Principals changed: sessions whose key or role was withdrawn end; the rest go on."""
        for session in list(self._registry.by_identity.values()):
            if session.principal is None:
                continue
            principal = book.by_user_id(session.key.decode("ascii"))
            problem = (
                f"the key of principal {session.principal.name!r} was removed"
                if principal is None
                else self._authority_problem(principal, session.kind, session.role)
            )
            if problem is None:
                session.principal = principal
                continue
            log.warning("agent.revoked", agent=session.name, reason=problem)
            self._send_agent(session.identity, Error(code="unauthorized", message=problem))
            self.lose(session, problem)

    def _authority_problem(self, principal: Principal, kind: str, role: str) -> str | None:
        """Why `principal` may not act as an actor of `kind` and `role`, or None if it may."""
        if kind == "tool_host":
            if principal.may_serve_tools(role):
                return None
            return f"principal {principal.name!r} does not hold role 'tools:{role}'"
        if principal.holds(role):
            return None
        return f"principal {principal.name!r} does not hold role {role!r}"

    def _release(self, session: Session, message: StepResult | StepFailure) -> bool:
        """Take the task off the agent; False (refused, audited) if the agent does not hold it."""
        key = (message.run_id, message.step, message.attempt)
        if key not in session.in_flight:
            ref = f"{key[0]}/{key[1]}/{key[2]}"
            text = "this attempt is not assigned to you (cancelled, timed out or unknown)"
            self._host.reject("stale_result", session.identity, ref, session.principal_name)
            self._send_session(session, Error(code="stale", message=text, ref=ref))
            self._host.audit(
                message.run_id, session.principal_name or session.name, _action(message),
                "stale", f"{text} (agent {session.name})", step=message.step,
                attempt=message.attempt,
            )  # fmt: skip
            return False
        session.in_flight.discard(key)
        self._registry.holders.pop(key, None)
        self._pump_role(session.role)
        return True

    def _register(
        self,
        identity: bytes,
        principal: Principal | None,
        message: Register,
        existing: Session | None,
        fd: int = -1,
    ) -> None:
        refusal = self._registration_problem(message, principal)
        if refusal is None and principal is not None:
            holder = self._registry.by_key.get(principal.public_key)
            if holder is not None and holder is not existing:
                refusal = (
                    "session_exists",
                    f"principal {principal.name!r} already has a live session "
                    f"(as {holder.name!r}); one connection per key",
                )
        if refusal is not None:
            code, text = refusal
            who = "" if principal is None else principal.name
            if self._host.reject(code, identity, text, who):
                log.warning(
                    "agent.refused", name=message.name, role=message.role, code=code, principal=who
                )
                self._send_agent(identity, Error(code=code, message=clip(text, REPLY_TEXT)))
            return
        if existing is not None:
            self.lose(existing, "registered again", died=True)
        session = Session(
            identity,
            principal.name if principal is not None else self._registry.unique_name(message.name),
            message.role,
            message.kind,
            frozenset(message.tools),
            message.capacity,
            self._host.monotonic(),
            principal,
        )
        session.fd = fd
        self._registry.add(session, message.specs)
        specs = [self._registry.specs[t] for t in message.tools if t in self._registry.specs]
        self._send_session(
            session,
            Welcome(
                protocol=PROTOCOL_VERSION,
                session=session.name,
                heartbeat_ms=max(10, int(self._heartbeat * 1000)),
                tool_specs=specs if message.kind == "agent" else [],
            ),
        )
        log.info(
            "agent.registered",
            agent=session.name,
            role=session.role,
            kind=session.kind,
            capacity=session.capacity,
            principal=session.principal_name,
            running=len(message.tasks) + len(message.calls),
        )
        if session.kind == "agent":
            self._adopt(session, message.tasks)
        else:
            self._take_up_calls(session, message.calls)
        self._pump_session(session)

    def _adopt(self, session: Session, tasks: Sequence[TaskRef]) -> None:
        """Take up the tasks an agent says it is still running: an attempt waiting in the
        queue stays with it instead of being placed again; one no longer wanted is cancelled
        (it takes the agent's room until the agent reports it stopped)."""
        for ref in tasks:
            key = (ref.run_id, ref.step, ref.attempt)
            run = self._host.runs.get(ref.run_id)
            state = run.steps.get(ref.step) if run is not None else None
            node = run.graph.nodes.get(ref.step) if run is not None else None
            if (
                state is not None
                # Only a step of the agent's own role: the claim is the agent's word alone.
                and isinstance(node, Step)
                and node.role == session.role
                and state.attempt == ref.attempt
                and state.status == "queued"
                and key not in self._registry.holders
                and len(session.in_flight) < session.capacity
            ):
                session.in_flight.add(key)
                self._registry.holders[key] = session
                self.counters.adopted += 1
                self._host.apply(
                    StepDispatched(
                        run_id=ref.run_id, step=ref.step, attempt=ref.attempt, agent=session.name
                    )
                )
                continue
            session.carry(session.carried + 1)
            self._send_session(
                session,
                Cancel(
                    run_id=ref.run_id,
                    step=ref.step,
                    attempt=ref.attempt,
                    reason="the runtime no longer waits for this attempt",
                ),
            )

    def _take_up_calls(self, host: Session, calls: Sequence[str]) -> None:
        """Note the calls a host says it is still running: repeats of them, waiting now or
        asked later, go to it and are answered when the first finishes."""
        keys = {key for key in calls if key}
        host.carry(len(calls))
        for key in keys:
            self._registry.running_keys[key] = host
        for tool in sorted(host.tools):
            queue = self._tool_queues.get(tool)
            if not queue:
                continue
            repeats = [p for p in queue if p.idempotency_key in keys]
            for pending in repeats:
                queue.remove(pending)
                self._send_repeat(host, pending)

    def _registration_problem(
        self, message: Register, principal: Principal | None
    ) -> tuple[ErrorCode, str] | None:
        if message.protocol != PROTOCOL_VERSION:
            return (
                "incompatible_protocol",
                f"this runtime speaks protocol {PROTOCOL_VERSION}, not {message.protocol}",
            )
        if self._secure:
            if principal is None:
                return "unauthorized", "no principal: this runtime requires CURVE"
            problem = self._authority_problem(principal, message.kind, message.role)
            if problem is not None:
                return "role_refused", problem
        if message.kind == "tool_host":
            if not message.tools:
                return "invalid_message", "a tool host must serve at least one tool"
            unknown = sorted({s.name for s in message.specs} - set(message.tools))
            if unknown:
                return "invalid_message", f"spec for tool {unknown[0]!r} that is not served"
            return None
        granted = self._role_tools.get(message.role)
        if granted is None:
            roles = ", ".join(sorted(self._role_tools)) or "none"
            return (
                "role_refused",
                f"no loaded workflow has role {message.role!r} (roles: {roles})",
            )
        extra = sorted(set(message.tools) - granted)
        if extra:
            return (
                "tool_refused",
                f"role {message.role!r} is not granted tool {extra[0]!r} by any loaded workflow",
            )
        return None

    def _on_tool_call(self, session: Session, message: ToolCall) -> None:
        key = (message.run_id, message.step, message.attempt)
        if session.kind != "agent" or key not in session.in_flight:
            text = "tool calls are made on behalf of a task you hold"
            self._send_agent(
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

    def _on_tool_reply(self, host: Session, message: ToolReply) -> None:
        call = message.call_id
        pending = self._tool_calls.get(call)
        if pending is None or (call not in host.tool_calls and call not in host.attached):
            self._host.reject("stale_tool_reply", host.identity, str(call), host.principal_name)
            return
        del self._tool_calls[call]
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
            self._defer_tool_call(host, pending)
            return
        self._answer_tool_call(
            pending,
            ok=message.ok,
            result=message.result,
            error=message.error,
            message=message.message,
        )
        # The host has room again for any tool it serves, not only this call's.
        self._pump_session(host)

    def _defer_tool_call(self, host: Session, pending: PendingToolCall) -> None:
        """The host had no room: the call waits at the head of its queue (the step's timeout
        bounds the wait) and the host counts as full until it reports or answers again."""
        host.fill()
        self.counters.deferred += 1
        log.info(
            "tool.deferred",
            host=host.name,
            run_id=pending.run_id,
            step=pending.step,
            tool=pending.tool,
        )
        self._tool_queues[pending.tool].appendleft(pending)
        self._pump_tool(pending.tool)


def _action(message: StepResult | StepFailure | ToolCall) -> str:
    """The name a refused message's action goes by in a run's history."""
    if isinstance(message, StepResult):
        return "step_result"
    if isinstance(message, StepFailure):
        return "step_failure"
    return "tool_call"


def _outcome_event(
    session: Session, message: StepResult | StepFailure
) -> StepSucceeded | StepFailed:
    """The journaled event for what an agent reported about its task."""
    if isinstance(message, StepResult):
        return StepSucceeded(
            run_id=message.run_id,
            step=message.step,
            attempt=message.attempt,
            agent=session.name,
            outputs=message.outputs,
            rationale=message.rationale,
            confidence=message.confidence,
            caveats=message.caveats,
            principal=session.principal_name,
        )
    return StepFailed(
        run_id=message.run_id,
        step=message.step,
        attempt=message.attempt,
        kind=message.reason,
        message=message.message,
        agent=session.name,
        principal=session.principal_name,
    )


def _descriptor(frame: zmq.Frame | None) -> int:
    """The runtime's descriptor of the connection `frame` came in on, or -1."""
    if frame is None:
        return -1
    try:
        return int(frame.get(zmq.SRCFD))
    except zmq.ZMQError:
        return -1


def _untraced(*_: object) -> str:
    """The traceparent messages carry when the runtime does not trace: none."""
    return ""

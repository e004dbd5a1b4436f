"""The supervisor: a thin shell around the engine, owning both planes.

One loop owns everything (no lock, no task per message). Each turn it waits
for a message or the next timer, drains the sockets in a batch, turns
messages and timers into events, folds them into the runs, appends the
batch's events to the store in one call, and only then sends what the batch
caused: persist, then act.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog
import zmq

from protocols import (
    PROTOCOL_VERSION,
    ActorMessage,
    Assign,
    Bye,
    Cancel,
    Codec,
    ControlRequest,
    Error,
    ErrorCode,
    Heartbeat,
    Message,
    ProtocolError,
    Register,
    StepFailure,
    StepResult,
    ToolCall,
    ToolReply,
    Welcome,
    runtime_side_agent_codec,
    runtime_side_control_codec,
)
from runtime import _engine as engine
from runtime._config import RuntimeConfig
from runtime._control_plane import ControlPlane, WaitKey
from runtime._events import (
    CancelTask,
    CancelTimer,
    Command,
    Dispatch,
    ForwardToolCall,
    JournalEvent,
    RefuseToolCall,
    RunEnded,
    RunStarted,
    StartTimer,
    StepDispatched,
    StepFailed,
    StepSucceeded,
    TimerFired,
    ToolCallCompleted,
    ToolCallRequested,
)
from runtime._graph import Graph
from runtime._readiness import Readiness
from runtime._run import Run
from runtime._sessions import PendingToolCall, Registry, Session, TaskKey
from runtime._store import JournalRecord, Store
from runtime._timers import Timers

log = structlog.get_logger("baton.runtime")

TimerKey = tuple[Hashable, ...]
Outgoing = tuple[zmq.Socket[bytes], bytes, bytes]


@dataclass(frozen=True, slots=True)
class SupervisorStatistics:
    """Counters since start, and current gauges."""

    runs_started: int
    runs_ended: Mapping[str, int]
    active_runs: int
    steps_dispatched: int
    results: int
    tool_calls: int
    tool_calls_refused: int
    rejected_frames: Mapping[str, int]
    agents: Mapping[str, int]
    queued_steps: int
    batches: int


@dataclass(slots=True)
class _Counters:
    runs_started: int = 0
    runs_ended: dict[str, int] = field(default_factory=dict)
    steps_dispatched: int = 0
    results: int = 0
    tool_calls: int = 0
    tool_calls_refused: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    batches: int = 0


class Supervisor:
    """Runs the loaded workflows for connected agents. Start with `serve()`."""

    def __init__(
        self,
        graphs: Sequence[Graph],
        store: Store,
        config: RuntimeConfig,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.store = store
        self.graphs = {g.name: g for g in graphs}
        self._clock = clock
        self._monotonic = monotonic
        self._role_tools: dict[str, set[str]] = {}
        for graph in graphs:
            for role in graph.roles.values():
                self._role_tools.setdefault(role.name, set()).update(role.tools)
        self.runs: dict[str, Run] = {}
        self._active_runs = 0
        self._journal_seq: dict[str, int] = {}
        self._batch: list[JournalRecord] = []
        self._outbox: list[Outgoing] = []
        self._registry = Registry()
        self._queues: dict[str, deque[Dispatch]] = {}
        self._tool_queues: dict[str, deque[PendingToolCall]] = {}
        self._tool_calls: dict[int, PendingToolCall] = {}
        self._next_call = 1
        self._timers: Timers[TimerKey] = Timers()
        self._unreachable: list[bytes] = []
        self._counters = _Counters()
        self._agent_codec = runtime_side_agent_codec(config.max_frame)
        self._control_codec: Codec[ControlRequest] = runtime_side_control_codec(config.max_frame)
        self._control = ControlPlane(
            self,
            self.graphs,
            self._control_codec,
            max_active_runs=config.max_active_runs,
        )
        self._stop = anyio.Event()
        self._readiness: Readiness | None = None
        self._flushing = False
        self._sleeps_until: float | None = None
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self.bound_agents = ""
        self.bound_control = ""

    # -- life cycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end after its current turn."""
        self._stop.set()
        if self._readiness is not None:
            self._readiness.wake()

    def statistics(self) -> SupervisorStatistics:
        c = self._counters
        return SupervisorStatistics(
            runs_started=c.runs_started,
            runs_ended=dict(c.runs_ended),
            active_runs=self._active_runs,
            steps_dispatched=c.steps_dispatched,
            results=c.results,
            tool_calls=c.tool_calls,
            tool_calls_refused=c.tool_calls_refused,
            rejected_frames=dict(c.rejected),
            agents=self._registry.count_by_role(),
            queued_steps=sum(len(q) for q in self._queues.values()),
            batches=c.batches,
        )

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind both planes and run until `stop()`; `task_status` is set once bound."""
        if self._context is None:
            self.bind()
        assert self._context is not None
        ctx = self._context
        agents = self._agents_sync
        control = self._control_sync
        readiness = Readiness([agents, control], self._on_readable)
        self._timers.schedule(("heartbeat",), self._monotonic() + self.config.heartbeat)
        log.info(
            "runtime.started",
            agents=self.bound_agents,
            control=self.bound_control,
            store=self.store.description,
            workflows=sorted(self.graphs),
        )
        task_status.started()
        self._readiness = readiness
        try:
            await self._loop(readiness, agents, control)
        finally:
            readiness.close()
            self._say_goodbye(agents)
            agents.close(linger=0)
            control.close(linger=0)
            ctx.term()
            self._context = None
            log.info("runtime.stopped", **_flat(self.statistics()))

    def bind(self) -> None:
        """Bind both planes now, so that a taken port is reported before serving starts."""
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            agents = self._bind(ctx, self.config.agents)
            control = self._bind(ctx, self.config.control)
        except zmq.ZMQError:
            ctx.destroy(linger=0)
            raise
        self.bound_agents = agents.getsockopt_string(zmq.LAST_ENDPOINT)
        self.bound_control = control.getsockopt_string(zmq.LAST_ENDPOINT)
        self._agents_sync = agents
        self._control_sync = control
        self._context = ctx

    def _bind(self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str) -> zmq.Socket[bytes]:
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.SNDHWM, self.config.queue_limit)
        sock.setsockopt(zmq.RCVHWM, self.config.queue_limit)
        sock.setsockopt(zmq.MAXMSGSIZE, self.config.max_frame + 1024)
        if endpoint.startswith("tcp://[") or endpoint.startswith("tcp://::"):
            sock.setsockopt(zmq.IPV6, 1)
        sock.bind(endpoint)
        return sock

    def _say_goodbye(self, agents: zmq.Socket[bytes]) -> None:
        payload = self._agent_codec.encode(Bye(reason="runtime stopping"))
        for identity in list(self._registry.by_identity):
            try:
                agents.send_multipart([identity, payload], flags=zmq.NOBLOCK)
            except zmq.ZMQError:
                continue

    async def _loop(
        self, readiness: Readiness, agents: zmq.Socket[bytes], control: zmq.Socket[bytes]
    ) -> None:
        while not self._stop.is_set():
            deadline = self._timers.next_deadline()
            if self._unreachable:
                timeout = 0.0
            elif deadline is None:
                timeout = 1.0
            else:
                timeout = max(0.0, deadline - self._monotonic())
            self._sleeps_until = deadline
            await readiness.wait(timeout)
            self._turn()
            self._flushing = True
            try:
                await self._flush()
            finally:
                self._flushing = False

    def _on_readable(self) -> None:
        """A socket has messages: with a store that appends at once, handle them right here.

        Running the turn inside the event loop's reader callback saves the
        wake-up of the loop task, a good part of a step's latency. With a
        store that must be awaited, or while a flush is awaited, the loop
        task takes the turn instead, so a batch's sends still wait for its commit.
        """
        readiness = self._readiness
        if readiness is None:
            return
        if self._flushing or self._stop.is_set() or not self._turn_now():
            readiness.wake()
            return
        # The loop task sleeps until the deadline it saw; wake it if one came sooner.
        deadline = self._timers.next_deadline()
        sooner = deadline is not None and (
            self._sleeps_until is None or deadline < self._sleeps_until
        )
        if sooner or self._unreachable:
            readiness.wake()

    def _turn_now(self) -> bool:
        """Take turns while messages keep coming; False to leave the rest to the loop task."""
        readiness = self._readiness
        assert readiness is not None
        for _ in range(4):
            self._turn()
            if self._batch:
                if not self.store.append_nowait(self._batch):
                    return False
                self._batch = []
                self._counters.batches += 1
            self._send_outbox()
            if not readiness.pending():
                return True
        # Still busy after a few turns: let timers and other tasks run first.
        return False

    def _turn(self) -> None:
        max_batch = self.config.max_batch
        self._drain(self._agents_sync, self._on_agent_frames, max_batch)
        self._drain(self._control_sync, self._control.on_frames, max_batch)
        self._fire_timers()
        self._handle_unreachable()

    def _drain(
        self,
        sock: zmq.Socket[bytes],
        handler: Callable[[list[bytes]], None],
        limit: int,
    ) -> None:
        for _ in range(limit):
            try:
                frames = sock.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            handler(frames)

    async def _flush(self) -> None:
        """Make the batch's events durable, then send what they caused."""
        if self._batch:
            batch = self._batch
            self._batch = []
            await self.store.append(batch)
            self._counters.batches += 1
        self._send_outbox()

    def _send_outbox(self) -> None:
        if not self._outbox:
            return
        outbox = self._outbox
        self._outbox = []
        for sock, identity, payload in outbox:
            try:
                sock.send_multipart([identity, payload], flags=zmq.NOBLOCK)
            except zmq.Again:
                self.reject("send_queue_full", identity)
            except zmq.ZMQError as exc:
                if exc.errno == zmq.EHOSTUNREACH:
                    if sock is self._agents_sync:
                        self._unreachable.append(identity)
                    continue
                raise

    # -- what the control plane asks of the supervisor ---------------------------------------

    @property
    def active_runs(self) -> int:
        return self._active_runs

    def start_run(self, graph: Graph, inputs: dict[str, Any]) -> str:
        """Journal a new run of `graph` and carry out its first commands; its id."""
        now = self._clock()
        run_id = f"{int(now * 1000):x}-{secrets.token_hex(5)}"
        event = RunStarted(
            run_id=run_id,
            workflow=graph.name,
            version=graph.workflow.version,
            fingerprint=graph.fingerprint,
            inputs=inputs,
        )
        self._journal(event, now)
        run, commands = engine.start(graph, event, now)
        self.runs[run_id] = run
        self._active_runs += 1
        self._counters.runs_started += 1
        self._execute(run, commands)
        return run_id

    def send_control(self, identity: bytes, message: Message) -> None:
        self._outbox.append((self._control_sync, identity, self._control_codec.encode(message)))

    def reject(self, reason: str, identity: bytes, detail: str = "") -> None:
        """Count and log a refused frame."""
        rejected = self._counters.rejected
        rejected[reason] = rejected.get(reason, 0) + 1
        log.warning("frame.rejected", reason=reason, peer=identity.hex(), detail=detail[:200])

    def start_wait(self, key: WaitKey, seconds: float) -> None:
        self._timers.schedule(key, self._monotonic() + seconds)

    def cancel_wait(self, key: WaitKey) -> None:
        self._timers.cancel(key)

    # -- events and commands -----------------------------------------------------------------

    def _journal(self, event: JournalEvent, now: float) -> None:
        seq = self._journal_seq.get(event.run_id, 0) + 1
        self._journal_seq[event.run_id] = seq
        self._batch.append(JournalRecord(event.run_id, seq, now, event))

    def _apply(self, event: JournalEvent) -> None:
        run = self.runs.get(event.run_id)
        if run is None:
            return
        now = self._clock()
        self._journal(event, now)
        self._execute(run, engine.apply(run, event, now))

    def _execute(self, run: Run, commands: list[Command]) -> None:
        for command in commands:
            match command:
                case Dispatch():
                    queue = self._queues.get(command.role)
                    if queue is None:
                        queue = self._queues[command.role] = deque()
                    queue.append(command)
                    self._pump_role(command.role)
                case StartTimer():
                    key = ("step", command.run_id, command.purpose, command.step, command.attempt)
                    self._timers.schedule(key, self._monotonic() + command.delay)
                case CancelTimer():
                    key = ("step", command.run_id, command.purpose, command.step, command.attempt)
                    self._timers.cancel(key)
                case CancelTask():
                    self._withdraw((command.run_id, command.step, command.attempt), command.reason)
                case ForwardToolCall():
                    self._forward_tool_call(command)
                case RefuseToolCall():
                    self._counters.tool_calls_refused += 1
                    agent = self._registry.by_name.get(command.agent)
                    if agent is not None:
                        self._send_agent(
                            agent.identity,
                            ToolReply(
                                call_id=command.call,
                                ok=False,
                                error=command.code,
                                message=command.message,
                            ),
                        )
                case RunEnded():
                    self._run_ended(run, command)

    def _pump_role(self, role: str) -> None:
        queue = self._queues.get(role)
        pool = self._registry.roles.get(role)
        if not queue or pool is None:
            return
        while queue:
            command = queue[0]
            run = self.runs.get(command.run_id)
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
            self._counters.steps_dispatched += 1
            self._send_agent(
                session.identity,
                Assign(
                    run_id=command.run_id,
                    step=command.step,
                    attempt=command.attempt,
                    inputs=command.inputs,
                    tools=list(command.tools),
                    timeout_ms=int(command.timeout * 1000),
                    flags=command.flags,
                ),
            )
            self._apply(
                StepDispatched(
                    run_id=command.run_id,
                    step=command.step,
                    attempt=command.attempt,
                    agent=session.name,
                )
            )

    def _withdraw(self, key: TaskKey, reason: str) -> None:
        session = self._registry.holders.pop(key, None)
        if session is None:
            return
        session.in_flight.discard(key)
        run_id, step, attempt = key
        self._send_agent(
            session.identity, Cancel(run_id=run_id, step=step, attempt=attempt, reason=reason)
        )
        self._pump_role(session.role)

    def _forward_tool_call(self, command: ForwardToolCall) -> None:
        agent = self._registry.by_name.get(command.agent)
        if agent is None:
            return
        self._counters.tool_calls += 1
        pending = PendingToolCall(
            call=self._next_call,
            agent=agent.identity,
            agent_call=command.call,
            run_id=command.run_id,
            step=command.step,
            attempt=command.attempt,
            tool=command.tool,
            args=command.args,
            idempotency_key=command.idempotency_key,
        )
        self._next_call += 1
        # With no host serving the tool yet, the call waits as a step waits for an
        # agent; the step's timeout bounds the wait.
        queue = self._tool_queues.get(command.tool)
        if queue is None:
            queue = self._tool_queues[command.tool] = deque()
        queue.append(pending)
        self._pump_tool(command.tool)

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
            self._send_agent(
                host.identity,
                ToolCall(
                    call_id=pending.call,
                    run_id=pending.run_id,
                    step=pending.step,
                    attempt=pending.attempt,
                    tool=pending.tool,
                    args=pending.args,
                    idempotency_key=pending.idempotency_key,
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
        self._send_agent(
            pending.agent,
            ToolReply(
                call_id=pending.agent_call, ok=ok, result=result, error=error, message=message
            ),
        )
        self._apply(
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

    def _run_ended(self, run: Run, command: RunEnded) -> None:
        self._active_runs -= 1
        ended = self._counters.runs_ended
        ended[command.status] = ended.get(command.status, 0) + 1
        log.info(
            "run.ended",
            run_id=run.run_id,
            workflow=run.workflow,
            status=command.status,
            reason=command.reason,
        )
        self._control.run_ended(run)

    # -- timers -----------------------------------------------------------------------------

    def _fire_timers(self) -> None:
        now = self._monotonic()
        for key in self._timers.pop_due(now):
            match key:
                case ("step", str(run_id), "timeout" | "retry" as purpose, str(step), int(attempt)):
                    self._apply(
                        TimerFired(run_id=run_id, purpose=purpose, step=step, attempt=attempt)
                    )
                case ("wait", bytes(identity), int(request), str(run_id)):
                    self._control.end_wait(identity, request, run_id)
                case ("heartbeat",):
                    self._heartbeat(now)

    def _heartbeat(self, now: float) -> None:
        interval = self.config.heartbeat
        self._timers.schedule(("heartbeat",), now + interval)
        beat = self._agent_codec.encode(Heartbeat())
        for session in list(self._registry.by_identity.values()):
            if now - session.last_seen > 3 * interval:
                self._lose(session, f"silent for {now - session.last_seen:.1f}s")
            else:
                self._outbox.append((self._agents_sync, session.identity, beat))

    def _handle_unreachable(self) -> None:
        while self._unreachable:
            identity = self._unreachable.pop()
            session = self._registry.by_identity.get(identity)
            if session is not None:
                self._lose(session, "unreachable")

    def _lose(self, session: Session, reason: str) -> None:
        """The actor is gone: its tasks have unknown outcomes, its tool calls fail."""
        self._registry.remove(session)
        log.warning(
            "agent.lost",
            agent=session.name,
            role=session.role,
            reason=reason,
            in_flight=len(session.in_flight),
        )
        for run_id, step, attempt in sorted(session.in_flight):
            self._apply(
                StepFailed(
                    run_id=run_id,
                    step=step,
                    attempt=attempt,
                    kind="agent_lost",
                    message=f"agent {session.name} was lost ({reason})",
                    agent=session.name,
                )
            )
        session.in_flight.clear()
        for call in sorted(session.tool_calls):
            pending = self._tool_calls.pop(call, None)
            if pending is not None:
                self._tool_failed(pending, "tool_unavailable", f"tool host {session.name} was lost")
        for tool in session.tools if session.kind == "tool_host" else ():
            self._pump_tool(tool)

    # -- the agent plane --------------------------------------------------------------------

    def _send_agent(self, identity: bytes, message: Message) -> None:
        self._outbox.append((self._agents_sync, identity, self._agent_codec.encode(message)))

    def _on_agent_frames(self, frames: list[bytes]) -> None:
        if len(frames) != 2:
            identity = frames[0] if frames else b""
            self.reject("malformed", identity, f"{len(frames) - 1} frames, expected 1")
            self._send_agent(
                identity, Error(code="malformed", message="send one frame per message")
            )
            return
        identity, payload = frames
        try:
            message: ActorMessage = self._agent_codec.decode(payload)
        except ProtocolError as exc:
            self.reject(exc.reason, identity, exc.detail)
            code: ErrorCode = (
                "oversize" if exc.reason == "oversize" else
                "malformed" if exc.reason == "malformed" else "invalid_message"
            )  # fmt: skip
            self._send_agent(identity, Error(code=code, message=str(exc)))
            return
        session = self._registry.by_identity.get(identity)
        if isinstance(message, Register):
            self._register(identity, message, session)
            return
        if session is None:
            if not isinstance(message, Bye | Error):
                self._send_agent(
                    identity, Error(code="not_registered", message="register before anything else")
                )
            return
        session.last_seen = self._monotonic()
        match message:
            case Heartbeat():
                pass
            case StepResult() | StepFailure():
                if self._release(session, (message.run_id, message.step, message.attempt)):
                    self._counters.results += 1
                    self._apply(_outcome_event(session.name, message))
            case ToolCall():
                self._on_tool_call(session, message)
            case ToolReply():
                self._on_tool_reply(session, message)
            case Bye():
                self._lose(session, f"said bye: {message.reason}" if message.reason else "said bye")
            case Error():
                log.warning("agent.error", agent=session.name, code=message.code, ref=message.ref)

    def _release(self, session: Session, key: TaskKey) -> bool:
        """Take the task off the agent; False (and a refusal) if the agent does not hold it."""
        if key not in session.in_flight:
            self.reject("stale_result", session.identity, f"{key[0]}/{key[1]}/{key[2]}")
            self._send_agent(
                session.identity,
                Error(
                    code="stale",
                    message="this attempt is not assigned to you (cancelled, timed out or unknown)",
                    ref=f"{key[0]}/{key[1]}/{key[2]}",
                ),
            )
            return False
        session.in_flight.discard(key)
        self._registry.holders.pop(key, None)
        self._pump_role(session.role)
        return True

    def _register(self, identity: bytes, message: Register, existing: Session | None) -> None:
        refusal = self._registration_problem(message)
        if refusal is not None:
            code, text = refusal
            self.reject(code, identity, text)
            log.warning("agent.refused", name=message.name, role=message.role, code=code)
            self._send_agent(identity, Error(code=code, message=text))
            return
        if existing is not None:
            self._lose(existing, "registered again")
        session = Session(
            identity,
            self._registry.unique_name(message.name),
            message.role,
            message.kind,
            frozenset(message.tools),
            message.capacity,
            self._monotonic(),
        )
        self._registry.add(session, message.specs)
        specs = [self._registry.specs[t] for t in message.tools if t in self._registry.specs]
        self._send_agent(
            identity,
            Welcome(
                protocol=PROTOCOL_VERSION,
                session=session.name,
                heartbeat_ms=max(10, int(self.config.heartbeat * 1000)),
                tool_specs=specs if message.kind == "agent" else [],
            ),
        )
        log.info(
            "agent.registered",
            agent=session.name,
            role=session.role,
            kind=session.kind,
            capacity=session.capacity,
        )
        if session.kind == "agent":
            self._pump_role(session.role)
        else:
            for tool in session.tools:
                self._pump_tool(tool)

    def _registration_problem(self, message: Register) -> tuple[ErrorCode, str] | None:
        if message.protocol != PROTOCOL_VERSION:
            return (
                "incompatible_protocol",
                f"this runtime speaks protocol {PROTOCOL_VERSION}, not {message.protocol}",
            )
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
            self._send_agent(
                session.identity,
                ToolReply(
                    call_id=message.call_id,
                    ok=False,
                    error="stale",
                    message="tool calls are made on behalf of a task you hold",
                ),
            )
            return
        self._apply(
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
            )
        )

    def _on_tool_reply(self, host: Session, message: ToolReply) -> None:
        pending = self._tool_calls.get(message.call_id)
        if pending is None or message.call_id not in host.tool_calls:
            self.reject("stale_tool_reply", host.identity, str(message.call_id))
            return
        del self._tool_calls[message.call_id]
        host.tool_calls.discard(message.call_id)
        self._answer_tool_call(
            pending,
            ok=message.ok,
            result=message.result,
            error=message.error,
            message=message.message,
        )
        self._pump_tool(pending.tool)


def _outcome_event(agent: str, message: StepResult | StepFailure) -> StepSucceeded | StepFailed:
    """The journaled event for what an agent reported about its task."""
    if isinstance(message, StepResult):
        return StepSucceeded(
            run_id=message.run_id,
            step=message.step,
            attempt=message.attempt,
            agent=agent,
            outputs=message.outputs,
            rationale=message.rationale,
            confidence=message.confidence,
            caveats=message.caveats,
        )
    return StepFailed(
        run_id=message.run_id,
        step=message.step,
        attempt=message.attempt,
        kind=message.reason,
        message=message.message,
        agent=agent,
    )


def _flat(stats: SupervisorStatistics) -> dict[str, Any]:
    return {
        "runs_started": stats.runs_started,
        "runs_ended": dict(stats.runs_ended),
        "steps_dispatched": stats.steps_dispatched,
        "rejected_frames": dict(stats.rejected_frames),
    }

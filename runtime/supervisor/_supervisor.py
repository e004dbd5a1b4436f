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
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog
import zmq

from actors import KillPoints
from protocols import (
    TERMINAL_STATUSES,
    Codec,
    ControlError,
    ControlRequest,
    Error,
    ErrorCode,
    Message,
    runtime_side_agent_codec,
    runtime_side_control_codec,
)
from runtime import engine
from runtime.engine._events import (
    CancelTask,
    CancelTimer,
    ClockJumped,
    Command,
    Dispatch,
    ForwardToolCall,
    JournalEvent,
    RefuseToolCall,
    RequestRefused,
    RunCancelled,
    RunEnded,
    RunRecovered,
    RunResumed,
    RunStarted,
    StartTimer,
    StepDispatched,
    StepSucceeded,
    TimerFired,
)
from runtime.engine._run import Run
from runtime.errors import BatonError, StoreError
from runtime.observe._observers import Gauges, Metrics, Observers, Tracer
from runtime.observe._run_log import RunLog, ending_level
from runtime.planes._agent_plane import AgentPlane
from runtime.planes._control_plane import ControlPlane, WaitKey
from runtime.planes._gate import Gate
from runtime.planes._rate import RateLimiter
from runtime.planes._readiness import Readiness
from runtime.planes._refusals import CONNECTION_CLOSED, HANDSHAKE_FAILURES, Refusals
from runtime.planes._sessions import Session
from runtime.security._authenticator import ZAP_DOMAIN, Authenticator, PrincipalBook
from runtime.security._principals import Principals
from runtime.store import ClockReading, JournalRecord, Store
from runtime.store._held import HeldRun
from runtime.supervisor._clock import TOLERANCE, boot_id, clock_skew
from runtime.supervisor._config import RuntimeConfig, Security
from runtime.supervisor._recovery import Recovered, past_record, recovered_runs
from runtime.supervisor._timers import Timers
from runtime.workflow._catalog import Catalog
from runtime.workflow._graph import Graph

log = structlog.get_logger("baton.runtime")

_SEND_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_SEND_LAST = int(zmq.NOBLOCK)

TimerKey = tuple[Hashable, ...]
Outgoing = tuple[zmq.Socket[bytes], bytes, bytes, Session | None]
"""A frame to send: the socket, the routing id, the payload, and the session it is for (None:
for whichever connection holds the routing id)."""

MAX_AUDITED_REFUSALS = 100
"""Refusals recorded in one run's history; beyond this they are only counted and logged,
so that a peer cannot grow a run's record without bound."""


class AuthenticatorDied(RuntimeError):
    """The ZAP handler stopped: serving on would admit unknown keys at the handshake."""


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
    """Frames refused, by reason (including handshakes refused and rate-limited frames)."""
    agents: Mapping[str, int]
    queued_steps: int
    batches: int
    stuck_runs: int
    """Runs waiting for an operator to resume or cancel them."""
    crash_loops: int
    """Times a role lost more instances than its restart budget allows."""


@dataclass(slots=True)
class _Counters:
    runs_started: int = 0
    runs_ended: dict[str, int] = field(default_factory=dict)
    batches: int = 0


class Supervisor:
    """Runs the loaded workflows for connected agents. Start with `serve()`."""

    _long_read: tuple[float, float] | None = None
    """While the agent plane reads a message of many parts: when it began, and when the
    agents are next beaten to."""

    def __init__(
        self,
        graphs: Sequence[Graph],
        store: Store,
        config: RuntimeConfig,
        *,
        security: Security | None,
        previous: Sequence[Graph] = (),
        kill_points: KillPoints | None = None,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        boot: str | None = None,
    ) -> None:
        """`security=None` runs without CURVE: for loopback development only.

        New runs start on `graphs`; `previous` are earlier versions, loaded so that
        runs which started on them finish on them (`CatalogError` if they clash).
        `kill_points` names places where the process kills itself, to rehearse crashes.
        `boot` names the boot `monotonic` counts from (by default the system's boot id):
        readings of it taken in another boot are not compared with it.
        """
        self.config = config
        self._kill_points = kill_points or KillPoints()
        self._metrics = metrics
        self._observers = Observers([RunLog(log), *(o for o in (metrics, tracer) if o is not None)])
        self.catalog = Catalog(graphs, previous)
        self.security = security
        self._book = None if security is None else PrincipalBook(security.principals)
        self._authenticator: Authenticator | None = None
        self.store = store
        self.graphs = self.catalog.current
        self._clock = clock
        self._monotonic = monotonic
        self._boot = boot_id() if boot is None else boot
        self._reading: ClockReading | None = None
        """The clock reading the journal's latest events were taken on."""
        self._reading_due: ClockReading | None = None
        """A new reading, to be committed with the next batch."""
        self.runs: dict[str, Run] = {}
        self.held: dict[str, HeldRun] = {}
        """Runs whose journals cannot be folded: kept, shown as stuck, and cancellable."""
        self._active_runs = 0
        self._journal_seq: dict[str, int] = {}
        self._batch: list[JournalRecord] = []
        self._outbox: list[Outgoing] = []
        self._timers: Timers[TimerKey] = Timers()
        self._unreachable: list[bytes] = []
        self._counters = _Counters()
        self._refusals = Refusals(monotonic)
        secure = security is not None
        self._agent_codec = runtime_side_agent_codec(config.max_frame)
        self._agents = AgentPlane(
            self,
            self.catalog.graphs(),
            self._agent_codec,
            heartbeat=config.heartbeat,
            secure=secure,
            restart_budget=config.restart_budget,
            restart_window=config.restart_window,
            trace=None if tracer is None else tracer.traceparent,
        )
        self._control_codec: Codec[ControlRequest] = runtime_side_control_codec(config.max_frame)
        self._control = ControlPlane(
            self,
            self.graphs,
            self._control_codec,
            max_active_runs=config.max_active_runs,
            secure=secure,
            connected_roles=self._agents.agents_by_role,
        )
        self._limiters = [
            RateLimiter(config.rate_limit, config.rate_burst, monotonic) for _ in range(2)
        ]
        self._agent_gate = Gate(
            "agents",
            self._book,
            self._limiters[0],
            self.reject,
            self._refusals.count,
            self._agents_limited,
        )
        self._control_gate = Gate(
            "control", self._book, self._limiters[1], self.reject, self._refusals.count,
            self._control_limited,
        )  # fmt: skip
        self._monitors: list[zmq.Socket[bytes]] = []
        self._agent_monitor: zmq.Socket[bytes] | None = None
        """Reports the agent plane's closed connections, which end their sessions at once."""
        self._stopping = False
        self._fatal: BatonError | AuthenticatorDied | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        """Side tasks of the loop (reads of journals); cancelled when it ends."""
        self._readiness: Readiness | None = None
        self._committing = False
        """A batch is being made durable; the next one gathers meanwhile."""
        self._sleeps_until: float | None = None
        self._context: zmq.Context[zmq.Socket[bytes]] | None = None
        self.bound_agents = self.bound_control = ""

    # -- life cycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to end after its current turn."""
        self._stopping = True
        if self._readiness is not None:
            self._readiness.wake()

    def statistics(self) -> SupervisorStatistics:
        c = self._counters
        plane = self._agents.counters
        return SupervisorStatistics(
            runs_started=c.runs_started,
            runs_ended=dict(c.runs_ended),
            active_runs=self._active_runs,
            steps_dispatched=plane.steps_dispatched,
            results=plane.results,
            tool_calls=plane.tool_calls,
            tool_calls_refused=plane.tool_calls_refused,
            rejected_frames=self._refusals.snapshot(),
            agents=self._agents.agents_by_role(),
            queued_steps=self._agents.queued_steps(),
            batches=c.batches,
            stuck_runs=sum(1 for r in self.runs.values() if r.status == "stuck")
            + sum(1 for h in self.held.values() if h.status == "stuck"),
            crash_loops=plane.crash_loops,
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
        readiness = Readiness([agents, control, *self._monitors], self._on_readable)
        self._timers.schedule(("heartbeat",), self._monotonic() + self.config.heartbeat)
        log.info(
            "runtime.started",
            agents=self.bound_agents,
            control=self.bound_control,
            store=self.store.description,
            workflows=sorted(self.graphs),
            previous_versions=len(self.catalog) - len(self.graphs),
            secure=self._book is not None,
            principals=0 if self._book is None else len(self._book),
        )
        if self._book is None:
            log.warning(
                "runtime.insecure",
                message="both planes run without CURVE: any local process can connect "
                "and act as any agent or operator; use this for development only",
            )
        try:
            await self._recover()
            task_status.started()
            self._readiness = readiness
            async with anyio.create_task_group() as tasks:
                self._tasks = tasks
                try:
                    await self._loop(readiness, agents, control)
                finally:
                    tasks.cancel_scope.cancel()
                    self._tasks = None
        finally:
            readiness.close()
            self._say_goodbye(agents)
            for monitor in self._monitors:
                monitor.close(linger=0)
            agents.close(linger=0)
            control.close(linger=0)
            if self._authenticator is not None:
                self._authenticator.stop()
            ctx.term()
            self._context = None
            log.info("runtime.stopped", **_flat(self.statistics()))
        if self._fatal is not None:
            raise self._fatal

    def bind(self) -> None:
        """Bind both planes now, so that a taken port is reported before serving starts.

        A secure runtime must call this inside its event loop: the ZAP handler
        runs there, and it is started before any socket is bound.
        """
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            if self._book is not None:
                self._authenticator = Authenticator(ctx, self._book, self._refusals.count)
                self._authenticator.start()
            agents = self._bind(ctx, self.config.agents, watch_closes=True)
            control = self._bind(ctx, self.config.control)
        except zmq.ZMQError:
            if self._authenticator is not None:
                self._authenticator.stop()
                self._authenticator = None
            ctx.destroy(linger=0)
            raise
        self.bound_agents = agents.getsockopt_string(zmq.LAST_ENDPOINT)
        self.bound_control = control.getsockopt_string(zmq.LAST_ENDPOINT)
        self._agents_sync = agents
        self._control_sync = control
        self._context = ctx

    def _bind(
        self, ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, *, watch_closes: bool = False
    ) -> zmq.Socket[bytes]:
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.SNDHWM, self.config.queue_limit)
        sock.setsockopt(zmq.RCVHWM, self.config.receive_queue)
        # A frame a little over the limit still reaches the codec, which answers it
        # with a typed error; ZeroMQ silently drops a larger one and its connection.
        sock.setsockopt(zmq.MAXMSGSIZE, self.config.max_frame + 1024)
        if endpoint.startswith("tcp://[") or endpoint.startswith("tcp://::"):
            sock.setsockopt(zmq.IPV6, 1)
        if self.security is not None:
            sock.curve_server = True
            sock.curve_secretkey = self.security.keys.secret
            sock.curve_publickey = self.security.keys.public
            sock.zap_domain = ZAP_DOMAIN.encode()
        events = (HANDSHAKE_FAILURES if self.security is not None else 0) | (
            CONNECTION_CLOSED if watch_closes else 0
        )
        if events:
            monitor = sock.get_monitor_socket(events)
            self._monitors.append(monitor)
            if watch_closes:
                self._agent_monitor = monitor
        try:
            sock.bind(endpoint)
        except zmq.ZMQError:
            sock.close(linger=0)
            raise
        return sock

    async def _recover(self) -> None:
        """Take up every run the store holds: ended ones to answer for, the rest to finish.

        The `RunRecovered` events are made durable before any is folded, so that a
        run whose recovery crashes the runtime counts against its recovery budget
        each time, and is parked once over it instead of crash-looping the runtime.
        If the wall clock jumped since the journal's last clock reading, the runs'
        deadlines move with it first, in the same commit as the new reading.
        """
        ended = 0
        resumed: list[Run] = []
        async for found in recovered_runs(self.store, self.catalog):
            if not isinstance(found, Recovered):
                self.held[found.run_id] = found
                self._journal_seq[found.run_id] = found.last_seq
                continue
            run = found.run
            self.runs[run.run_id] = run
            self._journal_seq[run.run_id] = found.last_seq
            if run.status in TERMINAL_STATUSES:
                ended += 1
                continue
            self._active_runs += 1
            if run.status == "running":
                resumed.append(run)
        here = self._read_clock()
        now = here.wall
        timed = [run for run in self.runs.values() if engine.has_deadlines(run)]
        skew, reading = self._skew_at_start(await self.store.clock_reading(), here, len(timed))
        events: list[JournalEvent] = [ClockJumped(run.run_id, skew) for run in timed if skew]
        events += [RunRecovered(run.run_id, budget=self.config.recovery_budget) for run in resumed]
        for event in events:
            self._journal(event, now)
        batch, self._batch = self._batch, []
        await self.store.append(batch, reading)
        self._reading = reading
        for event in events:
            self._fold(self.runs[event.run_id], event, now)
        held = sum(1 for h in self.held.values() if h.status == "stuck")
        stuck = held + sum(1 for r in self.runs.values() if r.status == "stuck")
        if resumed or ended or self.held:
            log.info("runtime.recovered", resumed=len(resumed), ended=ended, stuck=stuck)

    def _read_clock(self) -> ClockReading:
        return ClockReading(self._clock(), self._monotonic(), self._boot)

    def _skew_at_start(
        self, before: ClockReading | None, here: ClockReading, timed: int
    ) -> tuple[float, ClockReading]:
        """How far the wall clock jumped since the journal's last clock reading, for the
        deadlines of `timed` runs to move by (0 if it did not, or if nothing tells), and
        the reading the journal goes on from."""
        skew = clock_skew(before, here)
        if before is None or skew is None:
            if timed:
                why = (
                    "the journal holds no clock reading yet"
                    if before is None
                    else "the machine restarted since the journal's last clock reading"
                )
                log.info(
                    "clock.unchecked", runs=timed,
                    reason=f"{why}: deadlines are kept by the wall clock as it is now",
                )  # fmt: skip
            return 0.0, here
        if abs(skew) <= TOLERANCE:
            # The reading before still holds, so that small moves add up to a jump in time.
            return 0.0, before
        self._log_jump(skew, timed, "at start")
        return skew, here

    def _check_clock(self) -> None:
        """Move the deadlines of runs by a jump of the wall clock seen while running, and
        commit the new reading with them."""
        here = self._read_clock()
        skew = clock_skew(self._reading, here)
        if skew is None or abs(skew) <= TOLERANCE:
            return
        timed = [run for run in self.runs.values() if engine.has_deadlines(run)]
        self._log_jump(skew, len(timed), "while running")
        for run in timed:
            self.apply(ClockJumped(run.run_id, skew))
        self._reading = self._reading_due = here

    def _log_jump(self, skew: float, timed: int, noticed: str) -> None:
        log.warning(
            "clock.jumped", skew=round(skew, 3), runs=timed, noticed=noticed,
            message=f"the wall clock moved {skew:+.0f}s against the monotonic clock; "
            "deadlines keep the real time they had left",
        )  # fmt: skip

    def _say_goodbye(self, agents: zmq.Socket[bytes]) -> None:
        payload, identities = self._agents.goodbyes()
        for identity in identities:
            try:
                agents.send_multipart([identity, payload], flags=zmq.NOBLOCK)
            except zmq.ZMQError:
                continue

    async def _loop(
        self, readiness: Readiness, agents: zmq.Socket[bytes], control: zmq.Socket[bytes]
    ) -> None:
        while not self._stopping:
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
            self._commit_or_send()
            if self._agent_gate.reading or self._control_gate.reading:
                # A message of many parts is read over many turns, none of which waits:
                # let the loop's other tasks (the ZAP handler, a commit) run between them.
                await anyio.lowlevel.checkpoint()

    def _on_readable(self) -> None:
        """A socket has messages: with a store that appends at once, handle them right here.

        Running the turn inside the event loop's reader callback saves the
        wake-up of the loop task, a good part of a step's latency. With a
        store that must be awaited, or while a commit is under way, the loop
        task takes the turn instead, so a batch's sends still wait for its commit.
        """
        readiness = self._readiness
        if readiness is None:
            return
        if self._committing or self._stopping or not self._turn_now():
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
            if self._batch and not self._append_now():
                return False
            self._send_outbox()
            if not readiness.pending():
                return True
        # Still busy after a few turns: let timers and other tasks run first.
        return False

    def _turn(self) -> None:
        max_batch = self.config.max_batch
        self._agent_gate.drain(self._agents_sync, self._agents.on_frame, max_batch)
        self._control_gate.drain(self._control_sync, self._control.on_frame, max_batch)
        if self._agent_gate.reading:
            self._beat_while_reading()
        else:
            self._long_read = None
            self._fire_timers()
        self._handle_unreachable()
        for monitor in self._monitors:
            self._read_monitor(monitor)

    def _read_monitor(self, monitor: zmq.Socket[bytes]) -> bool:
        """Count failed handshakes and end the sessions whose connections closed; True if
        any connection closed."""
        closed = self._refusals.read_monitor(monitor)
        for fd in closed:
            self._agents.disconnected(fd)
        return bool(closed)

    def _beat_while_reading(self) -> None:
        """Beat to the agents while the agent plane reads a message of many parts.

        What agents sent after that message waits unread behind it, so the timers wait
        until it is read: heartbeats and step timeouts would judge agents by a silence
        that is the runtime's. Meanwhile the agents are beaten to, so that they do not
        take the runtime for lost, and judged as of when the reading began.
        """
        now = self._monotonic()
        if self._long_read is None:
            self._long_read = (now, now + self.config.heartbeat / 2)
            return
        began, beat_at = self._long_read
        if now >= beat_at:
            self._agents.heartbeat(began)
            self._long_read = (began, now + self.config.heartbeat / 2)

    def _commit_or_send(self) -> None:
        """Start making the batch durable, or send at once what needs no commit.

        One commit is under way at a time; what the turns meanwhile produce
        gathers into the next batch and its sends, committed together as soon
        as the commit in progress is done (group commit, and the loop never
        waits on the disk). Each batch's sends leave after its own commit.
        """
        if self._committing or self._fatal is not None:
            return
        if not self._batch or self._append_now():
            self._send_outbox()
            return
        if self._fatal is not None:
            return
        batch, outbox, reading = self._batch, self._outbox, self._reading_due
        self._batch, self._outbox, self._reading_due = [], [], None
        self._committing = True
        assert self._tasks is not None
        self._tasks.start_soon(self._commit, batch, outbox, reading)

    def _append_now(self) -> bool:
        """Append the batch if the store can at once; False to await it (or if it failed)."""
        rehearsing = self._kill_points.armed
        if rehearsing:
            self._pass_kill_points(self._batch, StepSucceeded, "result-received")
        try:
            appended = self.store.append_nowait(self._batch, self._reading_due)
        except StoreError as exc:
            self._store_failed(exc)
            return False
        if appended:
            if rehearsing:
                self._pass_kill_points(self._batch, StepDispatched, "dispatch-persisted")
            self._batch = []
            self._reading_due = None
            self._counters.batches += 1
        return appended

    def _pass_kill_points(self, batch: list[JournalRecord], kind: type, point: str) -> None:
        for record in batch:
            if isinstance(record.event, kind):
                self._kill_points.passing(point)

    def _store_failed(self, exc: StoreError) -> None:
        """The journal refused a batch: nothing it caused may leave, and the runtime stops.

        Its events are not in the journal and its sends are dropped unsent, so
        a runtime started again on the journal resumes from the last batch that
        was made durable, which is all anyone outside was ever told about.
        """
        log.critical("store.failed", store=self.store.description, reason=exc.reason)
        self._batch = []
        self._outbox = []
        self._fatal = exc
        self.stop()

    async def _commit(
        self, batch: list[JournalRecord], outbox: list[Outgoing], reading: ClockReading | None
    ) -> None:
        rehearsing = self._kill_points.armed
        if rehearsing:
            self._pass_kill_points(batch, StepSucceeded, "result-received")
        try:
            await self.store.append(batch, reading)
        except StoreError as exc:
            self._committing = False
            self._store_failed(exc)
            return
        if rehearsing:
            self._pass_kill_points(batch, StepDispatched, "dispatch-persisted")
        self._counters.batches += 1
        self._send(outbox)
        self._committing = False
        self._commit_or_send()
        if self._unreachable and self._readiness is not None:
            self._readiness.wake()

    def _send_outbox(self) -> None:
        if not self._outbox:
            return
        outbox = self._outbox
        self._outbox = []
        self._send(outbox)

    def _send(self, outbox: list[Outgoing]) -> None:
        if (
            self._agent_monitor is not None
            and self._read_monitor(self._agent_monitor)
            and self._readiness is not None
        ):
            # A session whose connection closed since the last turn ends before anything
            # addressed to it leaves: its routing id may be another key's connection now.
            # What ending it journaled is committed by the loop's next turn.
            self._readiness.wake()
        for sock, identity, payload, session in outbox:
            if session is not None and not session.live:
                self._refusals.count("session_ended")
                continue
            try:
                # Part by part: `send_multipart` checks each part and combines enum flags.
                # Only the routing id can be refused; the payload then always follows.
                sock.send(identity, _SEND_MORE)
                sock.send(payload, _SEND_LAST)
            except zmq.Again:
                self.reject("send_queue_full", identity, "peer is not reading")
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

    def start_run(self, graph: Graph, inputs: dict[str, Any], started_by: str = "") -> str:
        """Journal a new run of `graph` and carry out its first commands; its id."""
        now = self._clock()
        run_id = f"{int(now * 1000):x}-{secrets.token_hex(5)}"
        event = RunStarted(
            run_id=run_id,
            workflow=graph.name,
            version=graph.workflow.version,
            fingerprint=graph.fingerprint,
            inputs=inputs,
            started_by=started_by,
        )
        self._journal(event, now)
        run, commands = engine.start(graph, event, now)
        self._observers.observe(run, 0)
        self.runs[run_id] = run
        self._active_runs += 1
        self._counters.runs_started += 1
        self._execute(run, commands)
        return run_id

    def cancel_run(self, run_id: str, principal: str, reason: str) -> None:
        """Journal the end of a run that has not ended, held runs included."""
        event = RunCancelled(run_id=run_id, principal=principal, reason=reason)
        held = self.held.get(run_id)
        if held is None:
            self.apply(event)
            return
        self._journal(event, self._clock())
        held.cancel(self._batch[-1])
        log.log(
            ending_level(held.status), "run.ended", run_id=run_id, workflow=held.workflow,
            status=held.status,
        )  # fmt: skip

    def resume_run(self, run_id: str, principal: str) -> None:
        """Journal that a stuck run carries on, and carry it on."""
        self.apply(RunResumed(run_id=run_id, principal=principal))

    def answer_past(self, identity: bytes, request: int, run_id: str, version: int) -> None:
        """Answer with the record of `run_id` as it was at `version`, rebuilt from its journal
        off the loop (the journal may have to be read from disk)."""
        if self._tasks is None:
            return
        self._tasks.start_soon(self._past, identity, request, run_id, version)

    async def _past(self, identity: bytes, request: int, run_id: str, version: int) -> None:
        message = await past_record(
            self.store, self.catalog, lambda: self._batch, request, run_id, version
        )
        # A read: nothing in it waits for a commit, so it goes out at once, not via the outbox.
        try:
            self._control_sync.send_multipart(
                [identity, self._control_codec.encode(message)], flags=zmq.NOBLOCK
            )
        except zmq.ZMQError as exc:
            self.reject("send_failed", identity, str(exc))

    def send_control(self, identity: bytes, message: Message) -> None:
        self._outbox.append(
            (self._control_sync, identity, self._control_codec.encode(message), None)
        )

    def reject(self, reason: str, identity: bytes, detail: str = "", principal: str = "") -> bool:
        """Count a refused frame and log it unless its like was logged within a second;
        True when logged."""
        return self._refusals.refuse(reason, identity, detail, principal)

    def audit(
        self,
        run_id: str,
        principal: str,
        action: str,
        code: ErrorCode,
        message: str,
        *,
        step: str = "",
        attempt: int = 0,
    ) -> None:
        """Record a refusal in the history of the run it concerns, if that run exists."""
        run = self.runs.get(run_id)
        if run is None or run.refusals >= MAX_AUDITED_REFUSALS:
            return
        self.apply(
            RequestRefused(
                run_id=run_id,
                principal=principal,
                action=action,
                code=code,
                message=message[:1_000],
                step=step,
                attempt=attempt,
            )
        )

    def reload(self, principals: Principals) -> None:
        """Apply a new principal table: new keys may connect, withdrawn ones lose their sessions.

        Connections of principals that are unchanged are kept as they are.
        """
        if self._book is None:
            log.warning("principals.ignored", reason="this runtime runs without CURVE")
            return
        self._book.replace(principals)
        self._agents.reload(self._book)
        log.info("principals.reloaded", principals=len(principals))
        if self._readiness is not None:
            self._readiness.wake()

    def _agents_limited(self, identity: bytes, principal: str, dropped: int) -> None:
        self._log_limited(identity, principal, dropped)
        if not self._refusals.may_answer():
            return
        message = Error(
            code="rate_limited",
            message=f"over {self.config.rate_limit:g} frames/s: {dropped} dropped",
        )
        self.queue_agent_frame(identity, self._agent_codec.encode(message))

    def _control_limited(self, identity: bytes, principal: str, dropped: int) -> None:
        self._log_limited(identity, principal, dropped)
        if not self._refusals.may_answer():
            return
        message = ControlError(
            id=0,
            code="rate_limited",
            message=f"over {self.config.rate_limit:g} requests/s: {dropped} dropped",
        )
        self.send_control(identity, message)

    def _log_limited(self, identity: bytes, principal: str, dropped: int) -> None:
        log.warning(
            "frames.rate_limited", principal=principal, peer=identity.hex(), dropped=dropped
        )

    def start_wait(self, key: WaitKey, seconds: float) -> None:
        self._timers.schedule(key, self._monotonic() + seconds)

    def cancel_wait(self, key: WaitKey) -> None:
        self._timers.cancel(key)

    def monotonic(self) -> float:
        return self._monotonic()

    def queue_agent_frame(
        self, identity: bytes, payload: bytes, session: Session | None = None
    ) -> None:
        self._outbox.append((self._agents_sync, identity, payload, session))

    # -- events and commands -----------------------------------------------------------------

    def _journal(self, event: JournalEvent, now: float) -> None:
        seq = self._journal_seq.get(event.run_id, 0) + 1
        self._journal_seq[event.run_id] = seq
        self._batch.append(JournalRecord(event.run_id, seq, now, event))

    def apply(self, event: JournalEvent) -> None:
        """Journal `event` in the current batch, fold it into its run, carry out its commands."""
        run = self.runs.get(event.run_id)
        if run is None:
            return
        now = self._clock()
        self._journal(event, now)
        self._fold(run, event, now)

    def _fold(self, run: Run, event: JournalEvent, now: float) -> None:
        """Fold a journaled `event` into `run`, show the observers what it wrote in the run's
        history, and carry out its commands."""
        seen = len(run.history)
        commands = engine.apply(run, event, now)
        self._observers.observe(run, seen)
        self._execute(run, commands)

    def _execute(self, run: Run, commands: list[Command]) -> None:
        for command in commands:
            match command:
                case Dispatch():
                    self._agents.dispatch(command)
                case StartTimer():
                    key = ("step", command.run_id, command.purpose, command.step, command.attempt)
                    self._timers.schedule(key, self._monotonic() + command.delay)
                case CancelTimer():
                    key = ("step", command.run_id, command.purpose, command.step, command.attempt)
                    self._timers.cancel(key)
                case CancelTask():
                    self._agents.withdraw(
                        (command.run_id, command.step, command.attempt), command.reason
                    )
                case ForwardToolCall():
                    self._agents.forward_tool_call(command)
                case RefuseToolCall():
                    self._agents.refuse_tool_call(command)
                case RunEnded():
                    self._run_ended(run, command)

    def _run_ended(self, run: Run, command: RunEnded) -> None:
        self._active_runs -= 1
        ended = self._counters.runs_ended
        ended[command.status] = ended.get(command.status, 0) + 1
        log.log(
            ending_level(command.status),
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
                case (
                    "step",
                    str(run_id),
                    "timeout" | "retry" | "decision" as purpose,
                    str(step),
                    int(attempt),
                ):
                    self.apply(
                        TimerFired(run_id=run_id, purpose=purpose, step=step, attempt=attempt)
                    )
                case ("wait", bytes(identity), int(request), str(run_id)):
                    self._control.end_wait(identity, request, run_id)
                case ("heartbeat",):
                    self._heartbeat(now)

    def _heartbeat(self, now: float) -> None:
        if self._authenticator is not None and not self._authenticator.alive():
            log.critical("runtime.authenticator_died")
            self._fatal = AuthenticatorDied("the ZAP handler stopped; refusing to serve without it")
            self.stop()
            return
        self._timers.schedule(("heartbeat",), now + self.config.heartbeat)
        self._agents.heartbeat(now)
        if self._metrics is not None:
            seen = self.statistics()
            self._metrics.gauges = Gauges(
                active_runs=seen.active_runs,
                stuck_runs=seen.stuck_runs,
                queued_steps=seen.queued_steps,
                agents=seen.agents,
                refused=seen.rejected_frames,
            )
        for limiter in self._limiters:
            limiter.prune()
        self._refusals.prune()
        self._check_clock()

    def _handle_unreachable(self) -> None:
        while self._unreachable:
            self._agents.unreachable(self._unreachable.pop())


def _flat(stats: SupervisorStatistics) -> dict[str, Any]:
    return {
        "runs_started": stats.runs_started,
        "runs_ended": dict(stats.runs_ended),
        "steps_dispatched": stats.steps_dispatched,
        "rejected_frames": dict(stats.rejected_frames),
        "stuck_runs": stats.stuck_runs,
        "crash_loops": stats.crash_loops,
    }

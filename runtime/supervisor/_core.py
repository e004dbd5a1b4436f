"""The supervisor's core: every run's one owner, around the pure engine, with no socket.

It is the host both planes' handlers are given (`AgentHost`, `RunHost`): it turns
what they hand it into journaled events, folds each into its run with the engine,
and carries out the commands, on the planes or on its timers. What it journals
gathers in its `batch`, and the frames those events caused gather beside them;
whoever drives the core commits the batch and only then sends its frames. The
shell (`runtime.supervisor._supervisor`) does so with ZeroMQ; tests drive it with
a `MemoryStore` and a fake clock.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import structlog

from actors import KillPoints
from protocols import (
    TERMINAL_STATUSES,
    Codec,
    ControlError,
    ControlRequest,
    ErrorCode,
    ForkRun,
    Message,
    RunAccepted,
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
    RunForked,
    RunRecovered,
    RunResumed,
    RunStarted,
    StartTimer,
    TimerFired,
)
from runtime.engine._run import Run
from runtime.observe._observers import Gauges, Metrics, Observers, Tracer
from runtime.observe._run_log import RunLog, ending_level
from runtime.planes._agent_plane import AgentPlane
from runtime.planes._control_plane import ControlPlane, WaitKey
from runtime.planes._refusals import Refusals
from runtime.planes._sessions import Session
from runtime.store import JournalRecord, Store
from runtime.store._held import HeldRun
from runtime.supervisor._batch import AGENTS, CONTROL, Batch
from runtime.supervisor._clock import Clock, ClockWatch, SystemClock, log_jump
from runtime.supervisor._config import RuntimeConfig
from runtime.supervisor._fork import ForkAsked, ForkQueue, copied_events, fork_prefix
from runtime.supervisor._recovery import PastRead, PastReads, take_up
from runtime.supervisor._statistics import Counters, SupervisorStatistics
from runtime.supervisor._timers import Timers
from runtime.workflow._catalog import Catalog
from runtime.workflow._graph import Graph

log = structlog.get_logger("baton.runtime")

TimerKey = tuple[Hashable, ...]
HEARTBEAT: TimerKey = ("heartbeat",)

MAX_AUDITED_REFUSALS = 100
"""Refusals recorded in one run's history; beyond this they are only counted and logged,
so that a peer cannot grow a run's record without bound."""


def new_run_id(now: float) -> str:
    """A run's id: when it started (milliseconds, in hex), then ten random hex digits."""
    return f"{int(now * 1000):x}-{secrets.token_hex(5)}"


class SupervisorCore:
    """The runs, their timers and journal, and both planes' handlers; no socket, no task.

    Call `recover` once before anything else; hand the planes' `on_frame` what
    arrives, call `fire_timers` once `next_deadline` has passed, and commit the
    `batch` after each turn before sending its frames.
    """

    def __init__(
        self,
        graphs: Sequence[Graph],
        store: Store,
        config: RuntimeConfig,
        *,
        clock: Clock | None = None,
        secure: bool = False,
        previous: Sequence[Graph] = (),
        kill_points: KillPoints | None = None,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
        on_heartbeat: Callable[[float], None] | None = None,
        run_ids: Callable[[float], str] = new_run_id,
        peers: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        """`clock` is the machine's unless given. `secure` says whether the planes know
        their peers' principals. `on_heartbeat` is what the heartbeat timer does with the
        monotonic time it fired at (by default `heartbeat`, which it must call).
        `run_ids` names a new run from the wall time it starts at. `peers` gives the
        agent-plane endpoints of the cluster's other supervisors that actors are welcomed
        with besides `config.peers`."""
        self.config = config
        self.store = store
        self.catalog = Catalog(graphs, previous)
        self.graphs = self.catalog.current
        self.clock = clock = SystemClock() if clock is None else clock
        self._wall = clock.wall
        self._monotonic = clock.monotonic
        self._watch = ClockWatch(clock)
        self._run_ids = run_ids
        self._metrics = metrics
        self._observers = Observers([RunLog(log), *(o for o in (metrics, tracer) if o is not None)])
        self._on_heartbeat = self.heartbeat if on_heartbeat is None else on_heartbeat
        self.runs: dict[str, Run] = {}
        self.held: dict[str, HeldRun] = {}
        """Runs whose journals cannot be folded: kept, shown as stuck, and cancellable."""
        self._active_runs = 0
        self.refusals = Refusals(clock.monotonic)
        self.batch = Batch(
            store, kill_points or KillPoints(), self.refusals.count, on_journal=self._journaled
        )
        """What the core journaled and the frames it caused, until they are committed."""
        self.timers: Timers[TimerKey] = Timers()
        """The runs' timers, the control plane's waits and the heartbeat, on `clock.monotonic`."""
        self.reads = PastReads(store, self.catalog, lambda: self.batch.records)
        """Requests for past records, for whoever drives the core to answer."""
        self.forks = ForkQueue()
        """Forks asked for, for whoever drives the core to read their prefixes and `fork`."""
        self.clustered = False
        """One of a cluster: runs this runtime does not hold may be another's."""
        self.lookups: list[tuple[bytes, ControlRequest]] = []
        """Requests about the cluster, or runs held elsewhere in it, for whoever drives the
        core to answer off its loop (the shared database must be asked)."""
        self.peer_controls: list[str] = []
        """The control planes of the cluster's other live runtimes."""
        self._counters = Counters()
        self.agent_codec = runtime_side_agent_codec(config.max_frame)
        self.control_codec: Codec[ControlRequest] = runtime_side_control_codec(config.max_frame)
        self.agents = AgentPlane(
            self,
            self.catalog.graphs(),
            self.agent_codec,
            heartbeat=config.heartbeat,
            secure=secure,
            restart_budget=config.restart_budget,
            restart_window=config.restart_window,
            trace=None if tracer is None else tracer.traceparent,
            peers=lambda: (*config.peers, *(() if peers is None else peers())),
        )
        self.control = ControlPlane(
            self,
            self.graphs,
            self.control_codec,
            max_active_runs=config.max_active_runs,
            secure=secure,
            connected_roles=self.agents.agents_by_role,
            roster=lambda: self.agents.roster(clock.wall()),
        )

    def statistics(self) -> SupervisorStatistics:
        c = self._counters
        plane = self.agents.counters
        return SupervisorStatistics(
            runs_started=c.runs_started,
            runs_ended=dict(c.runs_ended),
            active_runs=self._active_runs,
            steps_dispatched=plane.steps_dispatched,
            results=plane.results,
            tool_calls=plane.tool_calls,
            tool_calls_refused=plane.tool_calls_refused,
            rejected_frames=self.refusals.snapshot(),
            agents=self.agents.agents_by_role(),
            queued_steps=self.agents.queued_steps(),
            batches=self.batch.batches,
            stuck_runs=sum(1 for r in self.runs.values() if r.status == "stuck")
            + sum(1 for h in self.held.values() if h.status == "stuck"),
            crash_loops=plane.crash_loops,
            model_calls=plane.model_calls,
            model_calls_refused=plane.model_calls_refused,
        )

    # -- taking up the store ---------------------------------------------------------------

    async def recover(self) -> None:
        """Take up every run the store holds: ended ones to answer for, the rest to finish.

        The `RunRecovered` events are made durable before any is folded, so that a
        run whose recovery crashes the runtime counts against its recovery budget
        each time, and is parked once over it instead of crash-looping the runtime.
        If the wall clock jumped since the journal's last clock reading, the runs'
        deadlines move with it first, in the same commit as the new reading.
        """
        taken = await take_up(self.store, self.catalog)
        self.runs.update(taken.runs)
        self.held.update(taken.held)
        for run_id, seq in taken.last_seq.items():
            self.batch.go_on_from(run_id, seq)
        ended = sum(1 for run in taken.runs.values() if run.status in TERMINAL_STATUSES)
        self._active_runs += len(taken.runs) - ended
        resumed = [run for run in taken.runs.values() if run.status == "running"]
        here = self._watch.read()
        now = here.wall
        timed = [run for run in self.runs.values() if engine.has_deadlines(run)]
        before = await self.store.clock_reading()
        skew, reading = self._watch.at_start(before, here, len(timed))
        events: list[JournalEvent] = [ClockJumped(run.run_id, skew) for run in timed if skew]
        events += [RunRecovered(run.run_id, budget=self.config.recovery_budget) for run in resumed]
        for event in events:
            self.batch.write(event, now)
        await self.store.append(self.batch.take().records, reading)
        self._watch.reading = reading
        for event in events:
            self._fold(self.runs[event.run_id], event, now)
        held = sum(1 for h in self.held.values() if h.status == "stuck")
        stuck = held + sum(1 for r in self.runs.values() if r.status == "stuck")
        if resumed or ended or self.held:
            log.info("runtime.recovered", resumed=len(resumed), ended=ended, stuck=stuck)

    async def take_over(self, runs: dict[str, str]) -> int:
        """Take up runs just made this runtime's (another's lease lapsed, or it left), as a
        restart takes up its own: each named with the runtime it was taken from. Returns
        how many are carried on; the `RunRecovered` events wait in the batch."""
        fresh = [run_id for run_id in runs if run_id not in self.runs and run_id not in self.held]
        taken = await take_up(self.store, self.catalog, fresh)
        now = self._wall()
        resumed = 0
        for run_id, run in taken.runs.items():
            if run_id in self.runs:
                continue
            self.runs[run_id] = run
            self.batch.go_on_from(run_id, taken.last_seq[run_id])
            if run.status in TERMINAL_STATUSES:
                # Its end was journaled, and its owner lapsed before marking it so.
                self.store.mark_ended(run_id)
                continue
            self._active_runs += 1
            if run.status != "running":
                continue
            event = RunRecovered(
                run_id, budget=self.config.recovery_budget, taken_over=runs[run_id]
            )
            self.batch.write(event, now)
            self._fold(run, event, now)
            resumed += 1
        for run_id, held in taken.held.items():
            self.held.setdefault(run_id, held)
            self.batch.go_on_from(run_id, taken.last_seq[run_id])
        if taken.runs or taken.held:
            log.info("runs.taken_over", runs=len(taken.runs), resumed=resumed, held=len(taken.held))
        return resumed

    # -- what the planes ask of their host ---------------------------------------------------

    @property
    def active_runs(self) -> int:
        return self._active_runs

    def monotonic(self) -> float:
        return self._monotonic()

    def start_run(self, graph: Graph, inputs: dict[str, Any], started_by: str = "") -> str:
        """Journal a new run of `graph` and carry out its first commands; its id."""
        now = self._wall()
        run_id = self._run_ids(now)
        event = RunStarted(
            run_id=run_id,
            workflow=graph.name,
            version=graph.workflow.version,
            fingerprint=graph.fingerprint,
            inputs=inputs,
            started_by=started_by,
        )
        self.batch.write(event, now)
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
        held.cancel(self.batch.write(event, self._wall()))
        self.store.mark_ended(run_id)
        log.log(
            ending_level(held.status), "run.ended", run_id=run_id, workflow=held.workflow,
            status=held.status,
        )  # fmt: skip

    def resume_run(self, run_id: str, principal: str) -> None:
        """Journal that a stuck run carries on, and carry it on."""
        self.apply(RunResumed(run_id=run_id, principal=principal))

    def fork_run(self, identity: bytes, request: ForkRun, principal: str) -> None:
        """Keep the fork in `forks`: its prefix is read off the loop, then `fork` makes it."""
        self.forks.add(
            ForkAsked(
                identity=identity,
                request=request.id,
                parent=request.run_id,
                at=request.at,
                values=dict(request.values),
                reason=request.reason,
                principal=principal,
            )
        )

    async def fork(self, asked: ForkAsked) -> Message | None:
        """Read the prefix of the fork `asked` for, then make the fork; None once its
        acceptance waits in the batch, else the refusal to answer at once."""
        prefix = await fork_prefix(self.store, self.catalog, lambda: self.batch.records, asked)
        if isinstance(prefix, Message):
            return prefix
        return self.begin_fork(asked, prefix)

    def begin_fork(self, asked: ForkAsked, prefix: Sequence[JournalRecord]) -> Message | None:
        """Journal the new run: a copy of the parent's records `prefix` (stamped as they
        were, under the new run's id), then its `RunForked` event; fold them, and carry
        out what the fork causes. Its acceptance leaves with the batch."""
        active = self._active_runs
        if active >= self.config.max_active_runs:
            text = f"{active} runs are in progress, the limit is {self.config.max_active_runs}"
            return ControlError(id=asked.request, code="overloaded", message=text)
        now = self._wall()
        run_id = self._run_ids(now)
        copies, run = copied_events(self.catalog, prefix, run_id)
        for copied, at in copies:
            self.batch.write(copied, at)
        event = RunForked(
            run_id=run_id,
            parent=asked.parent,
            at=asked.at,
            principal=asked.principal,
            reason=asked.reason,
            values=asked.values,
        )
        self.batch.write(event, now)
        self.runs[run_id] = run
        self._active_runs += 1
        self._counters.runs_started += 1
        self._fold(run, event, now)
        self.send_control(asked.identity, RunAccepted(id=asked.request, run_id=run_id))
        return None

    def answer_past(self, identity: bytes, request: int, run_id: str, version: int) -> None:
        """Keep the request in `reads`, to be answered off the loop."""
        self.reads.add(PastRead(identity, request, run_id, version))

    def locate(self, identity: bytes, request: ControlRequest) -> bool:
        if not self.clustered:
            return False
        self.lookups.append((identity, request))
        return True

    def control_peers(self) -> list[str]:
        return list(self.peer_controls)

    def send_control(self, identity: bytes, message: Message) -> None:
        self.batch.frames.append((CONTROL, identity, self.control_codec.encode(message), None))

    def queue_agent_frame(
        self, identity: bytes, payload: bytes, session: Session | None = None
    ) -> None:
        self.batch.frames.append((AGENTS, identity, payload, session))

    def reject(self, reason: str, identity: bytes, detail: str = "", principal: str = "") -> bool:
        """Count a refused frame and log it unless its like was logged within a second;
        True when logged."""
        return self.refusals.refuse(reason, identity, detail, principal)

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

    def _journaled(self, records: list[JournalRecord]) -> None:
        """A batch goes to the store: the watches of its runs, and of any change, are
        answered once it is durable."""
        self.control.watches.journaled(record.run_id for record in records)

    def start_wait(self, key: WaitKey, seconds: float) -> None:
        self.timers.schedule(key, self._monotonic() + seconds)

    def cancel_wait(self, key: WaitKey) -> None:
        self.timers.cancel(key)

    # -- events and commands -----------------------------------------------------------------

    def apply(self, event: JournalEvent) -> None:
        """Journal `event` in the current batch, fold it into its run, carry out its commands."""
        run = self.runs.get(event.run_id)
        if run is None:
            return
        now = self._wall()
        self.batch.write(event, now)
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
                    self.agents.dispatch(command)
                case StartTimer():
                    key = ("step", command.run_id, command.purpose, command.step, command.attempt)
                    self.timers.schedule(key, self._monotonic() + command.delay)
                case CancelTimer():
                    key = ("step", command.run_id, command.purpose, command.step, command.attempt)
                    self.timers.cancel(key)
                case CancelTask():
                    self.agents.withdraw(
                        (command.run_id, command.step, command.attempt), command.reason
                    )
                case ForwardToolCall():
                    self.agents.forward_tool_call(command)
                case RefuseToolCall():
                    self.agents.refuse_tool_call(command)
                case RunEnded():
                    self._run_ended(run, command)

    def _run_ended(self, run: Run, command: RunEnded) -> None:
        self._active_runs -= 1
        self.store.mark_ended(run.run_id)
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
        self.control.run_ended(run)

    # -- time --------------------------------------------------------------------------------

    def schedule_heartbeat(self) -> None:
        """Beat to the agents a heartbeat from now, and every heartbeat after."""
        self.timers.schedule(HEARTBEAT, self._monotonic() + self.config.heartbeat)

    def next_deadline(self) -> float | None:
        """When the earliest timer falls due, on `clock.monotonic`."""
        return self.timers.next_deadline()

    def fire_timers(self) -> None:
        """Carry out every timer that is due."""
        now = self._monotonic()
        for key in self.timers.pop_due(now):
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
                    self.control.end_wait(identity, request, run_id)
                case ("watch", bytes(identity), int(request), str(run_id)):
                    self.control.watches.end(identity, request, run_id)
                case ("heartbeat",):
                    self._on_heartbeat(now)

    def heartbeat(self, now: float) -> None:
        """Judge the agents by their silence, refresh the gauges, forget quiet refusers, and
        move the runs' deadlines by any jump of the wall clock."""
        self.timers.schedule(HEARTBEAT, now + self.config.heartbeat)
        self.agents.heartbeat(now)
        if self._metrics is not None:
            seen = self.statistics()
            self._metrics.gauges = Gauges(
                active_runs=seen.active_runs,
                stuck_runs=seen.stuck_runs,
                queued_steps=seen.queued_steps,
                agents=seen.agents,
                refused=seen.rejected_frames,
            )
        self.refusals.prune()
        self._check_clock()

    def _check_clock(self) -> None:
        """Move the deadlines of runs by a jump of the wall clock seen while running, and
        commit the new reading with them."""
        jumped = self._watch.jumped()
        if jumped is None:
            return
        skew, here = jumped
        timed = [run for run in self.runs.values() if engine.has_deadlines(run)]
        log_jump(skew, len(timed), "while running")
        for run in timed:
            self.apply(ClockJumped(run.run_id, skew))
        self.batch.reading = here

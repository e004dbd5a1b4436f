"""The supervisor: both ZeroMQ planes bound around the core, served by one loop.

One loop owns everything (no lock, no task per message). Each turn it waits
for a message or the next timer, drains the sockets in a batch, hands the
frames to the core's planes and fires the core's due timers, has the core
append the batch's events to the store in one call, and only then sends what
the batch caused: persist, then act. What is socket-free (the runs, their
timers and journal) is the core's (`runtime.supervisor._core`); this shell
holds the sockets, the ZAP handler, the gates and the heartbeats' pacing. The
turn, the commits and the sends share the loop's state (its readiness, its
task group, the commit under way), so they stay together here with the
cluster's side of the shell (its lease checked before every send), some 500
lines.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING

import anyio
import structlog
import zmq

from actors import KillPoints
from protocols import ControlRequest, Message
from runtime.errors import BatonError, LeaseLapsed
from runtime.observe._observers import Metrics, Tracer
from runtime.planes._readiness import Readiness
from runtime.security._authenticator import Authenticator, PrincipalBook
from runtime.security._principals import Principals
from runtime.store import Store
from runtime.supervisor._batch import AGENTS, CONTROL, Commit, Outgoing
from runtime.supervisor._clock import SystemClock, boot_id
from runtime.supervisor._config import RuntimeConfig, Security
from runtime.supervisor._core import SupervisorCore
from runtime.supervisor._fork import ForkAsked
from runtime.supervisor._gates import Gates
from runtime.supervisor._recovery import PastRead
from runtime.supervisor._sockets import bind_router
from runtime.supervisor._statistics import SupervisorStatistics, log_fields
from runtime.workflow._graph import Graph

if TYPE_CHECKING:
    from runtime.cluster._membership import Membership
    from runtime.store._leases import Member

log = structlog.get_logger("baton.runtime")

_SEND_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_SEND_LAST = int(zmq.NOBLOCK)


class AuthenticatorDied(RuntimeError):
    """The ZAP handler stopped: serving on would admit unknown keys at the handshake."""


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
        membership: Membership | None = None,
        peers: Callable[[], Sequence[str]] | None = None,
    ) -> None:
        """`security=None` runs without CURVE: for loopback development only.

        New runs start on `graphs`; `previous` are earlier versions, loaded so that
        runs which started on them finish on them (`CatalogError` if they clash).
        `kill_points` names places where the process kills itself, to rehearse crashes.
        `boot` names the boot `monotonic` counts from (by default the system's boot id):
        readings of it taken in another boot are not compared with it. `peers` gives the
        agent-plane endpoints of the cluster's other supervisors that actors are welcomed
        with, besides `config.peers`.
        With `membership` (over a `PostgresStore`), the runtime is one of a cluster: it
        owns the runs it starts or takes over by lease, and stops when the lease is lost;
        actors are told of its other live members as they come and go.
        """
        self.config = config
        self.security = security
        self.membership = membership
        self._metrics = metrics
        self._book = None if security is None else PrincipalBook(security.principals)
        self._authenticator: Authenticator | None = None
        self.core = core = SupervisorCore(
            graphs,
            store,
            config,
            clock=SystemClock(clock, monotonic, boot_id() if boot is None else boot),
            secure=security is not None,
            previous=previous,
            kill_points=kill_points,
            metrics=metrics,
            tracer=tracer,
            on_heartbeat=self._heartbeat,
            peers=peers,
        )
        self.store = store
        self.catalog = core.catalog
        self.graphs = core.graphs
        self.runs = core.runs
        self.held = core.held
        self._monotonic = monotonic
        self._unreachable: list[bytes] = []
        self._gates = Gates(core, self._book, config, monotonic)
        self._sockets: tuple[zmq.Socket[bytes], ...] = ()
        """The agent plane's socket and the control plane's, indexed by `AGENTS`, `CONTROL`."""
        self._monitors: list[zmq.Socket[bytes]] = []
        self._agent_monitor: zmq.Socket[bytes] | None = None
        """Reports the agent plane's closed connections, which end their sessions at once."""
        self._stopping = False
        self._fatal: AuthenticatorDied | LeaseLapsed | None = None
        self._tasks: anyio.abc.TaskGroup | None = None
        """Side tasks of the loop (commits, reads of journals); cancelled when it ends."""
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
        return self.core.statistics()

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind both planes and run until `stop()`; `task_status` is set once bound."""
        if self._context is None:
            self.bind()
        assert self._context is not None
        ctx = self._context
        agents, control = self._sockets
        readiness = Readiness([agents, control, *self._monitors], self._on_readable)
        self.core.schedule_heartbeat()
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
        membership = self.membership
        try:
            if membership is not None:
                await membership.join(self.bound_agents, self.bound_control)
                self.core.clustered = True
            await self.core.recover()
            task_status.started()
            self._readiness = readiness
            async with anyio.create_task_group() as tasks:
                self._tasks = tasks
                if membership is not None:
                    tasks.start_soon(
                        membership.keep, self._take_over, self._load, self._on_peers, self._lost
                    )
                try:
                    await self._loop(readiness)
                finally:
                    tasks.cancel_scope.cancel()
                    self._tasks = None
        finally:
            readiness.close()
            if membership is None or membership.holds():
                self._say_goodbye(agents)
            if membership is not None:
                with anyio.CancelScope(shield=True):
                    await membership.leave()
            # Monitors are unhooked before any socket closes: a socket still reporting to a
            # monitor that is closing can abort the process inside libzmq (zeromq/libzmq#2083),
            # as a runtime leaving its cluster with agents reconnecting did now and then.
            agents.disable_monitor()
            control.disable_monitor()
            for monitor in self._monitors:
                monitor.close(linger=0)
            agents.close(linger=0)
            control.close(linger=0)
            if self._authenticator is not None:
                self._authenticator.stop()
            ctx.term()
            self._context = None
            log.info("runtime.stopped", **log_fields(self.statistics()))
        failure = self._failure()
        if failure is not None:
            raise failure

    def bind(self) -> None:
        """Bind both planes now, so that a taken port is reported before serving starts.

        A secure runtime must call this inside its event loop: the ZAP handler
        runs there, and it is started before any socket is bound.
        """
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            if self._book is not None:
                self._authenticator = Authenticator(ctx, self._book, self.core.refusals.count)
                self._authenticator.start()
            agents, closes = bind_router(
                ctx, self.config.agents, self.config, self.security, watch_closes=True
            )
            self._agent_monitor = closes
            control, handshakes = bind_router(ctx, self.config.control, self.config, self.security)
            self._monitors = [m for m in (closes, handshakes) if m is not None]
        except zmq.ZMQError:
            if self._authenticator is not None:
                self._authenticator.stop()
                self._authenticator = None
            ctx.destroy(linger=0)
            raise
        self.bound_agents = agents.getsockopt_string(zmq.LAST_ENDPOINT)
        self.bound_control = control.getsockopt_string(zmq.LAST_ENDPOINT)
        self._sockets = (agents, control)
        self._context = ctx

    # -- the cluster ------------------------------------------------------------------------

    async def _take_over(self, runs: dict[str, str]) -> int:
        resumed = await self.core.take_over(runs)
        if self._readiness is not None:
            self._readiness.wake()
        return resumed

    def _load(self) -> tuple[int, int]:
        """Runs owned (ended ones aside) and runs active, for the cluster's members table."""
        return len(self.core.runs) + len(self.core.held), self.core.active_runs

    def _on_peers(self, peers: Sequence[Member]) -> None:
        """Other runtimes joined or left: clients are told of their control planes."""
        self.core.peer_controls = [m.control for m in peers]
        self.core.agents.announce_peers([m.agents for m in peers])

    def _lost(self, reason: str) -> None:
        """The lease is lost: stop at once, sending nothing more."""
        self._fatal = LeaseLapsed(self.store.description, reason)
        self.stop()

    def _failure(self) -> BatonError | AuthenticatorDied | None:
        """Why the runtime may not go on, if it may not."""
        return self._fatal or self.core.batch.failure

    def _say_goodbye(self, agents: zmq.Socket[bytes]) -> None:
        payload, identities = self.core.agents.goodbyes()
        for identity in identities:
            try:
                agents.send_multipart([identity, payload], flags=zmq.NOBLOCK)
            except zmq.ZMQError:
                continue

    # -- the loop ---------------------------------------------------------------------------

    async def _loop(self, readiness: Readiness) -> None:
        core = self.core
        while not self._stopping:
            deadline = core.next_deadline()
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
            if self._gates.reading:
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
        deadline = self.core.next_deadline()
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
            if self.core.batch.records and not self._append_now():
                return False
            self._send_gathered()
            if not readiness.pending():
                return True
        # Still busy after a few turns: let timers and other tasks run first.
        return False

    def _turn(self) -> None:
        core = self.core
        max_batch = self.config.max_batch
        agents, control = self._sockets
        self._gates.agents.drain(agents, core.agents.on_frame, max_batch)
        self._gates.control.drain(control, core.control.on_frame, max_batch)
        self._start_reads()
        if self._gates.agents.reading:
            self._beat_while_reading()
        else:
            self._long_read = None
            core.fire_timers()
        self._handle_unreachable()
        for monitor in self._monitors:
            self._read_monitor(monitor)

    def _read_monitor(self, monitor: zmq.Socket[bytes]) -> bool:
        """Count failed handshakes and end the sessions whose connections closed; True if
        any connection closed."""
        closed = self.core.refusals.read_monitor(monitor)
        for fd in closed:
            self.core.agents.disconnected(fd)
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
            self.core.agents.heartbeat(began)
            self._long_read = (began, now + self.config.heartbeat / 2)

    def _heartbeat(self, now: float) -> None:
        """The core's heartbeat, once the ZAP handler is known to be alive."""
        if self._authenticator is not None and not self._authenticator.alive():
            log.critical("runtime.authenticator_died")
            self._fatal = AuthenticatorDied("the ZAP handler stopped; refusing to serve without it")
            self.stop()
            return
        self.core.heartbeat(now)
        self._gates.prune()
        if self._metrics is not None and self.membership is not None:
            owned = len(self.core.runs) + len(self.core.held)
            gauges = dataclasses.replace(self._metrics.gauges, cluster=self.membership.seen(owned))
            self._metrics.gauges = gauges

    def _handle_unreachable(self) -> None:
        while self._unreachable:
            self.core.agents.unreachable(self._unreachable.pop())

    # -- persist, then send -----------------------------------------------------------------

    def _commit_or_send(self) -> None:
        """Start making the batch durable, or send at once what needs no commit.

        One commit is under way at a time; what the turns meanwhile produce
        gathers into the next batch and its sends, committed together as soon
        as the commit in progress is done (group commit, and the loop never
        waits on the disk). Each batch's sends leave after its own commit.
        """
        if self._committing or self._failure() is not None:
            return
        if not self.core.batch.records or self._append_now():
            self._send_gathered()
            return
        if self._failure() is not None:
            return
        self._committing = True
        commit = self.core.batch.take()
        if self.core.batch.commit_soon(commit, partial(self._committed, commit)):
            return
        assert self._tasks is not None
        self._tasks.start_soon(self._commit, commit)

    def _append_now(self) -> bool:
        """Append the batch if the store can at once; False to await it (or if it failed)."""
        appended = self.core.batch.append_now()
        if self.core.batch.failure is not None:
            self._refused()
        return appended

    async def _commit(self, commit: Commit) -> None:
        self._committed(commit, await self.core.batch.commit(commit))

    def _committed(self, commit: Commit, durable: bool) -> None:
        """A batch is durable, or was refused: send its frames, or stop."""
        if not durable:
            self._committing = False
            self._refused()
            return
        self._send(commit.frames)
        self._committing = False
        self._commit_or_send()
        readiness = self._readiness
        # Sending may use up the edge of a socket's descriptor that messages arriving
        # meanwhile raised: the loop, asleep until its next deadline, would not hear of
        # them (for up to half a heartbeat). Asking for the sockets' events re-arms it.
        if readiness is not None and (self._unreachable or readiness.pending()):
            readiness.wake()

    def _refused(self) -> None:
        """The store refused a batch: stop; a refusal for a lapsed lease also loses it."""
        failure = self.core.batch.failure
        if isinstance(failure, LeaseLapsed) and self.membership is not None:
            self.membership.counters.fenced_writes += 1
            log.warning("batch.fenced", token=self.membership.token, reason=failure.reason)
            self.membership.lose(failure.reason)
        self.stop()

    def _send_gathered(self) -> None:
        frames = self.core.batch.take_frames()
        if frames:
            self._send(frames)

    def _send(self, frames: list[Outgoing]) -> None:
        membership = self.membership
        if membership is not None and not membership.holds():
            # Committed under the lease, yet it lapsed before they left: another runtime
            # may own these runs now, so nothing goes.
            membership.counters.fenced_sends += len(frames)
            membership.lose("the lease lapsed before a batch's frames could be sent")
            self._lost(membership.lost or "")
            return
        if (
            self._agent_monitor is not None
            and self._read_monitor(self._agent_monitor)
            and self._readiness is not None
        ):
            # A session whose connection closed since the last turn ends before anything
            # addressed to it leaves: its routing id may be another key's connection now.
            # What ending it journaled is committed by the loop's next turn.
            self._readiness.wake()
        sockets = self._sockets
        for plane, identity, payload in self.core.batch.live(frames):
            sock = sockets[plane]
            try:
                # Part by part: `send_multipart` checks each part and combines enum flags.
                # Only the routing id can be refused; the payload then always follows.
                sock.send(identity, _SEND_MORE)
                sock.send(payload, _SEND_LAST)
            except zmq.Again:
                self.core.reject("send_queue_full", identity, "peer is not reading")
            except zmq.ZMQError as exc:
                if exc.errno == zmq.EHOSTUNREACH:
                    if plane == AGENTS:
                        self._unreachable.append(identity)
                    continue
                raise

    def _start_reads(self) -> None:
        """Answer each request for a past record, and read the prefix of each fork, off the
        loop (the journal may have to be read from disk)."""
        reads = self.core.reads.take()
        forks = self.core.forks.take()
        lookups, self.core.lookups = self.core.lookups, []
        if self._tasks is None:
            return
        for read in reads:
            self._tasks.start_soon(self._past, read)
        for asked in forks:
            self._tasks.start_soon(self._fork, asked)
        for identity, request in lookups:
            self._tasks.start_soon(self._elsewhere, identity, request)

    async def _past(self, read: PastRead) -> None:
        self._reply(read.identity, await self.core.reads.answer(read))

    async def _fork(self, asked: ForkAsked) -> None:
        refused = await self.core.fork(asked)
        if refused is not None:
            self._reply(asked.identity, refused)
        elif self._readiness is not None:
            # The fork's records wait in the batch: the loop commits them, then accepts it.
            self._readiness.wake()

    async def _elsewhere(self, identity: bytes, request: ControlRequest) -> None:
        # Only a cluster's runtime gets here, and only it has the postgres extra.
        from runtime.supervisor._elsewhere import answer_elsewhere  # noqa: PLC0415

        membership = self.membership
        assert membership is not None
        reply = await answer_elsewhere(
            request, membership.leases, membership.token, self.core.catalog
        )
        self._reply(identity, reply)

    def _reply(self, identity: bytes, message: Message) -> None:
        # A read: nothing in it waits for a commit, so it goes out at once, not in a batch.
        try:
            self._sockets[CONTROL].send_multipart(
                [identity, self.core.control_codec.encode(message)], flags=zmq.NOBLOCK
            )
        except zmq.ZMQError as exc:
            self.core.reject("send_failed", identity, str(exc))

    # -- principals and pacing --------------------------------------------------------------

    def reload(self, principals: Principals) -> None:
        """Apply a new principal table: new keys may connect, withdrawn ones lose their sessions.

        Connections of principals that are unchanged are kept as they are.
        """
        if self._book is None:
            log.warning("principals.ignored", reason="this runtime runs without CURVE")
            return
        self._book.replace(principals)
        self.core.agents.reload(self._book)
        log.info("principals.reloaded", principals=len(principals))
        if self._readiness is not None:
            self._readiness.wake()

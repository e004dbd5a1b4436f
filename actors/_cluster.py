"""An actor serving every supervisor of its cluster: one connection worker per supervisor.

Each run is owned by one supervisor, which sends its steps and tool calls; an
actor answers each on the connection it came from, so a step's tool calls and
result reach the supervisor that owns the run. The actor starts with the
endpoints it is given and adds those the supervisors name as their peers
(`Welcome.peers`, `Peers`); a supervisor that goes away is reconnected to with
backoff, as it may come back on its endpoint. What the connections share: the
actor (`setup` and `teardown` run once), the ledger, the stop, the kill points,
and the tool calls running by idempotency key, so that a call that a second
supervisor asks again, after taking the run over, waits for the one running
instead of running twice.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence

import anyio
import anyio.abc
import anyio.to_thread
import msgspec
import structlog
import zmq

from actors._agent import Agent
from actors._calls import CallsInFlight
from actors._errors import ActorLoadError, RegistrationRefused, describe
from actors._identity import identify
from actors._kill_points import KillPoints
from actors._ledger import Ledger
from actors._receipts import Receipts
from actors._spans import Spans
from actors._statistics import Counters, WorkerStatistics
from actors._toolhost import ToolHost
from actors._worker import Shared, Worker
from protocols import (
    MAX_NAME,
    MAX_PEERS,
    PROTOCOL_VERSION,
    ClientKeys,
    Name,
    Register,
    is_loopback,
)

MAX_CONCURRENCY = 4_096
"""The most a `Register` may declare as capacity."""
MAX_SUPERVISORS = MAX_PEERS
"""The most supervisors one actor serves: the endpoints it is given and those it learns."""
TEARDOWN_SECONDS = 30.0
"""How long `teardown` may take once every connection has stopped."""


class ClusterWorker:
    """Serves one actor to every supervisor it knows, one `Worker` each, until stopped or
    refused by one of them."""

    def __init__(
        self,
        actor: Agent | ToolHost,
        *,
        endpoints: Sequence[str],
        name: str | None = None,
        concurrency: int = 1,
        stop: anyio.Event | None = None,
        register_timeout: float = 5.0,
        keys: ClientKeys | None = None,
        ledger: Ledger | None = None,
        kill_points: KillPoints | None = None,
        spans: Spans | None = None,
        receipts: Receipts | None = None,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be in [1, {MAX_CONCURRENCY}], got {concurrency}")
        given = list(dict.fromkeys(endpoints))
        if not 1 <= len(given) <= MAX_SUPERVISORS:
            raise ValueError(
                f"serve 1 to {MAX_SUPERVISORS} supervisors' endpoints, got {len(given)}"
            )
        identity = identify(actor)
        if name is None:
            suffix = f"-{os.getpid()}-{secrets.token_hex(2)}"
            name = identity.role[: MAX_NAME - len(suffix)] + suffix
        try:
            msgspec.convert(name, Name)
        except msgspec.ValidationError as exc:
            reason = f"name {name!r} is not a valid name: {exc}"
            raise ActorLoadError(type(actor).__qualname__, reason) from None
        self.name = name
        self._actor = actor
        self._given = given
        self._stop = stop
        self._log = structlog.get_logger("baton.actors").bind(agent=name, role=identity.role)
        self._shared = Shared(
            actor=actor,
            registration=Register(
                protocol=PROTOCOL_VERSION,
                name=name,
                role=identity.role,
                kind=identity.kind,
                tools=list(identity.tools),
                capacity=concurrency,
                specs=list(identity.specs),
            ),
            counters=Counters(),
            calls=CallsInFlight(),
            stop=anyio.Event(),
            log=self._log,
            peers=self._learn,
            register_timeout=register_timeout,
            keys=keys,
            ledger=ledger,
            kill_points=kill_points,
            spans=spans,
            receipts=receipts,
        )
        self._workers: dict[str, Worker] = {}
        self._known: dict[str, None] = dict.fromkeys(given)
        """Every endpoint served or about to be, in the order it became known."""
        self._passed_over: set[str] = set()
        """Endpoints named as peers that this actor will not serve, each logged once."""
        self._learned, self._to_start = anyio.create_memory_object_stream[str](MAX_SUPERVISORS)
        self._refused: RegistrationRefused | None = None
        self._failed: zmq.ZMQError | None = None
        self._ran = False

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The supervisors' endpoints this actor serves or is about to, given or learned."""
        return tuple(self._known)

    def statistics(self) -> WorkerStatistics:
        """Counters over every connection since the actor started."""
        in_flight = sum(worker.in_flight for worker in self._workers.values())
        return self._shared.counters.freeze(in_flight, supervisors=len(self._workers))

    async def run(self) -> None:
        """Serve until `stop` is set; raise `RegistrationRefused` if a supervisor refuses us."""
        if self._ran:
            raise RuntimeError("an actor is served once")
        self._ran = True
        try:
            await self._actor.setup()
        except Exception as exc:
            # A setup that cannot complete (a model agent with no model configured) is a
            # fault of the code or its configuration, said once, not a traceback.
            name = type(self._actor).__qualname__
            raise ActorLoadError(name, f"setup failed: {describe(exc)}") from exc
        try:
            await self._serve()
        finally:
            with anyio.move_on_after(TEARDOWN_SECONDS, shield=True):
                await self._actor.teardown()
        if self._refused is not None:
            raise self._refused
        if self._failed is not None:
            raise self._failed

    # -- the actor's life ---------------------------------------------------------------

    async def _serve(self) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            async with anyio.create_task_group() as tg:
                watch = anyio.CancelScope()
                if self._stop is not None:
                    tg.start_soon(self._stop_when_set, self._stop, watch)
                for endpoint in self._given:
                    self._start(tg, context, endpoint, learned=False)
                async with self._to_start:
                    async for endpoint in self._to_start:
                        self._start(tg, context, endpoint, learned=True)
                # Stopping (the stream closes only then): the connections end by themselves.
                watch.cancel()
        finally:
            self._learned.close()
            self._to_start.close()
            with anyio.CancelScope(shield=True):
                # term() waits out the lingering `Bye`s, so it runs off the event loop.
                await anyio.to_thread.run_sync(context.term)
            stats = self.statistics()
            self._log.info(
                "actor.stopped",
                supervisors=stats.supervisors,
                tasks_started=stats.tasks_started,
                tasks_succeeded=stats.tasks_succeeded,
                tasks_failed=stats.tasks_failed,
                tool_calls=stats.tool_calls,
                bad_frames=stats.bad_frames,
                reconnects=stats.reconnects,
            )

    def _start(
        self,
        tg: anyio.abc.TaskGroup,
        context: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        *,
        learned: bool,
    ) -> None:
        worker = Worker(self._shared, endpoint)
        self._workers[endpoint] = worker
        tg.start_soon(self._run_worker, worker, context, learned)

    async def _run_worker(
        self, worker: Worker, context: zmq.Context[zmq.Socket[bytes]], learned: bool
    ) -> None:
        try:
            await worker.run(context)
        except RegistrationRefused as exc:
            # Refused for good by one supervisor: the actor stops, saying bye to the others.
            if self._refused is None:
                self._refused = exc
            self._stop_all()
        except zmq.ZMQError as exc:
            # ZeroMQ will not connect to the endpoint at all: a peer named so is passed
            # over; one given at the start is the caller's mistake, and stops the actor.
            self._log.error("actor.endpoint_refused", endpoint=worker.endpoint, reason=str(exc))
            if not learned:
                self._failed = self._failed or exc
                self._stop_all()
                return
            del self._workers[worker.endpoint]
            del self._known[worker.endpoint]
            self._passed_over.add(worker.endpoint)

    async def _stop_when_set(self, stop: anyio.Event, watch: anyio.CancelScope) -> None:
        with watch:
            await stop.wait()
            self._stop_all()

    def _stop_all(self) -> None:
        """Every connection says bye and ends; no supervisor is added any more."""
        self._shared.stop.set()
        self._learned.close()

    # -- supervisors learned from supervisors -------------------------------------------

    def _learn(self, endpoints: Sequence[str], named_by: str) -> None:
        """Serve the supervisors `named_by` names as its peers that are not served yet.

        Called while frames are handled, outside any task: the connections start in
        the actor's task group, from the stream.
        """
        for endpoint in endpoints:
            if endpoint in self._known or endpoint in self._passed_over:
                continue
            if self._shared.stop.is_set():
                return
            reason = self._why_not(endpoint)
            if reason is not None:
                self._passed_over.add(endpoint)
                self._log.warning(
                    "actor.peer_ignored", endpoint=endpoint, named_by=named_by, reason=reason
                )
                continue
            self._known[endpoint] = None
            self._log.info("actor.peer_learned", endpoint=endpoint, named_by=named_by)
            self._learned.send_nowait(endpoint)

    def _why_not(self, endpoint: str) -> str | None:
        """Why this actor will not serve the supervisor at `endpoint`, or None if it will."""
        if len(self._known) >= MAX_SUPERVISORS:
            return f"this actor serves {MAX_SUPERVISORS} supervisors already"
        if self._shared.keys is None and not is_loopback(endpoint):
            return "without keys an actor connects only to loopback or ipc:// endpoints"
        return None


async def serve(
    actor: Agent | ToolHost,
    *,
    endpoint: str | Sequence[str],
    name: str | None = None,
    concurrency: int = 1,
    stop: anyio.Event | None = None,
    register_timeout: float = 5.0,
    keys: ClientKeys | None = None,
    ledger: Ledger | None = None,
    kill_points: KillPoints | None = None,
    spans: Spans | None = None,
    receipts: Receipts | None = None,
) -> None:
    """Connect `actor` to the supervisors at `endpoint` and serve them until `stop` is set.

    `endpoint` is one agent-plane endpoint or several: the supervisors of one
    cluster. The actor also serves every supervisor they name as their peers,
    and keeps each connection (reconnecting with backoff) until stopped. Each
    task and tool call is answered to the supervisor that sent it, which owns
    its run; a keyed tool call that a second supervisor asks while it runs (it
    took the run over) gets the running call's reply, and the call runs once.

    With `keys`, the connections are CURVE-encrypted and the supervisors know the
    actor by its key (every supervisor of a cluster uses the same server key);
    without, they must be running insecure, and only loopback or `ipc://` peers
    are followed. A tool host with a `ledger` runs each side effect at most once
    per idempotency key. `kill_points` names places where the process kills
    itself, to rehearse crashes. With `spans`, each task and tool call the
    runtime traces runs inside a span that joins the run's trace.

    Runs at most `concurrency` tasks (or tool calls) at once for each supervisor:
    the capacity each registers, as each places work on its own. Raises
    `RegistrationRefused` if a supervisor refuses the actor for good (the others
    are told bye first), and `zmq.ZMQError` if ZeroMQ cannot use a given endpoint.
    """
    worker = ClusterWorker(
        actor,
        endpoints=[endpoint] if isinstance(endpoint, str) else endpoint,
        name=name,
        concurrency=concurrency,
        stop=stop,
        register_timeout=register_timeout,
        keys=keys,
        ledger=ledger,
        kill_points=kill_points,
        spans=spans,
        receipts=receipts,
    )
    await worker.run()

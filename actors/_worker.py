"""The worker: connect, register, heartbeat, and reconnect until stopped or refused.

Frames are read in the event loop's reader callback and handled by the inbox;
what the pool produces goes out through the sender, a batch per turn of the
event loop. The pool runs the tasks and tool calls. When no connection is
live, what the pool produces waits in the outbox.
"""

from __future__ import annotations

import os
import random
import secrets

import anyio
import anyio.to_thread
import msgspec
import structlog
import zmq

from actors._agent import Agent
from actors._connection import LOST_AFTER_BEATS, Connection
from actors._errors import ActorLoadError, RegistrationRefused
from actors._identity import identify
from actors._inbox import Inbox
from actors._kill_points import KillPoints
from actors._ledger import Ledger
from actors._link import Backoff, Link
from actors._pool import Pool
from actors._sender import Sender
from actors._spans import Spans
from actors._statistics import Counters, WorkerStatistics
from actors._toolhost import ToolHost
from protocols import (
    MAX_NAME,
    PROTOCOL_VERSION,
    Bye,
    ClientKeys,
    Heartbeat,
    Name,
    Register,
    actor_side_codec,
)

MAX_CONCURRENCY = 4_096
"""The most a `Register` may declare as capacity."""
STOP_LINGER_MS = 250
"""How long a stopping actor lets its `Bye` drain before the socket goes."""
TEARDOWN_SECONDS = 30.0
"""How long `teardown` may take once the worker has stopped."""


class Worker:
    """Serves one actor over one connection at a time, until stopped or refused."""

    def __init__(
        self,
        actor: Agent | ToolHost,
        *,
        endpoint: str,
        name: str | None = None,
        concurrency: int = 1,
        stop: anyio.Event | None = None,
        register_timeout: float = 5.0,
        keys: ClientKeys | None = None,
        ledger: Ledger | None = None,
        kill_points: KillPoints | None = None,
        spans: Spans | None = None,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be in [1, {MAX_CONCURRENCY}], got {concurrency}")
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
        self._kind = identity.kind
        self._endpoint = endpoint
        self._keys = keys
        self._stop = stop
        self._register_timeout = register_timeout
        self._codec = actor_side_codec()
        self._registration = Register(
            protocol=PROTOCOL_VERSION,
            name=name,
            role=identity.role,
            kind=identity.kind,
            tools=list(identity.tools),
            capacity=concurrency,
            specs=list(identity.specs),
        )
        self._log = structlog.get_logger("baton.actors").bind(agent=name, role=identity.role)
        self._rng = random.Random()
        self._counters = Counters()
        self._sender = sender = Sender(self._codec, self._counters, self._in_flight)
        self._pool = Pool(
            actor,
            concurrency,
            codec=self._codec,
            caller=sender,
            send=sender.enqueue,
            counters=self._counters,
            log=self._log,
            ledger=ledger,
            kill_points=kill_points,
            spans=spans,
        )
        self._inbox = Inbox(
            identity.kind,
            self._codec,
            self._pool,
            sender,
            counters=self._counters,
            log=self._log,
            endpoint=endpoint,
            register=self._register,
        )
        self._stopping = False
        self._refused: RegistrationRefused | None = None
        self._ran = False

    def statistics(self) -> WorkerStatistics:
        return self._counters.freeze(self._pool.in_flight)

    def _in_flight(self) -> int:
        return self._pool.in_flight

    async def run(self) -> None:
        """Serve until `stop` is set; raise `RegistrationRefused` if the runtime refuses us."""
        if self._ran:
            raise RuntimeError("a Worker runs once")
        self._ran = True
        await self._actor.setup()
        try:
            await self._serve()
        finally:
            with anyio.move_on_after(TEARDOWN_SECONDS, shield=True):
                await self._actor.teardown()
        if self._refused is not None:
            raise self._refused

    # -- the worker's life --------------------------------------------------------------

    async def _serve(self) -> None:
        context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self._pool.run)
                if self._stop is not None:
                    tg.start_soon(self._stop_when_set, self._stop, tg.cancel_scope)
                await self._connect_forever(context)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                # term() waits out the lingering `Bye`, so it runs off the event loop.
                await anyio.to_thread.run_sync(context.term)
            stats = self.statistics()
            self._log.info(
                "actor.stopped",
                tasks_started=stats.tasks_started,
                tasks_succeeded=stats.tasks_succeeded,
                tasks_failed=stats.tasks_failed,
                tool_calls=stats.tool_calls,
                bad_frames=stats.bad_frames,
                reconnects=stats.reconnects,
            )

    async def _stop_when_set(self, stop: anyio.Event, scope: anyio.CancelScope) -> None:
        await stop.wait()
        self._stopping = True
        live = self._sender.live
        if live is not None:
            live.send_nowait(self._codec.encode(Bye(reason="stopping")))
        self._log.info("actor.stopping", in_flight=self._pool.in_flight)
        scope.cancel()

    async def _connect_forever(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        backoff = Backoff(self._rng)
        while True:
            try:
                welcomed = await self._connection(context)
            except RegistrationRefused as exc:
                self._log.error("actor.registration_refused", code=exc.code, message=exc.message)
                self._refused = exc
                return
            if welcomed:
                backoff.reset()
            delay = backoff.next()
            self._log.info("actor.reconnecting", endpoint=self._endpoint, retry_in=round(delay, 3))
            await anyio.sleep(delay)
            self._counters.reconnects += 1

    # -- one connection -----------------------------------------------------------------

    async def _connection(self, context: zmq.Context[zmq.Socket[bytes]]) -> bool:
        """Serve one connection until it ends; True if the runtime welcomed us on it.

        Frames are handled in the event loop's reader callback as they arrive,
        which spares each one the wake-up of this coroutine; the coroutine keeps
        the timers and ends the connection when the callback says so.
        """
        conn = Connection(Link(context, self._endpoint, self._keys))
        conn.link.on_ready(lambda: self._on_readable(conn))
        try:
            self._register(conn)
            while True:
                conn.sleeps_until = conn.wake_at()
                await conn.link.wait_readable(conn.sleeps_until)
                if conn.refused is not None:
                    raise conn.refused
                failure = conn.link.failed()
                if failure is not None:
                    raise RegistrationRefused("unauthorized", failure.reason)
                if conn.ended or self._inbox.drain(conn) or not self._tick(conn):
                    return conn.welcomed
                outbox = self._sender.outbox
                if self._sender.live is conn.link and outbox:
                    outbox.flush(conn.link)
        finally:
            if self._sender.live is conn.link:
                self._sender.live = None
            conn.link.close(linger_ms=STOP_LINGER_MS if self._stopping else 0)

    def _on_readable(self, conn: Connection) -> None:
        if conn.ended or conn.refused is not None:
            return
        try:
            conn.ended = self._inbox.drain(conn)
        except RegistrationRefused as exc:
            conn.refused = exc
        if conn.ended or conn.refused is not None:
            conn.link.wake()
            return
        outbox = self._sender.outbox
        if self._sender.live is conn.link and outbox and outbox.flush(conn.link):
            # The drain left the descriptor armed; these sends may have disarmed it.
            conn.link.recheck()
        if conn.wake_at() < conn.sleeps_until:
            # A welcome set the heartbeat: the coroutine must look at its timers sooner.
            conn.link.wake()

    def _register(self, conn: Connection) -> None:
        conn.registered = False
        conn.deadline = anyio.current_time() + self._register_timeout
        # What still runs from an earlier session is declared, so that the runtime takes
        # it up instead of placing it twice or counting this actor idle.
        register = msgspec.structs.replace(
            self._registration,
            tasks=self._pool.running_tasks(),
            calls=self._pool.running_calls(),
        )
        conn.link.send_nowait(self._codec.encode(register))

    def _tick(self, conn: Connection) -> bool:
        """Run the connection's timers; False when it should be dropped."""
        now = anyio.current_time()
        if not conn.registered:
            if now < conn.deadline:
                return True
            self._log.warning(
                "actor.runtime_unreachable",
                endpoint=self._endpoint,
                waited=self._register_timeout,
            )
            return False
        if now - conn.last_seen >= LOST_AFTER_BEATS * conn.interval:
            self._log.warning(
                "actor.runtime_lost",
                endpoint=self._endpoint,
                silent_for=round(now - conn.last_seen, 3),
                in_flight=self._pool.in_flight,
            )
            return False
        if now >= conn.next_beat:
            conn.link.send_nowait(self._codec.encode(Heartbeat(in_flight=self._pool.in_flight)))
            conn.next_beat = now + conn.interval
        return True


async def serve(
    actor: Agent | ToolHost,
    *,
    endpoint: str,
    name: str | None = None,
    concurrency: int = 1,
    stop: anyio.Event | None = None,
    register_timeout: float = 5.0,
    keys: ClientKeys | None = None,
    ledger: Ledger | None = None,
    kill_points: KillPoints | None = None,
    spans: Spans | None = None,
) -> None:
    """Connect `actor` to the runtime at `endpoint` and serve until `stop` is set.

    With `keys`, the connection is CURVE-encrypted and the runtime knows the
    actor by its key; without, the runtime must be running insecure. A tool
    host with a `ledger` runs each side effect at most once per idempotency key.
    `kill_points` names places where the process kills itself, to rehearse crashes.
    With `spans`, each task and tool call the runtime traces runs inside a span that
    joins the run's trace.

    Runs at most `concurrency` tasks (or tool calls) at once. Reconnects with
    backoff whenever the runtime is unreachable or goes silent; raises
    `RegistrationRefused` if the runtime refuses the actor for good.
    """
    worker = Worker(
        actor,
        endpoint=endpoint,
        name=name,
        concurrency=concurrency,
        stop=stop,
        register_timeout=register_timeout,
        keys=keys,
        ledger=ledger,
        kill_points=kill_points,
        spans=spans,
    )
    await worker.run()

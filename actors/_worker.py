"""One connection's worker: connect, register, heartbeat, and reconnect until stopped or
refused.

Frames are read in the event loop's reader callback and handled by the inbox;
what the pool produces goes out through the sender, a batch per turn of the
event loop. The pool runs the tasks and tool calls this connection's
supervisor sends. When the connection is down, what the pool produces waits
in the outbox for the next one: it belongs to that supervisor, which owns the
runs it sent.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import msgspec
import zmq
from structlog.typing import FilteringBoundLogger

from actors._agent import Agent
from actors._calls import CallsInFlight
from actors._connection import LOST_AFTER_BEATS, Connection
from actors._errors import RegistrationRefused
from actors._inbox import Inbox
from actors._kill_points import KillPoints
from actors._ledger import Ledger
from actors._link import Backoff, Link
from actors._pool import Pool
from actors._receipts import Receipts
from actors._sender import Sender
from actors._spans import Spans
from actors._statistics import Counters
from actors._toolhost import ToolHost
from protocols import (
    Bye,
    ClientKeys,
    Heartbeat,
    Register,
    actor_side_codec,
)

STOP_LINGER_MS = 250
"""How long a stopping actor lets its `Bye` drain before the socket goes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Shared:
    """What every connection of one actor process shares: one actor, one ledger, one stop,
    one registry of the tool calls running, whichever supervisor sent them."""

    actor: Agent | ToolHost
    registration: Register
    """What each connection registers with; its capacity is per supervisor."""
    counters: Counters
    calls: CallsInFlight
    stop: anyio.Event
    """Set once the actor stops: each connection says bye and ends."""
    log: FilteringBoundLogger
    peers: Callable[[Sequence[str], str], None]
    """Hears the endpoints of other supervisors a supervisor names, and whose endpoint
    named them."""
    register_timeout: float = 5.0
    keys: ClientKeys | None = None
    ledger: Ledger | None = None
    kill_points: KillPoints | None = None
    spans: Spans | None = None
    receipts: Receipts | None = None
    """Where each frame received is noted, if anywhere."""


class Worker:
    """Serves one actor over one connection at a time to one supervisor, until stopped or
    refused."""

    def __init__(self, shared: Shared, endpoint: str) -> None:
        self.endpoint = endpoint
        self._shared = shared
        self._kind = shared.registration.kind
        self._keys = shared.keys
        self._register_timeout = shared.register_timeout
        self._codec = actor_side_codec()
        self._registration = shared.registration
        self._log = shared.log
        self._rng = random.Random()
        self._counters = counters = shared.counters
        self._sender = sender = Sender(self._codec, counters, self._in_flight)
        self._pool = Pool(
            shared.actor,
            shared.registration.capacity,
            codec=self._codec,
            caller=sender,
            send=sender.enqueue,
            reporter=sender,
            counters=counters,
            log=self._log,
            calls=shared.calls,
            ledger=shared.ledger,
            kill_points=shared.kill_points,
            spans=shared.spans,
        )
        self._inbox = Inbox(
            self._kind,
            self._codec,
            self._pool,
            sender,
            counters=counters,
            log=self._log,
            endpoint=endpoint,
            register=self._register,
            peers=shared.peers,
            receipts=shared.receipts,
        )
        self._stopping = False
        self._ran = False

    @property
    def in_flight(self) -> int:
        """Tasks or tool calls of this connection's supervisor admitted and not finished."""
        return self._pool.in_flight

    def _in_flight(self) -> int:
        return self._pool.in_flight

    async def run(self, context: zmq.Context[zmq.Socket[bytes]]) -> None:
        """Serve until the shared stop is set; raise `RegistrationRefused` if the supervisor
        refuses us for good, `zmq.ZMQError` if ZeroMQ cannot use the endpoint."""
        if self._ran:
            raise RuntimeError("a Worker runs once")
        self._ran = True
        ended: RegistrationRefused | zmq.ZMQError | None = None
        async with anyio.create_task_group() as tg:
            await tg.start(self._pool.run)
            tg.start_soon(self._stop_when_set, tg.cancel_scope)
            try:
                ended = await self._connect_forever(context)
            except zmq.ZMQError as exc:
                # ZeroMQ cannot use the endpoint at all; raised outside the task group,
                # so that the caller sees it as it is.
                ended = exc
            tg.cancel_scope.cancel()
        if ended is not None:
            raise ended

    # -- the worker's life --------------------------------------------------------------

    async def _stop_when_set(self, scope: anyio.CancelScope) -> None:
        await self._shared.stop.wait()
        self._stopping = True
        live = self._sender.live
        if live is not None:
            live.send_nowait(self._codec.encode(Bye(reason="stopping")))
        self._log.info("actor.stopping", endpoint=self.endpoint, in_flight=self._pool.in_flight)
        scope.cancel()

    async def _connect_forever(
        self, context: zmq.Context[zmq.Socket[bytes]]
    ) -> RegistrationRefused:
        """Connect again and again, with backoff, until refused for good (or cancelled)."""
        backoff = Backoff(self._rng)
        while True:
            try:
                welcomed = await self._connection(context)
            except RegistrationRefused as exc:
                self._log.error(
                    "actor.registration_refused",
                    endpoint=self.endpoint,
                    code=exc.code,
                    message=exc.message,
                )
                return exc
            if welcomed:
                backoff.reset()
            delay = backoff.next()
            self._log.info("actor.reconnecting", endpoint=self.endpoint, retry_in=round(delay, 3))
            await anyio.sleep(delay)
            self._counters.reconnects += 1

    # -- one connection -----------------------------------------------------------------

    async def _connection(self, context: zmq.Context[zmq.Socket[bytes]]) -> bool:
        """Serve one connection until it ends; True if the runtime welcomed us on it.

        Frames are handled in the event loop's reader callback as they arrive,
        which spares each one the wake-up of this coroutine; the coroutine keeps
        the timers and ends the connection when the callback says so.
        """
        conn = Connection(Link(context, self.endpoint, self._keys))
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
                endpoint=self.endpoint,
                waited=self._register_timeout,
            )
            return False
        if now - conn.last_seen >= LOST_AFTER_BEATS * conn.interval:
            self._log.warning(
                "actor.runtime_lost",
                endpoint=self.endpoint,
                silent_for=round(now - conn.last_seen, 3),
                in_flight=self._pool.in_flight,
            )
            return False
        if now >= conn.next_beat:
            conn.link.send_nowait(self._codec.encode(Heartbeat(in_flight=self._pool.in_flight)))
            conn.next_beat = now + conn.interval
        return True

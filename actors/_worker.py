"""The worker loop: connect, register, heartbeat, dispatch, report.

One coroutine reads: it waits for the socket, drains a burst of frames without
blocking, and dispatches each by type. One coroutine writes: it sends what the
pool produced, a batch per wake-up. The pool runs the tasks and tool calls.
When no connection is live, what the pool produces waits in the outbox.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import secrets

import anyio
import anyio.to_thread
import msgspec
import structlog
import zmq

from actors._agent import Agent
from actors._errors import ActorLoadError, RegistrationRefused, ToolFailed
from actors._identity import identify
from actors._kill_points import KillPoints
from actors._ledger import Ledger
from actors._link import Backoff, Link
from actors._outbox import Outbox
from actors._pool import Pool
from actors._spans import Spans
from actors._statistics import Counters, WorkerStatistics
from actors._task import Task
from actors._toolhost import ToolHost
from protocols import (
    MAX_NAME,
    PROTOCOL_VERSION,
    Arguments,
    Assign,
    Bye,
    Cancel,
    ClientKeys,
    Error,
    ErrorCode,
    Heartbeat,
    Message,
    Name,
    ProtocolError,
    Register,
    RuntimeMessage,
    ToolCall,
    ToolReply,
    ToolSpec,
    Welcome,
    actor_side_codec,
)

FATAL_CODES: frozenset[str] = frozenset(
    {"incompatible_protocol", "role_refused", "tool_refused", "unauthorized", "invalid_message"}
)
"""Refusals of a registration that a retry would meet again."""

MAX_CONCURRENCY = 4_096
"""The most a `Register` may declare as capacity."""
LOST_AFTER_BEATS = 3
BATCH = 1_024
"""Most frames handled per wake-up, so timers still run while the runtime floods us."""
STOP_LINGER_MS = 250
"""How long a stopping actor lets its `Bye` drain before the socket goes."""
TEARDOWN_SECONDS = 30.0
"""How long `teardown` may take once the worker has stopped."""


class _Connection:
    """One socket's session with the runtime."""

    __slots__ = (
        "deadline",
        "ended",
        "interval",
        "last_seen",
        "link",
        "next_beat",
        "refused",
        "registered",
        "sleeps_until",
        "welcomed",
    )

    def __init__(self, link: Link) -> None:
        self.link = link
        self.ended = False
        """The runtime said Bye while the reader callback was draining."""
        self.refused: RegistrationRefused | None = None
        """A refusal met by the reader callback, for the connection's coroutine to raise."""
        self.registered = False
        self.sleeps_until = 0.0
        """When the connection's coroutine will next look at its timers."""
        self.welcomed = False
        self.deadline = 0.0
        self.interval = 0.0
        self.last_seen = anyio.current_time()
        self.next_beat = 0.0

    def wake_at(self) -> float:
        if not self.registered:
            return self.deadline
        return min(self.next_beat, self.last_seen + LOST_AFTER_BEATS * self.interval)


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
        self._outbox = Outbox()
        self._pool = Pool(
            actor,
            concurrency,
            codec=self._codec,
            caller=self,
            send=self._enqueue,
            counters=self._counters,
            log=self._log,
            ledger=ledger,
            kill_points=kill_points,
            spans=spans,
        )
        self._call_ids = itertools.count(1)
        self._specs: dict[str, ToolSpec] = {}
        self._flush_scheduled = False
        self._draining = False
        """Frames are being handled; steps they start may answer before the next is read."""
        self._answered = False
        """A result already left during this drain: the ones after it wait for its end."""
        self._live: _Connection | None = None
        self._stopping = False
        self._refused: RegistrationRefused | None = None
        self._ran = False

    def statistics(self) -> WorkerStatistics:
        return self._counters.freeze(self._pool.in_flight)

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

    # -- the ToolCaller protocol, used by each task's `Tools` ---------------------------

    async def call_tool(self, task: Task, tool: str, args: Arguments, key: str) -> ToolReply:
        call_id = next(self._call_ids)
        call = ToolCall(
            call_id=call_id,
            run_id=task.run_id,
            step=task.step,
            attempt=task.attempt,
            tool=tool,
            args=args,
            idempotency_key=key,
        )
        frame = self._codec.encode(call)
        if len(frame) > self._codec.max_frame:
            text = f"the call is {len(frame)} bytes; the limit is {self._codec.max_frame}"
            raise ToolFailed(tool, "invalid_input", text)
        pending = self._outbox.add_call(call_id, frame)
        self._counters.tool_calls += 1
        if not self._send_now(frame):
            self._outbox.put_call(call_id)
        self._schedule_flush()
        try:
            await pending.done.wait()
        finally:
            self._outbox.drop_call(call_id)
        assert pending.reply is not None
        return pending.reply

    def tool_specs(self) -> dict[str, ToolSpec]:
        return self._specs

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
        if self._live is not None:
            self._live.link.send_nowait(self._codec.encode(Bye(reason="stopping")))
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

    # -- one connection: the reading side ------------------------------------------------

    async def _connection(self, context: zmq.Context[zmq.Socket[bytes]]) -> bool:
        """Serve one connection until it ends; True if the runtime welcomed us on it.

        Frames are handled in the event loop's reader callback as they arrive,
        which spares each one the wake-up of this coroutine; the coroutine keeps
        the timers and ends the connection when the callback says so.
        """
        conn = _Connection(Link(context, self._endpoint, self._keys))
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
                if conn.ended or self._drain(conn) or not self._tick(conn):
                    return conn.welcomed
                if self._live is conn and self._outbox:
                    self._outbox.flush(conn.link)
        finally:
            if self._live is conn:
                self._live = None
            conn.link.close(linger_ms=STOP_LINGER_MS if self._stopping else 0)

    def _on_readable(self, conn: _Connection) -> None:
        if conn.ended or conn.refused is not None:
            return
        try:
            conn.ended = self._drain(conn)
        except RegistrationRefused as exc:
            conn.refused = exc
        if conn.ended or conn.refused is not None:
            conn.link.wake()
            return
        if self._live is conn and self._outbox and self._outbox.flush(conn.link):
            # The drain left the descriptor armed; these sends may have disarmed it.
            conn.link.recheck()
        if conn.wake_at() < conn.sleeps_until:
            # A welcome set the heartbeat: the coroutine must look at its timers sooner.
            conn.link.wake()

    def _register(self, conn: _Connection) -> None:
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

    def _tick(self, conn: _Connection) -> bool:
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

    def _drain(self, conn: _Connection) -> bool:
        """Handle the frames waiting on the connection; True when the connection should end."""
        received = False
        self._draining = True
        self._answered = False
        try:
            for _ in range(BATCH):
                got = conn.link.receive_nowait()
                if got is None:
                    break
                received = True
                frame, extra = got
                if extra:
                    self._bad_frame("multipart", f"{extra + 1} parts; expected 1", len(frame))
                    continue
                try:
                    message = self._codec.decode(frame)
                except ProtocolError as exc:
                    self._bad_frame(exc.reason, exc.detail, exc.size)
                    continue
                if self._dispatch(conn, message):
                    return True
            else:
                # Frames are left for later: have the reader called again.
                conn.link.recheck()
        finally:
            self._draining = self._answered = False
            if received:
                conn.last_seen = conn.link.time()
        return False

    def _bad_frame(self, reason: str, detail: str, size: int) -> None:
        self._counters.bad_frames += 1
        self._log.warning("actor.bad_frame", reason=reason, detail=detail, size=size)

    def _dispatch(self, conn: _Connection, message: RuntimeMessage) -> bool:
        match message:
            case Assign():
                self._on_assign(conn, message)
            case ToolReply():
                if not self._outbox.resolve(message):
                    self._log.info("actor.unmatched_tool_reply", call_id=message.call_id)
            case Cancel():
                self._pool.cancel((message.run_id, message.step, message.attempt))
            case ToolCall():
                self._on_tool_call(conn, message)
            case Heartbeat():
                pass
            case Welcome():
                self._on_welcome(conn, message)
            case Error():
                return self._on_error(conn, message)
            case Bye():
                self._log.info("actor.runtime_bye", reason=message.reason)
                return True
        return False

    def _on_welcome(self, conn: _Connection, welcome: Welcome) -> None:
        if welcome.protocol != PROTOCOL_VERSION:
            raise RegistrationRefused(
                "incompatible_protocol",
                f"the runtime speaks protocol {welcome.protocol}, this actor {PROTOCOL_VERSION}",
            )
        conn.registered = conn.welcomed = True
        conn.interval = welcome.heartbeat_ms / 1000
        conn.next_beat = anyio.current_time() + conn.interval
        self._specs = {spec.name: spec for spec in welcome.tool_specs}
        self._live = conn
        self._pool.new_session()
        self._pool.log_as(welcome.session)
        self._log.info(
            "actor.registered",
            session=welcome.session,
            endpoint=self._endpoint,
            heartbeat_ms=welcome.heartbeat_ms,
            in_flight=self._pool.in_flight,
        )
        self._outbox.resend_calls()
        self._outbox.flush(conn.link)

    def _on_error(self, conn: _Connection, error: Error) -> bool:
        """Act on the runtime's refusal; True when this connection should end."""
        if error.code in FATAL_CODES and (not conn.registered or error.code == "unauthorized"):
            # Refused at registration, or our key was withdrawn while we served.
            raise RegistrationRefused(error.code, error.message)
        if error.code == "session_exists" and not conn.registered:
            # Our key's previous session (a process that died) has not yet been
            # noticed as lost; a later connection will find it gone.
            self._log.warning("actor.session_exists", message=error.message)
            return True
        if error.code == "not_registered" and conn.registered:
            self._log.warning("actor.not_registered", message=error.message, ref=error.ref)
            if self._live is conn:
                self._live = None
            self._register(conn)
            return False
        self._log.warning(
            "actor.runtime_error", code=error.code, message=error.message, ref=error.ref
        )
        return False

    def _on_assign(self, conn: _Connection, assign: Assign) -> None:
        if self._kind != "agent":
            text = "a tool host runs no steps"
            self._reply(conn, Error(code="unexpected_message", message=text, ref=_ref(assign)))
        elif self._pool.running((assign.run_id, assign.step, assign.attempt)):
            self._log.warning("actor.duplicate_assign", ref=_ref(assign))
        elif not self._pool.admit(assign):
            capacity = self._pool.capacity
            ref = _ref(assign)
            self._log.warning("actor.overloaded", ref=ref, capacity=capacity)
            self._reply(conn, Error(code="overloaded", message=f"capacity {capacity}", ref=ref))

    def _on_tool_call(self, conn: _Connection, call: ToolCall) -> None:
        refusal: tuple[ErrorCode, str] | None = None
        if self._kind != "tool_host":
            refusal = ("unknown_tool", "an agent serves no tools")
        elif (attached := self._pool.attach(call)) == "attached":
            self._log.info(
                "tool.repeat_attached",
                run_id=call.run_id,
                step=call.step,
                tool=call.tool,
                idempotency_key=call.idempotency_key,
            )
        elif attached == "conflict":
            text = (
                f"a call with key {call.idempotency_key!r} and other arguments is running; "
                "a reply never answers a different call"
            )
            self._log.warning("tool.conflict", idempotency_key=call.idempotency_key, reason=text)
            refusal = ("idempotency_conflict", text)
        elif not self._pool.admit(call):
            refusal = ("overloaded", f"capacity {self._pool.capacity}")
        if refusal is not None:
            code, text = refusal
            self._reply(conn, ToolReply(call_id=call.call_id, ok=False, error=code, message=text))

    def _reply(self, conn: _Connection, message: Message) -> None:
        """Answer now or never: holding refusals would let a flood grow the outbox."""
        conn.link.send_nowait(self._codec.encode(message))

    # -- the writing side ---------------------------------------------------------------

    def _enqueue(self, frame: bytes) -> None:
        if self._pool.in_flight <= 1 and not self._answered and self._send_now(frame):
            # The only task: no burst to wait for, so the result leaves at once.
            if self._draining:
                # The drain reads on after this and its caller flushes what waits.
                self._answered = True
                return
            live = self._live
            if live is not None:
                live.link.recheck()
            return
        # Otherwise results go out in one burst per turn of the event loop: a send to
        # an idle ZeroMQ I/O thread costs a wake-up, and the sends after it do not.
        self._outbox.put(frame)
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        """Flush the outbox and re-arm the reader once this turn's sends are done.

        The flush runs before the event loop next sleeps, so a frame whose
        arrival a send hid from the reader is still seen without delay.
        """
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_outbox)

    def _flush_outbox(self) -> None:
        self._flush_scheduled = False
        live = self._live
        if live is not None:
            self._outbox.flush(live.link)
            live.link.recheck()

    def _send_now(self, frame: bytes) -> bool:
        """Send `frame` at once if a connection is live and nothing is queued before it."""
        live = self._live
        return live is not None and not self._outbox and live.link.send_nowait(frame)


def _ref(assign: Assign) -> str:
    return f"{assign.run_id}/{assign.step}/{assign.attempt}"


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

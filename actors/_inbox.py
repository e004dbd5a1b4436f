"""The reading side of a worker: frames from the runtime, each handled by its type.

A burst of frames is drained without blocking, up to a bound so that timers
still run while the runtime floods us. An assignment or a tool call goes to
the pool, or is refused at once if it has no room; a refusal of our
registration that a retry would meet again ends the worker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from structlog.typing import FilteringBoundLogger

from actors._connection import Connection
from actors._errors import RegistrationRefused
from actors._pool import Pool
from actors._sender import Sender
from actors._statistics import Counters
from protocols import (
    PROTOCOL_VERSION,
    ActorKind,
    Assign,
    Bye,
    Cancel,
    Codec,
    Error,
    ErrorCode,
    Heartbeat,
    Message,
    Peers,
    ProtocolError,
    RuntimeMessage,
    ToolCall,
    ToolReply,
    Welcome,
)

FATAL_CODES: frozenset[str] = frozenset(
    {"incompatible_protocol", "role_refused", "tool_refused", "unauthorized", "invalid_message"}
)
"""Refusals of a registration that a retry would meet again."""

BATCH = 1_024
"""Most frames handled per wake-up, so timers still run while the runtime floods us."""


class Inbox:
    """Handles what the runtime sends on a connection."""

    def __init__(
        self,
        kind: ActorKind,
        codec: Codec[RuntimeMessage],
        pool: Pool,
        sender: Sender,
        *,
        counters: Counters,
        log: FilteringBoundLogger,
        endpoint: str,
        register: Callable[[Connection], None],
        peers: Callable[[Sequence[str], str], None],
    ) -> None:
        """`register` sends our registration again on a connection; `peers` hears the
        endpoints of the other supervisors the runtime names, and the endpoint it serves."""
        self._kind = kind
        self._codec = codec
        self._pool = pool
        self._sender = sender
        self._counters = counters
        self._log = log
        self._endpoint = endpoint
        self._register = register
        self._peers = peers

    def drain(self, conn: Connection) -> bool:
        """Handle the frames waiting on the connection; True when the connection should end."""
        received = False
        self._sender.draining(True)
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
            self._sender.draining(False)
            if received:
                conn.last_seen = conn.link.time()
        return False

    def _bad_frame(self, reason: str, detail: str, size: int) -> None:
        self._counters.bad_frames += 1
        self._log.warning("actor.bad_frame", reason=reason, detail=detail, size=size)

    def _dispatch(self, conn: Connection, message: RuntimeMessage) -> bool:
        match message:
            case Assign():
                self._on_assign(conn, message)
            case ToolReply():
                if not self._sender.outbox.resolve(message):
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
            case Peers():
                self._peers(message.endpoints, self._endpoint)
        return False

    def _on_welcome(self, conn: Connection, welcome: Welcome) -> None:
        if welcome.protocol != PROTOCOL_VERSION:
            raise RegistrationRefused(
                "incompatible_protocol",
                f"the runtime speaks protocol {welcome.protocol}, this actor {PROTOCOL_VERSION}",
            )
        conn.welcome(welcome.heartbeat_ms)
        sender = self._sender
        sender.specs = {spec.name: spec for spec in welcome.tool_specs}
        sender.live = conn.link
        self._pool.new_session()
        self._pool.log_as(welcome.session)
        self._log.info(
            "actor.registered",
            session=welcome.session,
            endpoint=self._endpoint,
            heartbeat_ms=welcome.heartbeat_ms,
            in_flight=self._pool.in_flight,
        )
        sender.outbox.resend_calls()
        sender.outbox.flush(conn.link)
        if welcome.peers:
            self._peers(welcome.peers, self._endpoint)

    def _on_error(self, conn: Connection, error: Error) -> bool:
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
            if self._sender.live is conn.link:
                self._sender.live = None
            self._register(conn)
            return False
        self._log.warning(
            "actor.runtime_error", code=error.code, message=error.message, ref=error.ref
        )
        return False

    def _on_assign(self, conn: Connection, assign: Assign) -> None:
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

    def _on_tool_call(self, conn: Connection, call: ToolCall) -> None:
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

    def _reply(self, conn: Connection, message: Message) -> None:
        """Answer now or never: holding refusals would let a flood grow the outbox."""
        conn.link.send_nowait(self._codec.encode(message))


def _ref(assign: Assign) -> str:
    return f"{assign.run_id}/{assign.step}/{assign.attempt}"

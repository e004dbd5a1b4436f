"""The agent plane: actors register, take steps, call tools and models, and are lost.

It reads each frame, checks who sent it, and hands it to the part whose job
it is: the registrar (sessions), the placement (steps on agents), the tool
broker (calls between agents and hosts) or the model calls (those agents
report). Whatever must be journaled a part hands to the supervisor as an event
through `AgentHost`, and whatever it sends waits in the supervisor's outbox for
the batch's commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog
import zmq

from protocols import (
    ActorMessage,
    Bye,
    Codec,
    Error,
    ErrorCode,
    Heartbeat,
    ModelCall,
    ProtocolError,
    Register,
    StepFailure,
    StepResult,
    ToolCall,
    ToolReply,
    clip,
)
from runtime.engine._events import Dispatch, ForwardToolCall, RefuseToolCall
from runtime.planes._agent_host import AgentHost, AgentPlaneCounters, Outlet, action
from runtime.planes._assignments import Assignments
from runtime.planes._broker import ToolBroker
from runtime.planes._model_calls import ModelCalls
from runtime.planes._peers import PeerList, no_peers
from runtime.planes._placement import Placement
from runtime.planes._refusals import REPLY_TEXT
from runtime.planes._registration import Registrar
from runtime.planes._restarts import RestartBudget
from runtime.planes._roster import Roster, roster
from runtime.planes._sessions import Registry, Session, TaskKey
from runtime.security._authenticator import PrincipalBook
from runtime.security._principals import Principal
from runtime.workflow._graph import Graph

log = structlog.get_logger("baton.runtime")


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
        peers: Callable[[], Sequence[str]] = no_peers,
    ) -> None:
        """`trace` gives the traceparent an assignment or forwarded tool call carries, when
        the runtime traces (`runtime.observe._trace_ids.traceparent`). `peers` gives the
        agent-plane endpoints of the cluster's other supervisors, which each `Welcome`
        names (with those `announce_peers` was last given)."""
        self._host = host
        self._codec = codec
        self.counters = AgentPlaneCounters()
        self._outlet = outlet = Outlet(host, codec, trace or _untraced)
        self._registry = registry = Registry()
        self._restarts = restarts = RestartBudget(restart_budget, restart_window)
        assignments = Assignments(registry, codec, outlet.trace)
        self._placement = Placement(
            host, outlet, registry, self.counters, restarts, assignments=assignments
        )
        self._models = ModelCalls(host, outlet, self.counters)
        self._broker = ToolBroker(host, outlet, registry, self.counters)
        self._registrar = Registrar(
            host, outlet, codec, registry,
            placement=self._placement, broker=self._broker, graphs=graphs,
            heartbeat=heartbeat, secure=secure, peers=PeerList(peers),
        )  # fmt: skip

    def agents_by_role(self) -> dict[str, int]:
        return self._registry.count_by_role()

    def queued_steps(self) -> int:
        return self._placement.queued()

    def roster(self, wall: float) -> Roster:
        """The actors connected now and each role's load, `wall` being the wall time now."""
        return roster(
            self._registry, self._placement, self._restarts,
            monotonic=self._host.monotonic(), wall=wall,
        )  # fmt: skip

    def dispatch(self, command: Dispatch) -> None:
        """Queue a step for its role and place it if an agent has room; with the role
        crash-looping, the attempt fails at once and goes to its failure policy."""
        self._placement.dispatch(command)

    def withdraw(self, key: TaskKey, reason: str) -> None:
        self._placement.withdraw(key, reason)

    def forward_tool_call(self, command: ForwardToolCall) -> None:
        self._broker.forward(command)

    def refuse_tool_call(self, command: RefuseToolCall) -> None:
        """Answer an agent's call the engine refused; nothing reaches a host."""
        self._broker.refuse(command)

    def heartbeat(self, now: float) -> None:
        """Beat to every actor; lose those silent for three intervals."""
        self._registrar.heartbeat(now)

    def announce_peers(self, endpoints: Sequence[str]) -> None:
        """The cluster's other supervisors changed: send `Peers` to every live session, and
        name the same in every `Welcome` from now on (besides the static peers).

        The frames leave with the current batch. ValueError if an endpoint is not one
        (`protocols.Endpoint`) or there are more than `protocols.MAX_PEERS`.
        """
        self._registrar.announce_peers(endpoints)

    def reload(self, book: PrincipalBook) -> None:
        """Principals changed: sessions whose key or role was withdrawn end; the rest go on."""
        self._registrar.reload(book)

    def lose(self, session: Session, reason: str, *, died: bool = False) -> None:
        """The actor is gone: its tasks have unknown outcomes, its tool calls fail.

        `died`: it went without saying bye, which counts against its role's restart budget.
        """
        self._registrar.lose(session, reason, died=died)

    def unreachable(self, identity: bytes) -> None:
        session = self._registry.by_identity.get(identity)
        if session is not None:
            self.lose(session, "unreachable", died=True)

    def disconnected(self, fd: int) -> None:
        """A connection of the plane closed: the session on it, if any, has ended."""
        session = self._registry.by_fd.get(fd)
        if session is not None:
            self.lose(session, "its connection closed", died=True)

    def goodbyes(self) -> tuple[bytes, list[bytes]]:
        """The `Bye` frame and every actor to send it to, for shutting down."""
        return self._codec.encode(Bye(reason="runtime stopping")), list(self._registry.by_identity)

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
                self._outlet.to_identity(
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
                error = Error(code=code, message=clip(str(exc), REPLY_TEXT))
                self._outlet.to_identity(identity, error)
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
                self._outlet.to_identity(identity, Error(code="unauthorized", message=text))
            return
        if isinstance(message, Register):
            self._registrar.register(identity, principal, message, session, _descriptor(frame))
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
                    self._pump(session)
            case StepResult() | StepFailure():
                self._placement.report(session, message)
            case ToolCall():
                self._broker.request(session, message)
            case ToolReply():
                self._broker.reply(session, message)
            case ModelCall():
                self._models.report(session, message)
            case Bye():
                self.lose(session, f"said bye: {message.reason}" if message.reason else "said bye")
            case Error(code="overloaded"):
                self._placement.overloaded(session, message)
            case Error():
                log.warning("agent.error", agent=session.name, code=message.code, ref=message.ref)

    def _pump(self, session: Session) -> None:
        """Place queued work on `session`'s role or tools, now that it may have room."""
        if session.kind == "agent":
            self._placement.pump(session.role)
        else:
            self._broker.pump(session)

    def _unregistered(self, identity: bytes, who: str, message: ActorMessage) -> None:
        """A message from a connection with no session: refused, and audited if about a run."""
        if isinstance(message, Bye | Error):
            return
        text = "register before anything else"
        about_run = StepResult | StepFailure | ToolCall | ModelCall
        about = message.run_id if isinstance(message, about_run) else ""
        if self._host.reject("not_registered", identity, about, who):
            # One answer a second: a peer flooding before registering gets no flood back.
            self._outlet.to_identity(identity, Error(code="not_registered", message=text))
        if isinstance(message, about_run):
            self._host.audit(
                message.run_id, who, action(message), "not_registered", text,
                step=message.step, attempt=message.attempt,
            )  # fmt: skip


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

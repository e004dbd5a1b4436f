"""What the planes should do with a frame: the codec's verdict, the refusal counted, the
reply sent, the state changed; and the defects tolerated while they are fixed.

Should a bug need tolerating while it is fixed, `KNOWN_DEFECTS` lets the fuzz count it
and go on checking everything else.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, get_args

from protocols import (
    MAX_NAME,
    PROTOCOL_VERSION,
    TERMINAL_STATUSES,
    AgentsReply,
    Bye,
    CancelRun,
    Changed,
    Codec,
    ControlReply,
    ControlRequest,
    Decide,
    Error,
    ErrorCode,
    ForkRun,
    GetReport,
    GetRun,
    ListAgents,
    ListMembers,
    ListPending,
    ListRuns,
    ListWorkflows,
    ModelCall,
    PendingReply,
    ProtocolError,
    Register,
    ReportReply,
    ResumeRun,
    RunAccepted,
    RunReply,
    RunsReply,
    RuntimeMessage,
    StartRun,
    StepFailure,
    StepResult,
    ToolCall,
    ToolReply,
    WaitRun,
    Watch,
    WorkflowsReply,
    runtime_side_agent_codec,
    runtime_side_control_codec,
)
from runtime.engine._models import MAX_MODEL_CALLS
from runtime.planes._authority import fork_values_problem
from runtime.planes._control_plane import WaitKey
from runtime.planes._sessions import Session
from runtime.planes._watches import WATCHES_PER_CLIENT
from runtime.security._principals import Principal
from tests.runtime.fuzz.world import GRAPH, MAX_ACTIVE_RUNS, ROLE_TOOLS, WORKFLOW, World

AGENT_CODES: dict[str, ErrorCode] = {
    "oversize": "oversize",
    "malformed": "malformed",
    "invalid": "invalid_message",
    "too_deep": "invalid_message",
}
"""The `Error` code the agent plane answers each codec refusal with."""
CONTROL_CODES: dict[str, ErrorCode] = {
    "oversize": "oversize",
    "malformed": "invalid_message",
    "invalid": "invalid_message",
    "too_deep": "invalid_message",
}
"""The `ControlError` code the control plane answers each codec refusal with."""
CODEC_REASONS = frozenset(AGENT_CODES)


@dataclass(frozen=True, slots=True)
class Defect:
    """A known bug: what the runtime sends a peer, or writes to its journal, does not
    decode on the other side.

    Each should have a reproduction in `TestFoundDefects`, and its entry here go once
    it is fixed.
    """

    name: str
    tag: str
    """The message's `type` or the event's `event` tag."""
    path: str
    """A pattern of where in the message msgspec finds the fault."""

    def matches(self, tag: Any, detail: str) -> bool:
        where = detail.partition(" - at `")[2]
        return tag == self.tag and re.match(self.path, where) is not None


KNOWN_DEFECTS: tuple[Defect, ...] = ()
"""None now: the eight the fuzz found are fixed, and `TestFoundDefects` keeps them so."""


RUNTIME_TYPES: dict[str, type[Any]] = {
    str(cls.__struct_config__.tag): cls for cls in get_args(RuntimeMessage)
}
CONTROL_TYPES: dict[str, type[Any]] = {
    str(cls.__struct_config__.tag): cls for cls in get_args(ControlReply)
}


@dataclass(frozen=True, slots=True)
class AgentExpectation:
    """The model's verdict on one agent-plane frame."""

    reject: str | None = None
    """The refusal counted, if any."""
    error: ErrorCode | None = None
    """The code of the one `Error` sent back, if any."""
    welcome: str | None = None
    """The session name a `Welcome` carries, if registration succeeds."""
    stale_call: int | None = None
    """The id of a tool call refused as stale by a `ToolReply`."""
    model_call: ModelCall | None = None
    """A model call to be journaled: in its run's history, its reply kept for the attempt."""


@dataclass(frozen=True, slots=True)
class ControlExpectation:
    """The model's verdict on one control-plane frame."""

    request: int
    reject: str | None = None
    error: ErrorCode | None = None
    reply: type[ControlReply] | None = None
    """The type of the one reply, unless it is an error or a wait."""
    wait: WaitKey | None = None
    """The wait opened instead of a reply."""
    past: tuple[bytes, int, str, int] | None = None
    """The request for a past record handed to the host instead of a reply."""
    fork: tuple[bytes, int, str, int] | None = None
    """(client, request id, parent, version) of the fork handed to the host instead of a
    reply."""
    watch: tuple[bytes, int, str] | None = None
    """(client, request id, run id or "") of the watch opened instead of a reply."""
    message: ControlRequest | None = None
    or_error: ErrorCode | None = None
    """An error the model allows in place of the reply (edits it does not judge)."""


def decode_outcome(codec: Codec[Any], payload: bytes | memoryview) -> Any:
    """The decoded message, or the `ProtocolError` refusing the frame; nothing else escapes."""
    try:
        return codec.decode(payload)
    except ProtocolError as exc:
        refusal = exc
    assert refusal.reason in CODEC_REASONS
    assert refusal.size == len(payload)
    assert str(refusal).startswith(f"{refusal.reason} frame ({len(payload)} bytes): ")
    return refusal


class Oracle:
    """A small model of the planes: what each should do with one frame, given the world."""

    def __init__(
        self, world: World, decoded: Counter[str], *, max_frame: int, secure: bool
    ) -> None:
        """`decoded` counts the frames that decode, by message type."""
        self.world = world
        self.decoded = decoded
        self.secure = secure
        self.agent_codec = runtime_side_agent_codec(max_frame)
        self.control_codec = runtime_side_control_codec(max_frame)

    def expect_agent(
        self, identity: bytes, who: Principal | None, payload: bytes, parts: int
    ) -> AgentExpectation:
        if parts != 1:
            return AgentExpectation("malformed", "malformed")
        outcome = decode_outcome(self.agent_codec, payload)
        if isinstance(outcome, ProtocolError):
            return AgentExpectation(outcome.reason, AGENT_CODES[outcome.reason])
        self.decoded[type(outcome).__name__] += 1
        plane = self.world.agents
        registry = plane._registry
        session = registry.by_identity.get(identity)
        key = b"" if who is None else who.public_key
        if session is not None and session.key != key:
            return AgentExpectation("identity_mismatch", "unauthorized")
        match outcome:
            case Register():
                return self.expect_register(identity, who, outcome, session)
            case Bye() | Error() if session is None:
                return AgentExpectation()
            case _ if session is None:
                return AgentExpectation("not_registered", "not_registered")
            case StepResult() | StepFailure():
                if (outcome.run_id, outcome.step, outcome.attempt) in session.in_flight:
                    return AgentExpectation()
                return AgentExpectation("stale_result", "stale")
            case ModelCall():
                return self.expect_model_call(session, outcome)
            case ToolReply():
                call = outcome.call_id
                if call in plane._broker.calls and call in session.tool_calls:
                    return AgentExpectation()
                # Counted, not answered: an `Error` in reply to a reply is left out.
                return AgentExpectation("stale_tool_reply", None)
            case ToolCall():
                task = (outcome.run_id, outcome.step, outcome.attempt)
                if session.kind != "agent" or task not in session.in_flight:
                    # Answered as the call it is, with a typed refusal; audited, not counted.
                    return AgentExpectation(stale_call=outcome.call_id)
        return AgentExpectation()

    def expect_model_call(self, session: Session, message: ModelCall) -> AgentExpectation:
        """Journaled only for a task the agent holds, within what an attempt keeps, at a
        number not journaled yet."""
        if (message.run_id, message.step, message.attempt) not in session.in_flight:
            return AgentExpectation("stale_model_call", "stale")
        replies = self.world.runs[message.run_id].steps[message.step].replies
        if len(replies) >= MAX_MODEL_CALLS:
            return AgentExpectation("model_calls_exhausted", "invalid_input")
        if any(r.index == message.index for r in replies):
            return AgentExpectation("duplicate_model_call", "invalid_input")
        return AgentExpectation(model_call=message)

    def expect_register(
        self,
        identity: bytes,
        who: Principal | None,
        message: Register,
        existing: Session | None,
    ) -> AgentExpectation:
        def refused(code: ErrorCode) -> AgentExpectation:
            return AgentExpectation(code, code)

        if message.protocol != PROTOCOL_VERSION:
            return refused("incompatible_protocol")
        if self.secure:
            if who is None:
                return refused("unauthorized")
            needed = f"tools:{message.role}" if message.kind == "tool_host" else message.role
            if needed not in who.roles:
                return refused("role_refused")
        if message.kind == "tool_host":
            if not message.tools or {s.name for s in message.specs} - set(message.tools):
                return refused("invalid_message")
        elif message.role not in ROLE_TOOLS:
            return refused("role_refused")
        elif set(message.tools) - set(ROLE_TOOLS[message.role]):
            return refused("tool_refused")
        registry = self.world.agents._registry
        if who is not None:
            holder = registry.by_key.get(who.public_key)
            if holder is not None and holder is not existing:
                return refused("session_exists")
            return AgentExpectation(welcome=who.name)
        taken = set(registry.by_name) - ({existing.name} if existing is not None else set())
        name, n = message.name, 1
        while name in taken:
            n += 1
            name = f"{message.name[: MAX_NAME - len(str(n)) - 1]}-{n}"
        return AgentExpectation(welcome=name)

    def expect_control(
        self, identity: bytes, who: Principal | None, payload: bytes, parts: int
    ) -> ControlExpectation:
        if parts != 1:
            return ControlExpectation(0, "malformed", "malformed")
        outcome = decode_outcome(self.control_codec, payload)
        if isinstance(outcome, ProtocolError):
            return ControlExpectation(0, outcome.reason, CONTROL_CODES[outcome.reason])
        request: ControlRequest = outcome
        self.decoded[type(request).__name__] += 1
        rid = request.id
        if request.protocol != PROTOCOL_VERSION:
            return ControlExpectation(rid, "incompatible_protocol", "incompatible_protocol")
        if self.secure and not isinstance(request, Decide):
            acts = isinstance(request, StartRun | CancelRun | ResumeRun | ForkRun)
            allowed = who is not None and (
                "operator" in who.roles or (not acts and "viewer" in who.roles)
            )
            if isinstance(request, ListPending) and who is not None:
                allowed = allowed or any(r.startswith("approver:") for r in who.roles)
            if not allowed:
                return ControlExpectation(rid, "unauthorized", "unauthorized")
        world = self.world
        match request:
            case StartRun():
                if request.workflow != WORKFLOW:
                    return ControlExpectation(rid, None, "unknown_workflow")
                if set(request.inputs) != set(GRAPH.workflow.inputs):
                    return ControlExpectation(rid, None, "invalid_input")
                if world.active >= MAX_ACTIVE_RUNS:
                    return ControlExpectation(rid, None, "overloaded")
                return ControlExpectation(rid, reply=RunAccepted)
            case GetRun():
                if request.run_id not in world.runs:
                    return ControlExpectation(rid, None, "unknown_run")
                if request.at is not None:
                    if not 1 <= request.at <= world.runs[request.run_id].seq:
                        return ControlExpectation(rid, None, "invalid_input")
                    return ControlExpectation(rid, past=(identity, rid, request.run_id, request.at))
                return ControlExpectation(rid, reply=RunReply, message=request)
            case WaitRun():
                run = world.runs.get(request.run_id)
                if run is None:
                    return ControlExpectation(rid, None, "unknown_run")
                if run.status in TERMINAL_STATUSES:
                    reply = RunsReply if request.summary else RunReply
                    return ControlExpectation(rid, reply=reply, message=request)
                if any(
                    w[:2] == (identity, rid) for w in world.control._waiters.get(run.run_id, [])
                ):
                    # A second wait under the id of one still open would share its timer.
                    return ControlExpectation(rid, None, "invalid_input")
                return ControlExpectation(rid, wait=("wait", identity, rid, run.run_id))
            case ListRuns():
                return ControlExpectation(rid, reply=RunsReply, message=request)
            case CancelRun():
                run = world.runs.get(request.run_id)
                if run is None:
                    return ControlExpectation(rid, None, "unknown_run")
                if run.status in TERMINAL_STATUSES:
                    return ControlExpectation(rid, None, "wrong_state")
                return ControlExpectation(rid, reply=RunReply, message=request)
            case ResumeRun():
                run = world.runs.get(request.run_id)
                if run is None:
                    return ControlExpectation(rid, None, "unknown_run")
                if run.status != "stuck":
                    return ControlExpectation(rid, None, "wrong_state")
                return ControlExpectation(rid, reply=RunReply, message=request)
            case ListPending():
                return ControlExpectation(rid, reply=PendingReply, message=request)
            case ForkRun():
                run = world.runs.get(request.run_id)
                if run is None:
                    return ControlExpectation(rid, None, "unknown_run")
                if not 1 <= request.at <= run.seq:
                    return ControlExpectation(rid, None, "invalid_input")
                if fork_values_problem(GRAPH, dict(request.values)) is not None:
                    return ControlExpectation(rid, None, "invalid_input")
                if world.active >= MAX_ACTIVE_RUNS:
                    return ControlExpectation(rid, None, "overloaded")
                return ControlExpectation(rid, fork=(identity, rid, run.run_id, request.at))
            case Watch():
                return self.expect_watch(identity, rid, request)
            case ListWorkflows():
                return ControlExpectation(rid, reply=WorkflowsReply, message=request)
            case ListMembers():
                # The fuzzed runtime is not one of a cluster.
                return ControlExpectation(rid, None, "wrong_state")
            case Decide():
                return self.expect_decision(rid, who, request)
            case ListAgents():
                return ControlExpectation(rid, reply=AgentsReply)
            case GetReport():
                if request.workflow != WORKFLOW:
                    return ControlExpectation(rid, None, "unknown_workflow")
                return ControlExpectation(rid, reply=ReportReply)
        raise AssertionError(f"unknown request {request!r}")

    def expect_watch(self, identity: bytes, rid: int, request: Watch) -> ControlExpectation:
        """At once when already past `after` (the cursor: not at it), else a watch opened,
        unless its id is watching already or its client holds as many as it may."""
        world = self.world
        watches = world.control.watches
        if request.run_id is None:
            changed = watches.cursor != request.after
        else:
            run = world.runs.get(request.run_id)
            if run is None:
                return ControlExpectation(rid, None, "unknown_run")
            changed = run.seq > request.after
        if changed:
            return ControlExpectation(rid, reply=Changed, message=request)
        if (identity, rid) in watches._open:
            return ControlExpectation(rid, None, "invalid_input")
        if sum(1 for who, _ in watches._open if who == identity) >= WATCHES_PER_CLIENT:
            return ControlExpectation(rid, None, "overloaded")
        return ControlExpectation(rid, watch=(identity, rid, request.run_id or ""))

    def expect_decision(
        self, rid: int, who: Principal | None, request: Decide
    ) -> ControlExpectation:
        """Authority from the key's approver groups, then the version shown, then the values."""
        run = self.world.runs.get(request.run_id)
        if run is None:
            return ControlExpectation(rid, "unknown_run", "unknown_run")
        if self.secure and who is None:
            return ControlExpectation(rid, "unauthorized", "unauthorized")
        waiting = run.decisions.get(request.step)
        if waiting is None:
            return ControlExpectation(rid, "wrong_state", "wrong_state")
        if self.secure:
            groups = {r.removeprefix("approver:") for r in who.roles} if who else set()
            if not groups & set(waiting.approvers):
                return ControlExpectation(rid, "unauthorized", "unauthorized")
            if waiting.separate_duties and who is not None and who.name == run.started_by:
                return ControlExpectation(rid, "unauthorized", "unauthorized")
        if (request.attempt, request.digest) != (waiting.attempt, waiting.digest):
            return ControlExpectation(rid, "stale", "stale")
        if request.decision not in waiting.choices:
            return ControlExpectation(rid, "invalid_input", "invalid_input")
        if request.values and request.decision not in ("approve", "skip"):
            return ControlExpectation(rid, "invalid_input", "invalid_input")
        if request.values or request.decision == "skip":
            return ControlExpectation(
                rid, reply=RunReply, message=request, or_error="invalid_input"
            )
        return ControlExpectation(rid, reply=RunReply, message=request)

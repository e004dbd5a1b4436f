"""The codec: messages survive a round trip; untrusted bytes only raise `ProtocolError`."""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols import (
    DEFAULT_MAX_FRAME,
    MAX_ITEMS,
    MAX_NAME,
    MAX_TEXT,
    VALUE_DEPTH,
    ActorKind,
    ActorMessage,
    AgentsReply,
    AgentView,
    Assign,
    AttemptOutcome,
    AttemptView,
    Bye,
    Cancel,
    CancelRun,
    Changed,
    Cluster,
    ClusterMember,
    Codec,
    ControlError,
    ControlReply,
    ControlRequest,
    Decide,
    DecisionKind,
    DiagramEdge,
    DiagramNode,
    Error,
    ErrorCode,
    FailureKind,
    FailureReason,
    ForkRun,
    GetReport,
    GetRun,
    Heartbeat,
    HistoryEntry,
    ListAgents,
    ListMembers,
    ListPending,
    ListRuns,
    ListWorkflows,
    MembersReply,
    ModelCall,
    ModelReply,
    OutputType,
    Peers,
    PendingDecision,
    PendingReply,
    ProtocolError,
    Provenance,
    Register,
    Report,
    ReportReply,
    ResumeRun,
    RoleView,
    RunAccepted,
    RunRecord,
    RunReply,
    RunsReply,
    RunStatus,
    RunSummary,
    RuntimeMessage,
    StartRun,
    StepFailure,
    StepFigures,
    StepResult,
    StepStatus,
    StepView,
    TakeoverSeen,
    TaskRef,
    ToolCall,
    ToolReply,
    ToolSpec,
    WaitRun,
    Watch,
    Welcome,
    WorkflowsReply,
    WorkflowView,
    actor_side_codec,
    client_side_control_codec,
    runtime_side_agent_codec,
    runtime_side_control_codec,
)

ENCODE = msgspec.msgpack.Encoder().encode
"""Builds raw frames, including ones no codec would ever send."""

REASONS = frozenset({"oversize", "malformed", "invalid", "too_deep"})
ANY_VALUE = "bool | int | float | str | object | array | null"
"""How msgspec names the value union in its messages."""

# --- Strategies -------------------------------------------------------------------------------
# Written by hand: `st.from_type` ignores msgspec `Meta` bounds. Values are typed `Any` because
# `protocols.Value` is a fixed-depth union that a type checker should not be asked to unfold.

NAME_ALPHABET = string.ascii_letters + string.digits + "_.:-"

names = st.text(NAME_ALPHABET, min_size=1, max_size=MAX_NAME)
texts = st.text(max_size=40)
map_keys = st.text(max_size=24)
counts = st.integers(0, 2**53)
attempts = st.integers(1, 1_000_000)
confidences = st.floats(0.0, 1.0)
instants = st.floats(allow_nan=False)
scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False),
    texts,
)


def values_nested(depth: int) -> st.SearchStrategy[Any]:
    """Values whose lists and maps nest at most `depth` levels."""
    if depth == 0:
        return scalars
    inner = values_nested(depth - 1)
    return st.one_of(
        scalars,
        st.lists(inner, max_size=3),
        st.dictionaries(map_keys, inner, max_size=3),
    )


values = values_nested(VALUE_DEPTH)
data = st.dictionaries(names, values, max_size=3)
arguments = st.dictionaries(names, values_nested(VALUE_DEPTH - 1), max_size=3)
"""Tool arguments nest one level less than data, so that a history entry can quote them."""
name_lists = st.lists(names, max_size=3)
text_lists = st.lists(texts, max_size=3)
flag_maps = st.dictionaries(names, text_lists, max_size=3)
endpoints = st.builds(
    "{}://{}".format,
    st.sampled_from(["tcp", "ipc", "inproc"]),
    st.text(string.ascii_letters + string.digits + "./:[]-_", min_size=1, max_size=40),
)
endpoint_lists = st.lists(endpoints, max_size=3)


def literal(alias: Any) -> st.SearchStrategy[Any]:
    return st.sampled_from(get_args(alias))


def every_field(
    cls: type[msgspec.Struct], **fields: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    """Instances of `cls` with every field drawn, defaulted ones included."""
    differ = set(cls.__struct_fields__) ^ set(fields)
    assert not differ, f"{cls.__name__}: strategy and fields differ on {sorted(differ)}"
    return st.builds(cls, **fields)


tool_specs = every_field(
    ToolSpec, name=names, description=texts, parameters=values, read_only=st.booleans()
)
spec_lists = st.lists(tool_specs, max_size=2)

task_refs = every_field(TaskRef, run_id=names, step=names, attempt=attempts)

AGENT_PLANE: dict[type[Any], st.SearchStrategy[Any]] = {
    Register: every_field(
        Register,
        protocol=counts,
        name=names,
        role=names,
        kind=literal(ActorKind),
        tools=name_lists,
        capacity=st.integers(1, 4_096),
        specs=spec_lists,
        tasks=st.lists(task_refs, max_size=2),
        calls=text_lists,
    ),
    Welcome: every_field(
        Welcome,
        protocol=counts,
        session=names,
        heartbeat_ms=st.integers(10, 600_000),
        tool_specs=spec_lists,
        peers=endpoint_lists,
    ),
    Peers: every_field(Peers, endpoints=endpoint_lists),
    Heartbeat: every_field(Heartbeat, in_flight=counts),
    Assign: every_field(
        Assign,
        run_id=names,
        step=names,
        attempt=attempts,
        inputs=data,
        tools=name_lists,
        timeout_ms=st.integers(0, 2**31),
        flags=flag_maps,
        trace=st.text(max_size=128),
        outputs=st.dictionaries(names, literal(OutputType), max_size=3),
        tool_specs=spec_lists,
        model_replies=st.lists(
            every_field(ModelReply, index=counts, request_digest=texts, reply=values),
            max_size=2,
        ),
    ),
    ModelCall: every_field(
        ModelCall,
        run_id=names,
        step=names,
        attempt=attempts,
        index=counts,
        model=st.text(min_size=1, max_size=256),
        request_digest=texts,
        reply=values,
        tokens_in=st.integers(0, 2**40),
        tokens_out=st.integers(0, 2**40),
        latency_ms=st.floats(0.0, 86_400_000.0),
        finish_reason=st.text(max_size=64),
    ),
    StepResult: every_field(
        StepResult,
        run_id=names,
        step=names,
        attempt=attempts,
        outputs=data,
        rationale=texts,
        confidence=confidences,
        caveats=text_lists,
    ),
    StepFailure: every_field(
        StepFailure,
        run_id=names,
        step=names,
        attempt=attempts,
        reason=literal(FailureReason),
        message=texts,
    ),
    ToolCall: every_field(
        ToolCall,
        call_id=counts,
        run_id=names,
        step=names,
        attempt=attempts,
        tool=names,
        args=arguments,
        idempotency_key=texts,
        trace=st.text(max_size=128),
    ),
    ToolReply: every_field(
        ToolReply,
        call_id=counts,
        ok=st.booleans(),
        result=values,
        error=st.none() | literal(ErrorCode),
        message=texts,
    ),
    Cancel: every_field(Cancel, run_id=names, step=names, attempt=attempts, reason=texts),
    Bye: every_field(Bye, reason=texts),
    Error: every_field(Error, code=literal(ErrorCode), message=texts, ref=texts),
}

RECORD_VIEWS: dict[type[Any], st.SearchStrategy[Any]] = {
    Provenance: every_field(
        Provenance,
        step=names,
        attempt=counts,
        agent=texts,
        rationale=texts,
        confidence=confidences,
        caveats=text_lists,
        flags=text_lists,
        seq=counts,
        approved_by=texts,
        edited_by=texts,
    ),
    AttemptView: every_field(
        AttemptView,
        attempt=counts,
        agent=texts,
        started_at=instants,
        ended_at=st.none() | instants,
        outcome=literal(AttemptOutcome),
        failure=st.none() | literal(FailureKind),
        message=texts,
    ),
    HistoryEntry: every_field(
        HistoryEntry,
        seq=counts,
        at=instants,
        event=names,
        step=texts,
        attempt=counts,
        agent=texts,
        principal=texts,
        message=texts,
        detail=data,
    ),
    RunSummary: every_field(
        RunSummary,
        run_id=names,
        workflow=names,
        status=literal(RunStatus),
        created_at=instants,
        updated_at=instants,
        reason=texts,
    ),
}
RECORD_VIEWS[PendingDecision] = every_field(
    PendingDecision,
    run_id=names,
    workflow=names,
    step=names,
    attempt=counts,
    kind=st.sampled_from(["checkpoint", "escalation"]),
    when=st.sampled_from(["before", "after", "failed"]),
    approvers=st.lists(names, max_size=3),
    reason=texts,
    reviewed=data,
    choices=st.lists(literal(DecisionKind), max_size=3),
    started_by=texts,
    separate_duties=st.booleans(),
    opened_at=instants,
    deadline=st.none() | instants,
    digest=texts,
)
RECORD_VIEWS[StepView] = every_field(
    StepView,
    status=literal(StepStatus),
    visits=counts,
    attempts=st.lists(RECORD_VIEWS[AttemptView], max_size=3),
)
RECORD_VIEWS[RunRecord] = every_field(
    RunRecord,
    run_id=names,
    workflow=names,
    version=texts,
    fingerprint=texts,
    status=literal(RunStatus),
    created_at=instants,
    updated_at=instants,
    inputs=data,
    data=data,
    provenance=st.dictionaries(names, RECORD_VIEWS[Provenance], max_size=3),
    flags=flag_maps,
    caveats=flag_maps,
    steps=st.dictionaries(names, RECORD_VIEWS[StepView], max_size=3),
    history=st.lists(RECORD_VIEWS[HistoryEntry], max_size=3),
    reason=texts,
    waiting_for=texts,
    seq=counts,
    pending=st.lists(RECORD_VIEWS[PendingDecision], max_size=2),
    forked_from=texts,
    forked_at=counts,
)

endpoints = st.text(max_size=64)
endpoint_lists = st.lists(endpoints, max_size=3)

shares = st.none() | st.floats(allow_nan=False)
name_counts = st.dictionaries(names, counts, max_size=3)
REPORT_VIEWS: dict[type[Any], st.SearchStrategy[Any]] = {
    StepFigures: every_field(
        StepFigures,
        step=names,
        consequence=names,
        checkpoint=st.booleans(),
        visits=counts,
        attempts=counts,
        first_try_success=shares,
        retries=counts,
        failures=name_counts,
        flagged=counts,
        p50_seconds=shares,
        p95_seconds=shares,
        decisions=counts,
        rejected_or_edited=counts,
        human_wait_p50_seconds=shares,
        model_calls=counts,
        tokens_in=counts,
        tokens_out=counts,
    ),
    Cluster: every_field(Cluster, step=names, runs=counts, share=st.floats(allow_nan=False)),
}
REPORT_VIEWS[Report] = every_field(
    Report,
    workflow=names,
    runs=counts,
    outcomes=name_counts,
    completion_rate=shares,
    error_rate=shares,
    clean_rate=shares,
    compounded_first_try=shares,
    steps=st.lists(REPORT_VIEWS[StepFigures], max_size=3),
    clusters=st.lists(REPORT_VIEWS[Cluster], max_size=3),
    open_flags=st.dictionaries(texts, counts, max_size=3),
    advice=text_lists,
    tokens_in=counts,
    tokens_out=counts,
    tokens_per_run=shares,
)

CONTROL_PLANE: dict[type[Any], st.SearchStrategy[Any]] = {
    StartRun: every_field(StartRun, id=counts, protocol=counts, workflow=names, inputs=data),
    GetRun: every_field(GetRun, id=counts, protocol=counts, run_id=names, at=st.none() | counts),
    WaitRun: every_field(
        WaitRun,
        id=counts,
        protocol=counts,
        run_id=names,
        timeout_ms=st.integers(0, 86_400_000),
        summary=st.booleans(),
    ),
    ListRuns: every_field(
        ListRuns,
        id=counts,
        protocol=counts,
        status=st.none() | literal(RunStatus),
        workflow=st.none() | names,
        limit=st.integers(1, 100_000),
        since=st.none() | st.floats(allow_nan=False),
        until=st.none() | st.floats(allow_nan=False),
        key=st.none() | names,
        value=st.none() | texts,
        offset=st.integers(0, 10_000_000),
    ),
    ForkRun: every_field(
        ForkRun, id=counts, protocol=counts, run_id=names, at=counts, values=data, reason=texts
    ),
    Watch: every_field(
        Watch,
        id=counts,
        protocol=counts,
        run_id=st.none() | names,
        after=counts,
        timeout_ms=st.integers(0, 86_400_000),
    ),
    Changed: every_field(Changed, id=counts, cursor=counts, timed_out=st.booleans()),
    ListAgents: every_field(ListAgents, id=counts, protocol=counts),
    AgentsReply: every_field(
        AgentsReply,
        id=counts,
        agents=st.lists(
            every_field(
                AgentView,
                name=names,
                role=names,
                kind=st.sampled_from(["agent", "tool_host"]),
                principal=texts,
                capacity=counts,
                running=counts,
                tools=name_lists,
                connected_at=st.floats(allow_nan=False),
            ),
            max_size=2,
        ),
        roles=st.lists(
            every_field(
                RoleView,
                role=names,
                instances=counts,
                capacity=counts,
                running=counts,
                queued=counts,
                crash_looping=st.booleans(),
            ),
            max_size=2,
        ),
    ),
    ListWorkflows: every_field(ListWorkflows, id=counts, protocol=counts),
    WorkflowsReply: every_field(
        WorkflowsReply,
        id=counts,
        workflows=st.lists(
            every_field(
                WorkflowView,
                name=names,
                version=texts,
                fingerprint=texts,
                inputs=name_lists,
                nodes=st.lists(
                    every_field(
                        DiagramNode,
                        name=names,
                        kind=st.sampled_from(["step", "decision"]),
                        role=texts,
                        tools=name_lists,
                        notes=text_lists,
                    ),
                    max_size=2,
                ),
                edges=st.lists(
                    every_field(
                        DiagramEdge,
                        source=names,
                        target=names,
                        label=texts,
                        kind=st.sampled_from(["next", "route", "back", "fallback"]),
                    ),
                    max_size=2,
                ),
                mermaid=texts,
            ),
            max_size=2,
        ),
    ),
    GetReport: every_field(
        GetReport,
        id=counts,
        protocol=counts,
        workflow=names,
        since=st.none() | st.floats(allow_nan=False),
    ),
    ReportReply: every_field(ReportReply, id=counts, report=REPORT_VIEWS[Report], total=counts),
    CancelRun: every_field(CancelRun, id=counts, protocol=counts, run_id=names, reason=texts),
    ResumeRun: every_field(ResumeRun, id=counts, protocol=counts, run_id=names),
    ListPending: every_field(ListPending, id=counts, protocol=counts, run_id=st.none() | names),
    Decide: every_field(
        Decide,
        id=counts,
        protocol=counts,
        run_id=names,
        step=names,
        attempt=counts,
        decision=literal(DecisionKind),
        digest=texts,
        comment=texts,
        values=data,
    ),
    PendingReply: every_field(
        PendingReply,
        id=counts,
        pending=st.lists(RECORD_VIEWS[PendingDecision], max_size=2),
        peers=endpoint_lists,
    ),
    ListMembers: every_field(ListMembers, id=counts, protocol=counts),
    MembersReply: every_field(
        MembersReply,
        id=counts,
        here=counts,
        store=texts,
        members=st.lists(
            every_field(
                ClusterMember,
                token=counts,
                name=names,
                agents=endpoints,
                control=endpoints,
                started_at=st.floats(allow_nan=False),
                renewed_at=st.floats(allow_nan=False),
                expires_in=st.floats(allow_nan=False),
                owned=counts,
                active=counts,
            ),
            max_size=2,
        ),
        takeovers=st.lists(
            every_field(
                TakeoverSeen,
                at=st.floats(allow_nan=False),
                token=counts,
                name=names,
                lapsed_for=st.floats(allow_nan=False),
                runs=counts,
                by_token=counts,
            ),
            max_size=2,
        ),
    ),
    RunAccepted: every_field(RunAccepted, id=counts, run_id=names),
    RunReply: every_field(
        RunReply, id=counts, record=RECORD_VIEWS[RunRecord], timed_out=st.booleans()
    ),
    RunsReply: every_field(
        RunsReply,
        id=counts,
        runs=st.lists(RECORD_VIEWS[RunSummary], max_size=3),
        peers=endpoint_lists,
        total=counts,
    ),
    ControlError: every_field(
        ControlError, id=counts, code=literal(ErrorCode), message=texts, owner=endpoints
    ),
}
MESSAGES = AGENT_PLANE | CONTROL_PLANE


@dataclass(frozen=True)
class Plane:
    """One direction of one plane: who encodes, who decodes, and what may arrive."""

    name: str
    sender: Callable[[], Codec[Any]]
    receiver: Callable[[], Codec[Any]]
    union: Any

    @property
    def members(self) -> tuple[type[Any], ...]:
        return get_args(self.union)

    def messages(self) -> st.SearchStrategy[Any]:
        return st.one_of([MESSAGES[cls] for cls in self.members])


PLANES = (
    Plane("actor_to_runtime", actor_side_codec, runtime_side_agent_codec, ActorMessage),
    Plane("runtime_to_actor", runtime_side_agent_codec, actor_side_codec, RuntimeMessage),
    Plane("control_request", client_side_control_codec, runtime_side_control_codec, ControlRequest),
    Plane("control_reply", runtime_side_control_codec, client_side_control_codec, ControlReply),
)
PLANE_BY_NAME = {plane.name: plane for plane in PLANES}
RECEIVERS = pytest.mark.parametrize("plane", PLANES, ids=[p.name for p in PLANES])

ROUND_TRIPS = [
    pytest.param(plane, cls, id=f"{plane.name}-{cls.__name__}")
    for plane in PLANES
    for cls in plane.members
]

ALL_TAGS = sorted({str(cls.__struct_config__.tag) for cls in MESSAGES})
ALL_FIELDS = sorted({field for cls in MESSAGES for field in cls.__struct_fields__} - {"type"})

# Raw msgpack of any shape: what a hostile or confused peer can put on the wire.
msgpack_scalars: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.builds(msgspec.msgpack.Ext, st.integers(-128, 127), st.binary(max_size=8)),
)
msgpack_keys: st.SearchStrategy[Any] = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.text(max_size=20)
)
msgpack_values: st.SearchStrategy[Any] = st.recursive(
    msgpack_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(msgpack_keys, inner, max_size=5),
    max_leaves=20,
)
message_shaped: st.SearchStrategy[Any] = st.fixed_dictionaries(
    {"type": st.sampled_from(ALL_TAGS) | msgpack_values},
    optional={field: msgpack_values | scalars | names for field in ALL_FIELDS},
)


@st.composite
def with_field_replaced(draw: st.DrawFn, messages: st.SearchStrategy[Any]) -> Any:
    """A valid message as a map, with one field (the tag included) set to anything at all."""
    fields: dict[str, Any] = msgspec.to_builtins(draw(messages))
    field = draw(st.sampled_from(sorted(fields)) | st.sampled_from(ALL_FIELDS))
    fields[field] = draw(msgpack_values)
    return fields


@st.composite
def mutated(draw: st.DrawFn, frames: st.SearchStrategy[bytes]) -> bytes:
    """A valid frame with a few bytes replaced, inserted or deleted."""
    frame = bytearray(draw(frames))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(frame)))
        match draw(st.sampled_from(["replace", "insert", "delete"])):
            case "replace" if at < len(frame):
                frame[at] = draw(st.integers(0, 255))
            case "insert":
                frame[at:at] = draw(st.binary(min_size=1, max_size=4))
            case "delete":
                del frame[at : at + draw(st.integers(1, 4))]
            case _:
                frame.append(draw(st.integers(0, 255)))
    return bytes(frame)


def decode_outcome(codec: Codec[Any], frame: bytes) -> Any:
    """The decoded message, or the `ProtocolError` that refused the frame."""
    try:
        return codec.decode(frame)
    except ProtocolError as exc:
        return exc


def decode_untrusted(plane: Plane, frame: bytes) -> None:
    """Decode a frame that may be anything: a member of the union or a `ProtocolError`."""
    outcome = decode_outcome(plane.receiver(), frame)
    if isinstance(outcome, ProtocolError):
        assert outcome.reason in REASONS
        assert outcome.size == len(frame)
        assert str(outcome).startswith(f"{outcome.reason} frame ({len(frame)} bytes): ")
    else:
        assert isinstance(outcome, plane.members)


def refusal(codec: Codec[Any], frame: bytes | memoryview) -> ProtocolError:
    """The `ProtocolError` that decoding `frame` raises."""
    with pytest.raises(ProtocolError) as caught:
        codec.decode(frame)
    return caught.value


def nested_lists(depth: int) -> Any:
    value: Any = None
    for _ in range(depth):
        value = [value]
    return value


def nested_maps(depth: int) -> Any:
    value: Any = None
    for _ in range(depth):
        value = {"k": value}
    return value


ROUND_TRIP_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FUZZ_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# --- Tests ------------------------------------------------------------------------------------


class TestStrategies:
    """The strategies cover the protocol."""

    def test_every_message_has_a_strategy(self) -> None:
        """Each message type of the four unions, and no other, has a strategy building it."""
        assert set(MESSAGES) == {cls for plane in PLANES for cls in plane.members}

    def test_every_record_view_has_a_strategy(self) -> None:
        """Each view a run record is made of has a strategy building it."""
        assert set(RECORD_VIEWS) == {
            Provenance,
            AttemptView,
            PendingDecision,
            StepView,
            HistoryEntry,
            RunSummary,
            RunRecord,
        }


class TestRoundTrip:
    """What one side encodes, the other side decodes to an equal message."""

    @pytest.mark.parametrize(("plane", "cls"), ROUND_TRIPS)
    @ROUND_TRIP_SETTINGS
    @given(data=st.data())
    def test_message_survives(self, plane: Plane, cls: type[Any], data: st.DataObject) -> None:
        """decode(encode(m)) == m through the receiving side's codec, for every message type."""
        message = data.draw(MESSAGES[cls])
        decoded = plane.receiver().decode(plane.sender().encode(message))
        assert type(decoded) is cls
        assert decoded == message

    @pytest.mark.parametrize("cls", list(RECORD_VIEWS), ids=lambda cls: cls.__name__)
    @ROUND_TRIP_SETTINGS
    @given(data=st.data())
    def test_record_view_survives(self, cls: type[Any], data: st.DataObject) -> None:
        """Each view of a run record survives a codec decoding that view alone."""
        view = data.draw(RECORD_VIEWS[cls])
        codec: Codec[Any] = Codec(cls)
        assert codec.decode(codec.encode(view)) == view

    @pytest.mark.parametrize("cls", list(REPORT_VIEWS), ids=lambda cls: cls.__name__)
    @ROUND_TRIP_SETTINGS
    @given(data=st.data())
    def test_report_view_survives(self, cls: type[Any], data: st.DataObject) -> None:
        """Each part of a workflow's report survives a codec decoding that part alone."""
        view = data.draw(REPORT_VIEWS[cls])
        codec: Codec[Any] = Codec(cls)
        assert codec.decode(codec.encode(view)) == view

    def test_defaults_are_left_off_the_wire(self) -> None:
        """A field left at its default is not encoded; the tag always is."""
        assert ENCODE(Heartbeat()) == ENCODE({"type": "heartbeat"})
        assert ENCODE(Bye(reason="done")) == ENCODE({"type": "bye", "reason": "done"})

    @pytest.mark.parametrize("depth", [1, VALUE_DEPTH])
    @pytest.mark.parametrize("nest", [nested_lists, nested_maps])
    def test_values_nest_up_to_the_depth(self, nest: Callable[[int], Any], depth: int) -> None:
        """A value nested exactly `VALUE_DEPTH` levels is accepted, lists or maps."""
        message = ToolReply(call_id=1, ok=True, result=nest(depth))
        assert runtime_side_agent_codec().decode(ENCODE(message)) == message

    def test_values_at_their_bounds(self) -> None:
        """Names, texts, lists, maps and integers at their limits are accepted."""
        args: dict[str, Any] = {
            "text": "é" * MAX_TEXT,
            "list": [0] * MAX_ITEMS,
            "key": {"k" * 1_024: 2**64 - 1},
            "low": -(2**63),
        }
        message = ToolCall(
            call_id=2**53, run_id="r" * MAX_NAME, step="s", attempt=1, tool="t", args=args
        )
        assert runtime_side_agent_codec().decode(ENCODE(message)) == message

    def test_memoryview_frames_decode(self) -> None:
        """A frame received with copy=False (a memoryview) decodes like bytes."""
        frame = ENCODE(Heartbeat(in_flight=3))
        assert runtime_side_agent_codec().decode(memoryview(frame)) == Heartbeat(in_flight=3)


class TestUntrustedBytes:
    """Whatever arrives, decoding returns a message of the union or raises `ProtocolError`."""

    @RECEIVERS
    @settings(max_examples=1_000, deadline=None)
    @given(frame=st.binary(max_size=512))
    def test_arbitrary_bytes(self, plane: Plane, frame: bytes) -> None:
        """Random bytes never raise anything but `ProtocolError`."""
        decode_untrusted(plane, frame)

    @RECEIVERS
    @FUZZ_SETTINGS
    @given(value=msgpack_values | message_shaped)
    def test_arbitrary_msgpack(self, plane: Plane, value: Any) -> None:
        """Valid msgpack of any shape, message-like or not, never raises anything else."""
        decode_untrusted(plane, ENCODE(value))

    @RECEIVERS
    @FUZZ_SETTINGS
    @given(data=st.data())
    def test_one_field_replaced(self, plane: Plane, data: st.DataObject) -> None:
        """A valid message with one field replaced by anything never raises anything else."""
        decode_untrusted(plane, ENCODE(data.draw(with_field_replaced(plane.messages()))))

    @RECEIVERS
    @FUZZ_SETTINGS
    @given(data=st.data())
    def test_mutated_frames(self, plane: Plane, data: st.DataObject) -> None:
        """A valid frame with bytes replaced, inserted or deleted never raises anything else."""
        decode_untrusted(plane, data.draw(mutated(plane.messages().map(ENCODE))))


class TestMalformed:
    """Bytes that are not one whole msgpack value are refused as `malformed`."""

    @RECEIVERS
    @FUZZ_SETTINGS
    @given(data=st.data())
    def test_truncated_frames(self, plane: Plane, data: st.DataObject) -> None:
        """Every strict prefix of a valid frame is malformed: the input was truncated."""
        frame = ENCODE(data.draw(plane.messages()))
        cut = data.draw(st.integers(0, len(frame) - 1))
        exc = refusal(plane.receiver(), frame[:cut])
        assert (exc.reason, exc.detail, exc.size) == ("malformed", "Input data was truncated", cut)

    def test_trailing_bytes(self) -> None:
        """A valid frame followed by anything is malformed."""
        frame = ENCODE(Heartbeat(in_flight=3)) + b"\x00"
        assert str(refusal(runtime_side_agent_codec(), frame)) == (
            "malformed frame (28 bytes): "
            "MessagePack data is malformed: trailing characters (byte 27)"
        )

    def test_empty_frame(self) -> None:
        """An empty frame is malformed."""
        assert str(refusal(actor_side_codec(), b"")) == (
            "malformed frame (0 bytes): Input data was truncated"
        )

    def test_invalid_opcode(self) -> None:
        """A byte that is no msgpack type is malformed, with its position."""
        assert str(refusal(runtime_side_control_codec(), b"\xc1")) == (
            "malformed frame (1 bytes): "
            "MessagePack data is malformed: invalid opcode '\\xc1' (byte 0)"
        )

    @pytest.mark.parametrize(
        "frame",
        [
            pytest.param(b"\x81\xa4type\xa2\xff\xfe", id="tag"),
            pytest.param(b"\x82\xa4type\xa3bye\xa2\xff\xfe\xc0", id="field-name"),
            pytest.param(b"\x82\xa4type\xa3bye\xa6reason\xa2\xff\xfe", id="text-field"),
            pytest.param(b"\x82\xa4type\xa5error\xa4code\xa2\xc3\x28", id="literal-field"),
            pytest.param(
                b"\x84\xa4type\xaatool_reply\xa7call_id\x01\xa2ok\xc3\xa6result\xa2\xed\xa0",
                id="value-string",
            ),
            pytest.param(
                b"\x84\xa4type\xaatool_reply\xa7call_id\x01\xa2ok\xc3\xa6result\x81\xa1\x80\xc0",
                id="value-map-key",
            ),
        ],
    )
    def test_invalid_utf8(self, frame: bytes) -> None:
        """A string that is not UTF-8, wherever it sits, is malformed."""
        exc = refusal(runtime_side_agent_codec(), frame)
        assert (exc.reason, exc.size) == ("malformed", len(frame))


class TestInvalid:
    """Well-formed msgpack that is not a message of the union is refused as `invalid`."""

    @pytest.mark.parametrize(
        ("plane_name", "message"),
        [
            ("actor_to_runtime", Welcome(protocol=1, session="s", heartbeat_ms=10)),
            ("actor_to_runtime", Assign(run_id="r", step="s", attempt=1, inputs={})),
            ("actor_to_runtime", Cancel(run_id="r", step="s", attempt=1)),
            ("actor_to_runtime", StartRun(id=1, protocol=1, workflow="w")),
            ("runtime_to_actor", Register(protocol=1, name="a", role="r")),
            ("runtime_to_actor", StepResult(run_id="r", step="s", attempt=1, outputs={})),
            ("runtime_to_actor", StepFailure(run_id="r", step="s", attempt=1, reason="error")),
            ("control_request", RunAccepted(id=1, run_id="r")),
            ("control_request", Heartbeat()),
            ("control_request", Error(code="internal")),
            ("control_reply", StartRun(id=1, protocol=1, workflow="w")),
            ("control_reply", Bye()),
        ],
    )
    def test_message_of_another_direction(self, plane_name: str, message: msgspec.Struct) -> None:
        """A message the receiving side never receives is invalid, naming its tag."""
        exc = refusal(PLANE_BY_NAME[plane_name].receiver(), ENCODE(message))
        tag = message.__struct_config__.tag
        assert (exc.reason, exc.detail) == ("invalid", f"Invalid value '{tag}' - at `$.type`")

    @pytest.mark.parametrize(
        ("codec", "message", "detail"),
        [
            (
                runtime_side_agent_codec,
                ControlError(id=1, code="internal"),
                "Object contains unknown field `id`",
            ),
            (
                actor_side_codec,
                ControlError(id=1, code="internal"),
                "Object contains unknown field `id`",
            ),
            (
                client_side_control_codec,
                Error(code="internal"),
                "Object missing required field `id`",
            ),
        ],
        ids=["control-error-to-runtime", "control-error-to-actor", "agent-error-to-client"],
    )
    def test_same_tag_on_another_plane(
        self, codec: Callable[[], Codec[Any]], message: msgspec.Struct, detail: str
    ) -> None:
        """The two `error` messages share a tag; each plane still refuses the other's."""
        exc = refusal(codec(), ENCODE(message))
        assert (exc.reason, exc.detail) == ("invalid", detail)

    @pytest.mark.parametrize(
        ("fields", "detail"),
        [
            ({"type": "nope"}, "Invalid value 'nope' - at `$.type`"),
            ({"type": 3}, "Expected `str`, got `int` - at `$.type`"),
            ({"reason": "x"}, "Object missing required field `type`"),
            ({"type": "bye", "extra": 1}, "Object contains unknown field `extra`"),
            (
                {"type": "heartbeat", "in_flight": "3"},
                "Expected `int`, got `str` - at `$.in_flight`",
            ),
            ({"type": "heartbeat", "in_flight": -1}, "Expected `int` >= 0 - at `$.in_flight`"),
            (
                {"type": "heartbeat", "in_flight": 2**53 + 1},
                "Expected `int` <= 9007199254740992 - at `$.in_flight`",
            ),
            (
                {"type": "register", "protocol": 1, "name": "a" * (MAX_NAME + 1), "role": "r"},
                "Expected `str` of length <= 128 - at `$.name`",
            ),
            (
                {"type": "register", "protocol": 1, "name": "", "role": "r"},
                "Expected `str` of length >= 1 - at `$.name`",
            ),
            (
                {"type": "register", "protocol": 1, "name": "a b", "role": "r"},
                "Expected `str` matching regex '^[A-Za-z0-9_.:\\\\-]+$' - at `$.name`",
            ),
            (
                {"type": "register", "protocol": 1, "name": "a"},
                "Object missing required field `role`",
            ),
            (
                {"type": "register", "protocol": 1, "name": "a", "role": "r", "capacity": 0},
                "Expected `int` >= 1 - at `$.capacity`",
            ),
            (
                {"type": "step_result", "run_id": "r", "step": "s", "attempt": 0, "outputs": {}},
                "Expected `int` >= 1 - at `$.attempt`",
            ),
            (
                {
                    "type": "step_result",
                    "run_id": "r",
                    "step": "s",
                    "attempt": 1,
                    "outputs": {},
                    "confidence": 1.5,
                },
                "Expected `float` <= 1.0 - at `$.confidence`",
            ),
            (
                {
                    "type": "step_result",
                    "run_id": "r",
                    "step": "s",
                    "attempt": 1,
                    "outputs": {},
                    "confidence": float("nan"),
                },
                "Expected `float` >= 0.0 - at `$.confidence`",
            ),
            (
                {
                    "type": "step_result",
                    "run_id": "r",
                    "step": "s",
                    "attempt": 1,
                    "outputs": {"a b": 1},
                },
                "Expected `str` matching regex '^[A-Za-z0-9_.:\\\\-]+$' - at `key` in `$.outputs`",
            ),
            (
                {
                    "type": "step_result",
                    "run_id": "r",
                    "step": "s",
                    "attempt": 1,
                    "outputs": {"k": {"x" * 1_025: 1}},
                },
                "Expected `str` of length <= 1024 - at `key` in `$.outputs[...]`",
            ),
            (
                {
                    "type": "step_failure",
                    "run_id": "r",
                    "step": "s",
                    "attempt": 1,
                    "reason": "timeout",
                },
                "Invalid enum value 'timeout' - at `$.reason`",
            ),
            (
                {"type": "bye", "reason": "x" * (MAX_TEXT + 1)},
                "Expected `str` of length <= 65536 - at `$.reason`",
            ),
            ({"type": "error", "code": "nope"}, "Invalid enum value 'nope' - at `$.code`"),
            (
                {"type": "tool_reply", "call_id": 1, "ok": True, "result": [0] * (MAX_ITEMS + 1)},
                "Expected `array` of length <= 4096 - at `$.result`",
            ),
            (
                {"type": "tool_reply", "call_id": 1, "ok": True, "result": {1: 2}},
                "Expected `str`, got `int` - at `key` in `$.result`",
            ),
            (
                {"type": "tool_reply", "call_id": 1, "ok": True, "result": b"raw"},
                f"Expected `{ANY_VALUE}`, got `bytes` - at `$.result`",
            ),
            (
                {
                    "type": "tool_reply",
                    "call_id": 1,
                    "ok": True,
                    "result": msgspec.msgpack.Ext(1, b""),
                },
                f"Expected `{ANY_VALUE}`, got `ext` - at `$.result`",
            ),
            (["heartbeat"], "Expected `object`, got `array`"),
        ],
    )
    def test_field_out_of_bounds(self, fields: Any, detail: str) -> None:
        """A wrong tag, type, bound or field is invalid, with msgspec's message and path."""
        frame = ENCODE(fields)
        exc = refusal(runtime_side_agent_codec(), frame)
        assert str(exc) == f"invalid frame ({len(frame)} bytes): {detail}"

    def test_data_with_too_many_keys(self) -> None:
        """Step outputs with more than `MAX_ITEMS` keys are invalid."""
        outputs: dict[str, Any] = {f"k{i}": i for i in range(MAX_ITEMS + 1)}
        frame = ENCODE(StepResult(run_id="r", step="s", attempt=1, outputs=outputs))
        exc = refusal(runtime_side_agent_codec(), frame)
        assert exc.detail == "Expected `object` of length <= 4096 - at `$.outputs`"

    @pytest.mark.parametrize(
        ("value", "kind", "path"),
        [
            (nested_lists(VALUE_DEPTH + 1), "array", "$.result" + "[0]" * VALUE_DEPTH),
            (nested_maps(VALUE_DEPTH + 1), "object", "$.result" + "[...]" * VALUE_DEPTH),
        ],
        ids=["lists", "maps"],
    )
    def test_value_nested_one_level_too_deep(self, value: Any, kind: str, path: str) -> None:
        """A value nested `VALUE_DEPTH + 1` levels is invalid, with the path to the excess."""
        frame = ENCODE({"type": "tool_reply", "call_id": 1, "ok": True, "result": value})
        exc = refusal(runtime_side_agent_codec(), frame)
        assert str(exc) == (
            f"invalid frame ({len(frame)} bytes): "
            f"Expected `bool | int | float | str | null`, got `{kind}` - at `{path}`"
        )

    def test_data_nested_one_level_too_deep(self) -> None:
        """The path into step outputs names the key position and every list index."""
        outputs = {"x": nested_lists(VALUE_DEPTH + 1)}
        frame = ENCODE(StepResult(run_id="r", step="s", attempt=1, outputs=outputs))
        exc = refusal(runtime_side_agent_codec(), frame)
        assert exc.detail == (
            "Expected `bool | int | float | str | null`, got `array` - "
            f"at `$.outputs[...]{'[0]' * VALUE_DEPTH}`"
        )


DEEP = 10_000
DEEP_LISTS = b"\x91" * DEEP + b"\xc0"
DEEP_MAPS = b"\x81\xa1k" * DEEP + b"\xc0"
DEEP_FRAMES = {
    "bare-lists": DEEP_LISTS,
    "bare-maps": DEEP_MAPS,
    "unknown-field-before-tag": b"\x82\xa1z" + DEEP_LISTS + b"\xa4type\xa3bye",
    "known-field-before-tag": b"\x82\xa6reason" + DEEP_MAPS + b"\xa4type\xa3bye",
    "unknown-field-after-tag": b"\x82\xa4type\xa3bye\xa1z" + DEEP_LISTS,
    "in-a-value": b"\x84\xa4type\xaatool_reply\xa7call_id\x01\xa2ok\xc3\xa6result" + DEEP_LISTS,
    "in-step-inputs": b"\x85\xa4type\xa6assign\xa6run_id\xa1r\xa4step\xa1s\xa7attempt\x01"
    b"\xa6inputs\x81\xa1x" + DEEP_MAPS,
    "in-run-inputs": b"\x85\xa4type\xa9start_run\xa2id\x01\xa8protocol\x01\xa8workflow\xa1w"
    + b"\xa6inputs\x81\xa1x"
    + DEEP_LISTS,
    "in-a-record": b"\x83\xa4type\xa3run\xa2id\x01\xa6record" + DEEP_MAPS,
}


class TestDepth:
    """Nesting far beyond `VALUE_DEPTH` is refused, never a `RecursionError`."""

    @RECEIVERS
    @pytest.mark.parametrize("shape", list(DEEP_FRAMES))
    def test_ten_thousand_levels(self, plane: Plane, shape: str) -> None:
        """10,000 nested lists or maps are invalid or too deep, wherever they sit."""
        frame = DEEP_FRAMES[shape]
        exc = refusal(plane.receiver(), frame)
        assert exc.reason in {"invalid", "too_deep"}
        assert exc.size == len(frame)

    def test_too_deep_message(self) -> None:
        """Nesting skipped while looking for the tag is reported as too deep."""
        frame = DEEP_FRAMES["unknown-field-before-tag"]
        assert str(refusal(runtime_side_agent_codec(), frame)) == (
            f"too_deep frame ({len(frame)} bytes): nested beyond the decoder's depth"
        )


class TestOversize:
    """Frames over `max_frame` are refused as `oversize` before any decoding."""

    def test_default_limits(self) -> None:
        """Three codecs take 1 MiB frames; a control client takes whole records, 256 MiB."""
        assert runtime_side_agent_codec().max_frame == DEFAULT_MAX_FRAME
        assert actor_side_codec().max_frame == DEFAULT_MAX_FRAME
        assert runtime_side_control_codec().max_frame == DEFAULT_MAX_FRAME
        assert client_side_control_codec().max_frame == 256 * DEFAULT_MAX_FRAME

    @RECEIVERS
    def test_garbage_over_the_limit_is_oversize(self, plane: Plane) -> None:
        """Bytes that would be malformed are refused as oversize: size is checked first."""
        codec = plane.receiver()
        codec.max_frame = 64
        exc = refusal(codec, b"\xc1" * 65)
        assert str(exc) == "oversize frame (65 bytes): limit is 64 bytes"

    def test_default_limit_is_enforced(self) -> None:
        """A frame one byte over `DEFAULT_MAX_FRAME` is oversize."""
        exc = refusal(runtime_side_agent_codec(), bytes(DEFAULT_MAX_FRAME + 1))
        assert (exc.reason, exc.size) == ("oversize", DEFAULT_MAX_FRAME + 1)

    def test_frame_at_the_limit_decodes(self) -> None:
        """A valid frame of exactly `max_frame` bytes decodes; one byte less refuses it."""
        message = Bye(reason="x" * 100)
        frame = ENCODE(message)
        assert runtime_side_agent_codec(max_frame=len(frame)).decode(frame) == message
        exc = refusal(runtime_side_agent_codec(max_frame=len(frame) - 1), frame)
        assert (exc.reason, exc.size) == ("oversize", len(frame))

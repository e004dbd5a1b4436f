"""The corpus Hypothesis draws for each fuzz example: a few messages of every type the
planes receive, hand-built maps, and bytes; the seeded generator does the volume."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from protocols import (
    MAX_NAME,
    PROTOCOL_VERSION,
    Bye,
    CancelRun,
    Decide,
    Error,
    ForkRun,
    GetReport,
    GetRun,
    Heartbeat,
    ListAgents,
    ListMembers,
    ListPending,
    ListRuns,
    ListWorkflows,
    ModelCall,
    Register,
    ResumeRun,
    StartRun,
    StepFailure,
    StepResult,
    ToolCall,
    ToolReply,
    ToolSpec,
    WaitRun,
    Watch,
)
from tests.runtime.fuzz.peers import (
    ACTOR_TAGS,
    CONTROL_TAGS,
    ERROR_CODES,
    FIELDS,
    NAME_CHARS,
    NAME_POOL,
    OTHER_TAGS,
    RUN_STATUSES,
    TOOL_HOST,
)
from tests.runtime.fuzz.world import (
    AGENT_ROLES,
    ENCODE,
    TOOL_NAMES,
    WORKFLOW,
)

# Written by hand: `st.from_type` ignores msgspec `Meta` bounds. Kept small, because
# Hypothesis is slow to build large values; the seeded mutator does the volume.

names = st.sampled_from(NAME_POOL) | st.text(NAME_CHARS, min_size=1, max_size=MAX_NAME)
texts = st.text(max_size=12)
counts = st.integers(0, 2**53)
attempts = st.integers(1, 1_000_000)
scalars: st.SearchStrategy[Any] = (
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | texts
)
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
data = st.dictionaries(names, values, max_size=2)
codes = st.sampled_from(ERROR_CODES)

AGENT_MESSAGES: dict[type[Any], st.SearchStrategy[Any]] = {
    Register: st.builds(
        Register,
        protocol=st.sampled_from((PROTOCOL_VERSION, 0, 2)),
        name=names,
        role=st.sampled_from((*AGENT_ROLES, TOOL_HOST)) | names,
        kind=st.sampled_from(("agent", "tool_host")),
        tools=st.lists(st.sampled_from(TOOL_NAMES) | names, max_size=3),
        capacity=st.integers(1, 4_096),
        specs=st.lists(st.builds(ToolSpec, name=names, parameters=values), max_size=2),
    ),
    Heartbeat: st.builds(Heartbeat, in_flight=counts),
    StepResult: st.builds(
        StepResult,
        run_id=names,
        step=names,
        attempt=attempts,
        outputs=data,
        rationale=texts,
        confidence=st.floats(0.0, 1.0),
        caveats=st.lists(texts, max_size=3),
    ),
    StepFailure: st.builds(
        StepFailure,
        run_id=names,
        step=names,
        attempt=attempts,
        reason=st.sampled_from(("error", "invalid_output")),
        message=texts,
    ),
    ToolCall: st.builds(
        ToolCall,
        call_id=counts,
        run_id=names,
        step=names,
        attempt=attempts,
        tool=names,
        args=data,
        idempotency_key=texts,
    ),
    ToolReply: st.builds(
        ToolReply,
        call_id=counts,
        ok=st.booleans(),
        result=values,
        error=st.none() | codes,
        message=texts,
    ),
    ModelCall: st.builds(
        ModelCall,
        run_id=names,
        step=names,
        attempt=attempts,
        index=st.integers(0, 300) | counts,
        model=st.sampled_from(("gpt-4o-mini", "m")) | st.text(min_size=1, max_size=12),
        request_digest=texts,
        reply=values,
        tokens_in=st.integers(0, 2**40),
        tokens_out=st.integers(0, 2**40),
        latency_ms=st.floats(0.0, 86_400_000.0),
        finish_reason=st.sampled_from(("stop", "length", "")),
    ),
    Bye: st.builds(Bye, reason=texts),
    Error: st.builds(Error, code=codes, message=texts, ref=texts),
}
CONTROL_MESSAGES: dict[type[Any], st.SearchStrategy[Any]] = {
    StartRun: st.builds(
        StartRun,
        id=counts,
        protocol=st.sampled_from((PROTOCOL_VERSION, 0, 2)),
        workflow=st.just(WORKFLOW) | names,
        inputs=data | st.just({"request": {"text": "x"}}),
    ),
    GetRun: st.builds(
        GetRun, id=counts, protocol=st.just(PROTOCOL_VERSION), run_id=names, at=st.none() | counts
    ),
    WaitRun: st.builds(
        WaitRun,
        id=counts,
        protocol=st.just(PROTOCOL_VERSION),
        run_id=names,
        timeout_ms=st.integers(0, 86_400_000),
        summary=st.booleans(),
    ),
    ListRuns: st.builds(
        ListRuns,
        id=counts,
        protocol=st.just(PROTOCOL_VERSION),
        status=st.none() | st.sampled_from(RUN_STATUSES),
        workflow=st.none() | names,
        limit=st.integers(1, 100_000),
    ),
}
CONTROL_MESSAGES[CancelRun] = st.builds(
    CancelRun, id=counts, protocol=st.just(PROTOCOL_VERSION), run_id=names, reason=texts
)
CONTROL_MESSAGES[ListMembers] = st.builds(
    ListMembers, id=counts, protocol=st.just(PROTOCOL_VERSION)
)
CONTROL_MESSAGES[ListPending] = st.builds(
    ListPending, id=counts, protocol=st.just(PROTOCOL_VERSION), run_id=st.none() | names
)
CONTROL_MESSAGES[Watch] = st.builds(
    Watch,
    id=counts,
    protocol=st.just(PROTOCOL_VERSION),
    run_id=st.none() | names,
    after=st.integers(0, 40) | counts,
    timeout_ms=st.sampled_from((0, 500, 86_400_000)),
)
CONTROL_MESSAGES[ListWorkflows] = st.builds(
    ListWorkflows, id=counts, protocol=st.just(PROTOCOL_VERSION)
)
CONTROL_MESSAGES[Decide] = st.builds(
    Decide,
    id=counts,
    protocol=st.just(PROTOCOL_VERSION),
    run_id=names,
    step=names,
    attempt=counts,
    decision=st.sampled_from(["approve", "reject", "retry", "skip", "abort"]),
    digest=texts,
    comment=texts,
    values=data,
)
CONTROL_MESSAGES[ForkRun] = st.builds(
    ForkRun,
    id=counts,
    protocol=st.just(PROTOCOL_VERSION),
    run_id=names,
    at=st.integers(0, 40) | counts,
    values=data,
    reason=texts,
)
CONTROL_MESSAGES[ResumeRun] = st.builds(
    ResumeRun, id=counts, protocol=st.just(PROTOCOL_VERSION), run_id=names
)
CONTROL_MESSAGES[ListAgents] = st.builds(ListAgents, id=counts, protocol=st.just(PROTOCOL_VERSION))
CONTROL_MESSAGES[GetReport] = st.builds(
    GetReport,
    id=counts,
    protocol=st.just(PROTOCOL_VERSION),
    workflow=st.just(WORKFLOW) | names,
    since=st.none() | st.floats(allow_nan=False),
)
raw_maps: st.SearchStrategy[Any] = st.fixed_dictionaries(
    {"type": st.sampled_from((*ACTOR_TAGS, *CONTROL_TAGS, *OTHER_TAGS)) | scalars},
    optional={f: values | names | st.binary(max_size=4) for f in FIELDS},
)
corpus_frames: st.SearchStrategy[bytes] = st.one_of(
    st.one_of(list(AGENT_MESSAGES.values())).map(ENCODE),
    st.one_of(list(CONTROL_MESSAGES.values())).map(ENCODE),
    raw_maps.map(ENCODE),
    st.binary(max_size=48),
)
corpora = st.lists(corpus_frames, min_size=1, max_size=6)

"""Messages between an actor (agent or tool host) and the runtime."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from protocols._base import Confidence, Count, ErrorCode, Message
from protocols._endpoints import Endpoints
from protocols._values import MAX_ITEMS, Arguments, Data, Name, Text, Value

ActorKind = Literal["agent", "tool_host"]
FailureReason = Literal["error", "invalid_output"]
"""What an actor may report about its own failure; the runtime adds the rest."""

Names = Annotated[list[Name], Meta(max_length=1_024)]
Texts = Annotated[list[Text], Meta(max_length=256)]
TraceParent = Annotated[str, Meta(max_length=128)]
"""A W3C `traceparent`, or "" where the runtime does not trace."""


class ToolSpec(Message, tag="tool_spec", frozen=True):
    """A tool as a model sees it: name, description, JSON Schema of its arguments."""

    name: Name
    description: Text = ""
    parameters: Value = None
    read_only: bool = False


ToolSpecs = Annotated[list[ToolSpec], Meta(max_length=1_024)]


class TaskRef(Message, tag="task_ref", frozen=True):
    """One attempt of one step, by name."""

    run_id: Name
    step: Name
    attempt: Annotated[int, Meta(ge=1, le=1_000_000)]


class Register(Message, tag="register", frozen=True):
    """First message of a session: who the actor is and what it may do or serve.

    An actor that registers again (the runtime restarted, or the connection was
    lost) says what it is still running, so that the runtime neither places more
    on it than its capacity nor runs the same work twice: an agent its tasks, a
    tool host the idempotency keys of its calls.
    """

    protocol: Count
    name: Name
    role: Name
    kind: ActorKind = "agent"
    tools: Names = []
    capacity: Annotated[int, Meta(ge=1, le=4_096)] = 1
    specs: ToolSpecs = []
    tasks: Annotated[list[TaskRef], Meta(max_length=4_096)] = []
    calls: Annotated[list[Text], Meta(max_length=4_096)] = []


class Welcome(Message, tag="welcome", frozen=True):
    """Registration accepted; the specs are those of the tools the actor may call.

    `peers` are the agent-plane endpoints of the cluster's other supervisors: an actor
    serves every supervisor of its cluster, so it connects to those too.
    """

    protocol: Count
    session: Name
    heartbeat_ms: Annotated[int, Meta(ge=10, le=600_000)]
    tool_specs: ToolSpecs = []
    peers: Endpoints = []


class Peers(Message, tag="peers", frozen=True):
    """The cluster's other supervisors changed: the agent-plane endpoints to connect to.

    An actor adds the endpoints it does not serve yet; one it serves and that is not
    named stays served (a supervisor that went away may come back on its endpoint).
    """

    endpoints: Endpoints = []


class Heartbeat(Message, tag="heartbeat", frozen=True):
    """Liveness, sent both ways; `in_flight` is the sender's running task count."""

    in_flight: Count = 0


OutputType = Literal["str", "int", "float", "bool", "list", "dict", "any"]
"""A step output's declared type, as a model is told it and its reply is checked against."""
ModelName = Annotated[str, Meta(min_length=1, max_length=256)]
Tokens = Annotated[int, Meta(ge=0, le=2**40)]


class ModelReply(Message, tag="model_reply", frozen=True):
    """A model call of this attempt that the runtime journaled: on a task sent again (its
    agent was lost, the runtime restarted), the agent takes this reply instead of paying
    for the call again, when it makes the same request (`request_digest`) at `index`."""

    index: Count
    request_digest: Text
    reply: Value = None


class Assign(Message, tag="assign", frozen=True):
    """Run one attempt of one step. (run_id, step, attempt) names the task.

    `outputs` are the step's declared outputs and their types, and `tool_specs` the
    specs of the tools it may call (as their hosts registered them): what a model is
    told. `model_replies` are the model calls of this attempt already journaled.
    """

    run_id: Name
    step: Name
    attempt: Annotated[int, Meta(ge=1, le=1_000_000)]
    inputs: Data
    tools: Names = []
    timeout_ms: Annotated[int, Meta(ge=0, le=2**31)] = 0
    flags: Annotated[dict[Name, Texts], Meta(max_length=MAX_ITEMS)] = {}
    trace: TraceParent = ""
    """W3C `traceparent` of the attempt's span, when the runtime traces: the agent's own
    spans join the run's trace under it."""
    outputs: Annotated[dict[Name, OutputType], Meta(max_length=MAX_ITEMS)] = {}
    tool_specs: ToolSpecs = []
    model_replies: Annotated[list[ModelReply], Meta(max_length=4_096)] = []


class ModelCall(Message, tag="model_call", frozen=True):
    """A model call an agent made for a task, answered: the runtime journals it in the run's
    history (model, tokens, latency, finish reason) and keeps its reply for the attempt,
    so that the same task sent again does not pay for it twice. `index` orders the calls
    of one attempt; `request_digest` names the request, so that a replay is taken only
    for the same request."""

    run_id: Name
    step: Name
    attempt: Annotated[int, Meta(ge=1, le=1_000_000)]
    index: Count
    model: ModelName
    request_digest: Text
    reply: Value = None
    tokens_in: Tokens = 0
    tokens_out: Tokens = 0
    latency_ms: Annotated[float, Meta(ge=0.0, le=86_400_000.0)] = 0.0
    finish_reason: Annotated[str, Meta(max_length=64)] = ""


class StepResult(Message, tag="step_result", frozen=True):
    """An attempt's outputs with the reasoning behind them."""

    run_id: Name
    step: Name
    attempt: Annotated[int, Meta(ge=1, le=1_000_000)]
    outputs: Data
    rationale: Text = ""
    confidence: Confidence = 1.0
    caveats: Texts = []


class StepFailure(Message, tag="step_failure", frozen=True):
    """An attempt that the actor itself knows has failed."""

    run_id: Name
    step: Name
    attempt: Annotated[int, Meta(ge=1, le=1_000_000)]
    reason: FailureReason
    message: Text = ""


class ToolCall(Message, tag="tool_call", frozen=True):
    """A tool call on behalf of a task; `call_id` is unique per sender."""

    call_id: Count
    run_id: Name
    step: Name
    attempt: Annotated[int, Meta(ge=1, le=1_000_000)]
    tool: Name
    args: Arguments = {}
    idempotency_key: Text = ""
    """From an agent, the call's key within its task (the n-th call: "n"); from the runtime
    to a tool host, the idempotency key the runtime made of it, `run_id:step:visit:n`,
    the same for every attempt of one visit of the step. Empty: the call has no key."""
    trace: TraceParent = ""
    """W3C `traceparent` of the runtime's span of the call, on calls it forwards to a tool
    host when it traces: the host's span of the call joins the run's trace under it."""


class ToolReply(Message, tag="tool_reply", frozen=True):
    """The outcome of a tool call, matched to it by `call_id`."""

    call_id: Count
    ok: bool
    result: Value = None
    error: ErrorCode | None = None
    message: Text = ""


class Cancel(Message, tag="cancel", frozen=True):
    """Stop working on a task: its outcome is no longer wanted."""

    run_id: Name
    step: Name
    attempt: Annotated[int, Meta(ge=1, le=1_000_000)]
    reason: Text = ""


class Bye(Message, tag="bye", frozen=True):
    """The sender is leaving; the receiver may forget its session."""

    reason: Text = ""


class Error(Message, tag="error", frozen=True):
    """A refusal: a stable code, a message for people, and what it refers to."""

    code: ErrorCode
    message: Text = ""
    ref: Text = ""


ActorMessage = (
    Register | Heartbeat | StepResult | StepFailure | ToolCall | ToolReply | ModelCall | Bye | Error
)
"""Everything an actor may send to the runtime."""

RuntimeMessage = Welcome | Heartbeat | Assign | Cancel | ToolCall | ToolReply | Bye | Error | Peers
"""Everything the runtime may send to an actor."""

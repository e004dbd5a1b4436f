"""Messages between a client (CLI, program, dashboard) and the runtime's control plane.

Every request carries the protocol version and an `id` that its reply echoes,
so one connection may have several requests outstanding.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from protocols._base import Count, ErrorCode, Message
from protocols._record import DecisionKind, PendingDecision, RunRecord, RunStatus, RunSummary
from protocols._report import Report
from protocols._values import MAX_ITEMS, Data, Name, Text

WaitMs = Annotated[int, Meta(ge=0, le=86_400_000)]
Endpoint = Annotated[str, Meta(max_length=256)]
"""A ZeroMQ endpoint, e.g. `tcp://127.0.0.1:7711`."""
Endpoints = Annotated[list[Endpoint], Meta(max_length=64)]


class StartRun(Message, tag="start_run", frozen=True):
    """Start a run of a loaded workflow with these inputs."""

    id: Count
    protocol: Count
    workflow: Name
    inputs: Data = {}


class GetRun(Message, tag="get_run", frozen=True):
    """The record of a run, or as it was after event `at`."""

    id: Count
    protocol: Count
    run_id: Name
    at: Count | None = None


class WaitRun(Message, tag="wait_run", frozen=True):
    """The record of a run once it is completed, failed or halted, or when the wait ends.

    With `summary`, the reply is a `RunsReply` holding the run's one-line summary
    instead of the whole record, for clients that only need the outcome.
    """

    id: Count
    protocol: Count
    run_id: Name
    timeout_ms: WaitMs = 60_000
    summary: bool = False


class ListRuns(Message, tag="list_runs", frozen=True):
    """Summaries of runs, newest first: those matching every filter given.

    `since` and `until` bound when a run was created (seconds since the epoch);
    `key` keeps the runs whose data holds that key, and `value` those whose value
    there reads exactly so (a string as is, anything else as JSON). The reply's
    `total` counts every match, of which the first `limit` after `offset` are sent.
    """

    id: Count
    protocol: Count
    status: RunStatus | None = None
    workflow: Name | None = None
    limit: Annotated[int, Meta(ge=1, le=100_000)] = 100
    since: float | None = None
    until: float | None = None
    key: Name | None = None
    value: Text | None = None
    offset: Annotated[int, Meta(ge=0, le=10_000_000)] = 0


class CancelRun(Message, tag="cancel_run", frozen=True):
    """Stop a run that has not ended: its steps in flight are withdrawn, its status is
    `cancelled`. Answered with the record once the cancellation is journaled."""

    id: Count
    protocol: Count
    run_id: Name
    reason: Text = ""


class ResumeRun(Message, tag="resume_run", frozen=True):
    """Let a `stuck` run carry on from where its journal left it. Answered with the record
    once the resumption is journaled."""

    id: Count
    protocol: Count
    run_id: Name


class ListPending(Message, tag="list_pending", frozen=True):
    """The decisions runs wait for, oldest first: those `run_id` waits for, if given."""

    id: Count
    protocol: Count
    run_id: Name | None = None


class Decide(Message, tag="decide", frozen=True):
    """Decide an open checkpoint or escalation, quoting the `digest` of what was shown.

    `values` are edits to the values under review (approve), or the outputs to
    proceed with (skip). `comment` goes into the run's history with the decision.
    """

    id: Count
    protocol: Count
    run_id: Name
    step: Name
    attempt: Count
    decision: DecisionKind
    digest: Text
    comment: Text = ""
    values: Data = {}


class ForkRun(Message, tag="fork_run", frozen=True):
    """Start a new run of the same workflow version from the record of `run_id` as it was
    at version `at`, with `values` written over its data: what came after is run again,
    and the parent is left as it is. Answered with `RunAccepted` once journaled."""

    id: Count
    protocol: Count
    run_id: Name
    at: Count
    values: Data = {}
    reason: Text = ""


class Watch(Message, tag="watch", frozen=True):
    """Answered when something changed: with `run_id`, once that run's record is past
    version `after`; without, once any run of this runtime changed after its change
    cursor `after`. Answered at once if that is already so, else when the change comes
    or the wait ends (then `timed_out`, with the cursor as it is)."""

    id: Count
    protocol: Count
    run_id: Name | None = None
    after: Count = 0
    timeout_ms: WaitMs = 30_000


class ListAgents(Message, tag="list_agents", frozen=True):
    """The agents and tool hosts connected now, and the roles losing instances too fast."""

    id: Count
    protocol: Count


class ListWorkflows(Message, tag="list_workflows", frozen=True):
    """The workflows loaded, each with its graph as nodes and edges."""

    id: Count
    protocol: Count


class GetReport(Message, tag="get_report", frozen=True):
    """The report of a workflow over the runs this runtime holds that were created at or
    after `since` (seconds since the epoch; all of them without it). In a cluster, those
    of the runtime asked alone: reports are not merged across runtimes."""

    id: Count
    protocol: Count
    workflow: Name
    since: float | None = None


class ListMembers(Message, tag="list_members", frozen=True):
    """The runtimes of this runtime's cluster, their leases and load, and recent takeovers."""

    id: Count
    protocol: Count


class PendingReply(Message, tag="pending", frozen=True):
    """Open decisions; in a cluster, those of the runs this runtime owns, and `peers`: the
    control planes of the other live runtimes, to ask for theirs."""

    id: Count
    pending: Annotated[list[PendingDecision], Meta(max_length=100_000)]
    peers: Endpoints = []


class ClusterMember(Message, tag="member", frozen=True):
    """One runtime of a cluster, as the shared database sees it."""

    token: Count
    """Its fencing token: new each time a runtime joins, never reused."""
    name: Name
    agents: Endpoint
    control: Endpoint
    started_at: float
    renewed_at: float
    expires_in: float
    """Seconds its lease has left; negative once it lapsed (it is then taken over)."""
    owned: Count
    """Runs it holds, ended ones included (they stay in its memory to be answered for)."""
    active: Count
    """Runs it holds that have not ended."""


class TakeoverSeen(Message, tag="takeover", frozen=True):
    """A lapsed lease ended by another runtime, which took its runs over."""

    at: float
    token: Count
    name: Name
    lapsed_for: float
    runs: Count
    by_token: Count


class MembersReply(Message, tag="members", frozen=True):
    """The cluster: `here` is the token of the runtime that answered."""

    id: Count
    here: Count
    store: Text
    members: Annotated[list[ClusterMember], Meta(max_length=1_024)]
    takeovers: Annotated[list[TakeoverSeen], Meta(max_length=1_024)] = []


class Changed(Message, tag="changed", frozen=True):
    """The answer to `Watch`: the run's version, or the runtime's change cursor, now."""

    id: Count
    cursor: Count
    timed_out: bool = False


class AgentView(Message, tag="agent", frozen=True):
    """One connected agent or tool host."""

    name: Name
    role: Name
    kind: Literal["agent", "tool_host"]
    principal: Text = ""
    capacity: Count = 0
    running: Count = 0
    """Steps (or tool calls) it is working on now."""
    tools: Annotated[list[Name], Meta(max_length=MAX_ITEMS)] = []
    connected_at: float = 0.0


class RoleView(Message, tag="role", frozen=True):
    """A role's load: its connected instances, its queue, and whether it is crash-looping."""

    role: Name
    instances: Count
    capacity: Count
    running: Count
    queued: Count
    crash_looping: bool = False


class AgentsReply(Message, tag="agents", frozen=True):
    id: Count
    agents: Annotated[list[AgentView], Meta(max_length=100_000)]
    roles: Annotated[list[RoleView], Meta(max_length=MAX_ITEMS)] = []


class DiagramNode(Message, tag="node", frozen=True):
    """A step (a rectangle: its role, tools, checkpoint and policy) or a decision."""

    name: Name
    kind: Literal["step", "decision"]
    role: Text = ""
    tools: Annotated[list[Name], Meta(max_length=MAX_ITEMS)] = []
    notes: Annotated[list[Text], Meta(max_length=64)] = []
    """The lines under its name: consequence, checkpoint, failure policy."""


class DiagramEdge(Message, tag="edge", frozen=True):
    """An arrow: a route (with its condition), a loop closing back, or a fallback."""

    source: Name
    target: Name
    label: Text = ""
    kind: Literal["next", "route", "back", "fallback"] = "next"


class WorkflowView(Message, tag="workflow", frozen=True):
    """A loaded workflow: its inputs, and its graph as the Mermaid export draws it."""

    name: Name
    version: Text
    fingerprint: Text
    inputs: Annotated[list[Name], Meta(max_length=MAX_ITEMS)]
    nodes: Annotated[list[DiagramNode], Meta(max_length=MAX_ITEMS)]
    edges: Annotated[list[DiagramEdge], Meta(max_length=4 * MAX_ITEMS)]
    mermaid: Text = ""


class WorkflowsReply(Message, tag="workflows", frozen=True):
    id: Count
    workflows: Annotated[list[WorkflowView], Meta(max_length=MAX_ITEMS)]


class ReportReply(Message, tag="report", frozen=True):
    """A workflow's report over the runs `GetReport` asked for: the newest `report.runs`
    of the `total` there were, as a runtime covers a bounded number in one report."""

    id: Count
    report: Report
    total: Count = 0


class RunAccepted(Message, tag="run_accepted", frozen=True):
    """The run exists and is journaled."""

    id: Count
    run_id: Name


class RunReply(Message, tag="run", frozen=True):
    """A run record; `timed_out` when a wait ended before the run did."""

    id: Count
    record: RunRecord
    timed_out: bool = False


class RunsReply(Message, tag="runs", frozen=True):
    """Run summaries; in a cluster, of the runs this runtime owns, and `peers`: the control
    planes of the other live runtimes, to ask for theirs."""

    id: Count
    runs: Annotated[list[RunSummary], Meta(max_length=100_000)]
    peers: Endpoints = []
    total: Count = 0
    """How many runs matched, of which `runs` is the page asked for."""


class ControlError(Message, tag="error", frozen=True):
    """A refused request. With code `elsewhere`, `owner` is the control plane of the
    runtime of the cluster that owns the run, to ask instead (empty while the run is
    being taken over: ask again shortly)."""

    id: Count
    code: ErrorCode
    message: Text = ""
    owner: Endpoint = ""


ControlRequest = (
    StartRun
    | GetRun
    | WaitRun
    | ListRuns
    | CancelRun
    | ResumeRun
    | ListPending
    | Decide
    | ListMembers
    | ForkRun
    | Watch
    | ListAgents
    | ListWorkflows
    | GetReport
)
ControlReply = (
    RunAccepted
    | RunReply
    | RunsReply
    | PendingReply
    | MembersReply
    | Changed
    | AgentsReply
    | WorkflowsReply
    | ReportReply
    | ControlError
)

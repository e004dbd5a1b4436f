"""The control plane: clients start runs, read records, wait for outcomes, list runs.

It owns the open waits; everything else it asks of the supervisor through
`RunHost`, so the supervisor keeps the one journal and the one engine loop.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from typing import Any, Protocol

from protocols import (
    PROTOCOL_VERSION,
    TERMINAL_STATUSES,
    AgentsReply,
    CancelRun,
    Codec,
    ControlError,
    ControlRequest,
    Decide,
    ErrorCode,
    ForkRun,
    GetReport,
    GetRun,
    ListAgents,
    ListMembers,
    ListPending,
    ListRuns,
    ListWorkflows,
    Message,
    PendingReply,
    ProtocolError,
    ReportReply,
    ResumeRun,
    RunAccepted,
    RunRecord,
    RunReply,
    RunsReply,
    StartRun,
    WaitRun,
    Watch,
    WorkflowsReply,
    clip,
)
from runtime.engine._events import DecisionMade
from runtime.engine._run import Run
from runtime.observe._report import report
from runtime.planes._authority import (
    Refusal,
    check_decision,
    fork_values_problem,
    may_list,
    may_see,
)
from runtime.planes._listing import page_of_runs
from runtime.planes._refusals import REPLY_TEXT, RefusalHost
from runtime.planes._reports import runs_to_report
from runtime.planes._roster import Roster
from runtime.planes._views import pending_decisions, record_view, summary
from runtime.planes._watches import Watches
from runtime.planes._workflow_views import workflow_view
from runtime.security._principals import Principal
from runtime.store._held import HeldRun
from runtime.workflow._graph import Graph

WaitKey = tuple[str, bytes, int, str]
"""("wait", client, request id, run id): the timer that ends a wait."""


class RunHost(RefusalHost, Protocol):
    """What the control plane needs of the supervisor."""

    @property
    def runs(self) -> Mapping[str, Run]: ...

    @property
    def held(self) -> Mapping[str, HeldRun]: ...

    @property
    def active_runs(self) -> int: ...

    def start_run(self, graph: Graph, inputs: dict[str, Any], started_by: str) -> str:
        """Journal a new run and begin it; its id."""

    def cancel_run(self, run_id: str, principal: str, reason: str) -> None:
        """Journal the end of a run that has not ended."""

    def resume_run(self, run_id: str, principal: str) -> None:
        """Journal that a stuck run carries on, and carry it on."""

    def apply(self, event: DecisionMade) -> None:
        """Journal a checked decision and fold it into its run."""

    def fork_run(self, identity: bytes, request: ForkRun, principal: str) -> None:
        """Fork the run `request` names (checked: held here, at one of its versions, with
        values the workflow knows), once its journal is read off the loop; answer later
        with the new run's id, or why not."""

    def send_control(self, identity: bytes, message: Message) -> None: ...

    def answer_past(self, identity: bytes, request: int, run_id: str, version: int) -> None:
        """Answer later with the run's record as it was at `version` (from its journal)."""

    def start_wait(self, key: WaitKey, seconds: float) -> None: ...

    def locate(self, identity: bytes, request: ControlRequest) -> bool:
        """In a cluster, answer later a request about a run this runtime does not hold (its
        owner is another, or it is being taken over), or for the cluster's members; False
        for a runtime that is not one of a cluster."""

    def control_peers(self) -> list[str]:
        """The control planes of the other live runtimes of the cluster, if any."""

    def cancel_wait(self, key: WaitKey) -> None: ...


class ControlPlane:
    """Answers every request with a reply carrying its id, or a `ControlError`."""

    def __init__(
        self,
        host: RunHost,
        graphs: Mapping[str, Graph],
        codec: Codec[ControlRequest],
        *,
        max_active_runs: int,
        secure: bool,
        connected_roles: Callable[[], Container[str]] | None = None,
        roster: Callable[[], Roster] = Roster,
    ) -> None:
        """`connected_roles` says of which roles an agent is connected now (without it,
        none), so that a step queued for a busy agent reads as running, not as waiting
        for an agent. `roster` gives the agents connected now and their roles' load (without
        it, none)."""
        self._host = host
        self._connected_roles = connected_roles or _no_roles
        self._roster = roster
        self._secure = secure
        self._graphs = graphs
        self._codec = codec
        self._max_active_runs = max_active_runs
        self._waiters: dict[str, list[tuple[bytes, int, bool]]] = {}
        """Per run: (client, request id, summary only) of each wait still open."""
        self.watches = Watches(host, self._find)
        """The open watches; the supervisor tells them of each batch it journals."""

    def on_frame(
        self,
        identity: bytes,
        principal: Principal | None,
        payload: bytes | memoryview,
        parts: int,
        frame: object = None,
    ) -> None:
        """Answer one request from `identity`, sent under `principal`'s key (None: insecure)."""
        host = self._host
        who = "" if principal is None else principal.name
        # Refusals are answered at the pace `reject` keeps: a client that sends bad frames
        # and reads nothing would otherwise have the runtime hold a reply for each.
        if parts != 1:
            if host.reject("malformed", identity, f"{parts} frames, expected 1", who):
                self._error(identity, 0, "malformed", "one frame per request")
            return
        try:
            request = self._codec.decode(payload)
        except ProtocolError as exc:
            if host.reject(exc.reason, identity, exc.detail, who):
                code: ErrorCode = "oversize" if exc.reason == "oversize" else "invalid_message"
                self._error(identity, 0, code, clip(str(exc), REPLY_TEXT))
            return
        if request.protocol != PROTOCOL_VERSION:
            text = f"this runtime speaks protocol {PROTOCOL_VERSION}, not {request.protocol}"
            if host.reject("incompatible_protocol", identity, text, who):
                self._error(identity, request.id, "incompatible_protocol", text)
            return
        if not self._authorised(identity, principal, request):
            return
        match request:
            case StartRun():
                self._start_run(identity, request, who)
            case GetRun():
                self._get_run(identity, request)
            case WaitRun():
                self._wait_run(identity, request)
            case ListRuns():
                self._list_runs(identity, request)
            case CancelRun():
                self._cancel_run(identity, request, who)
            case ResumeRun():
                self._resume_run(identity, request, who)
            case ForkRun():
                self._fork_run(identity, request, who)
            case ListPending():
                self._list_pending(identity, principal, request)
            case Decide():
                self._decide(identity, principal, request)
            case Watch():
                self._watch(identity, request)
            case ListWorkflows():
                views = [workflow_view(self._graphs[name]) for name in sorted(self._graphs)]
                self._host.send_control(identity, WorkflowsReply(id=request.id, workflows=views))
            case ListMembers():
                if not self._host.locate(identity, request):
                    text = "this runtime is not one of a cluster (its store is not PostgreSQL)"
                    self._error(identity, request.id, "wrong_state", text)
            case ListAgents():
                self._list_agents(identity, request)
            case GetReport():
                self._get_report(identity, request)

    def _authorised(
        self, identity: bytes, principal: Principal | None, request: ControlRequest
    ) -> bool:
        """Whether `principal` may make `request`; if not, refused, counted and audited."""
        if not self._secure or isinstance(request, Decide):
            # A decision's authority is its checkpoint's approver groups: checked with it.
            return True
        if isinstance(request, ListPending) and principal is not None and may_list(principal):
            return True
        acts = isinstance(request, StartRun | CancelRun | ResumeRun | ForkRun)
        if principal is not None:
            if acts and principal.may_operate():
                return True
            if not acts and principal.may_read():
                return True
        who = "" if principal is None else principal.name
        needs = "'operator'" if acts else "'operator' or 'viewer'"
        action = _ACTIONS[type(request)]
        text = f"principal {who!r} may not {action.replace('_', ' ')}: it needs role {needs}"
        if self._host.reject("unauthorized", identity, text, who):
            self._error(identity, request.id, "unauthorized", text)
        run_id = getattr(request, "run_id", None)
        if isinstance(run_id, str) and not isinstance(request, StartRun):
            self._host.audit(run_id, who, action, "unauthorized", text)
        return False

    def run_ended(self, run: Run | HeldRun) -> None:
        """Answer everyone waiting for `run`."""
        for identity, request, brief in self._waiters.pop(run.run_id, ()):
            self._host.cancel_wait(("wait", identity, request, run.run_id))
            self._host.send_control(identity, self._run_reply(run, request, brief=brief))

    def end_wait(self, identity: bytes, request: int, run_id: str) -> None:
        """The wait's time is up: answer with the record as it is, marked timed out."""
        waiters = self._waiters.get(run_id, [])
        for waiter in waiters:
            if waiter[:2] == (identity, request):
                waiters.remove(waiter)
                run = self._find(run_id)
                assert run is not None, "a run is never forgotten while waited for"
                reply = self._run_reply(run, request, brief=waiter[2], timed_out=True)
                self._host.send_control(identity, reply)
                return

    def _record(self, run: Run | HeldRun) -> RunRecord:
        return record_view(run, self._connected_roles())

    def _run_reply(
        self, run: Run | HeldRun, request: int, *, brief: bool, timed_out: bool = False
    ) -> RunReply | RunsReply:
        if brief:
            return RunsReply(id=request, runs=[summary(run, self._connected_roles())])
        return RunReply(id=request, record=self._record(run), timed_out=timed_out)

    def _find(self, run_id: str) -> Run | HeldRun | None:
        return self._host.runs.get(run_id) or self._host.held.get(run_id)

    def _unknown(
        self,
        identity: bytes,
        request: GetRun | WaitRun | CancelRun | ResumeRun | ForkRun | Watch,
    ) -> None:
        """A run this runtime does not hold: its cluster's, or none."""
        if not self._host.locate(identity, request):
            self._error(identity, request.id, "unknown_run", f"no run {request.run_id!r}")

    def _error(self, identity: bytes, request: int, code: ErrorCode, text: str) -> None:
        self._host.send_control(identity, ControlError(id=request, code=code, message=text))

    def _loaded(self, identity: bytes, request: StartRun | GetReport) -> Graph | None:
        """The workflow `request` names, or None once refused as not loaded."""
        graph = self._graphs.get(request.workflow)
        if graph is None:
            loaded = ", ".join(sorted(self._graphs)) or "none"
            self._error(
                identity,
                request.id,
                "unknown_workflow",
                f"no workflow named {request.workflow!r} is loaded (loaded: {loaded})",
            )
        return graph

    def _list_agents(self, identity: bytes, request: ListAgents) -> None:
        found = self._roster()
        reply = AgentsReply(id=request.id, agents=found.agents, roles=found.roles)
        self._host.send_control(identity, reply)

    def _get_report(self, identity: bytes, request: GetReport) -> None:
        """The report over the runs held here (in a cluster, this runtime's alone), the
        newest of them only past a bound, as it is worked out on the supervisor's loop."""
        graph = self._loaded(identity, request)
        if graph is None:
            return
        runs, total = runs_to_report(self._host.runs.values(), graph.name, request.since)
        reply = ReportReply(id=request.id, report=report(graph, runs), total=total)
        self._host.send_control(identity, reply)

    def _start_run(self, identity: bytes, request: StartRun, started_by: str) -> None:
        graph = self._loaded(identity, request)
        if graph is None:
            return
        expected = graph.workflow.inputs
        missing = [k for k in expected if k not in request.inputs]
        unknown = [k for k in request.inputs if k not in expected]
        if missing or unknown:
            problem = (
                f"missing input {missing[0]!r}" if missing else f"unknown input {unknown[0]!r}"
            )
            self._error(
                identity,
                request.id,
                "invalid_input",
                f"{problem}; workflow {graph.name!r} takes: {', '.join(expected) or 'no inputs'}",
            )
            return
        active = self._host.active_runs
        if active >= self._max_active_runs:
            self._error(
                identity,
                request.id,
                "overloaded",
                f"{active} runs are in progress, the limit is {self._max_active_runs}",
            )
            return
        run_id = self._host.start_run(graph, dict(request.inputs), started_by)
        self._host.send_control(identity, RunAccepted(id=request.id, run_id=run_id))

    def _get_run(self, identity: bytes, request: GetRun) -> None:
        run = self._find(request.run_id)
        if run is None:
            self._unknown(identity, request)
            return
        if isinstance(run, HeldRun) and request.at is not None:
            text = f"run {run.run_id!r} cannot be rebuilt at any version: {run.reason}"
            self._error(identity, request.id, "wrong_state", text)
            return
        if request.at is not None:
            if not 1 <= request.at <= run.seq:
                text = f"run {run.run_id!r} has versions 1 to {run.seq}, not {request.at}"
                self._error(identity, request.id, "invalid_input", text)
                return
            self._host.answer_past(identity, request.id, run.run_id, request.at)
            return
        self._host.send_control(identity, RunReply(id=request.id, record=self._record(run)))

    def _wait_run(self, identity: bytes, request: WaitRun) -> None:
        run = self._find(request.run_id)
        if run is None:
            self._unknown(identity, request)
            return
        if run.status in TERMINAL_STATUSES:
            reply = self._run_reply(run, request.id, brief=request.summary)
            self._host.send_control(identity, reply)
            return
        waiters = self._waiters.setdefault(run.run_id, [])
        if any(w[:2] == (identity, request.id) for w in waiters):
            self._error(
                identity,
                request.id,
                "invalid_input",
                f"request id {request.id} is already waiting for run {run.run_id!r}",
            )
            return
        waiters.append((identity, request.id, request.summary))
        self._host.start_wait(("wait", identity, request.id, run.run_id), request.timeout_ms / 1000)

    def _list_runs(self, identity: bytes, request: ListRuns) -> None:
        if request.value is not None and request.key is None:
            text = "a value filter compares the value of a key: give the key too"
            self._error(identity, request.id, "invalid_input", text)
            return
        host = self._host
        runs, total = page_of_runs(
            host.runs.values(), host.held.values(), request, self._connected_roles()
        )
        peers = self._host.control_peers()
        reply = RunsReply(id=request.id, runs=runs, peers=peers, total=total)
        self._host.send_control(identity, reply)

    def _watch(self, identity: bytes, request: Watch) -> None:
        if request.run_id is None:
            self.watches.open(identity, request, None)
            return
        run = self._find(request.run_id)
        if run is None:
            self._unknown(identity, request)
            return
        self.watches.open(identity, request, run)

    def _cancel_run(self, identity: bytes, request: CancelRun, who: str) -> None:
        run = self._find(request.run_id)
        if run is None:
            self._unknown(identity, request)
            return
        if run.status in TERMINAL_STATUSES:
            text = f"run {run.run_id!r} has already ended ({run.status})"
            self._error(identity, request.id, "wrong_state", text)
            return
        self._host.cancel_run(run.run_id, who, request.reason)
        if isinstance(run, HeldRun):
            self.run_ended(run)
        self._host.send_control(identity, RunReply(id=request.id, record=self._record(run)))

    def _resume_run(self, identity: bytes, request: ResumeRun, who: str) -> None:
        run = self._find(request.run_id)
        if run is None:
            self._unknown(identity, request)
            return
        if isinstance(run, HeldRun) and run.status == "stuck":
            text = f"run {run.run_id!r} cannot be resumed by this runtime: {run.reason}"
            self._error(identity, request.id, "wrong_state", text)
            return
        if run.status != "stuck":
            text = f"run {run.run_id!r} is {run.status}; only a stuck run can be resumed"
            self._error(identity, request.id, "wrong_state", text)
            return
        self._host.resume_run(run.run_id, who)
        self._host.send_control(identity, RunReply(id=request.id, record=self._record(run)))

    def _fork_run(self, identity: bytes, request: ForkRun, who: str) -> None:
        run = self._find(request.run_id)
        if run is None:
            self._unknown(identity, request)
            return
        if isinstance(run, HeldRun):
            text = f"run {run.run_id!r} cannot be forked, as it cannot be rebuilt: {run.reason}"
            self._error(identity, request.id, "wrong_state", text)
            return
        if not 1 <= request.at <= run.seq:
            text = f"run {run.run_id!r} has versions 1 to {run.seq}, not {request.at}"
            self._error(identity, request.id, "invalid_input", text)
            return
        problem = fork_values_problem(run.graph, dict(request.values))
        if problem is not None:
            self._error(identity, request.id, "invalid_input", clip(problem, REPLY_TEXT))
            return
        active = self._host.active_runs
        if active >= self._max_active_runs:
            text = f"{active} runs are in progress, the limit is {self._max_active_runs}"
            self._error(identity, request.id, "overloaded", text)
            return
        self._host.fork_run(identity, request, who)

    def _list_pending(
        self, identity: bytes, principal: Principal | None, request: ListPending
    ) -> None:
        runs = self._host.runs
        peers: list[str] = []
        if request.run_id is None:
            chosen = [run for run in runs.values() if run.decisions]
            peers = self._host.control_peers()
        else:
            found = runs.get(request.run_id)
            if found is None and self._host.locate(identity, request):
                return
            chosen = [] if found is None else [found]
        pending = [
            item
            for run in chosen
            for item in pending_decisions(run)
            if may_see(principal, run.decisions[item.step])
        ]
        pending.sort(key=lambda p: p.opened_at)
        reply = PendingReply(id=request.id, pending=pending, peers=peers)
        self._host.send_control(identity, reply)

    def _decide(self, identity: bytes, principal: Principal | None, request: Decide) -> None:
        who = "" if principal is None else principal.name
        run = self._host.runs.get(request.run_id)
        if (
            run is None
            and request.run_id not in self._host.held
            and self._host.locate(identity, request)
        ):
            return
        if run is None:
            # Any key may ask to decide, so this is a refusal, paced as one, not an answer.
            text = clip(f"no run {request.run_id!r}", REPLY_TEXT)
            if self._host.reject("unknown_run", identity, text, who):
                self._error(identity, request.id, "unknown_run", text)
            return
        outcome = (
            Refusal("unauthorized", "a decision needs an authenticated approver")
            if self._secure and principal is None
            else check_decision(run, principal, request)
        )
        if isinstance(outcome, Refusal):
            if self._host.reject(outcome.code, identity, outcome.message, who):
                self._error(identity, request.id, outcome.code, clip(outcome.message, REPLY_TEXT))
            self._host.audit(
                run.run_id, who, f"decide_{request.decision}", outcome.code, outcome.message,
                step=request.step, attempt=request.attempt,
            )  # fmt: skip
            return
        self._host.apply(outcome)
        self._host.send_control(identity, RunReply(id=request.id, record=self._record(run)))


_ACTIONS: dict[type[ControlRequest], str] = {
    StartRun: "start_run",
    GetRun: "get_run",
    WaitRun: "wait_run",
    ListRuns: "list_runs",
    CancelRun: "cancel_run",
    ResumeRun: "resume_run",
    ForkRun: "fork_run",
    ListPending: "list_pending",
    Decide: "decide",
    ListMembers: "list_members",
    Watch: "watch",
    ListWorkflows: "list_workflows",
    ListAgents: "list_agents",
    GetReport: "get_report",
}
"""How each request is named in refusals and audit entries."""


def _no_roles() -> Container[str]:
    """The connected roles of a plane told of none."""
    return ()

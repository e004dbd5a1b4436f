"""The frames of one fuzz example: valid messages about what the world holds (sessions
register, take steps, call tools, end runs), and the noise built around them.

`Frames` draws each frame from a seeded `random.Random`, the world's state, so that
results, tool calls and replies often concern real tasks, and the corpus Hypothesis drew.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from protocols import (
    MAX_TEXT,
    PROTOCOL_VERSION,
    ActorKind,
    ActorMessage,
    Bye,
    CancelRun,
    ControlRequest,
    Decide,
    DecisionKind,
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
from runtime.planes._sessions import Session, TaskKey
from runtime.workflow._definition import Step
from tests.runtime.fuzz.noise import Noise
from tests.runtime.fuzz.peers import (
    ACTOR_TAGS,
    AGENT_NAMES,
    CONTROL_TAGS,
    ERROR_CODES,
    HOMES,
    RUN_STATUSES,
    TOOL_HOST,
)
from tests.runtime.fuzz.world import (
    AGENT_ROLES,
    ENCODE,
    ROLE_TOOLS,
    STEPS,
    TOOL_NAMES,
    WORKFLOW,
    World,
)


class Frames(Noise):
    """Frames for one example, drawn from a seeded `random.Random` and the world's state.

    `agent()` and `control()` return (payload, parts) for one peer; what they build
    depends on what that peer's session holds, so results, tool calls and replies
    often concern real tasks, and on the corpus Hypothesis drew.
    """

    def __init__(
        self,
        rng: random.Random,
        world: World,
        corpus: Sequence[bytes],
        *,
        max_frame: int,
    ) -> None:
        super().__init__(rng, corpus, max_frame=max_frame)
        self.world = world
        self.assigned: list[TaskKey] = []
        """Every task ever assigned in this example: results for them are often stale."""
        self.request_ids = 0

    def run_id(self) -> str:
        runs = self.world.runs
        if runs and self.rng.random() < 0.7:
            return self.rng.choice(list(runs))
        return self.name()

    def request_id(self) -> int:
        # Often reused, so that replies and waits must be told apart by more than their id.
        self.request_ids += 1
        return self.rng.choice((self.request_ids, self.request_ids, 0, 1, 2**53))

    # -- valid messages ----------------------------------------------------------------------------

    def register(self, identity: bytes) -> Register:
        rng = self.rng
        kind: ActorKind = (
            "tool_host" if identity.startswith(b"tools") and rng.random() < 0.9 else "agent"
        )
        if rng.random() < 0.1:
            kind = "agent" if kind == "tool_host" else "tool_host"
        if kind == "tool_host":
            role = TOOL_HOST if rng.random() < 0.9 else self.name()
            tools = rng.sample(TOOL_NAMES, rng.randint(0, len(TOOL_NAMES)))
            specs = [ToolSpec(name=t, description=self.text(), read_only=True) for t in tools]
            if rng.random() < 0.1:
                specs.append(ToolSpec(name=self.name(), parameters=self.value(2)))
        else:
            waiting = self.waiting_roles()
            home = HOMES[identity] if self.world.secure else None
            # Mostly as an honest actor would: a role with steps waiting, that its key holds.
            mine = [r for r in waiting if home is None or r in home.roles]
            r = rng.random()
            if mine and r < 0.8:
                role = rng.choice(mine)
            else:
                role = rng.choice(AGENT_ROLES) if r < 0.9 else self.name()
            allowed = ROLE_TOOLS.get(role, ())
            tools = list(allowed) if rng.random() < 0.8 else [self.name()]
            specs = []
        return Register(
            protocol=PROTOCOL_VERSION if rng.random() < 0.95 else self.count(),
            name=rng.choice(AGENT_NAMES),
            role=role,
            kind=kind,
            tools=tools,
            capacity=rng.choice((1, 1, 2, 3, 4_096)),
            specs=specs,
        )

    def waiting_roles(self) -> list[str]:
        """Roles of the steps queued in running runs: where an idle agent is wanted."""
        return sorted(
            {
                STEPS[name].role
                for run in self.world.runs.values()
                if run.status == "running"
                for name, state in run.steps.items()
                if state.status == "queued"
            }
        )

    def outputs(self, step: Step) -> dict[str, Any]:
        """What an honest agent of `step` returns, sometimes slightly wrong."""
        rng = self.rng
        out: dict[str, Any] = {}
        for key, kind in step.writes.items():
            if kind is str:
                out[key] = rng.choice(("billing", "general", "c-100", self.text()))
            elif kind is list:
                out[key] = rng.choice(([], [{"date": "2026-10-01", "amount": 1999}]))
            elif kind is dict:
                out[key] = {"action": rng.choice(("refund", "explain")), "amount": 1999}
            elif kind is bool:
                out[key] = rng.random() < 0.8
            else:
                out[key] = self.value(2)
        if rng.random() < 0.03:
            out = self.data()
        return out

    def task_message(self, session: Session) -> ActorMessage:
        """A result, failure or tool call about a task the agent holds or once held."""
        rng = self.rng
        held = sorted(session.in_flight)
        if held and rng.random() < 0.9:
            run_id, step_name, attempt = rng.choice(held)
        elif self.assigned:
            run_id, step_name, attempt = rng.choice(self.assigned)
        else:
            run_id, step_name, attempt = self.run_id(), rng.choice(list(STEPS)), 1
        step = STEPS[step_name]
        if rng.random() < 0.2:
            return self.model_call(run_id, step_name, attempt)
        r = rng.random()
        if (step.tools and r < 0.3) or r < 0.02:
            # Tools the step may use; rarely one it may not, which fails the step.
            return ToolCall(
                call_id=self.count(),
                run_id=run_id,
                step=step_name,
                attempt=attempt,
                tool=rng.choice(step.tools) if step.tools and r > 0.01 else self.name(),
                args=self.data(),
                idempotency_key=self.text(),
            )
        if r < 0.95:
            return StepResult(
                run_id=run_id,
                step=step_name,
                attempt=attempt,
                outputs=self.outputs(step),
                rationale=self.text(),
                confidence=rng.choice((1.0, 0.9, 0.0)),
                caveats=self.texts(),
            )
        return StepFailure(
            run_id=run_id,
            step=step_name,
            attempt=attempt,
            reason=rng.choice(("error", "invalid_output")),
            # As long as a text may be, at times: the runtime quotes it in the record.
            message="m" * MAX_TEXT if self.large and rng.random() < 0.2 else self.text(),
        )

    def model_call(self, run_id: str, step: str, attempt: int) -> ModelCall:
        """A model call reported for a task, numbered as an honest agent numbers its calls,
        sometimes again under a number it used already."""
        rng = self.rng
        run = self.world.runs.get(run_id)
        state = run.steps.get(step) if run is not None else None
        made = len(state.replies) if state is not None else 0
        r = rng.random()
        # Mostly the next number; at times one already reported, or any at all.
        index = made if r < 0.95 else self.count()
        if made and r < 0.3:
            index = rng.randrange(made)
        return ModelCall(
            run_id=run_id,
            step=step,
            attempt=attempt,
            index=index,
            model=rng.choice(("gpt-4o-mini", "claude", self.name())),
            request_digest=self.text(),
            reply=self.value(2),
            tokens_in=rng.randint(0, 5_000),
            tokens_out=rng.randint(0, 2_000),
            latency_ms=rng.uniform(0.0, 5_000.0),
            finish_reason=rng.choice(("stop", "length", "")),
        )

    def tool_reply(self, session: Session) -> ToolReply:
        rng = self.rng
        calls = sorted(session.tool_calls)
        ok = rng.random() < 0.8
        return ToolReply(
            call_id=rng.choice(calls) if calls and rng.random() < 0.9 else self.count(),
            ok=ok,
            result=self.value(3) if ok else None,
            error=None if ok else rng.choice(ERROR_CODES),
            message=self.text(),
        )

    def any_agent_message(self, identity: bytes) -> ActorMessage:
        """A valid message of any type the agent plane receives, fields at random."""
        rng = self.rng
        match rng.randrange(9):
            case 0:
                return self.register(identity)
            case 1:
                return Heartbeat(in_flight=self.count())
            case 2:
                return StepResult(
                    run_id=self.run_id(),
                    step=self.name(),
                    attempt=self.attempt(),
                    outputs=self.data(),
                    rationale=self.text(),
                    confidence=rng.random(),
                    caveats=self.texts(),
                )
            case 3:
                return StepFailure(
                    run_id=self.run_id(),
                    step=self.name(),
                    attempt=self.attempt(),
                    reason=rng.choice(("error", "invalid_output")),
                    message=self.text(),
                )
            case 4:
                return ToolCall(
                    call_id=self.count(),
                    run_id=self.run_id(),
                    step=self.name(),
                    attempt=self.attempt(),
                    tool=self.name(),
                    args=self.data(),
                    idempotency_key=self.text(),
                )
            case 5:
                return ToolReply(
                    call_id=self.count(),
                    ok=rng.random() < 0.5,
                    result=self.value(),
                    error=rng.choice((None, *ERROR_CODES)),
                    message=self.text(),
                )
            case 6:
                return Bye(reason=self.text())
            case 7:
                return self.model_call(self.run_id(), self.name(), self.attempt())
            case _:
                return Error(code=rng.choice(ERROR_CODES), message=self.text(), ref=self.text())

    def honest_agent_message(self, identity: bytes) -> ActorMessage:
        """What a well-behaved actor would send now, given its session."""
        rng = self.rng
        session = self.world.agents._registry.by_identity.get(identity)
        if session is None:
            return self.register(identity)
        r = rng.random()
        if session.kind == "tool_host":
            if session.tool_calls and r < 0.85:
                return self.tool_reply(session)
        elif (session.in_flight and r < 0.85) or (self.assigned and r < 0.1):
            return self.task_message(session)
        if rng.random() < (0.5 if self.waiting_roles() else 0.05):
            # Idle: come back in another role, likely one with steps waiting.
            return self.register(identity)
        return Bye(reason=self.text()) if rng.random() < 0.03 else Heartbeat(in_flight=1)

    def control_request(self) -> ControlRequest:
        """A request a client might make; most of them well-formed and about real runs."""
        rng = self.rng
        protocol = PROTOCOL_VERSION if rng.random() < 0.97 else self.count()
        match rng.randrange(14):
            case 0 | 1 | 2 | 3:
                inputs: dict[str, Any] = {
                    "request": {"text": rng.choice(("charged twice", "hello")), "customer_id": "c"}
                }
                if rng.random() < 0.15:
                    inputs = self.data()
                return StartRun(
                    id=self.request_id(),
                    protocol=protocol,
                    workflow=WORKFLOW if rng.random() < 0.9 else self.name(),
                    inputs=inputs,
                )
            case 4 | 5:
                return GetRun(
                    id=self.request_id(),
                    protocol=protocol,
                    run_id=self.run_id(),
                    at=None if rng.random() < 0.9 else self.count(),
                )
            case 6 | 7:
                return WaitRun(
                    id=self.request_id(),
                    protocol=protocol,
                    run_id=self.run_id(),
                    timeout_ms=rng.choice((0, 1, 500, 5_000, 20_000, 86_400_000)),
                    summary=rng.random() < 0.5,
                )
            case 10:
                return CancelRun(
                    id=self.request_id(),
                    protocol=protocol,
                    run_id=self.run_id(),
                    reason=self.text(),
                )
            case 11:
                if rng.random() < 0.5:
                    return self.fork(protocol)
                return ResumeRun(id=self.request_id(), protocol=protocol, run_id=self.run_id())
            case 12:
                if rng.random() < 0.3:
                    return self.rare_request(protocol)
                run_id = None if rng.random() < 0.5 else self.run_id()
                return ListPending(id=self.request_id(), protocol=protocol, run_id=run_id)
            case 13:
                return self.decide(protocol)
            case _:
                return ListRuns(
                    id=self.request_id(),
                    protocol=protocol,
                    status=rng.choice((None, None, *RUN_STATUSES)),
                    workflow=rng.choice((None, WORKFLOW, self.name())),
                    limit=rng.choice((1, 2, 100, 100_000)),
                )

    def rare_request(self, protocol: int) -> ControlRequest:
        """One of the requests a client makes now and then, so that every type is reached
        whatever the corpus holds."""
        rng = self.rng
        rid = self.request_id()
        match rng.randrange(5):
            case 0:
                workflow = WORKFLOW if rng.random() < 0.8 else self.name()
                return GetReport(id=rid, protocol=protocol, workflow=workflow)
            case 1:
                return ListMembers(id=rid, protocol=protocol)
            case 2:
                return ListAgents(id=rid, protocol=protocol)
            case 3:
                return ListWorkflows(id=rid, protocol=protocol)
            case _:
                run_id = None if rng.random() < 0.5 else self.run_id()
                return Watch(
                    id=rid, protocol=protocol, run_id=run_id, after=rng.choice((0, 1, 5)),
                    timeout_ms=rng.choice((0, 500)),
                )  # fmt: skip

    def fork(self, protocol: int) -> ForkRun:
        """A fork: mostly of a run at one of its versions, with a value it knows or none."""
        rng = self.rng
        run_id = self.run_id()
        run = self.world.runs.get(run_id)
        at = rng.randint(1, run.seq) if run is not None and rng.random() < 0.8 else self.count()
        known: dict[str, Any] = {"request": {"text": "hello", "customer_id": "c"}}
        values = rng.choice(({}, known, self.data()))
        return ForkRun(
            id=self.request_id(), protocol=protocol, run_id=run_id, at=at, values=values,
            reason=self.text(),
        )  # fmt: skip

    def decide(self, protocol: int) -> Decide:
        """A decision: mostly on one that is open, quoting what it shows, sometimes not."""
        rng = self.rng
        open_ = [(run, name) for run in self.world.runs.values() for name in run.decisions]
        kinds: tuple[DecisionKind, ...] = ("approve", "reject", "retry", "skip", "abort")
        if open_ and rng.random() < 0.8:
            run, name = rng.choice(open_)
            waiting = run.decisions[name]
            decision = rng.choice(waiting.choices) if rng.random() < 0.85 else rng.choice(kinds)
            return Decide(
                id=self.request_id(),
                protocol=protocol,
                run_id=run.run_id,
                step=name,
                attempt=waiting.attempt if rng.random() < 0.9 else self.count(),
                decision=decision,
                digest=waiting.digest if rng.random() < 0.85 else self.text(),
                comment=self.text(),
                values={} if rng.random() < 0.8 else self.data(),
            )
        return Decide(
            id=self.request_id(),
            protocol=protocol,
            run_id=self.run_id(),
            step=self.name(),
            attempt=self.count(),
            decision=rng.choice(kinds),
            digest=self.text(),
        )

    def agent(self, identity: bytes) -> tuple[bytes, int]:
        if self.rng.random() < 0.7:
            valid = self.honest_agent_message(identity)
            if self.rng.random() < 0.8:
                return ENCODE(valid), 1
        else:
            valid = self.any_agent_message(identity)
        return self.frame(valid, ACTOR_TAGS)

    def control(self) -> tuple[bytes, int]:
        valid = self.control_request()
        if self.rng.random() < 0.6:
            return ENCODE(valid), 1
        return self.frame(valid, CONTROL_TAGS)

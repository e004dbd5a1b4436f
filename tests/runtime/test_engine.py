"""The pure engine, driven event by event by a scripted stand-in for the agents."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from protocols import FailureKind
from runtime.engine._events import (
    CancelTask,
    CancelTimer,
    Command,
    Dispatch,
    ForwardToolCall,
    JournalEvent,
    RefuseToolCall,
    RunEnded,
    StartTimer,
    StepDispatched,
    StepFailed,
    StepSucceeded,
    TimerFired,
    ToolCallRequested,
)
from runtime.engine._run import Run
from runtime.errors import Problem, WorkflowInvalid
from runtime.testing import EngineDriver
from runtime.workflow._conditions import key
from runtime.workflow._definition import Decision, Node, Role, Route, Step, Workflow, chain
from runtime.workflow._graph import Graph, compile_workflow
from runtime.workflow._policies import (
    FailurePolicy,
    Goto,
    Halt,
    PolicyTable,
    ProceedWithFlag,
    Retry,
)

RUN = "run-1"
ROLE = Role("worker", tools=["search", "mail", "charge", "publish"])


@dataclass(frozen=True)
class Ok:
    """The agent returns these outputs (by default one value per declared write)."""

    outputs: Mapping[str, Any] | None = None
    confidence: float = 1.0
    caveats: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fail:
    """The agent reports a failure of this kind."""

    kind: FailureKind = "error"
    message: str = "boom"


@dataclass(frozen=True)
class TimesOut:
    """The agent says nothing and the step's timeout timer fires."""


@dataclass(frozen=True)
class Hold:
    """The agent takes the task and keeps it: no result arrives."""


@dataclass(frozen=True)
class CallsTool:
    """The agent asks for a tool, then (unless refused) returns `then`."""

    tool: str
    agent_tools: tuple[str, ...]
    then: Ok | Fail = field(default_factory=Ok)


Outcome = Ok | Fail | TimesOut | Hold | CallsTool


class Driver(EngineDriver):
    """Plays the agents: answers each `Dispatch` per a script, fires retry timers at once."""

    def __init__(
        self,
        graph: Graph,
        script: Mapping[str, Sequence[Outcome]] | None = None,
        inputs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(graph, inputs, run_id=RUN)
        self.script = {name: deque(outcomes) for name, outcomes in (script or {}).items()}
        self.held: list[Dispatch] = []
        self.pending: deque[Command] = deque(self.last)
        self.pump()

    def feed(self, event: JournalEvent, *, at: float | None = None) -> list[Command]:
        """Apply one event and queue the commands it caused."""
        commands = super().feed(event, at=at)
        self.pending.extend(commands)
        return commands

    def pump(self) -> None:
        """Carry out queued commands until none is left."""
        while self.pending:
            command = self.pending.popleft()
            match command:
                case Dispatch():
                    self.play(command)
                case StartTimer(purpose="retry"):
                    self.fire("retry", command.step, attempt=command.attempt)

    def play(self, task: Dispatch) -> None:
        outcomes = self.script.get(task.step)
        outcome = outcomes.popleft() if outcomes else Ok()
        step, attempt, agent = task.step, task.attempt, f"{task.role}-1"
        self.dispatch(step, attempt=attempt, agent=agent)
        match outcome:
            case Ok():
                self.ok(step, attempt, agent, outcome)
            case Fail(kind=kind, message=message):
                self.fail(step, kind, message, attempt=attempt, agent=agent)
            case TimesOut():
                self.fire("timeout", step, attempt=attempt)
            case Hold():
                self.held.append(task)
            case CallsTool(tool=tool, agent_tools=agent_tools, then=then):
                request = ToolCallRequested(
                    RUN, step, attempt, agent, list(agent_tools), 1, tool, {}, "idem-1"
                )
                if any(isinstance(c, RefuseToolCall) for c in self.feed(request)):
                    return
                if isinstance(then, Fail):
                    self.fail(step, then.kind, then.message, attempt=attempt, agent=agent)
                else:
                    self.ok(step, attempt, agent, then)

    def ok(self, step: str, attempt: int, agent: str, outcome: Ok) -> None:
        self.succeed(
            step, outcome.outputs, attempt=attempt, agent=agent, confidence=outcome.confidence,
            caveats=outcome.caveats,
        )  # fmt: skip

    def status(self) -> str:
        return self.run.status

    def dispatched(self) -> list[str]:
        return [c.step for c in self.of(Dispatch)]


def compile_steps(
    *nodes: Node,
    edges: Sequence[tuple[str, str]] = (),
    inputs: Sequence[str] = (),
) -> Graph:
    return compile_workflow(Workflow("test", roles=[ROLE], steps=nodes, edges=edges, inputs=inputs))


def statuses(run: Run) -> dict[str, str]:
    return {name: state.status for name, state in run.steps.items()}


def open_flags(run: Run) -> dict[str, list[str]]:
    return {k: list(p.flags) for k, p in run.provenance.items() if p.flags}


def step(
    name: str,
    *,
    reads: Sequence[str] = (),
    writes: Sequence[str] | Mapping[str, Any] = (),
    tools: Sequence[str] = (),
    on_failure: FailurePolicy | PolicyTable | None = None,
    min_confidence: float = 0.0,
) -> Step:
    return Step(
        name,
        role="worker",
        reads=reads,
        writes=writes,
        tools=tools,
        on_failure=on_failure,
        min_confidence=min_confidence,
    )


LINEAR = compile_steps(
    step("fetch", writes=["doc"]),
    step("summarise", reads=["doc"], writes=["summary"]),
    step("publish", reads=["summary"]),
    edges=chain("fetch", "summarise", "publish"),
)

BRANCH = compile_steps(
    step("assess", writes={"amount": int}),
    Decision("large?", [Route(key("amount") > 500, "review")], default="auto"),
    step("review", reads=["amount"]),
    step("auto", reads=["amount"]),
    step("close", reads=["amount"]),
    edges=[("assess", "large?"), ("review", "close"), ("auto", "close")],
)

FAN_OUT = compile_steps(
    step("split", writes=["text"], on_failure=Halt()),
    step("left", reads=["text"], writes=["l"], on_failure=Halt()),
    step("right", reads=["text"], writes=["r"], on_failure=Halt()),
    step("join", reads=["l", "r"], writes=["both"], on_failure=Halt()),
    edges=[("split", "left"), ("split", "right"), ("left", "join"), ("right", "join")],
)


class TestLinearRun:
    """A chain of steps runs in order and completes."""

    def test_completes_in_order(self) -> None:
        """Each step is dispatched after the one before it succeeded; the run completes."""
        driver = Driver(LINEAR)
        assert driver.dispatched() == ["fetch", "summarise", "publish"]
        assert driver.run.status == "completed"
        assert set(statuses(driver.run).values()) == {"completed"}
        assert driver.of(RunEnded) == [RunEnded(RUN, "completed")]

    def test_outputs_carry_provenance(self) -> None:
        """A written key records the step, attempt and agent that wrote it."""
        driver = Driver(LINEAR)
        assert driver.run.data == {"doc": "fetch.doc", "summary": "summarise.summary"}
        prov = driver.run.provenance["summary"]
        assert (prov.step, prov.attempt, prov.agent, prov.flags) == (
            "summarise",
            1,
            "worker-1",
            [],
        )

    def test_dispatch_carries_read_keys(self) -> None:
        """A step is sent exactly the keys it reads."""
        driver = Driver(LINEAR)
        summarise = driver.of(Dispatch)[1]
        assert (summarise.inputs, summarise.role, summarise.attempt) == (
            {"doc": "fetch.doc"},
            "worker",
            1,
        )


class TestDecisions:
    """A decision takes the first route that holds, else its default; the rest is skipped."""

    @pytest.mark.parametrize(
        ("amount", "taken", "skipped"),
        [(900, "review", "auto"), (100, "auto", "review")],
    )
    def test_branch_taken_and_other_skipped(self, amount: int, taken: str, skipped: str) -> None:
        """Only the chosen branch runs; the join after both branches still runs once."""
        driver = Driver(BRANCH, {"assess": [Ok({"amount": amount})]})
        assert driver.dispatched() == ["assess", taken, "close"]
        assert statuses(driver.run)[skipped] == "skipped"
        assert statuses(driver.run)["large?"] == "completed"
        assert driver.run.status == "completed"
        (decision,) = driver.history("decision_taken")
        assert decision.detail == {"to": [taken]}

    def test_no_route_and_no_default_fails_the_run(self) -> None:
        """A decision with nothing to take fails the run."""
        graph = compile_steps(
            step("assess", writes={"amount": int}),
            Decision("large?", [Route(key("amount") > 500, "review")]),
            step("review"),
            edges=[("assess", "large?")],
        )
        driver = Driver(graph, {"assess": [Ok({"amount": 1})]})
        assert driver.run.status == "failed"
        assert driver.run.reason == "decision 'large?': no route matched"


class TestFanOutAndJoin:
    """A step with several outgoing edges fans out; a join waits for every incoming edge."""

    def test_join_runs_once_after_both(self) -> None:
        """The join is dispatched once, after both branches succeeded."""
        driver = Driver(FAN_OUT)
        assert driver.dispatched() == ["split", "left", "right", "join"]
        succeeded = [i for i, e in enumerate(driver.events) if isinstance(e, StepSucceeded)]
        join_dispatched = next(
            i
            for i, e in enumerate(driver.events)
            if isinstance(e, StepDispatched) and e.step == "join"
        )
        assert len(succeeded) == 4
        assert succeeded[2] < join_dispatched
        assert driver.run.data["both"] == "join.both"

    def test_join_waits_for_a_held_branch(self) -> None:
        """While one branch is still running, the join is not dispatched."""
        driver = Driver(FAN_OUT, {"right": [Hold()]})
        assert driver.dispatched() == ["split", "left", "right"]
        assert driver.status() == "running"
        assert driver.run.active == {"right"}
        (held,) = driver.held
        driver.feed(StepSucceeded(RUN, "right", held.attempt, "worker-1", {"r": "late"}))
        driver.pump()
        assert driver.dispatched()[-1] == "join"
        assert driver.run.status == "completed"


class TestRetryPolicy:
    """`Retry` tries again after a backoff, then applies its `then` policy."""

    def test_retry_then_success(self) -> None:
        """A failed attempt is retried under a new attempt number and the run completes."""
        graph = compile_steps(
            step("flaky", writes=["x"], on_failure=Retry(attempts=3, backoff=2.0, jitter=0.0))
        )
        driver = Driver(graph, {"flaky": [Fail("error"), Ok()]})
        assert [(d.step, d.attempt) for d in driver.of(Dispatch)] == [("flaky", 1), ("flaky", 2)]
        assert [t.delay for t in driver.of(StartTimer) if t.purpose == "retry"] == [2.0]
        assert driver.run.status == "completed"
        outcomes = [(a.number, a.outcome, a.failure) for a in driver.run.steps["flaky"].attempts]
        assert outcomes == [(1, "failed", "error"), (2, "succeeded", None)]
        assert driver.run.provenance["x"].attempt == 2

    def test_exhausted_then_proceed_with_flag(self) -> None:
        """After the last attempt the defaults are written, flagged, and the flag travels."""
        policy = Retry(attempts=2, then=ProceedWithFlag({"score": 0}, flag="score unknown"))
        graph = compile_steps(
            step("score", writes={"score": int}, on_failure=policy),
            step("rank", reads=["score"], writes=["rank"]),
            step("report", reads=["rank"], writes=["report"]),
            edges=chain("score", "rank", "report"),
        )
        driver = Driver(graph, {"score": [Fail("error"), Fail("timeout")]})
        assert driver.run.status == "completed"
        assert statuses(driver.run)["score"] == "flagged"
        assert driver.run.data["score"] == 0
        assert driver.run.provenance["score"].confidence == 0.0
        assert driver.run.provenance["report"].flags == ["score unknown"]
        assert open_flags(driver.run) == {
            "score": ["score unknown"],
            "rank": ["score unknown"],
            "report": ["score unknown"],
        }
        rank = driver.of(Dispatch)[-2]
        assert (rank.step, rank.flags) == ("rank", {"score": ["score unknown"]})

    def test_flag_names_step_and_kind_by_default(self) -> None:
        """Without a flag text, the flag says which step failed, how, and why."""
        graph = compile_steps(
            step("score", writes=["score"], on_failure=ProceedWithFlag({"score": None})),
        )
        driver = Driver(graph, {"score": [Fail("agent_lost", "gone")]})
        assert open_flags(driver.run) == {"score": ["score: agent_lost: gone"]}

    def test_retry_per_kind(self) -> None:
        """A policy table picks the policy by failure kind."""
        table: PolicyTable = {"timeout": Retry(attempts=2, then=Halt()), "*": Halt()}
        graph = compile_steps(step("call", on_failure=table))
        driver = Driver(graph, {"call": [TimesOut(), Fail("error")]})
        assert len(driver.of(Dispatch)) == 2
        assert driver.run.status == "halted"
        assert driver.run.reason == "step 'call' failed (error): boom"


class TestGotoPolicy:
    """`Goto` runs a fallback in place of the failed step; its outputs feed the successors."""

    def test_fallback_outputs_feed_successors(self) -> None:
        """The successor reads the fallback's value and the failed step is `replaced`."""
        graph = compile_steps(
            step("primary", writes=["answer"], on_failure=Goto("backup")),
            step("backup", writes=["answer"]),
            step("use", reads=["answer"], writes=["done"]),
            edges=chain("primary", "use"),
        )
        driver = Driver(graph, {"primary": [Fail("error")], "backup": [Ok({"answer": 42})]})
        assert driver.dispatched() == ["primary", "backup", "use"]
        assert driver.of(Dispatch)[-1].inputs == {"answer": 42}
        assert driver.run.provenance["answer"].step == "backup"
        assert statuses(driver.run) == {
            "primary": "replaced",
            "backup": "completed",
            "use": "completed",
        }
        assert driver.run.status == "completed"

    def test_chain_of_fallbacks(self) -> None:
        """A fallback that fails hands over to its own fallback, which stands in for the first."""
        graph = compile_steps(
            step("primary", writes=["answer"], on_failure=Goto("backup")),
            step("backup", writes=["answer"], on_failure=Goto("last")),
            step("last", writes=["answer"]),
            step("use", reads=["answer"]),
            edges=chain("primary", "use"),
        )
        driver = Driver(
            graph, {"primary": [Fail()], "backup": [Fail()], "last": [Ok({"answer": 7})]}
        )
        assert driver.dispatched() == ["primary", "backup", "last", "use"]
        assert driver.of(Dispatch)[-1].inputs == {"answer": 7}
        assert statuses(driver.run) == {
            "primary": "replaced",
            "backup": "replaced",
            "last": "completed",
            "use": "completed",
        }

    def test_no_step_stands_in_after_the_chain(self) -> None:
        """Once the last fallback finished, no step is still marked as standing in for another."""
        graph = compile_steps(
            step("primary", writes=["answer"], on_failure=Goto("backup")),
            step("backup", writes=["answer"], on_failure=Goto("last")),
            step("last", writes=["answer"]),
        )
        driver = Driver(graph, {"primary": [Fail()], "backup": [Fail()]})
        assert driver.run.status == "completed"
        assert {name: s.stands_for for name, s in driver.run.steps.items()} == {
            "primary": None,
            "backup": None,
            "last": None,
        }


class TestHaltPolicy:
    """`Halt` stops the run and cancels what is still in flight."""

    def test_halt_cancels_parallel_steps(self) -> None:
        """The run is `halted`, the running sibling gets a `CancelTask`, the join never runs."""
        driver = Driver(FAN_OUT, {"left": [Hold()], "right": [Fail("error", "disk full")]})
        assert driver.run.status == "halted"
        assert driver.run.reason == "step 'right' failed (error): disk full"
        assert driver.of(CancelTask) == [CancelTask(RUN, "left", 1, "run stopped")]
        assert driver.of(RunEnded) == [
            RunEnded(RUN, "halted", "step 'right' failed (error): disk full")
        ]
        assert statuses(driver.run)["left"] == "cancelled"
        assert statuses(driver.run)["join"] == "pending"
        assert driver.run.active == set()

    def test_results_after_the_end_are_ignored(self) -> None:
        """A result arriving after the run halted changes nothing and is recorded as late."""
        driver = Driver(FAN_OUT, {"left": [Hold()], "right": [Fail("error")]})
        data = dict(driver.run.data)
        assert driver.feed(StepSucceeded(RUN, "left", 1, "worker-1", {"l": "x"})) == []
        assert driver.run.data == data
        assert driver.run.history[-1].event == "late_ignored"


class TestTimeout:
    """A step with no result before its timer fires fails with kind `timeout`."""

    def test_timeout_fails_the_attempt(self) -> None:
        """The timeout timer starts on dispatch; its firing cancels the task and fails it."""
        graph = compile_steps(Step("slow", role="worker", timeout=5.0, on_failure=Halt()))
        driver = Driver(graph, {"slow": [TimesOut()]})
        assert driver.of(StartTimer) == [StartTimer(RUN, "timeout", "slow", 1, 5.0)]
        assert driver.of(CancelTask) == [CancelTask(RUN, "slow", 1, "timed out")]
        attempt = driver.run.steps["slow"].attempts[-1]
        assert (attempt.failure, attempt.message) == ("timeout", "no result within 5s")
        assert driver.run.status == "halted"

    def test_timer_of_a_finished_attempt_is_ignored(self) -> None:
        """A timeout firing after the result arrived changes nothing."""
        driver = Driver(LINEAR)
        before = len(driver.run.history)
        assert driver.feed(TimerFired(RUN, "timeout", "fetch", 1)) == []
        assert len(driver.run.history) == before
        assert driver.run.status == "completed"


class TestOutputValidation:
    """A result whose outputs do not match the step's writes fails with `invalid_output`."""

    @pytest.mark.parametrize(
        ("outputs", "message"),
        [
            ({}, "missing output key 'n'"),
            ({"n": 1, "m": 2}, "output key 'm' is not among the step's writes"),
            ({"n": "seven"}, "output 'n': Expected `int`, got `str`"),
        ],
        ids=["missing", "extra", "wrong-type"],
    )
    def test_invalid_output(self, outputs: dict[str, Any], message: str) -> None:
        """The attempt fails with the reason, and nothing is written."""
        graph = compile_steps(step("count", writes={"n": int}, on_failure=Halt()))
        driver = Driver(graph, {"count": [Ok(outputs)]})
        attempt = driver.run.steps["count"].attempts[-1]
        assert (attempt.failure, attempt.message) == ("invalid_output", message)
        assert driver.run.data == {}
        assert driver.run.status == "halted"

    def test_low_confidence(self) -> None:
        """A result under the step's minimum confidence fails with `low_confidence`."""
        graph = compile_steps(step("guess", writes=["g"], min_confidence=0.8, on_failure=Halt()))
        driver = Driver(graph, {"guess": [Ok(confidence=0.5)]})
        attempt = driver.run.steps["guess"].attempts[-1]
        assert (attempt.failure, attempt.message) == (
            "low_confidence",
            "confidence 0.5 is under the step's 0.8",
        )
        assert "g" not in driver.run.data


class TestStaleResults:
    """Only the current attempt's result is applied; others are recorded as `stale_ignored`."""

    def test_duplicate_success_is_ignored(self) -> None:
        """A second copy of a result changes nothing."""
        graph = compile_steps(step("one", writes=["x"]), step("two"), edges=chain("one", "two"))
        driver = Driver(graph, {"two": [Hold()]})
        data, provenance = dict(driver.run.data), dict(driver.run.provenance)
        assert driver.feed(StepSucceeded(RUN, "one", 1, "worker-1", {"x": "other"})) == []
        assert (driver.run.data, driver.run.provenance) == (data, provenance)
        assert driver.run.history[-1].event == "stale_ignored"
        assert driver.run.history[-1].step == "one"

    @pytest.mark.parametrize(
        "event",
        [
            StepSucceeded(RUN, "flaky", 1, "worker-1", {"x": "old"}),
            StepFailed(RUN, "flaky", 1, "error", "old", "worker-1"),
            StepDispatched(RUN, "flaky", 1, "worker-1"),
        ],
        ids=["succeeded", "failed", "dispatched"],
    )
    def test_result_of_an_earlier_attempt_is_ignored(self, event: JournalEvent) -> None:
        """Once attempt 2 is running, anything about attempt 1 is stale."""
        graph = compile_steps(step("flaky", writes=["x"], on_failure=Retry(attempts=3)))
        driver = Driver(graph, {"flaky": [Fail("error"), Hold()]})
        assert driver.run.steps["flaky"].attempt == 2
        assert driver.feed(event) == []
        assert driver.run.history[-1].event == "stale_ignored"
        assert driver.run.data == {}
        assert driver.run.steps["flaky"].status == "running"

    def test_result_from_another_agent_is_ignored(self) -> None:
        """A result for the current attempt from an agent it was not given to is stale."""
        graph = compile_steps(step("one", writes=["x"]))
        driver = Driver(graph, {"one": [Hold()]})
        assert driver.feed(StepSucceeded(RUN, "one", 1, "impostor", {"x": "forged"})) == []
        assert driver.run.history[-1].event == "stale_ignored"
        assert driver.run.data == {}
        assert driver.status() == "running"


class TestToolCalls:
    """A tool call is forwarded only inside both the step's tools and the agent's allowlist."""

    def test_allowed_call_is_forwarded(self) -> None:
        """An allowed call becomes a `ForwardToolCall` and is in the history."""
        graph = compile_steps(step("look", tools=["search"]))
        driver = Driver(graph, {"look": [CallsTool("search", ("search", "mail"))]})
        assert driver.of(ForwardToolCall) == [
            ForwardToolCall(RUN, "look", 1, "worker-1", 1, "search", {}, f"{RUN}:look:1:idem-1")
        ]
        assert [h.message for h in driver.history("tool_called")] == ["search"]
        assert driver.run.status == "completed"

    @pytest.mark.parametrize(
        ("tool", "agent_tools", "message"),
        [
            (
                "mail",
                ("search", "mail"),
                "tool 'mail' is not allowed in step 'look': it is not one of the step's tools",
            ),
            (
                "search",
                ("mail",),
                "tool 'search' is not allowed in step 'look': it is not on the agent's allowlist",
            ),
        ],
        ids=["outside-step", "outside-agent"],
    )
    def test_refused_call_fails_the_step(
        self, tool: str, agent_tools: tuple[str, ...], message: str
    ) -> None:
        """A refused call is answered with `RefuseToolCall` and fails the step as `tool_refused`."""
        graph = compile_steps(step("look", tools=["search"], on_failure=Halt()))
        driver = Driver(graph, {"look": [CallsTool(tool, agent_tools)]})
        assert driver.of(ForwardToolCall) == []
        assert driver.of(RefuseToolCall) == [
            RefuseToolCall(RUN, "worker-1", 1, tool, "tool_refused", message)
        ]
        assert CancelTimer(RUN, "timeout", "look", 1) in driver.commands
        attempt = driver.run.steps["look"].attempts[-1]
        assert (attempt.failure, attempt.message) == ("tool_refused", message)
        assert driver.run.status == "halted"
        assert [h.message for h in driver.history("tool_refused")] == [message]


class TestIdempotencyKeys:
    """The runtime scopes an agent's call key to the run, the step and the visit."""

    def test_every_attempt_of_one_visit_shares_the_key(self) -> None:
        """A retried step's calls reuse their keys, so the host's ledger replays them."""
        graph = compile_steps(
            step("pay", tools=["charge"], on_failure=Retry(attempts=3, backoff=1.0, jitter=0.0))
        )
        fails = CallsTool("charge", ("charge",), then=Fail())
        driver = Driver(graph, {"pay": [fails, CallsTool("charge", ("charge",))]})
        keys = [c.idempotency_key for c in driver.of(ForwardToolCall)]
        assert [c.attempt for c in driver.of(ForwardToolCall)] == [1, 2]
        assert keys == [f"{RUN}:pay:1:idem-1"] * 2

    def test_a_step_a_loop_reaches_again_gets_new_keys(self) -> None:
        """Each visit of a looping step is new work: its calls are keyed by the visit."""
        graph = compile_steps(
            step("draft", writes={"good": bool}, tools=["publish"]),
            Decision("good?", [Route(key("good") == False, "draft", limit=2)], default="ship"),  # noqa: E712
            step("ship", reads=["good"]),
            edges=[("draft", "good?")],
        )
        again = CallsTool("publish", ("publish",), then=Ok({"good": False}))
        done = CallsTool("publish", ("publish",), then=Ok({"good": True}))
        driver = Driver(graph, {"draft": [again, again, done]})
        keys = [c.idempotency_key for c in driver.of(ForwardToolCall)]
        assert keys == [f"{RUN}:draft:{visit}:idem-1" for visit in (1, 2, 3)]
        recorded = [h.detail["idempotency_key"] for h in driver.history("tool_called")]
        assert recorded == keys
        assert driver.run.status == "completed"


class TestLoops:
    """A loop closes through a decision route with a limit, then leaves by the default."""

    @pytest.mark.parametrize("limit", [1, 2, 3])
    def test_body_runs_limit_plus_one_times(self, limit: int) -> None:
        """With the condition always true, the body runs `limit + 1` times and the run ends."""
        graph = compile_steps(
            step("draft", writes={"good": bool}),
            Decision("good?", [Route(key("good") == False, "draft", limit=limit)], default="ship"),  # noqa: E712
            step("ship", reads=["good"]),
            edges=[("draft", "good?")],
        )
        driver = Driver(graph, {"draft": [Ok({"good": False})] * (limit + 2)})
        assert driver.dispatched() == ["draft"] * (limit + 1) + ["ship"]
        assert driver.run.steps["draft"].visits == limit + 1
        assert driver.run.status == "completed"

    def test_loop_exits_when_condition_fails(self) -> None:
        """The loop stops as soon as the route's condition does not hold."""
        graph = compile_steps(
            step("draft", writes={"good": bool}),
            Decision("good?", [Route(key("good") == False, "draft", limit=5)], default="ship"),  # noqa: E712
            step("ship", reads=["good"]),
            edges=[("draft", "good?")],
        )
        driver = Driver(graph, {"draft": [Ok({"good": False}), Ok({"good": True})]})
        assert driver.dispatched() == ["draft", "draft", "ship"]
        assert driver.run.status == "completed"


class TestLoopSideExits:
    """A loop is left through its decision, so no join outside it can see a stale visit."""

    def test_step_inside_a_loop_may_not_feed_a_step_outside_it(self) -> None:
        """Validation refuses an edge from a loop body to a step outside the loop."""
        with pytest.raises(WorkflowInvalid) as refused:
            compile_steps(
                step("s", writes=["base"]),
                step("a", reads=["base"], writes={"ok": bool}),
                step("out", reads=["ok"], writes=["o"]),
                Decision("d", [Route(key("ok") == False, "a", limit=2)], default="e"),  # noqa: E712
                step("e", reads=["ok"]),
                edges=[("s", "a"), ("a", "out"), ("a", "d"), ("out", "e")],
            )
        assert refused.value.problems == (
            Problem(
                "loop_exit",
                "step 'a' is inside a loop but has an edge to 'out' outside it: "
                "a loop is left through its decision",
                "a",
            ),
        )

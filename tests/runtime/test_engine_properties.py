"""Properties of the pure engine under arbitrary, duplicated and stale events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from protocols import DecisionKind, ErrorCode, FailureKind, Provenance
from runtime.engine._engine import apply, start
from runtime.engine._events import (
    CancelTask,
    CancelTimer,
    ClockJumped,
    Command,
    DecisionMade,
    Dispatch,
    ForwardToolCall,
    JournalEvent,
    RunCancelled,
    RunEnded,
    RunRecovered,
    RunResumed,
    RunStarted,
    StartTimer,
    StepDispatched,
    StepFailed,
    StepSucceeded,
    TimerFired,
    ToolCallCompleted,
    ToolCallRequested,
)
from runtime.engine._run import Run
from runtime.planes._views import record_view
from runtime.testing import EngineDriver
from runtime.workflow._checkpoints import Checkpoint
from runtime.workflow._conditions import key
from runtime.workflow._definition import Decision, Node, Role, Route, Step, Workflow, chain
from runtime.workflow._graph import Graph, compile_workflow
from runtime.workflow._policies import (
    FAILURE_KINDS,
    Escalate,
    EscalateTo,
    FailurePolicy,
    Goto,
    Halt,
    PolicyTable,
    ProceedWithFlag,
    Reject,
    Retry,
)

RUN = "run-p"
AGENTS = ("agent-1", "agent-2")
IN_FLIGHT = frozenset({"queued", "running", "retry_wait", "awaiting_decision"})
RESOLVED = frozenset({"completed", "flagged", "replaced", "skipped"})


def step(
    name: str,
    *,
    reads: Sequence[str] = (),
    writes: Sequence[str] | Mapping[str, Any] = (),
    on_failure: FailurePolicy | PolicyTable | None = None,
    tools: Sequence[str] = (),
    min_confidence: float = 0.0,
    checkpoint: Checkpoint | None = None,
) -> Step:
    return Step(
        name,
        role="worker",
        reads=reads,
        writes=writes,
        tools=tools,
        on_failure=on_failure,
        min_confidence=min_confidence,
        timeout=10.0,
        checkpoint=checkpoint,
    )


def build(name: str, *nodes: Node, edges: Sequence[tuple[str, str]] = ()) -> Graph:
    role = Role("worker", tools=["search"])
    return compile_workflow(Workflow(name, roles=[role], steps=nodes, edges=edges, inputs=["seed"]))


LINEAR = build(
    "linear",
    step("a", reads=["seed"], writes={"n": int}, on_failure=Retry(3, backoff=0.1, then=Halt())),
    step("b", reads=["n"], writes=["m"], on_failure=ProceedWithFlag({"m": 0}), tools=["search"]),
    step(
        "c",
        reads=["m"],
        writes=["out"],
        on_failure=Retry(2, then=ProceedWithFlag({"out": "none"}, flag="no out")),
        min_confidence=0.5,
    ),
    edges=chain("a", "b", "c"),
)

BRANCH = build(
    "branch",
    step("a", writes={"n": int}, on_failure=Retry(2, then=ProceedWithFlag({"n": 0}, "n unknown"))),
    Decision(
        "d",
        [Route(key("n") > 6, "big"), Route(key("n") == 3, ["x", "y"])],
        default="small",
    ),
    step("big", reads=["n"], writes=["v"], on_failure=Halt()),
    step("small", reads=["n"], writes=["v"], on_failure=ProceedWithFlag({"v": "default"})),
    step("x", reads=["n"], writes=["v"]),
    step("y", reads=["n"], writes=["w"], on_failure=Goto("y2")),
    step("y2", reads=["n"], writes=["w"], on_failure=ProceedWithFlag({"w": None})),
    step("end", reads=["n", "v"], writes=["done"]),
    edges=[("a", "d"), ("big", "end"), ("small", "end"), ("x", "end"), ("y", "end")],
)

FAN_OUT = build(
    "fan-out",
    step("a", writes=["t"], tools=["search"]),
    step("b", reads=["t"], writes=["l"], on_failure=Retry(2, then=Goto("bf"))),
    step("bf", reads=["t"], writes=["l"], on_failure=Goto("bf2")),
    step("bf2", writes=["l"], on_failure=ProceedWithFlag({"l": "none"}, "no l")),
    step(
        "c",
        reads=["t"],
        writes=["r"],
        on_failure={"timeout": Retry(2, then=Halt()), "*": ProceedWithFlag({"r": "none"})},
    ),
    step("j", reads=["l", "r"], writes=["both"], on_failure=ProceedWithFlag({"both": 0})),
    edges=[("a", "b"), ("a", "c"), ("b", "j"), ("c", "j")],
)

LOOP = build(
    "loop",
    step("s", writes=["base"], on_failure=ProceedWithFlag({"base": ""}, "no base")),
    step("a", reads=["base"], writes=["draft"], on_failure=Retry(2, then=Goto("af"))),
    step("af", reads=["base"], writes=["draft"], on_failure=Halt()),
    step("b", reads=["draft"], writes=["l"], on_failure=ProceedWithFlag({"l": 1})),
    step("c", reads=["draft"], writes=["r"]),
    step("j", reads=["l", "r"], writes={"ok": bool}, on_failure=ProceedWithFlag({"ok": False})),
    Decision("d", [Route(key("ok") == False, "a", limit=2)], default="e"),  # noqa: E712
    step("e", reads=["draft", "ok"], writes=["final"]),
    edges=[("s", "a"), ("a", "b"), ("a", "c"), ("b", "j"), ("c", "j"), ("j", "d")],
)


TWO_ENTRIES = build(
    "two-entries",
    step("s", writes=["base"]),
    step("a", reads=["base"], writes=["x"]),
    step("b", reads=["base"], writes={"ok": bool}, on_failure=ProceedWithFlag({"ok": True})),
    Decision("d", [Route(key("ok") == False, "a", limit=2)], default="e"),  # noqa: E712
    step("e", reads=["ok"]),
    edges=[("s", "a"), ("s", "b"), ("a", "b"), ("b", "d")],
)

NESTED = build(
    "nested",
    step("a", writes={"n": int}, on_failure=ProceedWithFlag({"n": 1}, "n?")),
    Decision("d1", [Route(key("n") > 4, "b")], default="c"),
    step("b", reads=["n"], writes=["v"], on_failure=Goto("bf")),
    step("bf", reads=["n"], writes=["v"]),
    step("c", writes=["v"]),
    step("j", reads=["v"], writes={"ok": bool}),
    Decision(
        "d2",
        [Route(key("ok") == False, "a", limit=3), Route(key("n") == 2, ["x", "y"])],  # noqa: E712
        default="e",
    ),
    step("x", reads=["v"], writes=["xo"]),
    step("y", reads=["n"], writes=["yo"], on_failure=Halt()),
    step("e", reads=["v"]),
    edges=[("a", "d1"), ("b", "j"), ("c", "j"), ("j", "d2"), ("x", "e"), ("y", "e")],
)

DECISION_FIRST = build(
    "decision-first",
    Decision("d0", [Route(key("seed") == "s1", ["a", "b"])], default="b"),
    step("a", writes=["x"], on_failure=ProceedWithFlag({"x": 0})),
    step("b", writes=["y"]),
    step("e", reads=["y"]),
    edges=[("a", "e"), ("b", "e")],
)

REVIEWED = build(
    "reviewed",
    step(
        "a",
        reads=["seed"],
        writes={"n": int},
        checkpoint=Checkpoint(["g"], condition=key("seed") == "s1", timeout=5, on_timeout=Reject()),
        on_failure=ProceedWithFlag({"n": 5}, "n guessed"),
    ),
    step(
        "b",
        reads=["n"],
        writes={"m": int},
        on_failure=Escalate(["ops"]),
        checkpoint=Checkpoint(
            ["g"],
            when="after",
            condition=key("m") > 4,
            timeout=5,
            on_timeout=EscalateTo(["h"], timeout=5),
            on_reject=Goto("bf"),
        ),
    ),
    step("bf", reads=["n"], writes={"m": int}),
    step("c", reads=["m"], writes=["out"], on_failure=Retry(2, then=Escalate(["ops"], timeout=3))),
    edges=chain("a", "b", "c"),
)
"""Checkpoints before and after, escalated failures, timeouts that reject or escalate."""

GRAPHS = {
    graph.name: graph
    for graph in (LINEAR, BRANCH, FAN_OUT, LOOP, TWO_ENTRIES, NESTED, DECISION_FIRST, REVIEWED)
}


def max_attempts(graph: Graph, name: str) -> int:
    """Most attempts one visit of the step may make, over every failure kind."""
    policies = graph.policies[name].values()
    return max(p.attempts if isinstance(p, Retry) else 1 for p in policies)


def fallback_of(graph: Graph) -> dict[str, str]:
    return {origin: fallback for fallback, origin in graph.replaces.items()}


def outputs_for(step_def: Step) -> st.SearchStrategy[dict[str, Any]]:
    """Outputs matching the step's writes."""
    values: dict[str, st.SearchStrategy[Any]] = {}
    for name, kind in step_def.writes.items():
        if kind is int:
            values[name] = st.integers(0, 9)
        elif kind is bool:
            values[name] = st.booleans()
        else:
            values[name] = st.sampled_from(["p", "q"])
    return st.fixed_dictionaries(values)


def snapshot(run: Run) -> dict[str, Any]:
    """Everything the fold of a journal must reproduce."""
    return {
        "status": run.status,
        "reason": run.reason,
        "data": dict(run.data),
        "provenance": dict(run.provenance),
        "history": list(run.history),
        "seq": run.seq,
        "active": set(run.active),
        "route_counts": dict(run.route_counts),
        "decisions": {
            name: (d.kind, d.when, d.attempt, d.approvers, d.reviewed, d.deadline, d.digest)
            for name, d in run.decisions.items()
        },
        "steps": {
            name: (
                state.status,
                state.visits,
                state.attempt,
                state.tries,
                dict(state.tally),
                state.stands_for,
                state.retry_at,
                [
                    (a.number, a.agent, a.outcome, a.failure, a.message, a.started_at, a.ended_at)
                    for a in state.attempts
                ],
            )
            for name, state in run.steps.items()
        },
    }


class EngineMachine(RuleBasedStateMachine):
    """Agents that answer late, twice, out of order or not at all."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[tuple[str, int]] = []
        self.agent_of: dict[tuple[str, int], str] = {}
        self.timers: list[StartTimer] = []
        self.ended: list[RunEnded] = []
        self.done_now: set[str] = set()
        self.recovering = False

    @initialize(name=st.sampled_from(sorted(GRAPHS)), seed=st.sampled_from(["s1", "s2"]))
    def begin(self, name: str, seed: str) -> None:
        self.graph = graph = GRAPHS[name]
        self.fallbacks = fallback_of(graph)
        self.driver = EngineDriver(graph, {"seed": seed}, run_id=RUN)
        self.run = self.driver.run
        self.check_commands(self.driver.last, {})

    def feed(self, event: JournalEvent) -> None:
        before = dict(self.run.provenance)
        operator = isinstance(event, RunResumed | RunCancelled)
        ended = self.run.status != "running" and not operator
        seen = len(self.run.history)
        commands = self.driver.feed(event)
        self.done_now = {
            h.step for h in self.run.history[seen:] if h.event in {"step_succeeded", "step_flagged"}
        }
        if ended:
            assert commands == [], "a run that ended emits nothing"
        self.check_commands(commands, before)
        cancelled = {(c.step, c.attempt) for c in commands if isinstance(c, CancelTask)}
        for name, state in self.run.steps.items():
            last = state.attempts[-1] if state.attempts else None
            if (
                last is not None
                and last.outcome == "cancelled"
                and last.ended_at == self.driver.now
            ):
                assert (name, last.number) in cancelled, f"{name} stopped without a CancelTask"

    def check_commands(self, commands: list[Command], before: Mapping[str, Provenance]) -> None:
        """Commands name steps of the graph; dispatches respect joins, retry bounds and reads."""
        for command in commands:
            assert command.run_id == RUN
            match command:
                case Dispatch() | CancelTask() | StartTimer() | CancelTimer() | ForwardToolCall():
                    assert isinstance(self.graph.nodes.get(command.step), Step), command
            match command:
                case Dispatch(step=name, attempt=attempt) if self.recovering:
                    # A restart dispatches the attempts in flight again, under their numbers.
                    assert (name, attempt) in self.tasks, "a restart made up an attempt"
                    assert self.run.steps[name].status == "queued"
                case Dispatch(step=name, attempt=attempt):
                    assert (name, attempt) not in self.tasks, "an attempt number is reused"
                    self.tasks.append((name, attempt))
                    self.check_ready(name)
                    assert self.run.steps[name].tries <= max_attempts(self.graph, name)
                    assert set(command.inputs) == set(self.graph.step(name).reads)
                case StartTimer():
                    self.timers.append(command)
                case RunEnded():
                    self.ended.append(command)
        self.check_flags_travel(before)

    def check_ready(self, name: str) -> None:
        """Every step the dispatched one waits for has finished, one of them without skipping."""
        origin = self.graph.replaces.get(name, name)
        waits_for = self.graph.joins[origin]
        for pred in waits_for:
            assert self.finished(pred), f"{name} dispatched while {pred} is not finished"
        if waits_for and origin != self.graph.start:
            assert any(self.run.steps[p].status != "skipped" for p in waits_for), name

    def finished(self, name: str) -> bool:
        """Resolved now or by this event; a replaced step once its last fallback is."""
        while self.run.steps[name].status == "replaced":
            name = self.fallbacks[name]
        state = self.run.steps[name]
        return name in self.done_now or (state.stands_for is None and state.status in RESOLVED)

    def check_flags_travel(self, before: Mapping[str, Provenance]) -> None:
        """A value written by a step that read a flagged key carries that flag."""
        for name, prov in self.run.provenance.items():
            if before.get(name) is prov or prov.attempt == 0:  # unchanged, or a run's input
                continue
            for read in self.graph.step(prov.step).reads:
                earlier = before.get(read)
                if earlier is not None:
                    assert set(earlier.flags) <= set(prov.flags), (name, read)

    def current_tasks(self) -> list[tuple[str, int]]:
        return [(name, self.run.steps[name].attempt) for name in sorted(self.run.active)]

    def pick_task(self, data: st.DataObject) -> tuple[str, int]:
        """Mostly a current attempt, sometimes any attempt ever dispatched."""
        current = self.current_tasks()
        prefer_current: bool = data.draw(st.booleans())
        return data.draw(st.sampled_from(current if current and prefer_current else self.tasks))

    def agent(self, task: tuple[str, int], data: st.DataObject) -> str:
        """Mostly the agent the task went to, sometimes another one."""
        agent = self.agent_of.get(task, AGENTS[0])
        return agent if data.draw(st.integers(0, 4)) else data.draw(st.sampled_from(AGENTS))

    @precondition(lambda self: self.run.status == "running" and self.run.active)
    @rule(budget=st.sampled_from([0, 0, 2]))
    def restart(self, budget: int) -> None:
        """The runtime restarts and takes the run up again from its journal; with a budget,
        a run taken up too often without progress is parked as stuck."""
        self.recovering = True
        try:
            self.feed(RunRecovered(RUN, budget=budget))
        finally:
            self.recovering = False

    @precondition(lambda self: self.run.status in {"running", "stuck"})
    @rule(skew=st.sampled_from([-3600.0, -2.5, 2.5, 3600.0]))
    def clock_jumps(self, skew: float) -> None:
        """The runtime saw its wall clock jump: the run's deadlines move with it."""
        deadlines = {n: d.deadline for n, d in self.run.decisions.items()}
        retries = {n: s.retry_at for n, s in self.run.steps.items()}
        self.feed(ClockJumped(RUN, skew))
        for name, deadline in deadlines.items():
            moved = self.run.decisions[name].deadline
            assert moved == (None if deadline is None else deadline + skew)
        for name, state in self.run.steps.items():
            before = retries[name]
            if state.status == "retry_wait":
                assert before is not None
                assert state.retry_at == before + skew

    @precondition(lambda self: self.run.status == "stuck")
    @rule()
    def resume(self) -> None:
        """An operator lets the stuck run carry on."""
        self.recovering = True
        try:
            self.feed(RunResumed(RUN, principal="olga"))
        finally:
            self.recovering = False
        assert self.run.status in {"running", "completed"}

    @precondition(lambda self: self.run.status in {"running", "stuck"})
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        """Now and then an operator cancels the run, whatever it is doing."""
        if data.draw(st.integers(0, 9)):
            return
        self.feed(RunCancelled(RUN, principal="olga", reason="no longer wanted"))
        assert self.run.status == "cancelled"

    @rule(data=st.data(), moves=st.integers(1, 6))
    def progress(self, data: st.DataObject, moves: int) -> None:
        """Move active steps forward the way healthy agents would."""
        for _ in range(moves):
            if self.run.status != "running":
                return
            name = data.draw(st.sampled_from(sorted(self.run.active)))
            state = self.run.steps[name]
            task = (name, state.attempt)
            if state.status == "queued":
                agent = data.draw(st.sampled_from(AGENTS))
                self.agent_of[task] = agent
                self.feed(StepDispatched(RUN, name, state.attempt, agent))
            elif state.status == "running":
                agent = self.agent_of[task]
                outcome = data.draw(st.sampled_from(["ok", "ok", "ok", "fail", "timeout"]))
                if outcome == "ok":
                    outputs = data.draw(outputs_for(self.graph.step(name)))
                    self.feed(StepSucceeded(RUN, name, state.attempt, agent, outputs))
                elif outcome == "fail":
                    kind = data.draw(st.sampled_from(FAILURE_KINDS))
                    self.feed(StepFailed(RUN, name, state.attempt, kind, "boom", agent))
                else:
                    self.feed(TimerFired(RUN, "timeout", name, state.attempt))
            elif state.status == "awaiting_decision":
                self.decide(data)
            else:
                self.feed(TimerFired(RUN, "retry", name, state.attempt))

    @precondition(lambda self: self.run.status == "running" and self.run.decisions)
    @rule(data=st.data())
    def decide(self, data: st.DataObject) -> None:
        """A person decides an open decision: one of its choices, now and then on a stale
        digest or with a choice it does not offer (the shell would refuse those)."""
        if not self.run.decisions:
            return
        name = data.draw(st.sampled_from(sorted(self.run.decisions)))
        waiting = self.run.decisions[name]
        choices: list[DecisionKind] = [*waiting.choices, *waiting.choices, "abort", "approve"]
        decision = data.draw(st.sampled_from(choices))
        digest = waiting.digest if data.draw(st.integers(0, 9)) else "stale"
        values: dict[str, Any] = {}
        if decision == "skip":
            values = data.draw(outputs_for(self.graph.step(name)))
        elif decision == "approve" and data.draw(st.booleans()):
            keys = self.graph.step(name).writes if waiting.when == "after" else {}
            values = {k: v for k, v in data.draw(outputs_for(self.graph.step(name))).items()
                      if k in keys}  # fmt: skip
        self.feed(DecisionMade(RUN, name, waiting.attempt, decision, "pat", digest, "", values))

    @precondition(lambda self: self.tasks)
    @rule(data=st.data(), kind=st.sampled_from(FAILURE_KINDS), offset=st.sampled_from([0, 0, 1]))
    def fail(self, data: st.DataObject, kind: FailureKind, offset: int) -> None:
        """A task, current or stale, reports a failure."""
        name, attempt = task = self.pick_task(data)
        agent = self.agent(task, data)
        self.feed(StepFailed(RUN, name, attempt + offset, kind, "boom", agent))

    @precondition(lambda self: self.tasks)
    @rule(
        data=st.data(),
        confidence=st.sampled_from([1.0, 1.0, 0.2]),
        mangle=st.sampled_from(["none", "none", "drop", "extra"]),
    )
    def succeed(self, data: st.DataObject, confidence: float, mangle: str) -> None:
        """A task, current or stale, reports a result, sometimes a malformed one."""
        name, attempt = task = self.pick_task(data)
        outputs = data.draw(outputs_for(self.graph.step(name)))
        if mangle == "drop" and outputs:
            outputs.pop(sorted(outputs)[0])
        elif mangle == "extra":
            outputs["unexpected"] = 1
        agent = self.agent(task, data)
        self.feed(StepSucceeded(RUN, name, attempt, agent, outputs, confidence=confidence))

    @precondition(lambda self: self.tasks)
    @rule(data=st.data())
    def dispatched(self, data: st.DataObject) -> None:
        """A task is reported dispatched, possibly again or too late."""
        task = self.pick_task(data)
        agent = self.agent(task, data)
        self.agent_of.setdefault(task, agent)
        self.feed(StepDispatched(RUN, *task, agent))

    @precondition(lambda self: self.timers)
    @rule(data=st.data())
    def timer(self, data: st.DataObject) -> None:
        """A timer started so far fires, mostly the latest, possibly late or twice."""
        fired = data.draw(st.sampled_from([self.timers[-1], *self.timers]))
        self.feed(TimerFired(RUN, fired.purpose, fired.step, fired.attempt))

    @precondition(lambda self: self.tasks)
    @rule(
        data=st.data(),
        tool=st.sampled_from(["search", "mail"]),
        agent_tools=st.sampled_from([["search"], ["mail"], ["search", "mail"]]),
    )
    def tool_call(self, data: st.DataObject, tool: str, agent_tools: list[str]) -> None:
        """A task asks for a tool, allowed or not."""
        name, attempt = task = self.pick_task(data)
        agent = self.agent(task, data)
        self.feed(ToolCallRequested(RUN, name, attempt, agent, agent_tools, 1, tool, {}, "k"))

    @rule(data=st.data())
    def duplicate(self, data: st.DataObject) -> None:
        """An event already journaled, the start included, arrives again.

        Not a restart, a resumption or a clock jump: those come from the runtime itself, never
        off the network (the `restart`, `resume` and `clock_jumps` rules make them).
        """
        from_runtime = RunRecovered | RunResumed | ClockJumped
        delivered = [e for e in self.driver.events if not isinstance(e, from_runtime)]
        self.feed(data.draw(st.sampled_from(delivered)))

    @precondition(lambda self: self.tasks)
    @rule(data=st.data(), ok=st.booleans())
    def tool_completed(self, data: st.DataObject, ok: bool) -> None:
        """A tool host reports back on a call of any task."""
        name, attempt = self.pick_task(data)
        error: ErrorCode | None = None if ok else "tool_failed"
        self.feed(ToolCallCompleted(RUN, name, attempt, 1, "search", ok, error))

    @invariant()
    def active_matches_statuses(self) -> None:
        """`run.active` is exactly the steps queued, running or waiting to retry."""
        in_flight = {n for n, s in self.run.steps.items() if s.status in IN_FLIGHT}
        assert self.run.active == in_flight

    @invariant()
    def ends_or_waits(self) -> None:
        """A running run has something to wait for; an ended one has nothing in flight."""
        if self.run.status == "stuck":
            assert self.ended == []
            return
        if self.run.status != "running":
            assert not self.run.active
            assert [e.status for e in self.ended] == [self.run.status]
            return
        assert self.ended == []
        assert self.run.active, "a running run with nothing in flight"
        issued = {(c.step, c.attempt) for c in self.driver.of(Dispatch)}
        timers = {(t.purpose, t.step, t.attempt) for t in self.timers}
        for name in self.run.active:
            state = self.run.steps[name]
            if state.status == "queued":
                assert (name, state.attempt) in issued
            elif state.status == "awaiting_decision":
                waiting = self.run.decisions[name]
                if waiting.deadline is not None:
                    assert ("decision", name, waiting.attempt) in timers
            elif state.status == "running":
                assert ("timeout", name, state.attempt) in timers
            else:
                assert ("retry", name, state.attempt) in timers

    @invariant()
    def completed_runs_resolve_every_step(self) -> None:
        """When a run completes, every node that is not an unused fallback is resolved."""
        if self.run.status != "completed":
            return
        for name, state in self.run.steps.items():
            if name in self.graph.replaces and state.status == "pending":
                continue
            assert state.status in RESOLVED, (name, state.status)

    @invariant()
    def attempts_are_closed(self) -> None:
        """Only the latest attempt of a queued or running step is still open."""
        for name, state in self.run.steps.items():
            open_ = [a.number for a in state.attempts if a.outcome == "running"]
            expected = [state.attempt] if state.status in {"queued", "running"} else []
            assert open_ == expected, (name, state.status, open_)

    @invariant()
    def retries_bounded(self) -> None:
        """No visit of a step makes more attempts than its policies allow."""
        for name, state in self.run.steps.items():
            if isinstance(self.graph.nodes[name], Step):
                assert state.tries <= max_attempts(self.graph, name)

    def teardown(self) -> None:
        """Folding the journal into a fresh run gives the same run and the same commands."""
        if not hasattr(self, "driver"):
            return
        first, *rest = self.driver.journal
        assert isinstance(first.event, RunStarted)
        replayed, commands = start(self.graph, first.event, first.at)
        replay_outputs = [commands]
        for record in rest:
            replay_outputs.append(apply(replayed, record.event, record.at))
        assert snapshot(replayed) == snapshot(self.run)
        assert replay_outputs == self.driver.outputs
        rebuilt = self.driver.replayed()
        assert snapshot(rebuilt) == snapshot(self.run)
        assert record_view(rebuilt) == record_view(self.run)


EngineMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineMachine = EngineMachine.TestCase


class TestExploredGraphs:
    """The graphs the state machine explores are runnable workflows."""

    @pytest.mark.parametrize("graph", GRAPHS.values(), ids=list(GRAPHS))
    def test_happy_path_completes(self, graph: Graph) -> None:
        """With every agent succeeding at once and every checkpoint approved, each graph's run
        completes."""
        d = EngineDriver(graph, {"seed": "s1"}, run_id=RUN, principal="pat")
        commands = list(d.last)
        while commands or d.run.decisions:
            if not commands:
                commands += d.decide(next(iter(d.run.decisions)), "approve")
                continue
            task = commands.pop(0)
            if isinstance(task, Dispatch):
                writes = graph.step(task.step).writes
                outputs: dict[str, Any] = {k: True if t is bool else 0 for k, t in writes.items()}
                commands += d.dispatch(task.step, attempt=task.attempt)
                commands += d.succeed(task.step, outputs, attempt=task.attempt)
        assert d.run.status == "completed"

"""Runs that an operator cancels or resumes, that the runtime parks as stuck, and attempts
the runtime fails before any agent took them."""

from __future__ import annotations

from runtime.engine._events import (
    CancelTask,
    Command,
    Dispatch,
    RunCancelled,
    RunEnded,
    RunRecovered,
    RunResumed,
    StartTimer,
    StepFailed,
    StepSucceeded,
)
from runtime.planes._views import record_view
from runtime.testing import EngineDriver, of_kind
from runtime.workflow._definition import Role, Step, Workflow
from runtime.workflow._graph import compile_workflow
from runtime.workflow._policies import Retry
from tests.runtime.test_replay import GRAPH

RUN = "run-l"


def begun() -> EngineDriver:
    """A run started at t=10 whose step `a` is out with agent `w` since t=10.5."""
    d = EngineDriver(GRAPH, {"n": 1}, run_id=RUN, at=10.0, agent="w")
    d.dispatch("a", at=10.5)
    return d


def dispatched(commands: list[Command]) -> list[tuple[str, int]]:
    return [(c.step, c.attempt) for c in of_kind(Dispatch, commands)]


class TestRecoveryBudget:
    def test_a_run_recovered_too_often_without_progress_is_parked_as_stuck(self) -> None:
        d = begun()
        for n in (1, 2):
            assert dispatched(d.feed(RunRecovered(RUN, budget=2), at=11.0 + n)) == [("a", 1)]
            d.dispatch("a", at=11.5 + n)
        parked = d.feed(RunRecovered(RUN, budget=2), at=20.0)
        run = d.run
        assert parked == []
        assert run.status == "stuck"
        assert "restarted 3 times in a row" in run.reason
        assert record_view(run).status == "stuck"
        assert run.history[-1].event == "run_stuck"

    def test_a_finished_step_refills_the_budget(self) -> None:
        d = begun()
        d.feed(RunRecovered(RUN, budget=2), at=11.0)
        d.feed(RunRecovered(RUN, budget=2), at=12.0)
        d.dispatch("a", at=12.5)
        d.succeed("a", {"x": 2}, at=13.0)
        d.feed(RunRecovered(RUN, budget=2), at=14.0)
        d.feed(RunRecovered(RUN, budget=2), at=15.0)
        assert d.run.status == "running"

    def test_no_budget_never_parks(self) -> None:
        d = begun()
        for n in range(20):
            d.feed(RunRecovered(RUN), at=11.0 + n)
        assert d.run.status == "running"

    def test_a_resumed_run_carries_on_under_the_same_attempt(self) -> None:
        d = begun()
        run = d.run
        d.feed(RunRecovered(RUN, budget=1), at=11.0)
        d.feed(RunRecovered(RUN, budget=1), at=12.0)
        assert run.status == "stuck"
        late = d.feed(StepSucceeded(RUN, "a", 1, "w", {"x": 2}), at=12.5)
        assert late == []
        assert run.history[-1].event == "late_ignored"
        resumed = d.feed(RunResumed(RUN, principal="olga"), at=13.0)
        assert dispatched(resumed) == [("a", 1)]
        assert (run.status, run.reason) == ("running", "")
        assert run.history[-1].event == "run_resumed"
        assert run.history[-1].principal == "olga"
        d.dispatch("a", agent="w2", at=13.5)
        d.succeed("a", {"x": 2}, agent="w2", at=14.0)
        d.dispatch("b", agent="w2", at=14.5)
        ended = d.succeed("b", {"y": 3}, agent="w2", at=15.0)
        assert run.status == "completed"
        assert any(isinstance(c, RunEnded) for c in ended)

    def test_resuming_a_run_that_is_not_stuck_changes_nothing(self) -> None:
        d = begun()
        entries = len(d.run.history)
        assert d.feed(RunResumed(RUN), at=11.0) == []
        assert d.run.status == "running"
        assert len(d.run.history) == entries


class TestCancel:
    def test_a_cancelled_run_withdraws_its_steps_and_ends(self) -> None:
        d = begun()
        run = d.run
        commands = d.feed(RunCancelled(RUN, principal="olga", reason="wrong customer"), at=11.0)
        assert [type(c) for c in commands] == [CancelTask, RunEnded]
        ended = commands[-1]
        assert isinstance(ended, RunEnded)
        assert (ended.status, ended.reason) == ("cancelled", "wrong customer")
        assert run.steps["a"].status == "cancelled"
        assert run.steps["a"].attempts[-1].outcome == "cancelled"
        entry = run.history[-1]
        assert (entry.event, entry.principal, entry.message) == (
            "run_cancelled",
            "olga",
            "wrong customer",
        )

    def test_a_late_result_after_cancel_is_recorded_and_ignored(self) -> None:
        d = begun()
        run = d.run
        d.feed(RunCancelled(RUN), at=11.0)
        assert run.reason == "cancelled by an operator"
        assert d.feed(StepSucceeded(RUN, "a", 1, "w", {"x": 2}), at=12.0) == []
        assert run.history[-1].event == "late_ignored"
        assert "x" not in run.data

    def test_a_stuck_run_can_be_cancelled(self) -> None:
        d = begun()
        d.feed(RunRecovered(RUN, budget=1), at=11.0)
        d.feed(RunRecovered(RUN, budget=1), at=12.0)
        d.feed(RunCancelled(RUN), at=13.0)
        assert d.run.status == "cancelled"

    def test_an_ended_run_is_not_cancelled(self) -> None:
        d = begun()
        d.feed(RunCancelled(RUN), at=11.0)
        assert d.feed(RunCancelled(RUN, reason="again"), at=12.0) == []
        assert d.run.reason == "cancelled by an operator"


class TestFailedBeforeDispatch:
    def test_the_runtime_may_fail_a_queued_attempt_to_its_policy(self) -> None:
        graph = compile_workflow(
            Workflow(
                "one",
                roles=[Role("worker")],
                steps=[Step("a", role="worker", writes=["x"], on_failure=Retry(attempts=2))],
            )
        )
        d = EngineDriver(graph, run_id=RUN, at=10.0)
        run = d.run
        assert run.steps["a"].status == "queued"
        commands = d.feed(StepFailed(RUN, "a", 1, "agent_lost", "role is crash-looping"), at=11.0)
        assert [type(c) for c in commands] == [StartTimer]
        assert run.steps["a"].attempts[-1].failure == "agent_lost"

    def test_an_agent_cannot_fail_an_attempt_it_does_not_hold(self) -> None:
        d = EngineDriver(GRAPH, {"n": 1}, run_id=RUN, at=10.0)
        run = d.run
        assert d.feed(StepFailed(RUN, "a", 1, "error", "no", agent="w"), at=11.0) == []
        assert run.steps["a"].status == "queued"
        assert run.history[-1].event == "stale_ignored"

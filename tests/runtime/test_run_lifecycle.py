"""Runs that an operator cancels or resumes, that the runtime parks as stuck, and attempts
the runtime fails before any agent took them."""

from __future__ import annotations

from runtime.engine._engine import apply, start
from runtime.engine._events import (
    CancelTask,
    Command,
    Dispatch,
    RunCancelled,
    RunEnded,
    RunRecovered,
    RunResumed,
    RunStarted,
    StartTimer,
    StepDispatched,
    StepFailed,
    StepSucceeded,
)
from runtime.engine._run import Run
from runtime.planes._views import record_view
from runtime.workflow._definition import Role, Step, Workflow
from runtime.workflow._graph import compile_workflow
from runtime.workflow._policies import Retry
from tests.runtime.test_replay import GRAPH

RUN = "run-l"


def begun() -> Run:
    """A run whose step `a` is out with agent `w`."""
    run, _ = start(GRAPH, RunStarted(RUN, "pair", "1", GRAPH.fingerprint, {"n": 1}), 10.0)
    apply(run, StepDispatched(RUN, "a", 1, "w"), 10.5)
    return run


def dispatched(commands: list[Command]) -> list[tuple[str, int]]:
    return [(c.step, c.attempt) for c in commands if isinstance(c, Dispatch)]


class TestRecoveryBudget:
    def test_a_run_recovered_too_often_without_progress_is_parked_as_stuck(self) -> None:
        run = begun()
        for n in (1, 2):
            assert dispatched(apply(run, RunRecovered(RUN, budget=2), 11.0 + n)) == [("a", 1)]
            apply(run, StepDispatched(RUN, "a", 1, "w"), 11.5 + n)
        parked = apply(run, RunRecovered(RUN, budget=2), 20.0)
        assert parked == []
        assert run.status == "stuck"
        assert "restarted 3 times in a row" in run.reason
        assert record_view(run).status == "stuck"
        assert run.history[-1].event == "run_stuck"

    def test_a_finished_step_refills_the_budget(self) -> None:
        run = begun()
        apply(run, RunRecovered(RUN, budget=2), 11.0)
        apply(run, RunRecovered(RUN, budget=2), 12.0)
        apply(run, StepDispatched(RUN, "a", 1, "w"), 12.5)
        apply(run, StepSucceeded(RUN, "a", 1, "w", {"x": 2}), 13.0)
        apply(run, RunRecovered(RUN, budget=2), 14.0)
        apply(run, RunRecovered(RUN, budget=2), 15.0)
        assert run.status == "running"

    def test_no_budget_never_parks(self) -> None:
        run = begun()
        for n in range(20):
            apply(run, RunRecovered(RUN), 11.0 + n)
        assert run.status == "running"

    def test_a_resumed_run_carries_on_under_the_same_attempt(self) -> None:
        run = begun()
        apply(run, RunRecovered(RUN, budget=1), 11.0)
        apply(run, RunRecovered(RUN, budget=1), 12.0)
        assert run.status == "stuck"
        late = apply(run, StepSucceeded(RUN, "a", 1, "w", {"x": 2}), 12.5)
        assert late == []
        assert run.history[-1].event == "late_ignored"
        resumed = apply(run, RunResumed(RUN, principal="olga"), 13.0)
        assert dispatched(resumed) == [("a", 1)]
        assert (run.status, run.reason) == ("running", "")
        assert run.history[-1].event == "run_resumed"
        assert run.history[-1].principal == "olga"
        apply(run, StepDispatched(RUN, "a", 1, "w2"), 13.5)
        apply(run, StepSucceeded(RUN, "a", 1, "w2", {"x": 2}), 14.0)
        apply(run, StepDispatched(RUN, "b", 1, "w2"), 14.5)
        ended = apply(run, StepSucceeded(RUN, "b", 1, "w2", {"y": 3}), 15.0)
        assert run.status == "completed"
        assert any(isinstance(c, RunEnded) for c in ended)

    def test_resuming_a_run_that_is_not_stuck_changes_nothing(self) -> None:
        run = begun()
        entries = len(run.history)
        assert apply(run, RunResumed(RUN), 11.0) == []
        assert run.status == "running"
        assert len(run.history) == entries


class TestCancel:
    def test_a_cancelled_run_withdraws_its_steps_and_ends(self) -> None:
        run = begun()
        commands = apply(run, RunCancelled(RUN, principal="olga", reason="wrong customer"), 11.0)
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
        run = begun()
        apply(run, RunCancelled(RUN), 11.0)
        assert run.reason == "cancelled by an operator"
        assert apply(run, StepSucceeded(RUN, "a", 1, "w", {"x": 2}), 12.0) == []
        assert run.history[-1].event == "late_ignored"
        assert "x" not in run.data

    def test_a_stuck_run_can_be_cancelled(self) -> None:
        run = begun()
        apply(run, RunRecovered(RUN, budget=1), 11.0)
        apply(run, RunRecovered(RUN, budget=1), 12.0)
        apply(run, RunCancelled(RUN), 13.0)
        assert run.status == "cancelled"

    def test_an_ended_run_is_not_cancelled(self) -> None:
        run = begun()
        apply(run, RunCancelled(RUN), 11.0)
        assert apply(run, RunCancelled(RUN, reason="again"), 12.0) == []
        assert run.reason == "cancelled by an operator"


class TestFailedBeforeDispatch:
    def test_the_runtime_may_fail_a_queued_attempt_to_its_policy(self) -> None:
        graph = compile_workflow(
            Workflow(
                "one",
                roles=[Role("worker")],
                steps=[Step("a", role="worker", writes=["x"], on_failure=Retry(attempts=2))],
            )
        )
        run, _ = start(graph, RunStarted(RUN, "one", "1", graph.fingerprint, {}), 10.0)
        assert run.steps["a"].status == "queued"
        commands = apply(run, StepFailed(RUN, "a", 1, "agent_lost", "role is crash-looping"), 11.0)
        assert [type(c) for c in commands] == [StartTimer]
        assert run.steps["a"].attempts[-1].failure == "agent_lost"

    def test_an_agent_cannot_fail_an_attempt_it_does_not_hold(self) -> None:
        run, _ = start(GRAPH, RunStarted(RUN, "pair", "1", GRAPH.fingerprint, {"n": 1}), 10.0)
        assert apply(run, StepFailed(RUN, "a", 1, "error", "no", agent="w"), 11.0) == []
        assert run.steps["a"].status == "queued"
        assert run.history[-1].event == "stale_ignored"

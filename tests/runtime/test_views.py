"""What a run's status says to someone watching it: running, or waiting and for what."""

from __future__ import annotations

import pytest

from runtime.engine._engine import apply, start
from runtime.engine._events import RunStarted, StepDispatched, StepFailed
from runtime.engine._run import Run
from runtime.planes._views import display_status, record_view, summary
from tests.runtime.test_replay import GRAPH, SLOW

RUN = "run-v"


def queued() -> Run:
    """A run whose first step, `a` of role `worker`, waits in its role's queue."""
    run, _ = start(GRAPH, RunStarted(RUN, "pair", "1", GRAPH.fingerprint, {"n": 1}), 10.0)
    assert run.steps["a"].status == "queued"
    return run


class TestQueuedSteps:
    @pytest.mark.parametrize("connected", [set(), {"finisher"}], ids=["none", "other-role"])
    def test_a_step_no_connected_agent_can_take_waits_for_an_agent_of_its_role(
        self, connected: set[str]
    ) -> None:
        """With no agent of the step's role connected, the run waits for one, and says so."""
        run = queued()
        assert display_status(run, connected) == (
            "waiting",
            "an agent of role 'worker' for step 'a'",
        )
        assert summary(run, connected).reason == "an agent of role 'worker' for step 'a'"

    def test_a_step_queued_for_a_connected_agent_leaves_the_run_running(self) -> None:
        """A step queued while an agent of its role is connected (busy, or about to take it)
        shows as queued in a running run that waits for nothing."""
        run = queued()
        record = record_view(run, {"worker"})
        assert (record.status, record.waiting_for) == ("running", "")
        assert record.steps["a"].status == "queued"
        line = summary(run, {"worker"})
        assert (line.status, line.reason) == ("running", "")

    def test_without_the_connected_roles_a_queued_step_waits_for_an_agent(self) -> None:
        """A view told of no connected agents (a past version of the run) waits for one."""
        assert record_view(queued()).waiting_for == "an agent of role 'worker' for step 'a'"


class TestOtherWaits:
    def test_a_retry_timer_is_waited_for_whoever_is_connected(self) -> None:
        """A step between attempts waits for its timer, agents or none."""
        run, _ = start(SLOW, RunStarted(RUN, "slow", "1", SLOW.fingerprint, {}), 10.0)
        apply(run, StepDispatched(RUN, "a", 1, "w"), 10.5)
        apply(run, StepFailed(RUN, "a", 1, "error", "broke", "w"), 11.0)
        assert display_status(run, {"worker"}) == ("waiting", "the retry timer of step 'a'")

    def test_a_step_in_an_agents_hands_is_running(self) -> None:
        """A dispatched step makes the run running, agents connected or not."""
        run = queued()
        apply(run, StepDispatched(RUN, "a", 1, "w"), 10.5)
        assert display_status(run) == ("running", "")

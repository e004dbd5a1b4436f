"""What `runtime.testing` promises the tests that drive the runtime with it."""

from __future__ import annotations

import pytest

from runtime import Checkpoint, Role, Step, Workflow, chain, compile_workflow
from runtime.engine import Dispatch, RunStarted, StepDispatched, StepSucceeded
from runtime.testing import EngineDriver, FakeClock, of_kind, sample_outputs

GRAPH = compile_workflow(
    Workflow(
        "pair",
        roles=[Role("worker")],
        steps=[
            Step("a", role="worker", writes={"n": int, "s": str, "x": object}),
            Step(
                "b", role="worker", reads=["n"], writes=["y"],
                checkpoint=Checkpoint(["ops"], timeout=60),
            ),
        ],
        edges=chain("a", "b"),
    )
)  # fmt: skip
"""`a` writes three typed keys; `b` waits for ops before it runs, a minute at most."""


class TestFakeClock:
    def test_time_passing_moves_both_clocks(self) -> None:
        """`advance` moves the wall and the monotonic clock alike."""
        clock = FakeClock(wall=1_000.0, monotonic=5.0)
        clock.advance(2.5)
        assert (clock.wall(), clock.monotonic()) == (1_002.5, 7.5)

    def test_setting_the_wall_clock_leaves_the_monotonic_one(self) -> None:
        """`jump` moves the wall clock alone, either way."""
        clock = FakeClock(wall=1_000.0, monotonic=5.0)
        clock.jump(-3_600.0)
        assert (clock.wall(), clock.monotonic()) == (-2_600.0, 5.0)

    def test_a_reboot_starts_the_monotonic_clock_over_in_another_boot(self) -> None:
        """After `reboot` the monotonic clock counts again from its start, in a new boot."""
        clock = FakeClock(monotonic=5.0)
        clock.advance(10.0)
        clock.reboot()
        assert (clock.monotonic(), clock.boot) == (5.0, "boot-2")
        clock.reboot("named")
        assert clock.boot == "named"

    def test_time_does_not_pass_backwards(self) -> None:
        """A negative `advance` is refused, pointing at `jump`."""
        with pytest.raises(ValueError, match=r"to set the wall clock back: jump\(-1\.0\)"):
            FakeClock().advance(-1.0)


class TestEngineDriver:
    def test_the_journal_is_numbered_and_timed_as_the_supervisor_keeps_it(self) -> None:
        """Records count from 1 at the start's time, a tick apart unless a time is given."""
        d = EngineDriver(GRAPH, run_id="r", at=10.0, tick=0.5)
        d.dispatch("a")
        d.feed(StepSucceeded("r", "a", 1, "agent", sample_outputs(GRAPH, "a")), at=20.0)
        assert [(r.seq, r.at) for r in d.journal] == [(1, 10.0), (2, 10.5), (3, 20.0)]
        assert [type(e) for e in d.events] == [RunStarted, StepDispatched, StepSucceeded]
        assert d.replayed().data == d.run.data

    def test_a_queued_step_is_taken_before_its_result(self) -> None:
        """`succeed` on a queued step journals its dispatch to the agent first."""
        d = EngineDriver(GRAPH, agent="w")
        d.succeed("a")
        taken, done = d.events[1:]
        assert isinstance(taken, StepDispatched)
        assert isinstance(done, StepSucceeded)
        assert (taken.agent, done.agent) == ("w", "w")

    def test_sample_outputs_have_the_declared_types(self) -> None:
        """A value of each declared type, and for an untyped key a string naming the writer."""
        assert sample_outputs(GRAPH, "a") == {"n": 1, "s": "text", "x": "a.x"}

    def test_a_decision_timer_fires_for_the_open_decision(self) -> None:
        """`fire("decision", ...)` names the attempt of the decision the step waits for."""
        d = EngineDriver(GRAPH, principal="olga")
        d.succeed("a")
        assert d.run.steps["b"].status == "awaiting_decision"
        d.fire("decision", "b")
        assert d.run.status == "halted"
        assert "nobody decided" in d.run.reason

    def test_commands_are_kept_by_event_and_picked_by_kind(self) -> None:
        """`outputs` holds each event's commands; `of` and `of_kind` pick one kind."""
        d = EngineDriver(GRAPH)
        d.succeed("a")
        approved = d.decide("b", "approve")
        assert [c.step for c in of_kind(Dispatch, approved)] == ["b"]
        assert [c.step for c in d.of(Dispatch)] == ["a", "b"]
        assert d.outputs[-1] is d.last is approved
        (made,) = d.history("decision_made")
        assert made.principal == "approver"

"""Checkpoints and escalations in the engine, the checks on a decision, and validation."""

from __future__ import annotations

import pytest

from protocols import Decide
from runtime import WorkflowInvalid, key
from runtime.engine._engine import apply
from runtime.engine._events import (
    CancelTimer,
    ClockJumped,
    DecisionMade,
    Dispatch,
    RunEnded,
    RunRecovered,
    RunResumed,
    StartTimer,
)
from runtime.planes._authority import Refusal, check_decision
from runtime.planes._views import record_view
from runtime.security._principals import Principal
from runtime.testing import EngineDriver, of_kind
from runtime.workflow._checkpoints import Checkpoint
from runtime.workflow._definition import Role, Step, Workflow, chain
from runtime.workflow._graph import Graph, compile_workflow
from runtime.workflow._policies import Escalate, EscalateTo, Goto, Halt, Reject

RUN = "run-c"
BIG = key("amount") > 100


def pay_graph(checkpoint: Checkpoint | None = None, *, escalate: Escalate | None = None) -> Graph:
    """quote (writes price) -> pay (reads amount and price, writes receipt) -> note; with a
    checkpoint that rejects to a step, `refund` stands in for `pay`."""
    refund = Step("refund", role="clerk", reads=["amount"], writes={"receipt": str})
    rejects_to_step = checkpoint is not None and isinstance(checkpoint.on_reject, Goto)
    return compile_workflow(
        Workflow(
            "pay",
            roles=[Role("clerk")],
            inputs=["amount"],
            steps=[
                Step("quote", role="clerk", reads=["amount"], writes={"price": int}),
                Step(
                    "pay",
                    role="clerk",
                    reads=["amount", "price"],
                    writes={"receipt": str},
                    consequence="irreversible",
                    checkpoint=checkpoint,
                    unreviewed="" if checkpoint else "tests without a checkpoint",
                    on_failure=escalate or Halt(),
                ),
                Step("note", role="clerk", reads=["receipt"], writes=["noted"]),
                *([refund] if rejects_to_step else []),
            ],
            edges=chain("quote", "pay", "note"),
        )
    )


def driven(graph: Graph, amount: int, started_by: str = "olga") -> EngineDriver:
    """A run of `graph` for `amount` from t=10: agent `w` takes its steps, `fin` decides."""
    return EngineDriver(
        graph, {"amount": amount}, run_id=RUN, started_by=started_by, at=10.0, agent="w",
        principal="fin",
    )  # fmt: skip


class TestBefore:
    CHECKPOINT = Checkpoint(["finance"], condition=BIG, reason="a large payment")

    def test_a_large_payment_waits_and_costs_no_agent(self) -> None:
        d = driven(pay_graph(self.CHECKPOINT), 500)
        commands = d.succeed("quote", {"price": 500})
        assert of_kind(Dispatch, commands) == []
        assert d.run.steps["pay"].status == "awaiting_decision"
        record = record_view(d.run)
        assert record.status == "waiting"
        assert "approver:finance" in record.waiting_for
        (pending,) = record.pending
        assert (pending.step, pending.attempt, pending.when) == ("pay", 1, "before")
        assert pending.reviewed == {"amount": 500, "price": 500}
        assert pending.choices == ["approve", "reject"]

    def test_a_small_payment_goes_straight_on(self) -> None:
        d = driven(pay_graph(self.CHECKPOINT), 50)
        commands = d.succeed("quote", {"price": 50})
        assert [c.step for c in of_kind(Dispatch, commands)] == ["pay"]
        assert not d.run.decisions

    def test_approved_with_an_edit_the_step_reads_the_edited_value(self) -> None:
        d = driven(pay_graph(self.CHECKPOINT), 500)
        d.succeed("quote", {"price": 500})
        (dispatch,) = of_kind(Dispatch, d.decide("pay", "approve", {"price": 450}))
        assert (dispatch.step, dispatch.attempt) == ("pay", 1)
        assert dispatch.inputs == {"amount": 500, "price": 450}
        assert d.run.provenance["price"].edited_by == "fin"
        made = [h for h in d.run.history if h.event == "decision_made"]
        assert made[0].principal == "fin"
        assert made[0].detail["edited"] == ["price"]

    def test_rejected_the_run_halts_saying_who(self) -> None:
        d = driven(pay_graph(self.CHECKPOINT), 500)
        d.succeed("quote", {"price": 500})
        ended = [c for c in d.decide("pay", "reject", comment="ok") if isinstance(c, RunEnded)]
        assert ended[0].status == "halted"
        assert "rejected by fin: ok" in d.run.reason
        assert d.run.steps["pay"].status == "failed"

    def test_rejected_to_a_step_that_stands_in(self) -> None:
        checkpoint = Checkpoint(["finance"], condition=BIG, on_reject=Goto("refund"))
        d = driven(pay_graph(checkpoint), 500)
        d.succeed("quote", {"price": 500})
        assert [c.step for c in of_kind(Dispatch, d.decide("pay", "reject"))] == ["refund"]
        commands = d.succeed("refund", {"receipt": "refunded"})
        assert [c.step for c in of_kind(Dispatch, commands)] == ["note"]
        assert d.run.steps["pay"].status == "replaced"


class TestAfter:
    CHECKPOINT = Checkpoint(["finance"], when="after", condition=key("receipt") != "ok")

    def test_outputs_wait_unused_until_approved_with_edits(self) -> None:
        d = driven(pay_graph(self.CHECKPOINT), 500)
        d.succeed("quote", {"price": 500})
        held = d.succeed("pay", {"receipt": "r-1"})
        assert of_kind(Dispatch, held) == []
        assert "receipt" not in d.run.data
        assert record_view(d.run).pending[0].reviewed == {"receipt": "r-1"}
        (note,) = of_kind(Dispatch, d.decide("pay", "approve", {"receipt": "r-1 (checked)"}))
        assert note.inputs == {"receipt": "r-1 (checked)"}
        prov = d.run.provenance["receipt"]
        assert (prov.agent, prov.approved_by, prov.edited_by) == ("w", "fin", "fin")

    def test_outputs_that_need_no_review_pass(self) -> None:
        d = driven(pay_graph(self.CHECKPOINT), 500)
        d.succeed("quote", {"price": 500})
        assert [c.step for c in of_kind(Dispatch, d.succeed("pay", {"receipt": "ok"}))] == ["note"]
        assert d.run.provenance["receipt"].approved_by == ""


class TestTimeouts:
    def test_unanswered_it_escalates_then_halts(self) -> None:
        checkpoint = Checkpoint(
            ["finance"], condition=BIG, timeout=60, on_timeout=EscalateTo(["cfo"], timeout=30)
        )
        d = driven(pay_graph(checkpoint), 500)
        commands = d.succeed("quote", {"price": 500})
        assert [(t.purpose, t.delay) for t in commands if isinstance(t, StartTimer)] == [
            ("decision", 60)
        ]
        first = d.run.decisions["pay"].digest
        escalated = d.fire("decision", "pay")
        waiting = d.run.decisions["pay"]
        assert waiting.approvers == ("cfo",)
        assert waiting.digest != first
        assert [t.delay for t in escalated if isinstance(t, StartTimer)] == [30]
        d.fire("decision", "pay")
        assert d.run.status == "halted"
        assert "nobody decided" in d.run.reason

    def test_unanswered_it_may_reject(self) -> None:
        checkpoint = Checkpoint(
            ["finance"], condition=BIG, timeout=5, on_timeout=Reject(), on_reject=Goto("refund")
        )
        d = driven(pay_graph(checkpoint), 500)
        d.succeed("quote", {"price": 500})
        commands = d.fire("decision", "pay")
        assert [c.step for c in of_kind(Dispatch, commands)] == ["refund"]

    def test_a_decision_in_time_cancels_its_timer(self) -> None:
        d = driven(pay_graph(Checkpoint(["finance"], condition=BIG, timeout=60)), 500)
        d.succeed("quote", {"price": 500})
        commands = d.decide("pay", "approve")
        assert any(isinstance(c, CancelTimer) and c.purpose == "decision" for c in commands)
        d.fire("decision", "pay")
        assert d.run.status == "running"


class TestEscalation:
    POLICY = Escalate(["ops"], reason="payments must not fail silently")

    def failed(self) -> EngineDriver:
        d = driven(pay_graph(escalate=self.POLICY), 500)
        d.succeed("quote", {"price": 500})
        d.fail("pay", "error", "bank said no")
        return d

    def test_a_failure_waits_for_a_person(self) -> None:
        d = self.failed()
        (pending,) = record_view(d.run).pending
        assert (pending.kind, pending.choices) == ("escalation", ["retry", "skip", "abort"])
        assert pending.reviewed == {"failure": "error", "message": "bank said no"}

    def test_retry_tries_again(self) -> None:
        d = self.failed()
        assert [(c.step, c.attempt) for c in of_kind(Dispatch, d.decide("pay", "retry"))] == [
            ("pay", 2)
        ]

    def test_skip_writes_the_values_given(self) -> None:
        d = self.failed()
        (note,) = of_kind(Dispatch, d.decide("pay", "skip", {"receipt": "paid by hand"}))
        assert note.inputs == {"receipt": "paid by hand"}
        assert d.run.provenance["receipt"].edited_by == "fin"

    def test_abort_halts(self) -> None:
        d = self.failed()
        d.decide("pay", "abort")
        assert d.run.status == "halted"
        assert "aborted by fin" in d.run.reason


class TestDurable:
    def test_a_stale_decision_changes_nothing(self) -> None:
        d = driven(pay_graph(Checkpoint(["finance"], condition=BIG)), 500)
        d.succeed("quote", {"price": 500})
        d.feed(DecisionMade(RUN, "pay", 1, "approve", "fin", "not-the-digest"))
        assert d.run.steps["pay"].status == "awaiting_decision"
        assert d.run.history[-1].event == "decision_ignored"

    def test_recovered_it_still_waits_and_its_timer_resumes(self) -> None:
        d = driven(pay_graph(Checkpoint(["finance"], condition=BIG, timeout=60)), 500)
        d.succeed("quote", {"price": 500})
        opened = d.now
        rebuilt = d.replayed()
        assert record_view(rebuilt) == record_view(d.run)
        commands = apply(rebuilt, RunRecovered(RUN), opened + 20)
        assert of_kind(Dispatch, commands) == []
        assert [t.delay for t in commands if isinstance(t, StartTimer)] == [pytest.approx(40.0)]
        assert rebuilt.decisions["pay"].digest == d.run.decisions["pay"].digest

    def test_a_wall_clock_jump_leaves_the_deadline_its_real_time(self) -> None:
        """An hour's wait opened at t, the runtime down 100 s, back with its wall clock an
        hour ahead: 3500 s are left, and stay left through a later restart."""
        d = driven(pay_graph(Checkpoint(["finance"], condition=BIG, timeout=3600)), 500)
        d.succeed("quote", {"price": 500})
        opened = d.now
        back = opened + 100 + 3600
        d.feed(ClockJumped(RUN, 3600.0), at=back)
        commands = d.feed(RunRecovered(RUN), at=back)
        run = d.run
        assert run.decisions["pay"].deadline == opened + 7200
        assert [t.delay for t in commands if isinstance(t, StartTimer)] == [3500.0]
        assert [h.event for h in run.history[-2:]] == ["clock_jumped", "run_recovered"]
        again = d.replayed()
        assert record_view(again) == record_view(run)
        commands = apply(again, RunRecovered(RUN), back + 50)
        assert [t.delay for t in commands if isinstance(t, StartTimer)] == [3450.0]

    def test_a_stuck_run_keeps_its_deadline_until_it_is_resumed(self) -> None:
        """Parked, then the clock set back an hour, then resumed: the wait is not an hour
        longer for it."""
        d = driven(pay_graph(Checkpoint(["finance"], condition=BIG, timeout=3600)), 500)
        d.succeed("quote", {"price": 500})
        opened = d.now
        d.feed(RunRecovered(RUN, budget=1), at=opened + 10)
        d.feed(RunRecovered(RUN, budget=1), at=opened + 20)
        assert d.run.status == "stuck"
        d.feed(ClockJumped(RUN, -3600.0), at=opened + 30 - 3600)
        commands = d.feed(RunResumed(RUN, "olga"), at=opened + 40 - 3600)
        assert [t.delay for t in commands if isinstance(t, StartTimer)] == [3560.0]

    def test_an_ended_run_is_left_as_it_ended(self) -> None:
        d = driven(pay_graph(Checkpoint(["finance"], condition=BIG, timeout=3600)), 500)
        d.succeed("quote", {"price": 500})
        d.decide("pay", "reject")
        seen = len(d.run.history)
        assert d.feed(ClockJumped(RUN, 3600.0)) == []
        assert len(d.run.history) == seen


class TestCheckDecision:
    def waiting(self, started_by: str = "olga") -> EngineDriver:
        d = driven(pay_graph(Checkpoint(["finance"], condition=BIG)), 500, started_by)
        d.succeed("quote", {"price": 500})
        return d

    def request(self, d: EngineDriver, **changes: object) -> Decide:
        waiting = d.run.decisions["pay"]
        fields: dict[str, object] = {
            "id": 1,
            "protocol": 1,
            "run_id": RUN,
            "step": "pay",
            "attempt": waiting.attempt,
            "decision": "approve",
            "digest": waiting.digest,
        }
        return Decide(**(fields | changes))  # type: ignore[arg-type]

    def test_an_approver_of_the_group_decides(self) -> None:
        d = self.waiting()
        made = check_decision(d.run, FIN, self.request(d, values={"price": 450}))
        assert isinstance(made, DecisionMade)
        assert made.principal == "fin"

    @pytest.mark.parametrize(
        ("who", "changes", "code", "says"),
        [
            ("mallory", {}, "unauthorized", "needs approver:finance"),
            ("olga", {}, "unauthorized", "separation of duties"),
            ("fin", {"digest": "0" * 20}, "stale", "no longer the one shown"),
            ("fin", {"attempt": 2}, "stale", "no longer the one shown"),
            ("fin", {"decision": "retry"}, "invalid_input", "approve, reject"),
            ("fin", {"values": {"receipt": "x"}}, "invalid_input", "not among the values"),
            ("fin", {"decision": "reject", "values": {"price": 1}}, "invalid_input", "no values"),
            ("fin", {"step": "note"}, "wrong_state", "waits for no decision"),
        ],
    )
    def test_refused_with_a_reason(
        self, who: str, changes: dict[str, object], code: str, says: str
    ) -> None:
        d = self.waiting()
        principal = {"mallory": MALLORY, "olga": OLGA, "fin": FIN}[who]
        refused = check_decision(d.run, principal, self.request(d, **changes))
        assert isinstance(refused, Refusal)
        assert refused.code == code
        assert says in refused.message

    def test_outputs_are_checked_against_the_step_types(self) -> None:
        d = driven(pay_graph(Checkpoint(["finance"], when="after")), 500)
        d.succeed("quote", {"price": 500})
        d.succeed("pay", {"receipt": "r"})
        refused = check_decision(d.run, FIN, self.request(d, values={"receipt": 7}))
        assert isinstance(refused, Refusal)
        assert "Expected `str`" in refused.message


FIN = Principal("fin", b"f" * 40, frozenset({"approver:finance"}))
OLGA = Principal("olga", b"o" * 40, frozenset({"operator", "approver:finance"}))
MALLORY = Principal("mallory", b"m" * 40, frozenset({"approver:legal"}))


class TestValidation:
    def test_an_irreversible_step_needs_a_checkpoint(self) -> None:
        workflow = Workflow(
            "w",
            roles=[Role("r")],
            steps=[Step("send", role="r", writes=["x"], consequence="irreversible")],
        )
        with pytest.raises(WorkflowInvalid, match="irreversible and no checkpoint reviews it"):
            compile_workflow(workflow)

    def test_a_review_rule_places_checkpoints_by_consequence(self) -> None:
        rule = Checkpoint(["legal"])
        graph = compile_workflow(
            Workflow(
                "w",
                roles=[Role("r")],
                steps=[
                    Step("send", role="r", writes=["x"], consequence="irreversible"),
                    Step("look", role="r", reads=["x"], writes=["y"]),
                ],
                edges=chain("send", "look"),
                review={"irreversible": rule},
            )
        )
        assert graph.checkpoints == {"send": rule}

    def test_approver_groups_and_timeouts_are_checked(self) -> None:
        workflow = Workflow(
            "w",
            roles=[Role("r")],
            steps=[
                Step("a", role="r", writes=["x"], checkpoint=Checkpoint([], timeout=-1)),
            ],
        )
        with pytest.raises(WorkflowInvalid) as refused:
            compile_workflow(workflow)
        codes = {p.code for p in refused.value.problems}
        assert codes == {"bad_approvers", "bad_timeout"}

"""A run's inputs carry provenance as the values steps write do: where each came from, the
run's start, and who started the run."""

from __future__ import annotations

import msgspec

from protocols import Provenance, RunRecord
from runtime.engine import (
    Run,
    RunStarted,
    StepDispatched,
    StepSucceeded,
    apply,
    start,
)
from runtime.planes._views import record_view
from runtime.workflow import Role, Step, Workflow, compile_workflow

RUN = "run-1"
GRAPH = compile_workflow(
    Workflow(
        "refund",
        roles=[Role("clerk")],
        inputs=["amount", "customer"],
        steps=[Step("cap", role="clerk", reads=["amount"], writes=["amount"])],
    )
)


def started(by: str) -> Run:
    """A run of `refund` for 120 to customer c-1, started by `by`."""
    event = RunStarted(
        run_id=RUN, workflow="refund", version="1", fingerprint=GRAPH.fingerprint,
        inputs={"amount": 120, "customer": "c-1"}, started_by=by,
    )  # fmt: skip
    run, _ = start(GRAPH, event, 1.0)
    return run


class TestInputProvenance:
    """Every input key names the run's start and its principal, at the start's version."""

    def test_inputs_name_who_started_the_run(self) -> None:
        """Each input is given by the principal that started the run, at version 1."""
        run = started("alice")
        given = Provenance(
            step="input", attempt=0, rationale="given by alice when the run started", seq=1,
            edited_by="alice",
        )  # fmt: skip
        assert run.provenance == {"amount": given, "customer": given}
        (first,) = [h for h in run.history if h.seq == 1]
        assert (first.event, first.principal) == ("run_started", "alice")

    def test_a_run_started_without_a_principal(self) -> None:
        """A start that names no principal (an insecure runtime, an old journal) says so."""
        run = started("")
        assert run.provenance["amount"] == Provenance(
            step="input", attempt=0, rationale="given when the run started", seq=1
        )

    def test_a_step_that_rewrites_an_input_owns_it(self) -> None:
        """Once a step writes an input key, the key's provenance is that step's."""
        run = started("alice")
        apply(run, StepDispatched(run_id=RUN, step="cap", attempt=1, agent="agent-1"), 2.0)
        result = StepSucceeded(
            run_id=RUN, step="cap", attempt=1, agent="agent-1", outputs={"amount": 100},
            rationale="capped",
        )  # fmt: skip
        apply(run, result, 3.0)
        assert (run.provenance["amount"].step, run.provenance["amount"].agent) == ("cap", "agent-1")
        assert run.provenance["customer"].step == "input"

    def test_the_record_a_client_reads_carries_it(self) -> None:
        """The record as it travels decodes with the inputs' provenance in it."""
        record = msgspec.json.decode(
            msgspec.json.encode(record_view(started("alice"))), type=RunRecord
        )
        assert record.provenance["customer"].edited_by == "alice"

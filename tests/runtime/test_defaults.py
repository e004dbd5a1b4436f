"""What a workflow does where its author left something out: a decision's default route,
and the policy of a failure kind the step names none for."""

from __future__ import annotations

from runtime.engine import (
    Command,
    Dispatch,
    RunStarted,
    StepDispatched,
    StepSucceeded,
    apply,
    start,
)
from runtime.engine._run import Run
from runtime.workflow import (
    Decision,
    Graph,
    Role,
    Route,
    Step,
    Workflow,
    compile_workflow,
    key,
    mermaid,
)

RUN = "run-1"


def begin(graph: Graph, inputs: dict[str, object]) -> tuple[Run, list[Command]]:
    """A run of `graph`, started with `inputs`."""
    event = RunStarted(
        run_id=RUN, workflow=graph.name, version="1", fingerprint=graph.fingerprint,
        inputs=inputs,
    )  # fmt: skip
    return start(graph, event, 1.0)


def succeed(run: Run, dispatch: Dispatch, outputs: dict[str, object]) -> list[Command]:
    """The dispatched attempt reaches an agent and succeeds with `outputs`."""
    apply(run, StepDispatched(run_id=RUN, step=dispatch.step, attempt=dispatch.attempt,
                              agent="agent-1"), 2.0)  # fmt: skip
    event = StepSucceeded(
        run_id=RUN, step=dispatch.step, attempt=dispatch.attempt, agent="agent-1",
        outputs=outputs,
    )  # fmt: skip
    return apply(run, event, 3.0)


class TestDefaultRoute:
    """A decision's default route has one name, in the history as on the diagram."""

    GRAPH = compile_workflow(
        Workflow(
            "triage",
            roles=[Role("clerk")],
            inputs=["amount"],
            steps=[
                Decision("large?", [Route(key("amount") > 500, "review")], default="file"),
                Step("review", role="clerk"),
                Step("file", role="clerk"),
            ],
        )
    )

    def test_history_names_the_default_as_the_diagram_does(self) -> None:
        """A run that takes the default records `default -> file`, the diagram's label."""
        run, commands = begin(self.GRAPH, {"amount": 20})
        assert [c.step for c in commands if isinstance(c, Dispatch)] == ["file"]
        (taken,) = [h for h in run.history if h.event == "decision_taken"]
        assert taken.message == "default -> file"
        assert '    n0 -->|"default"| n2' in mermaid(self.GRAPH).splitlines()

    def test_a_condition_names_its_route(self) -> None:
        """A route taken because its condition held is named by that condition."""
        run, _ = begin(self.GRAPH, {"amount": 900})
        (taken,) = [h for h in run.history if h.event == "decision_taken"]
        assert taken.message == "amount > 500 -> review"

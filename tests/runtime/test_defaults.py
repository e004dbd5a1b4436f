"""What a workflow does where its author left something out: a decision's default route,
and the policy of a failure kind the step names none for."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.engine import (
    Command,
    Dispatch,
    Run,
    RunStarted,
    StartTimer,
    StepDispatched,
    StepFailed,
    ToolCallRequested,
    apply,
    start,
)
from runtime.workflow import (
    Decision,
    FailurePolicy,
    Graph,
    PolicyTable,
    Retry,
    Role,
    Route,
    Step,
    Workflow,
    compile_workflow,
    key,
    mermaid,
)

RUN = "run-1"


def begin(graph: Graph, inputs: dict[str, Any]) -> tuple[Run, list[Command]]:
    """A run of `graph`, started with `inputs`."""
    event = RunStarted(
        run_id=RUN, workflow=graph.name, version="1", fingerprint=graph.fingerprint,
        inputs=inputs,
    )  # fmt: skip
    return start(graph, event, 1.0)


def placed(run: Run, attempt: int) -> None:
    """Attempt `attempt` of step `look` reaches an agent."""
    apply(run, StepDispatched(run_id=RUN, step="look", attempt=attempt, agent="agent-1"), 2.0)


def calls(run: Run, attempt: int, tool: str) -> list[Command]:
    """The agent running attempt `attempt` of `look`, allowed every tool, calls `tool`."""
    event = ToolCallRequested(
        run_id=RUN, step="look", attempt=attempt, agent="agent-1", agent_tools=["search", "mail"],
        call=1, tool=tool,
    )  # fmt: skip
    return apply(run, event, 3.0)


def looker(on_failure: FailurePolicy | PolicyTable | None = None) -> Graph:
    """One step, `look`, which may use `search`, with `on_failure` as its policy."""
    return compile_workflow(
        Workflow(
            "look",
            roles=[Role("clerk", tools=["search", "mail"])],
            steps=[Step("look", role="clerk", tools=["search"], on_failure=on_failure)],
        )
    )


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


class TestDefaultPolicies:
    """A step that names no policy for a failure kind retries it, unless retrying cannot help."""

    def test_refused_tool_is_not_retried(self) -> None:
        """A call outside the step's tools halts the run after one attempt, with no retry."""
        run, _ = begin(looker(), {})
        placed(run, 1)
        commands = calls(run, 1, "mail")
        assert [c for c in commands if isinstance(c, StartTimer)] == []
        assert run.status == "halted"
        assert [a.failure for a in run.steps["look"].attempts] == ["tool_refused"]
        assert [h.event for h in run.history if h.event == "retry_scheduled"] == []

    @pytest.mark.parametrize(
        "policy",
        [None, {"timeout": Retry(attempts=2)}],
        ids=["no-policy", "policy-for-another-kind"],
    )
    def test_other_failures_are_retried(self, policy: PolicyTable | None) -> None:
        """An error, which another attempt may mend, is retried as before."""
        run, _ = begin(looker(policy), {})
        placed(run, 1)
        failed = StepFailed(run_id=RUN, step="look", attempt=1, kind="error", agent="agent-1")
        commands = apply(run, failed, 3.0)
        assert [(c.purpose, c.step, c.attempt) for c in commands if isinstance(c, StartTimer)] == [
            ("retry", "look", 1)
        ]
        assert run.status == "running"

    def test_a_policy_named_for_refusals_is_kept(self) -> None:
        """A step that asks for refused calls to be retried has them retried."""
        run, _ = begin(looker({"tool_refused": Retry(attempts=2)}), {})
        placed(run, 1)
        commands = calls(run, 1, "mail")
        assert [(c.purpose, c.attempt) for c in commands if isinstance(c, StartTimer)] == [
            ("retry", 1)
        ]
        assert run.status == "running"

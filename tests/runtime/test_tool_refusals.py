"""A tool call outside the step's tools or the agent's allowlist, as the engine refuses it."""

from __future__ import annotations

import pytest

from runtime.engine import (
    CancelTask,
    CancelTimer,
    Command,
    RefuseToolCall,
    Run,
    RunEnded,
    RunStarted,
    StepDispatched,
    ToolCallRequested,
    apply,
    start,
)
from runtime.workflow import Halt, Role, Step, Workflow, compile_workflow

RUN = "run-1"
GRAPH = compile_workflow(
    Workflow(
        "look",
        roles=[Role("clerk", tools=["search", "mail"])],
        steps=[Step("look", role="clerk", tools=["search"], on_failure=Halt())],
    )
)


def refused(tool: str, agent_tools: list[str]) -> tuple[Run, list[Command]]:
    """A run whose one attempt calls `tool` from an agent allowed `agent_tools`."""
    run, _ = start(
        GRAPH,
        RunStarted(run_id=RUN, workflow="look", version="1", fingerprint="", inputs={}),
        1.0,
    )
    apply(run, StepDispatched(run_id=RUN, step="look", attempt=1, agent="agent-1"), 2.0)
    call = ToolCallRequested(
        run_id=RUN, step="look", attempt=1, agent="agent-1", agent_tools=agent_tools, call=1,
        tool=tool,
    )  # fmt: skip
    return run, apply(run, call, 3.0)


class TestRefusal:
    """The refusal says which tool, which step, and why; the attempt is withdrawn first."""

    @pytest.mark.parametrize(
        ("tool", "agent_tools", "why"),
        [
            ("mail", ["search", "mail"], "it is not one of the step's tools"),
            ("search", ["mail"], "it is not on the agent's allowlist"),
            ("shell", [], "it is not one of the step's tools"),
        ],
        ids=["outside-step", "outside-agent", "outside-both"],
    )
    def test_message_names_tool_step_and_reason(
        self, tool: str, agent_tools: list[str], why: str
    ) -> None:
        """The agent's answer, the history and the failed attempt carry the same sentence."""
        run, commands = refused(tool, agent_tools)
        message = f"tool {tool!r} is not allowed in step 'look': {why}"
        (answer,) = [c for c in commands if isinstance(c, RefuseToolCall)]
        assert answer.message == message
        assert [h.message for h in run.history if h.event == "tool_refused"] == [message]
        assert run.steps["look"].attempts[-1].message == message

    def test_the_agent_hears_why_before_its_attempt_is_withdrawn(self) -> None:
        """The refusal, with its reason, reaches the agent first; then the attempt is
        withdrawn and its timeout dropped, and the run goes on by the step's policy."""
        _, commands = refused("mail", ["search", "mail"])
        assert [type(c) for c in commands] == [RefuseToolCall, CancelTask, CancelTimer, RunEnded]

"""A workflow whose step a model agent runs, with the tool host it calls, for the
integration tests of model agents."""

from __future__ import annotations

from actors import ToolHost, tool
from actors.models import ModelAgent
from runtime import Halt, Role, Step, Workflow

sums = Workflow(
    "sums",
    roles=[Role("summer", tools=["add"])],
    inputs=["a", "b"],
    steps=[
        Step(
            "total",
            role="summer",
            reads=["a", "b"],
            writes={"total": int, "note": str},
            tools=["add"],
            on_failure=Halt(),
        )
    ],
)

ALL = [sums]


class Summer(ModelAgent):
    """Adds the step's inputs, as the model behind it decides, with the host's `add`."""

    role = "summer"
    tools = ("add",)
    instructions = "You add numbers with the add tool."
    model = "scripted"


class Calc(ToolHost):
    name = "calc"

    @tool(read_only=True)
    def add(self, a: int, b: int) -> int:
        """Add two integers."""
        return a + b

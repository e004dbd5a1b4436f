"""A workflow whose agent calls a tool its step does not allow, on every attempt."""

from __future__ import annotations

from actors import Agent, Context, Result, Task
from runtime import Retry, Role, Step, Workflow

overreach = Workflow(
    "overreach",
    roles=[Role("teller", tools=["wire_money"])],
    inputs=["account"],
    steps=[
        Step(
            "pay",
            role="teller",
            reads=["account"],
            writes={"paid": bool},
            on_failure=Retry(attempts=2, backoff=0.01),
        )
    ],
)
"""The step allows no tool; the teller's role is granted one, which its agent calls."""


class Teller(Agent):
    """Wires money from the account without asking whether the step allows it."""

    role = "teller"
    tools = ("wire_money",)

    async def handle(self, task: Task, ctx: Context) -> Result:
        await ctx.tools.call("wire_money", account=task.inputs["account"], amount=100)
        return Result(outputs={"paid": True})

"""A workflow for the cluster tests: each run makes one keyed side effect through a ledger
tool host, then settles for a while, so that runs are in flight when a runtime dies."""

from __future__ import annotations

import os
from pathlib import Path

import anyio

from actors import Agent, Context, Result, Task, ToolHost, tool
from runtime import Checkpoint, Retry, Role, Step, Workflow

job = Workflow(
    "job",
    roles=[Role("clerk", tools=["post"])],
    inputs=["n"],
    steps=[
        Step(
            "post",
            role="clerk",
            reads=["n"],
            writes={"receipt": str},
            tools=["post"],
            timeout=30,
            on_failure=Retry(attempts=5, backoff=0.2),
        ),
        Step(
            "settle",
            role="clerk",
            reads=["receipt"],
            writes={"settled": str},
            timeout=30,
            on_failure=Retry(attempts=5, backoff=0.2),
        ),
    ],
    edges=[("post", "settle")],
)
"""Post once (the effect), then settle."""

approved = Workflow(
    "approved",
    roles=[Role("clerk", tools=["post"])],
    inputs=["n"],
    steps=[
        Step(
            "post",
            role="clerk",
            reads=["n"],
            writes={"receipt": str},
            tools=["post"],
            consequence="irreversible",
            checkpoint=Checkpoint(["finance"], reason="every post is approved"),
        ),
    ],
)
"""One post, which waits for an approver of finance first."""


def _pause() -> float:
    return float(os.environ.get("BATON_TEST_PAUSE", "0.2"))


class Clerk(Agent):
    """Posts through the tool host, then takes a while over each step."""

    role = "clerk"
    tools = ("post",)

    async def handle(self, task: Task, ctx: Context) -> Result:
        if task.step == "post":
            receipt = await ctx.tools.call("post", n=task.inputs["n"])
            await anyio.sleep(_pause())
            return Result(outputs={"receipt": str(receipt)}, rationale="posted")
        await anyio.sleep(_pause())
        return Result(outputs={"settled": task.inputs["receipt"]}, rationale="settled")


class Books(ToolHost):
    """Writes one line per post it really makes to the file named by BATON_TEST_LEDGER: the
    oracle for a side effect made twice."""

    name = "books"

    @tool
    def post(self, n: int) -> str:
        """Post entry `n` to the books."""
        ledger = os.environ.get("BATON_TEST_LEDGER")
        if ledger:
            with Path(ledger).open("a") as out:
                out.write(f"{n}\n")
        return f"posted {n}"

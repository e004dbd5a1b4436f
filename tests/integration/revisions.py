"""A workflow whose looping step calls a ledger tool and whose last step calls a slow one.

`draft` publishes a new draft on each visit (its arguments name the round, so a
second visit is new work) and the loop sends it back until round 2; `settle`
then applies the final text through a tool that takes `BATON_TEST_SLOW` seconds.
The tool host writes one line per effect it really makes to the file named by
`BATON_TEST_LEDGER`: the oracle for effects repeated or missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from actors import Agent, Context, Result, Task, ToolHost, tool
from runtime import Decision, Retry, Role, Route, Step, Workflow, key

ROUNDS = 2
"""Visits of `draft` in every run."""

revision = Workflow(
    "revision",
    roles=[Role("drafter", tools=["publish"]), Role("settler", tools=["apply_text"])],
    inputs=["topic", "round"],
    steps=[
        Step(
            "draft",
            role="drafter",
            reads=["topic", "round"],
            writes={"round": int, "text": str},
            tools=["publish"],
            timeout=60,
            on_failure=Retry(attempts=3, backoff=0.01),
        ),
        Decision(
            "qa_gate", [Route(key("round") < ROUNDS, "draft", limit=ROUNDS)], default="settle"
        ),
        Step(
            "settle",
            role="settler",
            reads=["text"],
            writes={"receipt": str},
            tools=["apply_text"],
            timeout=120,
            on_failure=Retry(attempts=2, backoff=0.01),
        ),
    ],
    edges=[("draft", "qa_gate")],
)


def expected_effects(run_id: str, topic: str) -> list[str]:
    """The oracle's lines for one completed run, in order."""
    drafts = [f"publish {run_id} {topic} draft {n}" for n in range(1, ROUNDS + 1)]
    return [*drafts, f"apply {run_id} {topic} draft {ROUNDS}"]


class Drafter(Agent):
    role = "drafter"
    tools = ("publish",)

    async def handle(self, task: Task, ctx: Context) -> Result:
        next_round = task.inputs["round"] + 1
        text = f"{task.inputs['topic']} draft {next_round}"
        published = await ctx.tools.call("publish", ref=task.run_id, text=text)
        return Result(outputs={"round": next_round, "text": published}, rationale="redrafted")


class Settler(Agent):
    role = "settler"
    tools = ("apply_text",)

    async def handle(self, task: Task, ctx: Context) -> Result:
        receipt = await ctx.tools.call("apply_text", ref=task.run_id, text=task.inputs["text"])
        return Result(outputs={"receipt": receipt}, rationale="applied")


class Press(ToolHost):
    """Publishes drafts at once and applies texts slowly, noting each effect it makes."""

    name = "press"

    def _note(self, line: str) -> None:
        ledger = os.environ.get("BATON_TEST_LEDGER")
        if ledger:
            with Path(ledger).open("a") as out:
                out.write(line + "\n")

    @tool
    def publish(self, ref: str, text: str) -> str:
        """Publish a draft; returns what was published."""
        self._note(f"publish {ref} {text}")
        return text

    @tool
    def apply_text(self, ref: str, text: str) -> str:
        """Apply the final text somewhere slow; returns a receipt."""
        # A slow external system: the host is busy with the call for this long.
        time.sleep(float(os.environ.get("BATON_TEST_SLOW", "0")))
        self._note(f"apply {ref} {text}")
        return f"applied {text}"

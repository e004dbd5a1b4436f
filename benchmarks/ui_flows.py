"""The workflows the page benchmark fills its journal with: a loop that makes a long
history, and a one-step run copied many times over."""

from __future__ import annotations

from actors import Agent, Context, Result, Task
from runtime import Decision, Role, Route, Step, Workflow, key

LOOPS = 3_400
"""Visits of `work` in one run: three history entries each (dispatch, result, decision),
so a little over 10,000 entries in all."""

tick = Workflow(
    "tick",
    inputs=["n"],
    roles=[Role("ticker")],
    steps=[
        Step("work", role="ticker", reads=["n"], writes={"n": int}, timeout=10),
        Decision("again", routes=[Route(key("n") < LOOPS, to="work", limit=LOOPS)], default="done"),
        Step("done", role="ticker", reads=["n"], writes={"total": int}, timeout=10),
    ],
    edges=[("work", "again")],
)

note = Workflow(
    "note",
    inputs=["customer"],
    roles=[Role("ticker")],
    steps=[Step("write", role="ticker", reads=["customer"], writes={"text": str}, timeout=10)],
)


class Ticker(Agent):
    role = "ticker"

    async def handle(self, task: Task, ctx: Context) -> Result:
        if task.step == "work":
            return Result(outputs={"n": task.inputs["n"] + 1})
        if task.step == "done":
            return Result(outputs={"total": task.inputs["n"]})
        return Result(outputs={"text": f"hello {task.inputs['customer']}"})

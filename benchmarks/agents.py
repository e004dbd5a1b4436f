"""Trivial agents and the 5-step linear workflow the benchmark runs."""

from __future__ import annotations

from actors import Agent, Context, Result, Task
from runtime import Role, Step, Workflow, chain

STEPS = 5

linear = Workflow(
    "bench_linear",
    roles=[Role(f"bench{i}") for i in range(STEPS)],
    inputs=["payload"],
    steps=[
        Step(f"s{i}", role=f"bench{i}", reads=["payload"], writes=[f"out{i}"], timeout=30)
        for i in range(STEPS)
    ],
    edges=chain(*(f"s{i}" for i in range(STEPS))),
)


class _Echo(Agent):
    async def handle(self, task: Task, ctx: Context) -> Result:
        return Result(outputs={f"out{task.step[1:]}": 1}, rationale="echo", confidence=1.0)


class Bench0(_Echo):
    role = "bench0"


class Bench1(_Echo):
    role = "bench1"


class Bench2(_Echo):
    role = "bench2"


class Bench3(_Echo):
    role = "bench3"


class Bench4(_Echo):
    role = "bench4"

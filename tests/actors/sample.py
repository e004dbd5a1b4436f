"""Actors used by the tests, importable by `load_actor`."""

from __future__ import annotations

import threading
from typing import Annotated, Any

import anyio
from msgspec import Meta

from actors import (
    Agent,
    Context,
    InvalidOutput,
    Result,
    Task,
    ToolFailed,
    ToolHost,
    ToolRefused,
    tool,
)


class EchoAgent(Agent):
    role = "echo"

    async def handle(self, task: Task, ctx: Context) -> Result:
        return Result(
            outputs={"echo": dict(task.inputs), "flags": dict(task.flags)},
            rationale="said it back",
            confidence=0.75,
            caveats=["unverified"],
        )


class FailingAgent(Agent):
    role = "failing"

    async def handle(self, task: Task, ctx: Context) -> Result:
        raise RuntimeError(f"cannot do {task.step}")


class OutputsAgent(Agent):
    """Returns whatever outputs it was built with."""

    role = "outputs"

    def __init__(self, outputs: Any = None, *, confidence: float = 1.0) -> None:
        self.outputs = outputs
        self.confidence = confidence

    async def handle(self, task: Task, ctx: Context) -> Result:
        return Result(outputs=self.outputs, confidence=self.confidence)


class RefusingOutputAgent(Agent):
    role = "refusing"

    async def handle(self, task: Task, ctx: Context) -> Result:
        raise InvalidOutput("the total does not add up")


class BlockingAgent(Agent):
    """Blocks each task until released; records when a task starts and when it is cancelled."""

    role = "blocking"

    def __init__(self) -> None:
        self.started = anyio.Event()
        self.release = anyio.Event()
        self.cancelled = anyio.Event()

    async def handle(self, task: Task, ctx: Context) -> Result:
        self.started.set()
        try:
            await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.cancelled.set()
            raise
        return Result(outputs={"released": task.step})


class CallingAgent(Agent):
    """Calls the tools named in its inputs, in order, and reports what came back."""

    role = "caller"
    tools = ("add", "mul", "boom")

    async def handle(self, task: Task, ctx: Context) -> Result:
        results: list[Any] = []
        for call in task.inputs["calls"]:
            try:
                results.append(await ctx.tools.call(call["tool"], **call["args"]))
            except (ToolRefused, ToolFailed) as exc:
                results.append({"error": type(exc).__name__, "code": exc.code, "tool": exc.tool})
        return Result(outputs={"results": results, "specs": [s.name for s in ctx.tools.specs]})


class MathHost(ToolHost):
    name = "math"

    def __init__(self) -> None:
        self.threads: list[int] = []

    @tool
    async def add(self, a: int, b: int = 0) -> int:
        """Add two integers."""
        return a + b

    @tool(name="mul", read_only=True, description="Multiply two numbers.")
    def multiply(self, x: float, y: Annotated[float, Meta(ge=0)]) -> float:
        self.threads.append(threading.get_ident())
        return x * y

    @tool
    def boom(self) -> None:
        raise ValueError("the tool broke")

    @tool
    async def opaque(self) -> object:
        return object()

    def not_a_tool(self) -> None:
        """Plain methods are not served."""


class Unnamed(Agent):
    """An agent that forgot its role."""


class NotAnActor:
    pass

"""Steps: an assigned task becomes a result or a failure, or is cancelled."""

from __future__ import annotations

import asyncio
import contextvars
import re
from typing import Any

import anyio
import pytest

from actors import Agent, Context, Result, Task
from protocols import Assign, Cancel, Error, StepFailure, StepResult
from tests.actors.conftest import WAIT, FakeRuntime, serving
from tests.actors.sample import (
    BlockingAgent,
    EchoAgent,
    FailingAgent,
    MathHost,
    OutputsAgent,
    RefusingOutputAgent,
)

pytestmark = pytest.mark.anyio


def assign(step: str = "s1", *, attempt: int = 1, inputs: Any = None, **fields: Any) -> Assign:
    return Assign(run_id="r1", step=step, attempt=attempt, inputs=inputs or {}, **fields)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


class NotAResultAgent(Agent):
    role = "confused"

    async def handle(self, task: Task, ctx: Context) -> Result:
        return {"x": 1}  # type: ignore[return-value]


_STEP: contextvars.ContextVar[str] = contextvars.ContextVar("step")


class ScopedAgent(Agent):
    """Before it first waits, sets a context variable and opens a task group and a timeout."""

    role = "scoped"

    async def handle(self, task: Task, ctx: Context) -> Result:
        _STEP.set(task.step)
        before = asyncio.current_task()
        async with anyio.create_task_group() as tg:
            tg.start_soon(anyio.sleep, 0)
            with anyio.move_on_after(0.01) as scope:
                await anyio.sleep(WAIT)
        same_task = asyncio.current_task() is before
        return Result(
            outputs={"step": _STEP.get(), "timed_out": scope.cancelled_caught, "task": same_task}
        )


class TestResults:
    async def test_a_handler_result_becomes_a_step_result(self, runtime: FakeRuntime) -> None:
        """Outputs, rationale, confidence and caveats reach the runtime as returned."""
        async with serving(EchoAgent(), runtime) as worker:
            identity, _ = await runtime.accept()
            message = assign(inputs={"x": 1, "y": ["a", None]}, flags={"x": ["stale"]}, attempt=2)
            await runtime.send(identity, message)
            _, result = await runtime.expect(StepResult)
        # Typed Any: mypy cannot check a literal against the deeply nested `Value` in time.
        outputs: Any = {"echo": {"x": 1, "y": ["a", None]}, "flags": {"x": ["stale"]}}
        assert result == StepResult(
            run_id="r1",
            step="s1",
            attempt=2,
            outputs=outputs,
            rationale="said it back",
            confidence=0.75,
            caveats=["unverified"],
        )
        stats = worker.statistics()
        assert (stats.tasks_started, stats.tasks_succeeded, stats.tasks_failed) == (1, 1, 0)

    async def test_a_burst_of_tasks_is_served_concurrently(self, runtime: FakeRuntime) -> None:
        """Up to `concurrency` tasks sent at once all complete."""
        async with serving(EchoAgent(), runtime, concurrency=64):
            identity, _ = await runtime.accept()
            for n in range(64):
                await runtime.send(identity, assign(f"s{n}", inputs={"n": n}))
            results = [(await runtime.expect(StepResult))[1] for _ in range(64)]
        echoed: list[Any] = [r.outputs["echo"] for r in results]
        assert sorted(echo["n"] for echo in echoed) == list(range(64))

    async def test_a_handler_keeps_its_task_and_context_across_its_first_wait(
        self, runtime: FakeRuntime
    ) -> None:
        """Scopes, task groups and context variables entered before the first wait hold after it."""
        async with serving(ScopedAgent(), runtime, concurrency=4):
            identity, _ = await runtime.accept()
            for n in range(4):
                await runtime.send(identity, assign(f"s{n}"))
            results = [(await runtime.expect(StepResult))[1] for _ in range(4)]
        assert sorted(r.step for r in results) == ["s0", "s1", "s2", "s3"]
        for result in results:
            assert result.outputs == {"step": result.step, "timed_out": True, "task": True}


class TestFailures:
    async def test_a_raising_handler_becomes_a_step_failure(self, runtime: FakeRuntime) -> None:
        """An exception in the handler is reported as reason `error` with `TypeName: text`."""
        async with serving(FailingAgent(), runtime) as worker:
            identity, _ = await runtime.accept()
            await runtime.send(identity, assign())
            _, failure = await runtime.expect(StepFailure)
        assert failure == StepFailure(
            run_id="r1", step="s1", attempt=1, reason="error", message="RuntimeError: cannot do s1"
        )
        assert worker.statistics().tasks_failed == 1

    @pytest.mark.parametrize(
        ("agent", "message"),
        [
            pytest.param(
                OutputsAgent({"tags": {"a", "b"}}),
                "Expected an ordered array, got a set - at `$.outputs.tags`",
                id="set",
            ),
            pytest.param(
                OutputsAgent({"deep": nested(10)}),
                "Expected `bool | int | float | str | null`, got `array` - "
                "at `$.outputs[...][0][0][0][0][0][0][0][0]`",
                id="too-deep",
            ),
            pytest.param(
                OutputsAgent({"bad key": 1}),
                "Expected `str` matching regex '^[A-Za-z0-9_.:\\\\-]+$' - at `key` in `$.outputs`",
                id="bad-key",
            ),
            pytest.param(
                OutputsAgent({"when": object()}),
                "Expected `bool | int | float | str | object | array | null`, got `object` - "
                "at `$.outputs[...]`",
                id="no-value",
            ),
            pytest.param(OutputsAgent([1]), "outputs is list, not a mapping", id="not-a-mapping"),
            pytest.param(
                OutputsAgent({}, confidence=1.5),
                "Expected `float` <= 1.0 - at `$.confidence`",
                id="confidence",
            ),
            pytest.param(RefusingOutputAgent(), "the total does not add up", id="raised"),
            pytest.param(NotAResultAgent(), "handle() returned dict, not Result", id="not-result"),
        ],
    )
    async def test_outputs_that_cannot_be_recorded_are_invalid_output(
        self, runtime: FakeRuntime, agent: Agent, message: str
    ) -> None:
        """Outputs the record cannot hold, or `InvalidOutput` raised, give `invalid_output`."""
        async with serving(agent, runtime):
            identity, _ = await runtime.accept()
            await runtime.send(identity, assign())
            _, failure = await runtime.expect(StepFailure)
        assert (failure.reason, failure.message) == ("invalid_output", message)

    async def test_outputs_too_large_for_a_frame_are_invalid_output(
        self, runtime: FakeRuntime
    ) -> None:
        """A result that would exceed the frame limit is replaced by `invalid_output`."""
        agent = OutputsAgent({"pages": ["x" * 60_000] * 20})
        async with serving(agent, runtime):
            identity, _ = await runtime.accept()
            await runtime.send(identity, assign())
            _, failure = await runtime.expect(StepFailure)
        assert failure.reason == "invalid_output"
        assert re.fullmatch(r"the result is \d+ bytes; the limit is 1048576", failure.message)

    async def test_a_tool_host_refuses_steps(self, runtime: FakeRuntime) -> None:
        """A tool host answers an `Assign` with `unexpected_message`."""
        async with serving(MathHost(), runtime):
            identity, _ = await runtime.accept()
            await runtime.send(identity, assign())
            _, error = await runtime.expect(Error)
        assert (error.code, error.ref) == ("unexpected_message", "r1/s1/1")


class TestCapacity:
    async def test_an_assign_beyond_capacity_is_refused_as_overloaded(
        self, runtime: FakeRuntime
    ) -> None:
        """The actor refuses work beyond its capacity instead of queueing it."""
        agent = BlockingAgent()
        async with serving(agent, runtime, concurrency=1) as worker:
            identity, _ = await runtime.accept()
            await runtime.send(identity, assign("s1"))
            with anyio.fail_after(WAIT):
                await agent.started.wait()
            await runtime.send(identity, assign("s2"))
            _, error = await runtime.expect(Error)
            assert (error.code, error.ref) == ("overloaded", "r1/s2/1")
            assert worker.statistics().in_flight == 1


class TestCancellation:
    async def test_cancel_stops_a_running_handler_and_sends_nothing(
        self, runtime: FakeRuntime
    ) -> None:
        """`Cancel` cancels the handler; its slot frees and no outcome is sent for it."""
        agent = BlockingAgent()
        async with serving(agent, runtime, concurrency=1):
            identity, _ = await runtime.accept()
            await runtime.send(identity, assign("s1"))
            with anyio.fail_after(WAIT):
                await agent.started.wait()
            await runtime.send(identity, Cancel(run_id="r1", step="s1", attempt=1))
            with anyio.fail_after(WAIT):
                await agent.cancelled.wait()
            agent.release.set()
            await runtime.send(identity, assign("s2"))
            # The next message is s2's result: nothing was sent for s1.
            _, result = await runtime.receive()
        assert isinstance(result, StepResult)
        assert (result.step, result.outputs) == ("s2", {"released": "s2"})

    async def test_a_task_past_its_timeout_is_cancelled_locally(self, runtime: FakeRuntime) -> None:
        """A task's timeout cancels its handler; the runtime, which timed it too, hears nothing."""
        agent = BlockingAgent()
        async with serving(agent, runtime, concurrency=1):
            identity, _ = await runtime.accept()
            await runtime.send(identity, assign("s1", timeout_ms=20))
            with anyio.fail_after(WAIT):
                await agent.cancelled.wait()
            agent.release.set()
            await runtime.send(identity, assign("s2"))
            _, result = await runtime.receive()
        assert isinstance(result, StepResult)
        assert result.step == "s2"

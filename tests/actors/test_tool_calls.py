"""Tool calls from an agent: keys, replies, typed errors, and a host at the other end."""

from __future__ import annotations

from typing import Any

import pytest

from actors import Agent, Context, Result, Task, ToolFailed, tool_specs
from protocols import Assign, Register, StepResult, ToolCall, ToolReply
from tests.actors.conftest import FakeRuntime, serving
from tests.actors.sample import CallingAgent, MathHost

pytestmark = pytest.mark.anyio

SPECS = tool_specs(MathHost)


def calling(*calls: tuple[str, dict[str, Any]], attempt: int = 1, tools: Any = None) -> Assign:
    return Assign(
        run_id="r1",
        step="s1",
        attempt=attempt,
        inputs={"calls": [{"tool": name, "args": args} for name, args in calls]},
        tools=["add", "mul"] if tools is None else tools,
    )


class TestCallRoundTrip:
    async def test_a_call_goes_out_and_its_reply_comes_back(self, runtime: FakeRuntime) -> None:
        """`ctx.tools.call` sends a `ToolCall` and returns the result of the matching reply."""
        async with serving(CallingAgent(), runtime) as worker:
            identity, _ = await runtime.accept(tool_specs=SPECS)
            await runtime.send(identity, calling(("add", {"a": 1, "b": 2}), ("mul", {"x": 2})))
            _, first = await runtime.expect(ToolCall)
            await runtime.send(identity, ToolReply(call_id=first.call_id, ok=True, result=3))
            _, second = await runtime.expect(ToolCall)
            await runtime.send(identity, ToolReply(call_id=second.call_id, ok=True, result=4.0))
            _, result = await runtime.expect(StepResult)
        assert (first.run_id, first.step, first.attempt) == ("r1", "s1", 1)
        assert (first.tool, first.args) == ("add", {"a": 1, "b": 2})
        assert (second.tool, second.args) == ("mul", {"x": 2})
        assert first.call_id != second.call_id
        assert result.outputs == {"results": [3, 4.0], "specs": ["add", "mul"]}
        assert worker.statistics().tool_calls == 2

    @pytest.mark.parametrize("attempt", [1, 3])
    async def test_idempotency_keys_count_calls_and_ignore_the_attempt(
        self, runtime: FakeRuntime, attempt: int
    ) -> None:
        """The n-th call of a task is keyed `n`, whatever the attempt: the runtime scopes it."""
        async with serving(CallingAgent(), runtime):
            identity, _ = await runtime.accept()
            message = calling(("add", {"a": 1}), ("add", {"a": 2}), attempt=attempt)
            await runtime.send(identity, message)
            keys = []
            for _ in range(2):
                _, call = await runtime.expect(ToolCall)
                keys.append(call.idempotency_key)
                await runtime.send(identity, ToolReply(call_id=call.call_id, ok=True))
            await runtime.expect(StepResult)
        assert keys == ["0", "1"]

    @pytest.mark.parametrize(
        ("code", "error"),
        [
            ("tool_refused", "ToolRefused"),
            ("unknown_tool", "ToolRefused"),
            ("tool_unavailable", "ToolRefused"),
            ("tool_failed", "ToolFailed"),
            ("invalid_input", "ToolFailed"),
        ],
    )
    async def test_a_refusing_reply_raises_a_typed_error(
        self, runtime: FakeRuntime, code: Any, error: str
    ) -> None:
        """Refusals raise `ToolRefused`; failures of the tool itself raise `ToolFailed`."""
        async with serving(CallingAgent(), runtime):
            identity, _ = await runtime.accept()
            await runtime.send(identity, calling(("boom", {})))
            _, call = await runtime.expect(ToolCall)
            reply = ToolReply(call_id=call.call_id, ok=False, error=code, message="no")
            await runtime.send(identity, reply)
            _, result = await runtime.expect(StepResult)
        assert result.outputs["results"] == [{"error": error, "code": code, "tool": "boom"}]

    async def test_arguments_that_cannot_travel_fail_before_sending(
        self, runtime: FakeRuntime
    ) -> None:
        """Arguments that are no wire values raise `ToolFailed(invalid_input)` locally."""
        seen: list[ToolFailed] = []

        class Careless(Agent):
            role = "careless"

            async def handle(self, task: Task, ctx: Context) -> Result:
                try:
                    await ctx.tools.call("add", a=object())
                except ToolFailed as exc:
                    seen.append(exc)
                return Result(outputs={})

        async with serving(Careless(), runtime):
            identity, _ = await runtime.accept()
            await runtime.send(identity, calling())
            _, result = await runtime.receive()
        assert isinstance(result, StepResult)
        assert [(e.tool, e.code) for e in seen] == [("add", "invalid_input")]


class TestThroughAToolHost:
    async def test_a_call_is_served_by_a_tool_host_behind_the_runtime(
        self, runtime: FakeRuntime
    ) -> None:
        """An agent's call, relayed by the runtime, is validated and run by the host."""
        async with serving(MathHost(), runtime), serving(CallingAgent(), runtime):
            first, register = await runtime.accept(tool_specs=SPECS)
            second, _ = await runtime.accept(tool_specs=SPECS)
            host, agent = (first, second) if register.kind == "tool_host" else (second, first)
            await runtime.send(agent, calling(("add", {"a": 2, "b": 5}), ("mul", {"x": "two"})))
            for _ in range(2):
                _, call = await runtime.expect(ToolCall)
                await runtime.send(host, call)
                _, reply = await runtime.expect(ToolReply)
                await runtime.send(agent, reply)
            _, result = await runtime.expect(StepResult)
        assert result.outputs["results"] == [
            7,
            {"error": "ToolFailed", "code": "invalid_input", "tool": "mul"},
        ]

    async def test_a_host_answers_the_call_id_it_was_given(self, runtime: FakeRuntime) -> None:
        """A tool host replies with the `call_id` of the call it served."""
        async with serving(MathHost(), runtime):
            host, _ = await runtime.accept()
            call = ToolCall(call_id=41, run_id="r", step="s", attempt=1, tool="add", args={"a": 1})
            await runtime.send(host, call)
            _, reply = await runtime.expect(ToolReply)
        assert reply == ToolReply(call_id=41, ok=True, result=1)

    async def test_an_agent_refuses_to_serve_tools(self, runtime: FakeRuntime) -> None:
        """A `ToolCall` sent to an agent is answered `unknown_tool`, not left hanging."""
        async with serving(CallingAgent(), runtime):
            agent, _ = await runtime.accept()
            call = ToolCall(call_id=5, run_id="r", step="s", attempt=1, tool="add")
            await runtime.send(agent, call)
            _, reply = await runtime.expect(ToolReply)
        assert (reply.call_id, reply.ok, reply.error) == (5, False, "unknown_tool")


class TestCallsAcrossReconnects:
    async def test_an_unanswered_call_is_sent_again_on_the_next_connection(
        self, runtime: FakeRuntime
    ) -> None:
        """A call whose connection was lost is resent, same id and key, once re-registered."""
        async with serving(CallingAgent(), runtime):
            old, _ = await runtime.accept(heartbeat_ms=20)
            await runtime.send(old, calling(("add", {"a": 1})))
            _, call = await runtime.expect(ToolCall)
            new, _ = await runtime.expect(Register)
            await runtime.welcome(new)
            again_from, again = await runtime.expect(ToolCall)
            assert (again_from, again) == (new, call)
            await runtime.send(new, ToolReply(call_id=call.call_id, ok=True, result=1))
            result_from, result = await runtime.expect(StepResult)
        assert result_from == new
        assert result.outputs["results"] == [1]

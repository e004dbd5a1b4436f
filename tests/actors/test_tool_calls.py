"""Tool calls from an agent: keys, replies, typed errors, and a host at the other end."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import structlog

from actors import Agent, Context, Result, Task, ToolFailed, tool_specs
from protocols import Assign, Cancel, Register, StepFailure, StepResult, ToolCall, ToolReply
from tests.actors.conftest import WAIT, FakeRuntime, serving
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


class Overreaching(Agent):
    """Calls `wire`, which no step allows, and lets a refusal end the task; answers `probe`."""

    role = "overreaching"
    tools = ("wire",)

    def __init__(self) -> None:
        self.ended = anyio.Event()

    async def handle(self, task: Task, ctx: Context) -> Result:
        if task.step == "probe":
            return Result(outputs={"probed": True})
        try:
            await ctx.tools.call("wire", amount=1)
        finally:
            self.ended.set()
        return Result(outputs={})


async def refuse_a_call(runtime: FakeRuntime, agent: Overreaching, code: Any) -> Any:
    """Assign a task and refuse its call with `code` as the runtime does (with `tool_refused`,
    the refusal, then the cancellation); once the handler has ended, assign `probe`. The
    next message tells whether anything was sent for the refused task: it would come first."""
    identity, _ = await runtime.accept()
    await runtime.send(identity, calling())
    _, call = await runtime.expect(ToolCall)
    refusal = "tool 'wire' is not in the step of step 's1'"
    await runtime.send(
        identity, ToolReply(call_id=call.call_id, ok=False, error=code, message=refusal)
    )
    if code == "tool_refused":
        await runtime.send(identity, Cancel(run_id="r1", step="s1", attempt=1, reason="refused"))
    with anyio.fail_after(WAIT):
        await agent.ended.wait()
    await runtime.send(identity, Assign(run_id="r1", step="probe", attempt=1, inputs={}))
    _, message = await runtime.receive()
    return message


class TestRefusedCalls:
    async def test_a_refusal_that_ends_the_task_is_one_log_line_and_sends_nothing(
        self, runtime: FakeRuntime
    ) -> None:
        """A handler ended by a `tool_refused` refusal sends no report (the runtime failed the
        attempt as it refused) and logs the refusal once, with no traceback."""
        agent = Overreaching()
        with structlog.testing.capture_logs() as logs:
            async with serving(agent, runtime, concurrency=1) as worker:
                after = await refuse_a_call(runtime, agent, "tool_refused")
                assert worker.statistics().tasks_failed == 1
        assert isinstance(after, StepResult)
        assert after.step == "probe"
        about = [entry for entry in logs if entry.get("step") == "s1"]
        assert [(e["event"], e["log_level"]) for e in about] == [("actor.tool_refused", "warning")]
        assert (about[0]["tool"], about[0]["message"]) == (
            "wire",
            "tool 'wire' is not in the step of step 's1'",
        )
        assert not [entry for entry in logs if "exc_info" in entry]

    async def test_a_refusal_that_leaves_the_attempt_running_is_reported(
        self, runtime: FakeRuntime
    ) -> None:
        """A refusal the runtime did not fail the attempt for (no host serves the tool) ends
        the handler in a failure the agent reports, as any error."""
        agent = Overreaching()
        async with serving(agent, runtime, concurrency=1):
            failure = await refuse_a_call(runtime, agent, "tool_unavailable")
        assert isinstance(failure, StepFailure)
        assert (failure.step, failure.reason) == ("s1", "error")
        assert failure.message == (
            "ToolRefused: tool 'wire' refused (tool_unavailable): "
            "tool 'wire' is not in the step of step 's1'"
        )


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

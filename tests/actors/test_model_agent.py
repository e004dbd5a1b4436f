"""`ModelAgent` served against a fake runtime, its model a scripted server on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest
import structlog

from actors import Context, Models, Task, Tools, tool_specs
from actors.models import ModelAgent, ModelConfig, request_digest
from protocols import (
    Assign,
    Bye,
    ModelCall,
    ModelReply,
    Register,
    StepFailure,
    StepResult,
    ToolCall,
    ToolReply,
    ToolSpec,
)
from runtime.testing.model_server import ModelServer
from tests.actors.conftest import WAIT, FakeRuntime, serving
from tests.actors.sample import MathHost

pytestmark = pytest.mark.anyio

SPECS = tool_specs(MathHost)
OUTPUTS: dict[str, Any] = {"total": "int", "note": "str"}
GOOD = {"outputs": {"total": 5, "note": "added"}, "rationale": "2 + 3", "confidence": 0.9}


class Clerk(ModelAgent):
    role = "clerk"
    tools = ("add", "mul")
    instructions = "You do sums."


def clerk(server: ModelServer, **options: Any) -> Clerk:
    settings: dict[str, Any] = {"attempts": 2, "backoff": 0.001, "backoff_cap": 0.001}
    return Clerk(ModelConfig(url=server.url, model="m", **{**settings, **options}))


def assign(**fields: Any) -> Assign:
    defaults: dict[str, Any] = {
        "run_id": "r1",
        "step": "total",
        "attempt": 1,
        "inputs": {"a": 2, "b": 3},
        "flags": {"b": ["unverified"]},
        "tools": ["add", "mul", "boom"],
        "outputs": OUTPUTS,
        "tool_specs": SPECS,
    }
    return Assign(**{**defaults, **fields})


ToolAnswer = Callable[[ToolCall], ToolReply]


def add_numbers(call: ToolCall) -> ToolReply:
    args = call.args
    return ToolReply(call_id=call.call_id, ok=True, result=args["a"] + args.get("b", 0))


class Exchange:
    """What the fake runtime saw of one task: its model calls, tool calls and outcome."""

    def __init__(self) -> None:
        self.model_calls: list[ModelCall] = []
        self.tool_calls: list[ToolCall] = []
        self.outcome: StepResult | StepFailure | None = None


async def run(
    runtime: FakeRuntime,
    agent: ModelAgent,
    *assigns: Assign,
    answer: ToolAnswer = add_numbers,
) -> list[Exchange]:
    """Serve `agent`, send each task in turn and play the runtime until it ends."""
    exchanges = []
    async with serving(agent, runtime):
        identity, _ = await _accept(runtime)
        for message in assigns:
            exchange = Exchange()
            await runtime.send(identity, message)
            while exchange.outcome is None:
                _, got = await runtime.receive()
                match got:
                    case ModelCall():
                        exchange.model_calls.append(got)
                    case ToolCall():
                        exchange.tool_calls.append(got)
                        await runtime.send(identity, answer(got))
                    case StepResult() | StepFailure():
                        exchange.outcome = got
                    case _:
                        raise AssertionError(f"unexpected {got!r}")
            exchanges.append(exchange)
    return exchanges


async def _accept(runtime: FakeRuntime) -> tuple[bytes, Register]:
    """Welcome the next actor to register, past the farewell of one served before it."""
    while True:
        identity, message = await runtime.receive()
        if isinstance(message, Register):
            await runtime.welcome(identity)
            return identity, message
        assert isinstance(message, Bye), f"expected Register, got {message!r}"


def sent_messages(server: ModelServer, index: int) -> list[dict[str, Any]]:
    body = server.requests[index].body
    assert isinstance(body, dict)
    messages = body["messages"]
    assert isinstance(messages, list)
    return messages


class TestConversation:
    async def test_a_tool_call_then_a_final_answer(self, runtime: FakeRuntime) -> None:
        """The model's tool call goes through the runtime; its answer becomes the result."""
        script = [
            {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}, "id": "c1"}]},
            {"final": {**GOOD, "caveats": ["b is unverified"]}},
        ]
        with ModelServer(script) as server:
            (exchange,) = await run(runtime, clerk(server), assign())
        (call,) = exchange.tool_calls
        assert (call.tool, call.args, call.idempotency_key) == ("add", {"a": 2, "b": 3}, "0")
        assert exchange.outcome == StepResult(
            run_id="r1",
            step="total",
            attempt=1,
            outputs={"total": 5, "note": "added"},
            rationale="2 + 3",
            confidence=0.9,
            caveats=["b is unverified"],
        )
        _, assistant, tool = sent_messages(server, 1)[1:]
        assert assistant == {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
                }
            ],
        }
        assert tool == {"role": "tool", "tool_call_id": "c1", "content": "5"}

    async def test_the_model_is_offered_exactly_the_steps_allowed_tools(
        self, runtime: FakeRuntime
    ) -> None:
        """Tools offered: the step's within the agent's allowlist, as function specs."""
        with ModelServer([{"final": GOOD}]) as server:
            await run(runtime, clerk(server), assign())
        body = server.requests[0].body
        offered = {spec.name: spec for spec in SPECS}
        assert body["tools"] == [
            {
                "type": "function",
                "function": {
                    "name": name,
                    "description": offered[name].description,
                    "parameters": offered[name].parameters,
                },
            }
            for name in ("add", "mul")
        ]
        assert body["tool_choice"] == "auto"
        assert body["model"] == "m"

    async def test_no_tools_are_offered_to_a_step_without_any(self, runtime: FakeRuntime) -> None:
        """A step with no tools sends neither `tools` nor `tool_choice`."""
        with ModelServer([{"final": GOOD}]) as server:
            await run(runtime, clerk(server), assign(tools=[]))
        assert "tools" not in server.requests[0].body
        assert "tool_choice" not in server.requests[0].body

    async def test_the_prompt_names_the_step_its_inputs_flags_and_outputs(
        self, runtime: FakeRuntime
    ) -> None:
        """The system prompt is the instructions and the answer format; the user message
        carries the step as JSON."""
        with ModelServer([{"final": GOOD}]) as server:
            await run(runtime, clerk(server), assign())
        system, user = sent_messages(server, 0)
        assert system["role"] == "system"
        assert system["content"].startswith("You do sums.\n\nYou carry out one step")
        brief = json.loads(user["content"].split("\n", 1)[1])
        assert brief == {
            "step": "total",
            "inputs": {"a": 2, "b": 3},
            "flags": {"b": ["unverified"]},
            "outputs": OUTPUTS,
        }


class TestResponseFormat:
    @pytest.mark.parametrize(
        ("kind", "wrapped"),
        [
            ("json_schema", lambda schema: {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": False},
            }),
            ("json_object_schema", lambda schema: {"type": "json_object", "schema": schema}),
            ("json_object", lambda schema: {"type": "json_object"}),
        ],
    )  # fmt: skip
    async def test_the_answer_schema_is_sent_as_the_server_takes_it(
        self, runtime: FakeRuntime, kind: str, wrapped: Callable[[Any], Any]
    ) -> None:
        """With a response format configured, every request asks for the final answer's
        shape, its outputs those the step declares with their JSON types."""
        with ModelServer([{"final": GOOD}]) as server:
            await run(runtime, clerk(server, response_format=kind), assign())
        schema = {
            "type": "object",
            "properties": {
                "outputs": {
                    "type": "object",
                    "properties": {"total": {"type": "integer"}, "note": {"type": "string"}},
                    "required": ["total", "note"],
                    "additionalProperties": False,
                },
                "rationale": {"type": "string"},
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                "caveats": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["outputs", "rationale", "confidence", "caveats"],
            "additionalProperties": False,
        }
        assert server.requests[0].body["response_format"] == wrapped(schema)

    async def test_none_is_sent_unless_configured(self, runtime: FakeRuntime) -> None:
        """By default the prompt alone asks for the JSON: not every server takes the field."""
        with ModelServer([{"final": GOOD}]) as server:
            await run(runtime, clerk(server), assign())
        assert "response_format" not in server.requests[0].body


class TestToolTrouble:
    async def test_malformed_arguments_go_back_to_the_model(self, runtime: FakeRuntime) -> None:
        """Arguments that are not JSON reach no tool: the model reads why, and goes on."""
        script = [
            {"tool_calls": [{"name": "add", "arguments": "{a: 2", "id": "c1"}]},
            {"final": GOOD},
        ]
        with ModelServer(script) as server:
            (exchange,) = await run(runtime, clerk(server), assign())
        assert exchange.tool_calls == []
        assert isinstance(exchange.outcome, StepResult)
        _, assistant, tool = sent_messages(server, 1)[1:]
        # Carried on as an empty object: llama.cpp parses the arguments it is sent.
        assert assistant["tool_calls"][0]["function"]["arguments"] == "{}"
        assert tool["content"] == (
            "error: the arguments to 'add' are not valid JSON "
            "(Expecting property name enclosed in double quotes: line 1 column 2 (char 1)): {a: 2"
        )

    async def test_a_refused_tool_goes_back_to_the_model(self, runtime: FakeRuntime) -> None:
        """A call the runtime refuses is asked of the runtime, and its refusal is the answer."""

        def refuse(call: ToolCall) -> ToolReply:
            text = "'rm' is not in the step's tools"
            return ToolReply(call_id=call.call_id, ok=False, error="tool_refused", message=text)

        script = [{"tool_calls": [{"name": "rm", "arguments": {}, "id": "c1"}]}, {"final": GOOD}]
        with ModelServer(script) as server:
            (exchange,) = await run(runtime, clerk(server), assign(), answer=refuse)
        assert [call.tool for call in exchange.tool_calls] == ["rm"]
        assert isinstance(exchange.outcome, StepResult)
        tool = sent_messages(server, 1)[-1]
        assert tool["content"] == (
            "error: tool 'rm' refused (tool_refused): 'rm' is not in the step's tools"
        )

    async def test_a_failing_tool_goes_back_to_the_model(self, runtime: FakeRuntime) -> None:
        """A tool that failed at its host is the model's to hear, not the step's end."""

        def fail(call: ToolCall) -> ToolReply:
            return ToolReply(call_id=call.call_id, ok=False, error="tool_failed", message="broke")

        script = [{"tool_calls": [{"name": "add", "arguments": {"a": 1}}]}, {"final": GOOD}]
        with ModelServer(script) as server:
            (exchange,) = await run(runtime, clerk(server), assign(), answer=fail)
        assert isinstance(exchange.outcome, StepResult)
        tool = sent_messages(server, 1)[-1]
        assert tool == {
            "role": "tool",
            "tool_call_id": "call_0",
            "content": "error: tool 'add' failed (tool_failed): broke",
        }


class TestRepairs:
    async def test_a_wrong_answer_is_repaired(self, runtime: FakeRuntime) -> None:
        """The model hears exactly what was wrong, and its corrected answer is the result."""
        wrong = {"outputs": {"total": True, "extra": 1}, "confidence": 0.5}
        with ModelServer([{"final": wrong}, {"final": GOOD}]) as server:
            (exchange,) = await run(runtime, clerk(server), assign())
        assert isinstance(exchange.outcome, StepResult)
        assert exchange.outcome.outputs == {"total": 5, "note": "added"}
        repair = sent_messages(server, 1)[-1]
        assert repair == {
            "role": "user",
            "content": "Your answer cannot be recorded:\n"
            "- output 'total' must be int, not a boolean (true)\n"
            "- output 'note' (str) is missing\n"
            "- output 'extra' is not declared; the outputs are 'total', 'note'\n"
            "Reply with the whole JSON object again.",
        }

    async def test_repairs_run_out_into_invalid_output(self, runtime: FakeRuntime) -> None:
        """After `repair_turns` corrections the step fails as `invalid_output`, saying why."""
        wrong = {"final": {"outputs": {"total": 5.5, "note": "x"}, "confidence": 2}}
        with ModelServer([wrong] * 3) as server:
            (exchange,) = await run(runtime, clerk(server), assign())
        assert len(server.requests) == 3
        assert exchange.outcome == StepFailure(
            run_id="r1",
            step="total",
            attempt=1,
            reason="invalid_output",
            message="after 2 repair turns: output 'total' must be int, not a number with a "
            'fraction (5.5); "confidence" must be a number from 0 to 1, not an integer (2)',
        )

    async def test_a_float_output_takes_an_integer(self, runtime: FakeRuntime) -> None:
        """An integer fits a float output, and is recorded as a float."""
        answer = {"outputs": {"share": 1}, "confidence": 1}
        with ModelServer([{"final": answer}]) as server:
            (exchange,) = await run(runtime, clerk(server), assign(outputs={"share": "float"}))
        assert isinstance(exchange.outcome, StepResult)
        assert exchange.outcome.outputs == {"share": 1.0}
        assert isinstance(exchange.outcome.outputs["share"], float)


class TestReports:
    async def test_each_model_call_is_reported_with_its_tokens(self, runtime: FakeRuntime) -> None:
        """One `ModelCall` per call, numbered from 0, before the result, with what it cost."""
        script = [
            {
                "tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}, "id": "c1"}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 9},
            },
            {"final": GOOD, "usage": {"prompt_tokens": 55, "completion_tokens": 21}},
        ]
        with ModelServer(script) as server:
            (exchange,) = await run(runtime, clerk(server), assign())
        first, second = exchange.model_calls
        assert [(c.index, c.tokens_in, c.tokens_out) for c in exchange.model_calls] == [
            (0, 40, 9),
            (1, 55, 21),
        ]
        assert [c.finish_reason for c in exchange.model_calls] == ["tool_calls", "stop"]
        assert (first.run_id, first.step, first.attempt, first.model) == (
            "r1",
            "total",
            1,
            "scripted",
        )
        assert first.request_digest == request_digest(server.requests[0].body)
        assert second.request_digest == request_digest(server.requests[1].body)
        assert second.reply == {"role": "assistant", "content": json.dumps(GOOD)}
        assert first.latency_ms > 0


class TestReplay:
    async def test_journaled_replies_are_taken_instead_of_calling(
        self, runtime: FakeRuntime
    ) -> None:
        """A task sent again with its journaled calls makes no request and reports none."""
        script = [
            {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},
            {"final": GOOD},
        ]
        with ModelServer(script) as recording:
            (first,) = await run(runtime, clerk(recording), assign())
        replies = [_journaled(call) for call in first.model_calls]
        # An empty script: any request would be answered 410 and fail the step.
        with ModelServer([]) as server:
            (again,) = await run(runtime, clerk(server), assign(model_replies=replies))
        assert server.requests == []
        assert again.model_calls == []
        # The tool call is made again, under the same key: the host's ledger answers it.
        assert [c.idempotency_key for c in again.tool_calls] == ["0"]
        assert again.outcome == first.outcome

    async def test_only_the_journaled_calls_are_skipped(self, runtime: FakeRuntime) -> None:
        """With the first call journaled, the second is made and reported as index 1."""
        tool_call = {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}
        with ModelServer([tool_call, {"final": GOOD}]) as recording:
            (first,) = await run(runtime, clerk(recording), assign())
        replies = [_journaled(first.model_calls[0])]
        with ModelServer([{"final": GOOD}]) as server:
            (again,) = await run(runtime, clerk(server), assign(model_replies=replies))
        assert len(server.requests) == 1
        assert [c.index for c in again.model_calls] == [1]
        assert again.outcome == first.outcome

    async def test_a_different_request_is_not_replayed(self, runtime: FakeRuntime) -> None:
        """A journaled reply to another request (the inputs changed) is not taken."""
        stale = ModelReply(index=0, request_digest="0" * 32, reply={"content": "stale"})
        with ModelServer([{"final": GOOD}]) as server:
            (exchange,) = await run(runtime, clerk(server), assign(model_replies=[stale]))
        assert len(server.requests) == 1
        assert [c.index for c in exchange.model_calls] == [0]
        assert isinstance(exchange.outcome, StepResult)


def _journaled(call: ModelCall) -> ModelReply:
    return ModelReply(index=call.index, request_digest=call.request_digest, reply=call.reply)


class TestFailures:
    async def test_an_unavailable_model_fails_the_step_with_a_clear_message(
        self, runtime: FakeRuntime
    ) -> None:
        """The step fails as `error`, saying which model failed and how."""
        with ModelServer([{"status": 503, "error": "overloaded"}] * 2) as server:
            (exchange,) = await run(runtime, clerk(server), assign())
        assert exchange.outcome == StepFailure(
            run_id="r1",
            step="total",
            attempt=1,
            reason="error",
            message=f"ModelUnavailable: model at {server.url} unavailable after 2 attempts: "
            'HTTP 503: {"error": {"message": "overloaded"}}',
        )

    async def test_turns_are_bounded(self, runtime: FakeRuntime) -> None:
        """A model that only ever calls tools is stopped after `max_turns` calls."""

        class Short(Clerk):
            max_turns = 2

        call = {"tool_calls": [{"name": "add", "arguments": {"a": 1}}]}
        with ModelServer([call, call]) as server:
            agent = Short(ModelConfig(url=server.url, model="m"))
            (exchange,) = await run(runtime, agent, assign())
        assert isinstance(exchange.outcome, StepFailure)
        assert exchange.outcome.message == (
            "ModelTurnsExhausted: the model gave no final answer within 2 turns"
        )


class _Recorder:
    """Hears model calls and answers tool calls, standing in for the worker."""

    def __init__(self) -> None:
        self.reported: list[ModelCall] = []

    def report_model_call(self, call: ModelCall) -> None:
        self.reported.append(call)

    async def call_tool(self, task: Task, tool: str, args: Any, key: str) -> ToolReply:
        return ToolReply(call_id=0, ok=True, result=sum(args.values()))

    def tool_specs(self) -> dict[str, ToolSpec]:
        return {}


class TestWithoutAWorker:
    async def test_the_handler_runs_on_a_bare_context(self) -> None:
        """`handle` needs only a `Context`: tools and model reports through test doubles."""
        recorder = _Recorder()
        task = Task.from_assign(assign())
        ctx = Context(task, Tools(task, recorder), structlog.get_logger(), Models(task, recorder))
        script = [{"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}]
        with ModelServer([*script, {"final": GOOD}]) as server:
            agent = clerk(server)
            await agent.setup()
            try:
                with anyio.fail_after(WAIT):
                    result = await agent.handle(task, ctx)
            finally:
                await agent.teardown()
        assert dict(result.outputs) == {"total": 5, "note": "added"}
        assert [c.index for c in recorder.reported] == [0, 1]

    async def test_a_handler_before_setup_says_so(self) -> None:
        """Without `setup`, the agent has no client and says which method to run."""
        task = Task.from_assign(assign())
        recorder = _Recorder()
        ctx = Context(task, Tools(task, recorder), structlog.get_logger())
        with pytest.raises(RuntimeError, match=r"Clerk.setup\(\) has not run"):
            await Clerk().handle(task, ctx)

    def test_an_oversize_reply_is_reported_without_it(self) -> None:
        """A reply too large for the wire is left out; the call is reported all the same."""
        recorder = _Recorder()
        models = Models(Task.from_assign(assign()), recorder)
        kept = models.called(index=0, model="m", request_digest="d", reply="x" * 70_000)
        assert kept is False
        (call,) = recorder.reported
        assert call.reply is None
        assert (call.index, call.request_digest) == (0, "d")

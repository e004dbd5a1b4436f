"""`ModelAgent`: an agent whose handler is a model, its tools called through the runtime.

The model is told the step, its inputs and their flags, and the outputs the step
declares with their types; it may call the step's tools, and ends with one JSON
object holding the outputs, a rationale, a confidence and caveats. Tool calls
go through `ctx.tools`, so the runtime enforces the allowlist and records each
one; what a tool refused or failed goes back to the model as the tool's answer.
A final answer that does not fit the declared outputs is sent back with what
is wrong, a bounded number of times, and then fails the step as `invalid_output`.

Each model call is reported to the runtime, which journals it with its tokens;
a task sent again (its agent was lost) takes the journaled replies instead of
calling the model again for the same requests.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import msgspec

from actors._agent import Agent
from actors._context import Context
from actors._errors import InvalidOutput, ToolFailed, ToolRefused
from actors._task import Result, Task
from actors.models._answers import Answer, answer_schema, read_answer
from actors.models._client import ModelClient
from actors.models._config import ModelConfig
from actors.models._errors import ModelTurnsExhausted
from protocols import OutputType, ToolSpec, clip

ANSWER_FORMAT = """\
You carry out one step of a workflow. Call the tools offered to you when they help.
When you are done, reply with one JSON object and nothing else:
{"outputs": {...}, "rationale": "...", "confidence": 0.8, "caveats": ["..."]}
- "outputs" holds exactly the step's declared outputs, each of its declared type
  (str, int, float, bool, list, dict; any is any JSON value);
- "rationale" says briefly how you reached them;
- "confidence" is how sure you are, from 0 to 1;
- "caveats" lists what a reader should check before relying on the outputs (may be empty)."""

_MODEL_NAME_LIMIT = 256
_FINISH_REASON_LIMIT = 64
_TOKENS_LIMIT = 2**40


def request_digest(body: Mapping[str, Any]) -> str:
    """The name of a request: a BLAKE2b of its canonical JSON (keys sorted, no spaces)."""
    return hashlib.blake2b(msgspec.json.encode(body, order="sorted"), digest_size=16).hexdigest()


def tool_schema(spec: ToolSpec) -> dict[str, Any]:
    """A tool spec as a chat-completions request offers it."""
    parameters = spec.parameters
    if not isinstance(parameters, dict):
        parameters = {"type": "object", "properties": {}}
    return {
        "type": "function",
        "function": {"name": spec.name, "description": spec.description, "parameters": parameters},
    }


def response_format(kind: str, declared: Mapping[str, OutputType]) -> dict[str, Any]:
    """The request's `response_format` of kind `kind` (see `ModelConfig.response_format`) for a
    final answer with the declared outputs."""
    if kind == "json_schema":
        schema = {"name": "answer", "schema": answer_schema(declared), "strict": False}
        return {"type": "json_schema", "json_schema": schema}
    if kind == "json_object_schema":
        return {"type": "json_object", "schema": answer_schema(declared)}
    return {"type": "json_object"}


class ModelAgent(Agent):
    """An agent backed by an OpenAI-compatible model. Subclass, set `role`, `tools` (the
    allowlist) and `instructions` (the system prompt).

    The endpoint comes from `BATON_MODEL_URL`, `BATON_MODEL` and `BATON_MODEL_KEY`, over
    the class's `model_url` and `model`; or from the `config` given to the constructor.
    """

    instructions: ClassVar[str] = ""
    """What the model is asked to be and do, before the answer format it is told."""

    model: ClassVar[str] = ""
    """The model to ask for, unless `BATON_MODEL` names another."""

    model_url: ClassVar[str] = ""
    """The API's base URL (`https://host/v1`), unless `BATON_MODEL_URL` names another."""

    model_timeout: ClassVar[float] = 60.0
    """Seconds one model request may take before it counts as failed and is retried."""

    model_attempts: ClassVar[int] = 4
    """Requests sent for one model call at most, the first included."""

    model_concurrency: ClassVar[int] = 4
    """Model requests in flight at once in this agent's process, over all its tasks."""

    model_response_format: ClassVar[str] = ""
    """How the answer's JSON shape is asked of the server (`ModelConfig.response_format`),
    unless `BATON_MODEL_RESPONSE_FORMAT` says otherwise; "" leaves it to the prompt."""

    max_turns: ClassVar[int] = 12
    """Model calls one task may make, repairs included."""

    repair_turns: ClassVar[int] = 2
    """Times a final answer that does not fit the declared outputs is sent back."""

    max_tool_calls: ClassVar[int] = 32
    """Tool calls one task may make; the model is told when it has none left."""

    def __init__(
        self,
        config: ModelConfig | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`config` overrides the environment and the class attributes; `transport` is
        httpx's, for tests and proxies."""
        self._config = config
        self._transport = transport
        self._client: ModelClient | None = None

    async def setup(self) -> None:
        config = self._config
        if config is None:
            config = ModelConfig.from_env(
                os.environ,
                url=self.model_url,
                model=self.model,
                timeout=self.model_timeout,
                attempts=self.model_attempts,
                concurrency=self.model_concurrency,
                response_format=self.model_response_format,
            )
        self._client = ModelClient(config, transport=self._transport)

    async def teardown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    @property
    def client(self) -> ModelClient:
        """The client of this agent's model, from `setup` to `teardown`."""
        if self._client is None:
            raise RuntimeError(f"{type(self).__qualname__}.setup() has not run")
        return self._client

    def prompt(self, task: Task) -> list[dict[str, Any]]:
        """The conversation a task starts with; override to say more or say it otherwise."""
        system = f"{self.instructions.strip()}\n\n{ANSWER_FORMAT}".strip()
        brief: dict[str, Any] = {"step": task.step, "inputs": dict(task.inputs)}
        flags = {key: caveats for key, caveats in task.flags.items() if caveats}
        if flags:
            brief["flags"] = flags
        brief["outputs"] = dict(task.outputs)
        user = (
            "The step, its inputs, the caveats flagged on some of them, and the outputs "
            "to produce with their types:\n"
            + json.dumps(brief, ensure_ascii=False, sort_keys=True, indent=1)
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def offered(self, ctx: Context) -> list[ToolSpec]:
        """The tools the model may call: the step's, within this agent's allowlist."""
        allowed = set(self.tools)
        return [spec for spec in ctx.tools.specs if spec.name in allowed]

    async def handle(self, task: Task, ctx: Context) -> Result:
        """Converse until the model gives a final answer that fits the step's outputs."""
        client = self.client
        messages = self.prompt(task)
        tools = [tool_schema(spec) for spec in self.offered(ctx)]
        budget = _Budget(self.max_tool_calls)
        repairs = 0
        for index in range(self.max_turns):
            body: dict[str, Any] = {"model": client.config.model, "messages": messages}
            if tools:
                body["tools"] = tools
                body["tool_choice"] = "auto"
            if client.config.temperature is not None:
                body["temperature"] = client.config.temperature
            if client.config.response_format:
                body["response_format"] = response_format(
                    client.config.response_format, task.outputs
                )
            message = await self._call(ctx, body, index)
            calls = message.get("tool_calls")
            content = message.get("content")
            if isinstance(calls, list) and calls:
                calls = [_normalized(call, index, n) for n, call in enumerate(calls)]
                # A new list per turn: the body already sent keeps the messages it had.
                # Never null: a llama.cpp server answers a null content with HTTP 500.
                text = content if isinstance(content, str) else ""
                messages = [
                    *messages,
                    {
                        "role": "assistant",
                        "content": text,
                        "tool_calls": [_carried(call) for call in calls],
                    },
                ]
                for call in calls:
                    answer = await _run_tool(ctx, call["function"], budget)
                    messages.append({"role": "tool", "tool_call_id": call["id"], "content": answer})
                continue
            found = read_answer(content, task.outputs)
            if isinstance(found, Answer):
                return Result(
                    outputs=found.outputs,
                    rationale=found.rationale,
                    confidence=found.confidence,
                    caveats=found.caveats,
                )
            if repairs >= self.repair_turns:
                noun = "turn" if repairs == 1 else "turns"
                raise InvalidOutput(f"after {repairs} repair {noun}: " + "; ".join(found))
            repairs += 1
            ctx.log.info("model.repair", index=index, problems=found)
            repair = "Your answer cannot be recorded:\n" + "\n".join(f"- {p}" for p in found)
            messages = [
                *messages,
                {"role": "assistant", "content": content if isinstance(content, str) else ""},
                {"role": "user", "content": repair + "\nReply with the whole JSON object again."},
            ]
        raise ModelTurnsExhausted(self.max_turns)

    async def _call(self, ctx: Context, body: dict[str, Any], index: int) -> dict[str, Any]:
        """The reply message to call `index`: the journaled one if the runtime kept it for
        this very request, else the model's, reported to the runtime."""
        digest = request_digest(body)
        journaled = ctx.models.journaled(index, digest)
        if isinstance(journaled, dict):
            ctx.log.info("model.replayed", index=index, request_digest=digest)
            return journaled
        completion = await self.client.complete(body, log=ctx.log)
        kept = ctx.models.called(
            index=index,
            model=clip(completion.model, _MODEL_NAME_LIMIT),
            request_digest=digest,
            reply=completion.message,
            tokens_in=min(completion.tokens_in, _TOKENS_LIMIT),
            tokens_out=min(completion.tokens_out, _TOKENS_LIMIT),
            latency_ms=completion.latency_ms,
            finish_reason=clip(completion.finish_reason, _FINISH_REASON_LIMIT),
        )
        ctx.log.info(
            "model.called",
            index=index,
            model=completion.model,
            tokens_in=completion.tokens_in,
            tokens_out=completion.tokens_out,
            latency_ms=round(completion.latency_ms, 1),
            finish_reason=completion.finish_reason,
            reply_kept=kept,
        )
        return completion.message


class _Budget:
    """The tool calls a task has left."""

    __slots__ = ("left",)

    def __init__(self, calls: int) -> None:
        self.left = calls


def _normalized(call: object, index: int, n: int) -> dict[str, Any]:
    """A tool call as the conversation carries it on: an id (made up if the model gave
    none, so that the tool's answer can name it), a name, and arguments as a string."""
    given = call if isinstance(call, dict) else {}
    function = given.get("function")
    function = function if isinstance(function, dict) else {}
    name = function.get("name")
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = "" if arguments is None else json.dumps(arguments, ensure_ascii=False)
    call_id = given.get("id")
    return {
        "id": call_id if isinstance(call_id, str) and call_id else f"call_{index}_{n}",
        "type": "function",
        "function": {"name": name if isinstance(name, str) else "", "arguments": arguments},
    }


def _carried(call: dict[str, Any]) -> dict[str, Any]:
    """`call` as the next request repeats it: arguments that are no JSON object become
    `{}`, since some servers (llama.cpp) parse them and answer HTTP 500 when they cannot;
    the tool's answer quotes what the model sent."""
    arguments = call["function"]["arguments"]
    try:
        valid = isinstance(json.loads(arguments), dict)
    except ValueError:
        valid = False
    if valid:
        return call
    return {**call, "function": {**call["function"], "arguments": "{}"}}


async def _run_tool(ctx: Context, function: Mapping[str, str], budget: _Budget) -> str:
    """The tool's answer, as the model reads it: its result as JSON, or what went wrong.

    A refusal or failure is the model's to hear, not the step's end: it may call
    another tool or answer without. A refusal of a tool outside the allowlist has
    failed the attempt at the runtime already, which cancels this task.
    """
    name = function["name"]
    if not name:
        return "error: the tool call names no tool"
    text = function["arguments"].strip() or "{}"
    try:
        arguments = json.loads(text)
    except ValueError as exc:
        quoted = clip(text, 200)
        return f"error: the arguments to {name!r} are not valid JSON ({exc}): {quoted}"
    if not isinstance(arguments, dict):
        return f"error: the arguments to {name!r} must be a JSON object, not {clip(text, 200)}"
    if budget.left <= 0:
        return "error: no tool calls are left for this step; give your final answer"
    budget.left -= 1
    try:
        result = await ctx.tools.call(name, **arguments)
    except (ToolRefused, ToolFailed) as exc:
        return f"error: {exc}"
    return msgspec.json.encode(result).decode()

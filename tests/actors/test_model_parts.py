"""The parts of model agents: the public names, answers, the task's plumbing, the server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

import actors
import actors.models
from actors import Models, Task, Tools, tool_specs
from actors.models._answers import Answer, read_answer
from protocols import Assign, ModelCall, ModelReply, OutputType, ToolReply, ToolSpec
from tests.actors.conftest import WAIT
from tests.actors.sample import MathHost

SPECS = tool_specs(MathHost)
REPO = Path(__file__).resolve().parents[2]


class TestExports:
    def test_the_public_names_are_pinned(self) -> None:
        """`actors.models.__all__` is exactly the documented API."""
        assert sorted(actors.models.__all__) == [
            "Completion",
            "ModelAgent",
            "ModelClient",
            "ModelConfig",
            "ModelError",
            "ModelNotConfigured",
            "ModelRejected",
            "ModelReplyInvalid",
            "ModelTurnsExhausted",
            "ModelUnavailable",
            "answer_schema",
            "fits",
            "request_digest",
            "response_format",
            "retry_after",
            "tool_schema",
        ]

    def test_every_public_name_lives_in_a_private_module(self) -> None:
        for name in actors.models.__all__:
            assert getattr(actors.models, name).__module__.startswith("actors.models._"), name

    def test_errors_share_the_actors_root(self) -> None:
        """Every model error is a `ModelError`, and so an `ActorError`."""
        for name in actors.models.__all__:
            value = getattr(actors.models, name)
            if isinstance(value, type) and issubclass(value, Exception):
                assert issubclass(value, actors.models.ModelError), name
                assert issubclass(value, actors.ActorError), name

    def test_importing_actors_loads_no_http_client(self) -> None:
        """`import actors` works without the models extra: httpx loads with `actors.models`."""
        code = "import sys, actors; sys.exit('httpx' in sys.modules)"
        assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


class TestFits:
    @pytest.mark.parametrize(
        ("value", "kind", "expected"),
        [
            (3, "int", True),
            (True, "int", False),
            (3, "float", True),
            (3.5, "float", True),
            (False, "float", False),
            (True, "bool", True),
            (1, "bool", False),
            ("x", "str", True),
            (None, "str", False),
            ([1], "list", True),
            ({"a": 1}, "dict", True),
            ([], "dict", False),
            (None, "any", True),
        ],
    )
    def test_declared_types(self, value: Any, kind: OutputType, expected: bool) -> None:
        """A boolean is no number; an integer is a float; `any` takes anything."""
        assert actors.models.fits(value, kind) is expected


class TestReadAnswer:
    DECLARED: dict[str, OutputType] = {"n": "int"}

    def test_a_fenced_answer_is_read(self) -> None:
        """A Markdown code fence around the JSON is taken off."""
        content = '```json\n{"outputs": {"n": 1}, "confidence": 0.5, "caveats": ["c"]}\n```'
        assert read_answer(content, self.DECLARED) == Answer(
            outputs={"n": 1}, rationale="", confidence=0.5, caveats=["c"]
        )

    @pytest.mark.parametrize(
        ("content", "problems"),
        [
            (None, ["the reply has no content: answer with the JSON object"]),
            ("[1]", ["the reply is a list ([1]), not a JSON object"]),
            (
                '{"outputs": [], "confidence": 1}',
                ['"outputs" must be an object, not a list ([])'],
            ),
            (
                '{"outputs": {"n": 1}, "confidence": 1, "rationale": 2, "caveats": "c"}',
                [
                    '"rationale" must be a string, not an integer (2)',
                    '"caveats" must be a list of strings, not a string ("c")',
                ],
            ),
            ('{"outputs": {"n": 1}}', ['"confidence" must be a number from 0 to 1, not null']),
        ],
    )
    def test_every_problem_is_named(self, content: str | None, problems: list[str]) -> None:
        assert read_answer(content, self.DECLARED) == problems

    def test_without_declared_outputs_any_object_fits(self) -> None:
        """A step that declares no outputs takes whatever outputs object the model gives."""
        found = read_answer('{"outputs": {"x": [1]}, "confidence": 0}', {})
        assert isinstance(found, Answer)
        assert found.outputs == {"x": [1]}


class TestTaskPlumbing:
    def test_the_task_carries_outputs_specs_and_replies(self) -> None:
        """`Task.from_assign` keeps what a model is told and what was journaled."""
        reply = ModelReply(index=0, request_digest="d", reply={"content": "x"})
        assign = Assign(
            run_id="r",
            step="s",
            attempt=2,
            inputs={},
            outputs={"n": "int"},
            tool_specs=SPECS,
            model_replies=[reply],
        )
        task = Task.from_assign(assign)
        assert dict(task.outputs) == {"n": "int"}
        assert task.tool_specs == tuple(SPECS)
        assert task.model_replies == (reply,)

    def test_specs_are_the_steps_own_within_its_tools(self) -> None:
        """`ctx.tools.specs`: the specs sent with the task, of the step's tools, in its order."""
        assign = Assign(
            run_id="r", step="s", attempt=1, inputs={}, tools=["mul", "add"], tool_specs=SPECS
        )
        specs = Tools(Task.from_assign(assign), _NoCalls()).specs
        assert [spec.name for spec in specs] == ["mul", "add"]

    def test_journaled_replies_are_found_by_index_and_request(self) -> None:
        reply = ModelReply(index=1, request_digest="d", reply={"content": "x"})
        task = Task.from_assign(
            Assign(run_id="r", step="s", attempt=1, inputs={}, model_replies=[reply])
        )
        models = Models(task)
        assert models.journaled(1, "d") == {"content": "x"}
        assert models.journaled(1, "other") is None
        assert models.journaled(0, "d") is None

    def test_a_reported_call_names_its_task(self) -> None:
        heard: list[ModelCall] = []

        class Reporter:
            def report_model_call(self, call: ModelCall) -> None:
                heard.append(call)

        task = Task.from_assign(Assign(run_id="r", step="s", attempt=3, inputs={}))
        Models(task, Reporter()).called(
            index=0, model="m", request_digest="d", reply={"a": 1}, tokens_in=5, tokens_out=2
        )
        assert heard == [
            ModelCall(
                run_id="r",
                step="s",
                attempt=3,
                index=0,
                model="m",
                request_digest="d",
                reply={"a": 1},
                tokens_in=5,
                tokens_out=2,
            )
        ]


class _NoCalls:
    async def call_tool(self, task: Task, tool: str, args: Any, key: str) -> ToolReply:
        raise AssertionError("no call expected")

    def tool_specs(self) -> dict[str, ToolSpec]:
        return {}


class TestServerProcess:
    @pytest.mark.anyio
    async def test_the_server_runs_as_a_process(self, tmp_path: Path) -> None:
        """`python -m runtime.testing.model_server` says where it listens, answers from its
        script and records each request."""
        script = tmp_path / "script.json"
        script.write_text(json.dumps([{"final": {"ok": 1}}]))
        ready = tmp_path / "ready.json"
        record = tmp_path / "record.jsonl"
        command = [
            sys.executable,
            "-m",
            "runtime.testing.model_server",
            "--script",
            str(script),
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--record",
            str(record),
        ]
        process = await anyio.open_process(command, cwd=REPO, stdout=None, stderr=None)
        try:
            with anyio.fail_after(WAIT):
                while not ready.exists():
                    assert process.returncode is None, "the server exited"
                    await anyio.sleep(0.02)
            url = json.loads(ready.read_text())["url"]
            body = {"model": "m", "messages": []}
            async with httpx.AsyncClient() as client:
                response = await client.post(f"{url}/chat/completions", json=body, timeout=WAIT)
        finally:
            process.terminate()
            with anyio.fail_after(WAIT):
                assert await process.wait() == 0
            await process.aclose()
        message = response.json()["choices"][0]["message"]
        assert message == {"role": "assistant", "content": '{"ok": 1}'}
        (line,) = record.read_text().splitlines()
        assert json.loads(line)["body"] == body

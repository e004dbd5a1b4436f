"""The model agent against a real model: SmolLM2-135M behind llama-cpp-python's
OpenAI-compatible server, on loopback. Opt-in (`make real-model`): its extra compiles
llama.cpp, about ten minutes on two cores.

A 135M model's answers are not to be relied on, so these check what must hold
whatever it answers: the server takes the requests the agent sends (the tool-call
turns included), each call is journaled with the tokens the server counted, and
the step ends as the workflow says, completed with a typed output or failed as
`invalid_output` after its repair turns; and held to the answer's schema by the
server, it completes.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from actors.models import ModelAgent, ModelClient, ModelConfig
from protocols import TERMINAL_STATUSES
from runtime import ControlClient
from runtime.launch import ProcessGroup
from tests.integration.conftest import HEARTBEAT

pytestmark = [pytest.mark.integration, pytest.mark.real_model]

FLOWS = "tests.real_model.flows"
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


@pytest.mark.parametrize(
    ("agent", "held"), [("Greeter", False), ("SchemaGreeter", True)], ids=["prompt", "schema"]
)
def test_a_step_asks_the_real_model_and_its_record_shows_each_call(
    cluster: ProcessGroup, real_model: str, agent: str, held: bool
) -> None:
    """The run ends as the workflow says whatever the model answers, and its history has
    each model call with the tokens the server counted. Held to the answer's schema
    (`json_object_schema`, which llama-cpp-python's server turns into a grammar), even
    this small a model gives an answer that fits, and the step completes."""
    cluster.enroll("greeter", "greeter")
    runtime = cluster.start_runtime([f"{FLOWS}:ALL"], heartbeat=HEARTBEAT)
    cluster.start_actor(
        f"{FLOWS}:{agent}", runtime.agents, principal="greeter",
        env={"BATON_MODEL_URL": real_model},
    )  # fmt: skip

    async def run() -> Any:
        async with ControlClient(runtime.control, keys=runtime.operator) as client:
            run_id = await client.start_run("greeting", {"name": "Ada"})
            record, timed_out = await client.wait_run(run_id, max_wait=300)
            assert not timed_out, record.status
            return record

    record = anyio.run(run)
    assert record.status in TERMINAL_STATUSES
    calls = [h for h in record.history if h.event == "model_called"]
    assert calls, "no model call was journaled"
    for call in calls:
        assert call.detail["tokens_in"] > 0
        assert call.detail["tokens_out"] > 0
        assert call.detail["finish_reason"] in ("stop", "length", "tool_calls")
    if held:
        assert record.status == "completed", record.reason
    if record.status == "completed":
        assert isinstance(record.data["greeting"], str)
        assert record.data["greeting"]
    else:
        (failed,) = [h for h in record.history if h.event == "step_failed"]
        assert "invalid_output" in failed.message, failed.message
        assert len(calls) == 1 + ModelAgent.repair_turns


@pytest.mark.anyio
async def test_a_tool_call_turn_is_taken_by_the_server(real_model: str) -> None:
    """The conversation the agent sends after a tool call, the assistant's turn with empty
    content and its calls then the tool's answer, is answered, not refused."""
    body = {
        "model": "smollm2",
        "tools": [ADD],
        "tool_choice": "auto",
        "messages": [
            {"role": "system", "content": "You add numbers with the add tool."},
            {"role": "user", "content": "What is 2 + 3?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_0", "content": "5"},
        ],
    }
    config = ModelConfig(url=real_model, model="smollm2", timeout=90.0, attempts=1)
    async with ModelClient(config) as client:
        completion = await client.complete(body)
    assert completion.tokens_in > 0
    assert completion.message["role"] == "assistant"
